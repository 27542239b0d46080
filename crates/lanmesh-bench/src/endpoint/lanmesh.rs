//! lanmesh peers, encrypted (ChaCha20-Poly1305 or, for `lanmesh-aes`, AES-256-GCM) or
//! plaintext. Requests use `Peer::request` against a peer
//! answering with `Peer::respond`: the same shape as NATS request/reply. The federated
//! system uses the same peers, each side on its own router.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use lanmesh_client::Peer;
use lanmesh_proto::{Cipher, Identity};

use super::{Endpoint, Target};
use crate::error::BenchError;
use crate::row::System;

/// The mesh name every bench router serves.
pub(crate) const MESH: &str = "bench";

/// How long a request may wait for its reply.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a direct pair waits for its link before the test fails.
const LINK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a federated router may take to learn of a peer on the other router.
const PRESENCE_TIMEOUT: Duration = Duration::from_secs(30);

/// One key for every bench peer: a device makes its key once and keeps it, so making
/// keys is not part of what a connection costs.
fn identity() -> Result<Identity, BenchError> {
    static KEY: OnceLock<Identity> = OnceLock::new();
    if let Some(id) = KEY.get() {
        return Ok(id.clone());
    }
    let id = Identity::generate().map_err(|e| BenchError::client("lanmesh", e))?;
    Ok(KEY.get_or_init(|| id).clone())
}

fn err(e: impl std::fmt::Display) -> BenchError {
    BenchError::client("lanmesh", e)
}

/// A lanmesh peer.
pub(crate) struct LanmeshEndpoint {
    peer: Peer,
    /// Whether its router is federated (others' names arrive through NATS).
    federated: bool,
    /// Whether it talks to the other side over a direct link.
    direct: bool,
}

impl LanmeshEndpoint {
    /// Brings the direct link to `name` up before anything is measured: requests (which
    /// the receiving side declines, so it counts no message) make this peer dial it, and
    /// go through the router until the link carries them.
    async fn link_to(&mut self, name: &str) -> Result<(), BenchError> {
        let started = tokio::time::Instant::now();
        while !self.peer.is_direct(name) {
            if started.elapsed() > LINK_TIMEOUT {
                return Err(err(format!(
                    "no direct link to {name:?} within {LINK_TIMEOUT:?}"
                )));
            }
            let _ = self
                .peer
                .request(name, Bytes::new(), Duration::from_millis(200))
                .await;
        }
        Ok(())
    }
}

impl Endpoint for LanmeshEndpoint {
    async fn connect(target: Target, name: &str) -> Result<Self, BenchError> {
        let aes = matches!(target.system, System::LanmeshAes | System::LanmeshDirectAes);
        let cipher = if aes {
            Cipher::Aes256Gcm
        } else {
            Cipher::ChaCha20Poly1305
        };
        // Direct links only for the `lanmesh-direct` systems: every other lanmesh row
        // measures the path through its router.
        let peer = Peer::builder(name)
            .router(target.addr.to_string())
            .mesh(MESH)
            .identity(identity()?)
            .plaintext(target.system == System::LanmeshPlain)
            .cipher(cipher)
            .direct(target.system.is_direct())
            .reconnect(false)
            .connect()
            .await
            .map_err(err)?;
        Ok(Self {
            peer,
            federated: target.system == System::LanmeshFederated,
            direct: target.system.is_direct(),
        })
    }

    async fn send(&mut self, to: &str, data: &Bytes) -> Result<(), BenchError> {
        self.peer.send(to, data.clone()).await.map_err(err)?;
        Ok(())
    }

    async fn broadcast(&mut self, data: &Bytes) -> Result<(), BenchError> {
        self.peer.broadcast(data.clone()).await.map_err(err)?;
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), BenchError> {
        // The peer's writer sends whenever the socket is writable: nothing is held back.
        Ok(())
    }

    async fn recv(&mut self) -> Result<Bytes, BenchError> {
        Ok(self.peer.recv().await.map_err(err)?.data)
    }

    async fn request(&mut self, to: &str, data: &Bytes) -> Result<Bytes, BenchError> {
        let reply = self
            .peer
            .request(to, data.clone(), REQUEST_TIMEOUT)
            .await
            .map_err(err)?;
        Ok(reply.data)
    }

    async fn serve_echo(self) -> Result<(), BenchError> {
        self.peer
            .respond(|req| req.data.clone())
            .await
            .map_err(err)?;
        // Requests are answered on the peer's actor; this only keeps the peer alive.
        std::future::pending::<()>().await;
        Ok(())
    }

    async fn close(self) {
        self.peer.terminate();
    }

    async fn wait_for(&mut self, name: &str) -> Result<(), BenchError> {
        if self.direct {
            return self.link_to(name).await;
        }
        if !self.federated {
            return Ok(());
        }
        let seen = async {
            // The public API has no change notification for the member list: look again
            // every few milliseconds (this is set-up, not measured).
            while !self.peer.peers().iter().any(|p| p.name.as_str() == name) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(PRESENCE_TIMEOUT, seen)
            .await
            .map_err(|_| {
                err(format!(
                    "{name:?} not seen across the federation within {PRESENCE_TIMEOUT:?}"
                ))
            })
    }
}

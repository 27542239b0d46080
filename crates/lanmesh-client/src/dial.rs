//! Reaching a router: the configured address, or the routers of the mesh found by mDNS.
//!
//! With discovery, routers come back in a deterministic order; for each, every address
//! is tried in parallel and the first TCP connection wins. The handshake then runs on it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::config::PeerConfig;
use crate::error::ClientError;

/// How long discovery keeps listening for other routers of the mesh after the first.
const SETTLE: Duration = Duration::from_millis(150);

/// A connected stream and the address it reached.
pub(crate) struct Dialed {
    pub(crate) stream: TcpStream,
    pub(crate) addr: String,
}

pub(crate) async fn dial(config: &PeerConfig) -> Result<Dialed, ClientError> {
    match &config.router {
        Some(addr) => connect(addr.clone(), config.connect_timeout).await,
        None => discover_and_connect(config).await,
    }
}

async fn connect(addr: String, deadline: Duration) -> Result<Dialed, ClientError> {
    match tokio::time::timeout(deadline, TcpStream::connect(addr.as_str())).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(Dialed { stream, addr })
        }
        Ok(Err(source)) => Err(ClientError::Connect { addr, source }),
        Err(_) => Err(ClientError::HandshakeTimeout {
            addr,
            after: deadline,
        }),
    }
}

async fn discover_and_connect(config: &PeerConfig) -> Result<Dialed, ClientError> {
    let mesh = config.mesh.clone();
    let interface = config.interface.clone();
    let timeout = config.discovery_timeout;
    let found = tokio::task::spawn_blocking(move || {
        lanmesh_discovery::find(&mesh, interface.as_deref(), timeout, SETTLE)
    })
    .await
    .map_err(|e| ClientError::disconnected(format!("discovery task failed: {e}")))?
    .map_err(ClientError::Discovery)?;
    let mut last = None;
    for router in found {
        tracing::debug!(instance = %router.instance, addrs = ?router.addrs, "trying router found by mDNS");
        match race(&router.addrs, config.connect_timeout).await {
            Ok(d) => return Ok(d),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| ClientError::disconnected("no router address to try")))
}

/// Connects to every address at once; the first to succeed wins, the rest are dropped.
async fn race(addrs: &[SocketAddr], deadline: Duration) -> Result<Dialed, ClientError> {
    let mut attempts = JoinSet::new();
    for a in addrs {
        attempts.spawn(connect(a.to_string(), deadline));
    }
    let mut last = None;
    while let Some(done) = attempts.join_next().await {
        match done {
            Ok(Ok(d)) => return Ok(d),
            Ok(Err(e)) => last = Some(e),
            Err(e) => last = Some(ClientError::disconnected(e.to_string())),
        }
    }
    Err(last.unwrap_or_else(|| ClientError::disconnected("no router address to try")))
}

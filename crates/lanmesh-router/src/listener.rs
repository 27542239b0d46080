//! TCP listeners: accept, give each connection its slot (see `admission`), start a
//! `Session` per connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::Addr;
use lanmesh_actix::{StreamReader, StreamWriter};
use lanmesh_proto::Transport;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::admission::{Admission, Admit, Ticket};
use crate::config::RouterConfig;
use crate::metrics::Metrics;
use crate::router::Router;
use crate::session::Session;
use crate::shutdown::Shutdown;

/// What every accept loop shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) config: Arc<RouterConfig>,
    pub(crate) router: Addr<Router>,
    pub(crate) shutdown: Shutdown,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) next_id: Arc<AtomicU64>,
    pub(crate) admission: Arc<Admission>,
}

impl Shared {
    /// Gives a connection from `remote` its slot, or says why not. `None`: closed.
    pub(crate) fn admit(&self, remote: SocketAddr) -> Option<(u64, Ticket)> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        match self.admission.admit(id, remote.ip()) {
            Admit::Session(t) => Some((id, t)),
            Admit::Refuse(t) => {
                self.metrics.refused_connection();
                Some((id, t))
            }
            Admit::Close(why) => {
                self.metrics.refused_connection();
                debug!(%remote, ?why, "no slot; closing new connection");
                None
            }
        }
    }
}

pub(crate) async fn accept_loop(listener: TcpListener, shared: Shared) {
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.begun() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, remote)) => {
                let Some((id, ticket)) = shared.admit(remote) else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (read, write) = stream.into_split();
                start_session(&shared, id, ticket, remote, Transport::Tcp, read, write);
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Starts a `Session` reading from `read` and writing to `write`.
pub(crate) fn start_session(
    shared: &Shared,
    id: u64,
    ticket: Ticket,
    remote: SocketAddr,
    transport: Transport,
    read: impl tokio::io::AsyncRead + 'static,
    write: impl tokio::io::AsyncWrite + 'static,
) {
    let shared = shared.clone();
    lanmesh_actix::same_poll::start(Session::new(
        id,
        ticket,
        remote,
        transport,
        shared.config,
        shared.router,
        shared.shutdown,
        shared.metrics,
        StreamReader::new(read),
        StreamWriter::new(write),
    ));
}

/// Binds every address before anything starts, so a bad address fails the start.
pub(crate) async fn bind_all(addrs: &[SocketAddr]) -> std::io::Result<Vec<TcpListener>> {
    let mut out = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        out.push(l);
    }
    Ok(out)
}

pub(crate) fn spawn(listener: TcpListener, shared: Shared) {
    actix_rt::spawn(accept_loop(listener, shared));
}

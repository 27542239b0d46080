//! Reaching a router: the configured address (`host:port` for TCP, `ws://host:port/mesh`
//! for the WebSocket gateway), or the routers of the mesh found by mDNS.
//!
//! With discovery, the last router that worked for the mesh is tried first (see
//! `crate::last_routers`), with a short connect timeout; the handshake then has to show
//! the key remembered with it, or the driver drops the connection and the peer discovers
//! the mesh's routers after all. Otherwise (or when nothing answers at the remembered
//! address) routers found by mDNS come back in a deterministic order; for each, every
//! address is tried in parallel and the first TCP connection wins. The handshake then
//! runs on it. Each connection says how it was found ([`Origin`]), which decides how the
//! router's key is checked.
//! A WebSocket is bridged to the same length-prefixed byte stream as TCP, so the actor
//! does not know which transport it runs on.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use lanmesh_proto::limits::MAX_RECORD;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::config::PeerConfig;
use crate::last_routers::LastRouters;
use lanmesh_core::ClientError;

/// How long discovery keeps listening for other routers of the mesh after the first
/// (multicast answers are deferred by up to 120 ms; unicast ones settle sooner, see
/// `lanmesh_discovery::find`).
const SETTLE: Duration = Duration::from_millis(150);

/// How long the TCP connection to the remembered router may take before the peer
/// discovers instead: a LAN router that is up accepts within milliseconds.
const REMEMBERED_CONNECT_TIMEOUT: Duration = Duration::from_millis(300);

/// How the router of a connection was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The address was configured (`--router`).
    Configured,
    /// The last router that worked for the mesh: trusted only if it shows this key,
    /// pinned for the mesh.
    Remembered { key: [u8; 32] },
    /// Found by mDNS just now (`standby`: it advertised that another router leads).
    Discovered { standby: bool },
}

/// A connected byte stream (TCP, or a bridged WebSocket) and the address it reached.
pub(crate) struct Dialed {
    pub(crate) read: Box<dyn AsyncRead + Unpin>,
    pub(crate) write: Box<dyn AsyncWrite + Unpin>,
    pub(crate) addr: String,
    pub(crate) origin: Origin,
}

pub(crate) async fn dial(config: &PeerConfig) -> Result<Dialed, ClientError> {
    match &config.router {
        Some(url) if url.starts_with("ws://") => {
            connect_ws(url.clone(), config.connect_timeout).await
        }
        Some(addr) => connect(addr.clone(), config.connect_timeout).await,
        None => discover_and_connect(config).await,
    }
}

async fn connect(addr: String, deadline: Duration) -> Result<Dialed, ClientError> {
    connect_tcp(addr, deadline)
        .await
        .map(|c| tcp_dialed(c, Origin::Configured))
}

fn tcp_dialed((stream, addr): (TcpStream, String), origin: Origin) -> Dialed {
    let (read, write) = stream.into_split();
    Dialed {
        read: Box::new(read),
        write: Box::new(write),
        addr,
        origin,
    }
}

async fn connect_tcp(addr: String, deadline: Duration) -> Result<(TcpStream, String), ClientError> {
    match tokio::time::timeout(deadline, TcpStream::connect(addr.as_str())).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok((stream, addr))
        }
        Ok(Err(e)) => Err(ClientError::Connect {
            addr,
            detail: e.to_string(),
        }),
        Err(_) => Err(ClientError::HandshakeTimeout {
            addr,
            after: deadline,
        }),
    }
}

/// Connects to the gateway's WebSocket endpoint; one binary message per record.
async fn connect_ws(url: String, deadline: Duration) -> Result<Dialed, ClientError> {
    let limits = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_RECORD + 1024))
        .max_frame_size(Some(MAX_RECORD + 1024));
    let attempt = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(limits), true);
    let (ws, _) = match tokio::time::timeout(deadline, attempt).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            return Err(ClientError::Connect {
                addr: url,
                detail: e.to_string(),
            });
        }
        Err(_) => {
            return Err(ClientError::HandshakeTimeout {
                addr: url,
                after: deadline,
            });
        }
    };
    let (sink, stream) = ws.split();
    // Binary messages are records; anything else (text, close, an error) ends the stream.
    let incoming = stream
        .take_while(|m| {
            std::future::ready(matches!(
                m,
                Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_))
            ))
        })
        .filter_map(|m| {
            std::future::ready(if let Ok(Message::Binary(b)) = m {
                Some(b)
            } else {
                None
            })
        });
    let outgoing = sink.with(|record: bytes::Bytes| {
        std::future::ready(Ok::<_, tungstenite::Error>(Message::Binary(record)))
    });
    let (read, write) = lanmesh_actix::bridge(
        Box::pin(incoming),
        Box::pin(outgoing),
        std::future::ready(()),
    );
    Ok(Dialed {
        read: Box::new(read),
        write: Box::new(write),
        addr: url,
        origin: Origin::Configured,
    })
}

async fn discover_and_connect(config: &PeerConfig) -> Result<Dialed, ClientError> {
    let remembered = config
        .router_pins
        .as_ref()
        .and_then(|pins| LastRouters::beside(pins).get(&config.mesh));
    if let Some(last) = remembered {
        let deadline = REMEMBERED_CONNECT_TIMEOUT.min(config.connect_timeout);
        match connect_tcp(last.addr.to_string(), deadline).await {
            Ok(won) => {
                tracing::debug!(addr = %last.addr, "trying the router remembered for the mesh");
                return Ok(tcp_dialed(won, Origin::Remembered { key: last.key }));
            }
            Err(e) => {
                tracing::debug!(addr = %last.addr, error = %e, "remembered router unreachable; discovering");
            }
        }
    }
    let mesh = config.mesh.clone();
    let interface = config.interface.clone();
    let timeout = config.discovery_timeout;
    let found = tokio::task::spawn_blocking(move || {
        lanmesh_discovery::find(&mesh, interface.as_deref(), timeout, SETTLE)
    })
    .await
    .map_err(|e| ClientError::disconnected(format!("discovery task failed: {e}")))?
    .map_err(|e| ClientError::Discovery(e.to_string()))?;
    let mut last = None;
    for router in found {
        tracing::debug!(instance = %router.instance, addrs = ?router.addrs, "trying router found by mDNS");
        let origin = Origin::Discovered {
            standby: router.standby,
        };
        match race(&router.addrs, config.connect_timeout).await {
            Ok(won) => return Ok(tcp_dialed(won, origin)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| ClientError::disconnected("no router address to try")))
}

/// Connects to every address at once; the first to succeed wins, the rest are dropped.
async fn race(
    addrs: &[SocketAddr],
    deadline: Duration,
) -> Result<(TcpStream, String), ClientError> {
    let mut attempts = JoinSet::new();
    for a in addrs {
        attempts.spawn(connect_tcp(a.to_string(), deadline));
    }
    let mut last = None;
    while let Some(done) = attempts.join_next().await {
        match done {
            Ok(Ok(won)) => return Ok(won),
            Ok(Err(e)) => last = Some(e),
            Err(e) => last = Some(ClientError::disconnected(e.to_string())),
        }
    }
    Err(last.unwrap_or_else(|| ClientError::disconnected("no router address to try")))
}

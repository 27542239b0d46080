//! Direct links, native side: the TCP listener other peers dial, the dials the core asks
//! for, and one small actor per link that moves its bytes in and out of the core (the
//! handshake, the key checks and the switch are the core's: `lanmesh_core::peer`'s
//! `direct.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context as TaskContext, Waker};
use std::time::Duration;

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use lanmesh_actix::{ReadsStream, StreamReader, StreamWriter, WritesStream};
use tokio::net::{TcpListener, TcpStream};
use tracing::debug;

use crate::endpoint::Endpoint;

/// How long dialing a peer's link port may take: on a LAN a reachable peer answers within
/// milliseconds; a firewall that drops the SYN is given up on after this.
pub(crate) const LINK_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Binds the port this peer takes links on (`port` 0: any free one), on every interface:
/// the router tells the others the address it sees this peer at.
pub(crate) fn listen(port: u16) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Connections to the link port, as a stream for the peer's actor.
pub(crate) fn incoming(
    listener: std::net::TcpListener,
) -> std::io::Result<impl futures_util::Stream<Item = TcpStream>> {
    let listener = TcpListener::from_std(listener)?;
    Ok(futures_util::stream::unfold(listener, |l| async move {
        loop {
            match l.accept().await {
                Ok((stream, _)) => return Some((stream, l)),
                // A connection that failed before it was taken; the listener goes on.
                Err(e) => debug!(error = %e, "accepting a direct link failed"),
            }
        }
    }))
}

/// Where to dial a member the router introduced at `introduced` (the address the router
/// saw it at, with its link port), for this peer, which reached the router at `router`.
///
/// A member the router saw on loopback runs on the router's own machine. From another
/// machine its loopback address leads nowhere (or to some other program there), but the
/// router's address leads to that machine: the member is dialled there. The dial still
/// takes only the key the router vouched for, so this points at no one else.
pub(crate) fn link_address(introduced: &str, router: &str) -> String {
    let Ok(member) = introduced.parse::<SocketAddr>() else {
        return introduced.to_owned();
    };
    match router_host(router) {
        Some(host) if member.ip().is_loopback() && !is_loopback(host) => {
            if host.contains(':') {
                format!("[{host}]:{}", member.port())
            } else {
                format!("{host}:{}", member.port())
            }
        }
        _ => introduced.to_owned(),
    }
}

/// The host part of a router address: `host:port`, `host`, `[v6]:port`, or a
/// `ws://host:port/mesh` URL.
fn router_host(router: &str) -> Option<&str> {
    let authority = match router.split_once("://") {
        Some((_, rest)) => rest.split('/').next().unwrap_or(rest),
        None => router,
    };
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split_once(']').map(|(host, _)| host);
    }
    let host = match authority.rsplit_once(':') {
        // A bare IPv6 address has more than one colon and no port.
        Some((host, _)) if !host.contains(':') => host,
        _ => authority,
    };
    (!host.is_empty()).then_some(host)
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Opens the TCP connection for a link the core dials.
pub(crate) async fn dial(addr: String) -> Result<TcpStream, String> {
    match tokio::time::timeout(LINK_CONNECT_TIMEOUT, TcpStream::connect(&addr)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(format!("cannot reach {addr}: {e}")),
        Err(_) => Err(format!("{addr} did not answer in {LINK_CONNECT_TIMEOUT:?}")),
    }
}

/// One direct link's transport.
pub(crate) struct LinkActor {
    endpoint: Arc<Endpoint>,
    link: u64,
    reader: StreamReader,
    writer: StreamWriter,
}

impl LinkActor {
    pub(crate) fn start(endpoint: Arc<Endpoint>, link: u64, stream: TcpStream) -> Addr<Self> {
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        Actor::start(Self {
            endpoint,
            link,
            reader: StreamReader::new(read),
            writer: StreamWriter::new(write),
        })
    }
}

impl Actor for LinkActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.reader.start::<Self>(ctx);
        self.writer.start::<Self>(ctx);
    }
}

/// The core is done with the link: write what is left, then close.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct CloseLink;

impl Handler<CloseLink> for LinkActor {
    type Result = ();

    fn handle(&mut self, _: CloseLink, ctx: &mut Context<Self>) {
        self.reader.stop();
        if self.writer.is_closing() {
            return;
        }
        self.writer.close();
        // A peer that never reads must not keep the link alive.
        ctx.run_later(Duration::from_secs(1), |_, ctx| ctx.stop());
    }
}

impl ReadsStream for LinkActor {
    fn reader(&mut self) -> &mut StreamReader {
        &mut self.reader
    }

    fn input_paused(&mut self, waker: &Waker) -> bool {
        self.endpoint.inbox.reader_must_wait(waker)
    }

    fn on_input(&mut self, input: &mut BytesMut, _: &mut Context<Self>) {
        let now = self.endpoint.now();
        self.endpoint
            .lock()
            .core
            .handle_link_input(self.link, input, now);
        self.writer.wake();
    }

    fn input_closed(&mut self, error: Option<std::io::Error>, ctx: &mut Context<Self>) {
        debug!(link = self.link, error = ?error, "direct link ended");
        let now = self.endpoint.now();
        self.endpoint.lock().core.link_closed(self.link, now);
        ctx.stop();
    }
}

impl WritesStream for LinkActor {
    fn writer(&mut self) -> &mut StreamWriter {
        &mut self.writer
    }

    fn queued_output(&mut self) -> usize {
        self.endpoint.lock().core.link_queued_bytes(self.link)
    }

    fn poll_output(&mut self, cx: &mut TaskContext<'_>) -> Option<Bytes> {
        let mut st = self.endpoint.lock();
        let out = st.core.poll_link_transmit(self.link);
        if out.is_none() {
            st.park_link_writer(self.link, cx.waker());
        }
        out
    }

    fn wrote(&mut self, _: usize) {
        self.endpoint.wake_senders_if_room(Some(self.link));
    }

    fn output_closed(&mut self, error: Option<std::io::Error>, ctx: &mut Context<Self>) {
        if let Some(e) = error {
            debug!(link = self.link, error = %e, "writing a direct link failed");
        }
        let now = self.endpoint.now();
        self.endpoint.lock().core.link_closed(self.link, now);
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::link_address;

    #[test]
    fn a_member_on_the_routers_loopback_is_dialled_at_the_routers_address() {
        let cases = [
            ("127.0.0.1:4100", "192.168.1.5:7400", "192.168.1.5:4100"),
            ("127.0.0.1:4100", "192.168.1.5", "192.168.1.5:4100"),
            ("127.0.0.1:4100", "laptop.local:7400", "laptop.local:4100"),
            ("127.0.0.1:4100", "ws://10.0.0.2:7401/mesh", "10.0.0.2:4100"),
            ("127.0.0.1:4100", "[fd00::2]:7400", "[fd00::2]:4100"),
            ("[::1]:4100", "fd00::2", "[fd00::2]:4100"),
            // On the router's machine too: loopback is right.
            ("127.0.0.1:4100", "127.0.0.1:7400", "127.0.0.1:4100"),
            ("127.0.0.1:4100", "localhost:7400", "127.0.0.1:4100"),
            ("[::1]:4100", "[::1]:7400", "[::1]:4100"),
            // Members seen at a LAN address are dialled where the router saw them.
            ("10.0.0.7:4100", "192.168.1.5:7400", "10.0.0.7:4100"),
            ("10.0.0.7:4100", "127.0.0.1:7400", "10.0.0.7:4100"),
        ];
        for (introduced, router, want) in cases {
            assert_eq!(
                link_address(introduced, router),
                want,
                "{introduced} via {router}"
            );
        }
    }
}

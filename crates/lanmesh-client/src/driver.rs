//! The `PeerActor`: the native driver of a [`PeerCore`](lanmesh_core::peer::PeerCore).
//! It moves bytes between the socket and the core, hands it the time, and does what the
//! core asks for that needs the outside world — and nothing else:
//!
//! * the socket's reader feeds [`PeerCore::handle_input`](lanmesh_core::peer::PeerCore::handle_input)
//!   (pausing while the inbox is full) and its writer drains `poll_transmit`;
//! * a 20 ms ticker calls `handle_timeout` (the precision of ack and request deadlines);
//! * [`Event::Dial`]: dial again (TCP, WebSocket, or discovery) and `connect`;
//! * [`Event::VerifyRouter`]: check the router's key against the pinned ones (a router
//!   remembered at an address must show the key remembered with it, or the connection is
//!   dropped, the address forgotten, and the peer discovers the mesh's router instead);
//!   remember a router found by discovery that passed;
//! * [`Event::Request`]: answer with the application's handler, or queue it for
//!   `Peer::reply`;
//! * [`FileEvent::Offered`]: start the task that writes the file to the save directory;
//! * direct links ([`Event::LinkDial`], [`Event::LinkClose`], connections to the link
//!   port): a [`LinkActor`] per link moves its bytes (see `crate::links`).
//!
//! When the core drops its connection the actor drops the socket; when the core is
//! closed, the actor flushes what is left and stops.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use lanmesh_actix::{ReadsStream, StreamReader, StreamWriter, WritesStream, ticker::Ticker};
use lanmesh_core::peer::{Event, FileEvent};
use tracing::{debug, warn};

use crate::config::PeerConfig;
use crate::dial::{Dialed, Origin, dial};
use crate::endpoint::Endpoint;
use crate::last_routers::{LastRouters, Remembered};
use crate::links::{CloseLink, LinkActor};

/// How often deadlines are checked: the precision of ack and request timeouts.
const DEADLINE_TICK: Duration = Duration::from_millis(20);

/// The actor behind a [`crate::Peer`] handle.
pub struct PeerActor {
    endpoint: Arc<Endpoint>,
    config: Arc<PeerConfig>,
    reader: StreamReader,
    writer: StreamWriter,
    /// A socket is attached (the core may have let go of it already).
    attached: bool,
    /// Counts dials, so the answer of a superseded one is ignored.
    dials: u64,
    /// How the router of the current connection was found, and where it is.
    origin: Origin,
    router_addr: String,
    owns_system: bool,
    /// The port other peers dial for direct links, until the actor starts taking them.
    listener: Option<std::net::TcpListener>,
    links: std::collections::HashMap<u64, Addr<LinkActor>>,
    /// Links told to close, still writing what they hold.
    closing_links: Vec<Addr<LinkActor>>,
}

impl PeerActor {
    pub(crate) fn new(
        endpoint: Arc<Endpoint>,
        config: Arc<PeerConfig>,
        dialed: Dialed,
        listener: Option<std::net::TcpListener>,
        owns_system: bool,
    ) -> Self {
        Self {
            endpoint,
            config,
            reader: StreamReader::new(dialed.read),
            writer: StreamWriter::new(dialed.write),
            attached: true,
            dials: 0,
            origin: dialed.origin,
            router_addr: dialed.addr,
            owns_system,
            listener,
            links: std::collections::HashMap::new(),
            closing_links: Vec::new(),
        }
    }

    /// Takes a freshly dialled connection and starts the handshake on it.
    fn attach(&mut self, dialed: Dialed, ctx: &mut Context<Self>) {
        self.reader = StreamReader::new(dialed.read);
        self.writer = StreamWriter::new(dialed.write);
        self.attached = true;
        self.origin = dialed.origin;
        self.router_addr = dialed.addr.clone();
        // The reader first: what it queues is written later in the same poll.
        self.reader.start::<Self>(ctx);
        self.writer.start::<Self>(ctx);
        let now = self.endpoint.now();
        let started = self.endpoint.lock().core.connect(&dialed.addr, now);
        if let Err(e) = started {
            debug!(error = %e, "could not start a handshake");
            self.endpoint.lock().core.terminate();
        }
        self.writer.wake();
        self.follow_core(ctx);
    }

    /// Keeps the socket in step with the core: dropped when the core let go of its
    /// connection, flushed and shut when the core is closed.
    fn follow_core(&mut self, ctx: &mut Context<Self>) {
        let (closed, has_transport) = {
            let st = self.endpoint.lock();
            (st.core.is_closed(), st.core.has_transport())
        };
        if closed {
            if self.attached && !self.writer.is_closing() {
                self.reader.stop();
                self.writer.close();
                // A router that never reads must not keep the actor alive.
                ctx.run_later(Duration::from_secs(1), |_, ctx| ctx.stop());
            } else if !self.attached {
                ctx.stop();
            }
        } else if self.attached && !has_transport {
            // Retire the old connection: its reader and writer futures end on their own.
            self.reader = StreamReader::detached();
            self.writer = StreamWriter::detached();
            self.attached = false;
        }
    }

    /// Handles what the core left for the driver.
    fn run_driver_events(&mut self, ctx: &mut Context<Self>) {
        loop {
            let Some(event) = self.endpoint.lock().for_driver.pop_front() else {
                break;
            };
            match event {
                Event::Request(req) => self.answer(req),
                Event::VerifyRouter { key } => {
                    let verdict = self.verify_router(&key);
                    let now = self.endpoint.now();
                    let mut st = self.endpoint.lock();
                    match verdict {
                        Verdict::Trusted => st.core.router_verified(now),
                        Verdict::Refused(e) => st.core.router_rejected(e),
                        // As if the connection had failed: a first join fails (and
                        // `Peer::connect` discovers), a reconnect dials again.
                        Verdict::NotRemembered => st.core.transport_closed(
                            Some(format!(
                                "the router at {} is no longer the one remembered",
                                self.router_addr
                            )),
                            now,
                        ),
                    }
                }
                Event::Dial => self.dial(ctx),
                Event::LinkDial { link, addr } => {
                    let addr = crate::links::link_address(&addr, &self.router_addr);
                    self.dial_link(link, addr, ctx);
                }
                Event::LinkClose { link } => {
                    if let Some(actor) = self.links.remove(&link) {
                        actor.do_send(CloseLink);
                        self.closing_links.retain(Addr::connected);
                        self.closing_links.push(actor);
                    }
                    // Senders waiting for room on it go by the router now.
                    self.endpoint.wake_senders_if_room(None);
                }
                Event::File(FileEvent::Offered {
                    from,
                    blob,
                    id,
                    size,
                    name,
                }) => crate::files::receive(
                    self.endpoint.clone(),
                    self.config.save_dir.clone(),
                    from,
                    blob,
                    id,
                    size,
                    name,
                ),
                other => debug!(?other, "event for the driver ignored"),
            }
        }
        self.writer.wake();
        self.follow_core(ctx);
    }

    /// Whether the router of the current connection, which proved `key`, is trusted.
    fn verify_router(&self, key: &[u8; 32]) -> Verdict {
        let Some(pins) = &self.config.router_pins else {
            return Verdict::Trusted;
        };
        let mesh = &self.config.mesh;
        let last = LastRouters::beside(pins);
        match self.origin {
            Origin::Remembered { key: remembered } => {
                if remembered == *key && pins.is_pinned(mesh, key) {
                    return Verdict::Trusted;
                }
                warn!(
                    addr = %self.router_addr,
                    key = %lanmesh_proto::handshake::fingerprint(key),
                    "another router holds the address remembered for the mesh; discovering"
                );
                if let Err(e) = last.forget(mesh) {
                    debug!(error = %e, "could not forget the remembered router");
                }
                Verdict::NotRemembered
            }
            Origin::Configured => match pins.check(mesh, key) {
                Ok(()) => Verdict::Trusted,
                Err(e) => Verdict::Refused(e),
            },
            Origin::Discovered { standby } => {
                if let Err(e) = pins.check(mesh, key) {
                    return Verdict::Refused(e);
                }
                // A router on standby is not remembered: the next join should find the
                // one that leads.
                let addr = self.router_addr.parse().ok().filter(|_| !standby);
                if let Some(addr) = addr {
                    if let Err(e) = last.remember(mesh, Remembered { addr, key: *key }) {
                        debug!(error = %e, "could not remember the router");
                    }
                }
                Verdict::Trusted
            }
        }
    }

    /// A request arrived: the handler answers it, or the application does later.
    fn answer(&mut self, req: lanmesh_core::Message) {
        let (handler, channel, queue) = {
            let st = self.endpoint.lock();
            (
                st.handler.clone(),
                st.request_queue.clone(),
                st.queue_requests,
            )
        };
        match (handler, channel) {
            (Some(handler), _) => {
                // The application's code runs without the lock held.
                let data = handler(&req);
                let text = crate::peer::is_text(&data);
                let sent = self
                    .endpoint
                    .lock()
                    .core
                    .reply(&req.from, req.id, &data, text);
                if let Err(e) = sent {
                    debug!(to = %req.from, error = %e, "could not send a reply");
                }
            }
            (None, Some(channel)) => {
                if let Err(e) = channel.try_send(req) {
                    // Full (or no longer read): the requester hears at once rather than
                    // waiting out its timeout.
                    let req = e.into_inner();
                    debug!(from = %req.from, "request queue full or gone; declined");
                    let _ = self.endpoint.lock().core.decline(&req.from, req.id);
                }
            }
            (None, None) if queue => self.endpoint.inbox.push(req),
            (None, None) => {
                let _ = self.endpoint.lock().core.decline(&req.from, req.id);
            }
        }
    }

    /// Opens the transport of direct link `link` to `addr`.
    fn dial_link(&mut self, link: u64, addr: String, ctx: &mut Context<Self>) {
        ctx.spawn(
            crate::links::dial(addr)
                .into_actor(self)
                .map(move |res, act, _| {
                    let now = act.endpoint.now();
                    match res {
                        Ok(stream) => {
                            let actor = LinkActor::start(act.endpoint.clone(), link, stream);
                            act.links.insert(link, actor);
                            act.endpoint.lock().core.link_connected(link, now);
                        }
                        Err(e) => {
                            debug!(link, error = %e, "direct link not opened");
                            act.endpoint.lock().core.link_closed(link, now);
                        }
                    }
                }),
        );
    }

    fn dial(&mut self, ctx: &mut Context<Self>) {
        self.dials += 1;
        let attempt = self.dials;
        let config = self.config.clone();
        ctx.spawn(
            async move { dial(&config).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    if act.dials != attempt {
                        return;
                    }
                    match res {
                        Ok(dialed) => act.attach(dialed, ctx),
                        Err(e) => {
                            let now = act.endpoint.now();
                            act.endpoint.lock().core.dial_failed(&e.to_string(), now);
                        }
                    }
                }),
        );
    }
}

/// What [`PeerActor::verify_router`] decided.
enum Verdict {
    Trusted,
    /// A router with another key than the pinned ones: the peer ends with this error.
    Refused(lanmesh_core::ClientError),
    /// Not the router remembered at that address: drop the connection and discover.
    NotRemembered,
}

impl Actor for PeerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(256);
        // The reader first: what it queues is written later in the same poll.
        self.reader.start::<Self>(ctx);
        ctx.spawn(Chores {
            tick: Ticker::new(DEADLINE_TICK, |act: &mut Self, ctx| {
                let now = act.endpoint.now();
                act.endpoint.lock().core.handle_timeout(now);
                act.writer.wake();
                act.follow_core(ctx);
            }),
        });
        self.writer.start::<Self>(ctx);
        if let Some(listener) = self.listener.take() {
            match crate::links::incoming(listener) {
                Ok(incoming) => {
                    ctx.add_stream(incoming);
                }
                Err(e) => warn!(error = %e, "cannot take direct links"),
            }
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // Whatever is still waiting learns that the peer is gone.
        self.endpoint.lock().core.terminate();
        for (_, link) in self.links.drain() {
            link.do_send(CloseLink);
            self.closing_links.push(link);
        }
        if self.owns_system {
            // The links write what they hold (the last messages of a graceful close) before
            // the system they run on ends; a link whose peer does not read gets 1 s.
            let links = std::mem::take(&mut self.closing_links);
            actix_rt::spawn(async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
                while links.iter().any(Addr::connected) && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                System::current().stop();
            });
        }
    }
}

/// Someone connected to the link port: the core decides whether it is a link.
impl StreamHandler<tokio::net::TcpStream> for PeerActor {
    fn handle(&mut self, stream: tokio::net::TcpStream, _: &mut Context<Self>) {
        let now = self.endpoint.now();
        let link = self.endpoint.lock().core.accept_link(now);
        match link {
            Some(link) => {
                let actor = LinkActor::start(self.endpoint.clone(), link, stream);
                self.links.insert(link, actor);
            }
            None => debug!("direct link refused: too many, or links are off"),
        }
    }

    // The listener never ends by itself; if it did, the peer goes on through the router.
    fn finished(&mut self, _: &mut Context<Self>) {}
}

impl ReadsStream for PeerActor {
    fn reader(&mut self) -> &mut StreamReader {
        &mut self.reader
    }

    fn input_paused(&mut self, waker: &Waker) -> bool {
        self.endpoint.inbox.reader_must_wait(waker)
    }

    fn on_input(&mut self, input: &mut BytesMut, ctx: &mut Context<Self>) {
        let now = self.endpoint.now();
        self.endpoint.lock().core.handle_input(input, now);
        self.run_driver_events(ctx);
    }

    fn input_closed(&mut self, error: Option<std::io::Error>, ctx: &mut Context<Self>) {
        let now = self.endpoint.now();
        let error = error.map(|e| e.to_string());
        self.endpoint.lock().core.transport_closed(error, now);
        self.follow_core(ctx);
    }
}

impl WritesStream for PeerActor {
    fn writer(&mut self) -> &mut StreamWriter {
        &mut self.writer
    }

    fn queued_output(&mut self) -> usize {
        self.endpoint.lock().core.queued_bytes()
    }

    fn poll_output(&mut self, cx: &mut TaskContext<'_>) -> Option<Bytes> {
        let mut st = self.endpoint.lock();
        let out = st.core.poll_transmit();
        if out.is_none() {
            st.park_writer(cx.waker());
        }
        out
    }

    fn wrote(&mut self, _: usize) {
        self.endpoint.wake_senders_if_room(None);
    }

    fn output_closed(&mut self, error: Option<std::io::Error>, ctx: &mut Context<Self>) {
        if self.endpoint.lock().core.is_closed() {
            ctx.stop();
            return;
        }
        let now = self.endpoint.now();
        let error = error.map_or_else(
            || "the connection was shut down".to_owned(),
            |e| format!("write failed: {e}"),
        );
        self.endpoint.lock().core.transport_closed(Some(error), now);
        self.follow_core(ctx);
    }
}

/// What the actor does besides reading and writing, as one future (actix polls each of
/// an actor's futures on every wake-up): the events left for the driver, and the tick.
/// Polled before the writer, so that what it queues leaves in the same poll.
struct Chores {
    tick: Ticker<fn(&mut PeerActor, &mut Context<PeerActor>)>,
}

impl ActorFuture<PeerActor> for Chores {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut PeerActor,
        ctx: &mut Context<PeerActor>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<()> {
        let this = self.get_mut();
        let waiting = {
            let mut st = act.endpoint.lock();
            st.park_driver(cx.waker());
            !st.for_driver.is_empty() || st.core.is_closed()
        };
        if waiting {
            act.run_driver_events(ctx);
        }
        // Never ready: it ticks until the actor stops.
        Pin::new(&mut this.tick).poll(act, ctx, cx)
    }
}

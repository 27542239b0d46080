//! The `Session` actor: the driver of one connection's
//! [`SessionCore`](lanmesh_core::session::SessionCore), whatever the transport.
//!
//! The core decides everything the protocol says (see `lanmesh_core::session`); the
//! actor moves bytes between the socket and the core, the time, and what crosses to the
//! rest of the router:
//!
//! * joins, leaves and member lists go to the `Router` actor;
//! * frames for other members go straight to their sessions' inboxes (see `inbox`),
//!   one entry per destination per record, counted against the destination's
//!   [`Pressure`]; a sender whose recipient is congested stops reading from its peer
//!   until the congestion clears, unless the recipient is stuck;
//! * what other sessions forward arrives in this session's inbox and goes into the core.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::task::Waker;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use lanmesh_actix::ticker::Ticker;
use lanmesh_actix::{ReadsStream, StreamReader, StreamWriter, WritesStream};
use lanmesh_core::Instant;
use lanmesh_core::session::{SessionConfig, SessionCore, SessionEvent};
use lanmesh_proto::{ErrorCode, NackReason, Transport};
use tracing::{debug, info};

use crate::admission::{Evicted, Ticket};
use crate::config::RouterConfig;
use crate::inbox::{Inbox, Refused};
use crate::metrics::Metrics;
use crate::pressure::{Pressure, STUCK_AFTER};
use crate::router::{Join, Leave, ListPeers, NameCounters, Router};
use crate::shutdown::{Shutdown, Stop};
use crate::table::{Forward, Replaced, Route, Snapshot};

/// The router's clock for the cores: time since the first session started.
fn now() -> Instant {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    Instant::since_origin(ORIGIN.get_or_init(std::time::Instant::now).elapsed())
}

fn to_core(at: std::time::Instant) -> Instant {
    let n = now();
    let ago = at.elapsed();
    Instant::from_micros(n.as_micros().saturating_sub(ago.as_micros() as u64))
}

/// One connection to the router.
pub struct Session {
    id: u64,
    core: SessionCore<Snapshot>,
    config: Arc<RouterConfig>,
    router: Addr<Router>,
    shutdown: Shutdown,
    metrics: Arc<Metrics>,
    reader: StreamReader,
    writer: StreamWriter,
    /// Its name's traffic counters, once it joined (see `NameCounters`).
    counters: Arc<NameCounters>,
    /// This session's congestion, seen by the sessions that forward to it.
    pressure: Arc<Pressure>,
    /// Congested sessions this one forwarded to: it reads no more until they clear.
    waiting_on: Vec<Arc<Pressure>>,
    /// What other sessions forward to this one.
    inbox: Arc<Inbox<Forward>>,
    /// How to reach this session, handed to the router when it joins.
    remote: SocketAddr,
    /// Its slot (see `admission`); given back when the session is dropped.
    ticket: Ticket,
    /// A refusal session has told its peer "router full".
    told_full: bool,
    handshake_timeout: Duration,
}

/// How long a session that will refuse its peer ("router full") waits for the handshake.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(1);

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: u64,
        ticket: Ticket,
        remote: SocketAddr,
        transport: Transport,
        config: Arc<RouterConfig>,
        router: Addr<Router>,
        shutdown: Shutdown,
        metrics: Arc<Metrics>,
        reader: StreamReader,
        writer: StreamWriter,
    ) -> Self {
        let mut handshake = config.handshake();
        if ticket.refuses() {
            // A refusal only waits for a prompt peer: its budget is small.
            handshake.limits.handshake_timeout =
                handshake.limits.handshake_timeout.min(REFUSAL_DEADLINE);
        }
        let handshake_timeout = handshake.limits.handshake_timeout;
        let session = SessionConfig {
            handshake,
            transport,
            remote: remote.to_string(),
            grace: config.grace,
            write_stall: config.write_stall,
            close_timeout: Duration::from_secs(2),
        };
        let mut core = SessionCore::new(session, now());
        // A peer that asks (`lanmesh peers`) hears whether this router is federated and
        // connected to NATS as of its handshake.
        let router_id = config.router_id();
        core.set_router_status(lanmesh_proto::RouterStatus {
            connected: router_id.is_some() && metrics.snapshot().nats_connected,
            router: router_id,
        });
        Self {
            id,
            core,
            inbox: Arc::new(Inbox::new(config.mailbox_capacity)),
            config,
            router,
            shutdown,
            metrics,
            reader,
            writer,
            counters: Arc::default(),
            pressure: Arc::default(),
            waiting_on: Vec::new(),
            remote,
            ticket,
            told_full: false,
            handshake_timeout,
        }
    }

    /// Does what the core asked for, hands its frames to the other sessions, and adds
    /// its counters to the metrics.
    fn run_core(&mut self, ctx: &mut Context<Self>) {
        while let Some(event) = self.core.poll_event() {
            match event {
                SessionEvent::Join { .. } if self.ticket.refuses() => self.refuse_full(),
                SessionEvent::Join { info, resume, slot } => self.join(info, resume, slot, ctx),
                SessionEvent::HandshakeFailed => self.metrics.handshake_failed(),
                SessionEvent::ListPeers => self.list_peers(ctx),
                SessionEvent::Leave { name } => self.router.do_send(Leave {
                    session_id: self.id,
                    name,
                }),
                SessionEvent::Parked => {
                    info!(session = self.id, remote = %self.remote, "connection lost; holding the name");
                    self.reader.stop();
                    self.writer.close();
                    ctx.run_later(self.config.grace, |act, ctx| {
                        act.core.handle_timeout(now());
                        act.run_core(ctx);
                    });
                }
                SessionEvent::CloseTransport => {
                    debug!(session = self.id, remote = %self.remote, "closing session");
                    self.reader.stop();
                    self.writer.close();
                    // A peer that never reads must not keep the session alive.
                    ctx.run_later(Duration::from_secs(2), |act, ctx| {
                        act.core.handle_timeout(now());
                        act.run_core(ctx);
                    });
                }
                SessionEvent::CloseRequested => {
                    self.dispatch();
                    self.core.answer_close();
                }
                SessionEvent::Finished => ctx.stop(),
                other => debug!(?other, "session event ignored"),
            }
        }
        if !self.core.is_handshaking() && self.ticket.is_handshaking() {
            self.ticket.handshake_done();
            if self.ticket.refuses() && self.core.reads() {
                // An observer (no name, so no join) of a full router.
                self.refuse_full();
                return self.run_core(ctx);
            }
        }
        self.dispatch();
        let counts = self.core.take_counts();
        self.metrics.add_in(counts.bytes_in as usize);
        self.metrics.add_out(counts.bytes_out as usize);
        self.metrics.messages(counts.sent);
        self.metrics.dropped(counts.dropped as usize);
        self.counters.sent.fetch_add(counts.sent, Ordering::Relaxed);
        self.counters
            .received
            .fetch_add(counts.received, Ordering::Relaxed);
        self.writer.wake();
    }

    /// The router had no slot for this connection: say so, now that the peer can read it.
    fn refuse_full(&mut self) {
        if std::mem::replace(&mut self.told_full, true) {
            return;
        }
        info!(remote = %self.remote, "router full; refusing a peer");
        let text = format!(
            "router full: all {} connection slots are taken; try again later",
            self.config.max_connections
        );
        self.core.refuse(ErrorCode::Overloaded, &text);
    }

    /// Hands each destination its frames; whatever cannot be handed over is `Nack`ed.
    fn dispatch(&mut self) {
        let threshold = self.config.backpressure_bytes;
        let out = self.core.take_outgoing();
        if out.is_empty() {
            return;
        }
        let mut refused_all = Vec::new();
        for (dest, route, frames) in out.drain_forwards() {
            let forward = Forward::new(frames);
            let bytes = forward.bytes;
            // Counted before it is sent: the recipient may take it at once.
            route.pressure.forwarded(bytes);
            match route.inbox.push(forward) {
                Ok(()) => {
                    if route.pressure.holds_back(threshold)
                        && !self
                            .waiting_on
                            .iter()
                            .any(|p| Arc::ptr_eq(p, &route.pressure))
                    {
                        self.waiting_on.push(Arc::clone(&route.pressure));
                    }
                }
                Err(refused) => {
                    route.pressure.taken(bytes, threshold);
                    let (reason, Forward { frames, .. }) = match refused {
                        Refused::Full(f) => (NackReason::Overloaded, f),
                        Refused::Closed(f) => (NackReason::UnknownPeer, f),
                    };
                    refused_all.push((dest, frames, reason));
                }
            }
        }
        for (route, notice) in out.drain_notices() {
            route.inbox.push_always(Forward::untracked(vec![notice]));
        }
        out.shrink();
        for (dest, frames, reason) in refused_all {
            self.core.refused(&dest, frames, reason);
        }
    }

    fn join(
        &mut self,
        mut info: lanmesh_proto::PeerInfo,
        resume: Bytes,
        slot: u32,
        ctx: &mut Context<Self>,
    ) {
        info.joined_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let join = Join {
            session_id: self.id,
            route: Arc::new(Route {
                replaced: Some(ctx.address().recipient()),
                remote: false,
                pressure: self.pressure.clone(),
                inbox: self.inbox.clone(),
            }),
            info,
            resume,
            slot,
        };
        // Nothing else is processed until the router has answered.
        ctx.wait(
            self.router
                .send(join)
                .into_actor(self)
                .map(|res, act, ctx| {
                    match res {
                        Ok(Ok(joined)) => {
                            act.counters = joined.counters;
                            act.core.joined(joined.snapshot, joined.peers);
                        }
                        Ok(Err(refused)) => {
                            info!(remote = %act.remote, reason = %refused.text, "join refused");
                            act.core.refuse(refused.code, &refused.text);
                        }
                        Err(_) => act
                            .core
                            .refuse(ErrorCode::Shutdown, "router is shutting down"),
                    }
                    act.run_core(ctx);
                }),
        );
    }

    fn list_peers(&mut self, ctx: &mut Context<Self>) {
        let router = self.router.clone();
        ctx.spawn(
            router
                .send(ListPeers)
                .into_actor(self)
                .map(|res, act, ctx| {
                    if let Err(e) = act.core.send_peer_list(res.unwrap_or_default()) {
                        act.core.refuse(e.code(), &e.to_string());
                    }
                    act.run_core(ctx);
                }),
        );
    }

    /// More than `backpressure_bytes` wait for this peer's socket: senders to it hold
    /// back until half of that is written, unless the socket stops taking bytes.
    fn congested(&mut self, ctx: &mut Context<Self>) {
        self.pressure.set_congested();
        let relieved = self.config.backpressure_bytes / 2;
        ctx.spawn(StreamWriter::drained(relieved).map(|_, act: &mut Self, _| act.pressure.clear()));
        self.watch_for_stuck(ctx);
    }

    fn watch_for_stuck(&mut self, ctx: &mut Context<Self>) {
        ctx.run_later(STUCK_AFTER, |act, ctx| {
            if act.pressure.is_congested() {
                let stuck = act
                    .writer
                    .stalled_since()
                    .is_some_and(|since| since.elapsed() >= STUCK_AFTER);
                act.pressure.set_stuck(stuck);
                act.watch_for_stuck(ctx);
            }
        });
    }

    fn on_tick(&mut self, ctx: &mut Context<Self>) {
        self.core
            .set_write_stall(self.writer.stalled_since().map(to_core));
        self.core.handle_timeout(now());
        self.run_core(ctx);
    }

    fn on_forward(&mut self, fwd: Forward) {
        self.pressure
            .taken(fwd.bytes, self.config.backpressure_bytes);
        match fwd.membership {
            Some(change) => {
                let (snapshot, event) = *change;
                self.core.membership(snapshot, event);
            }
            None => self.core.deliver(fwd.frames),
        }
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.config.mailbox_capacity);
        // The reader first: what it queues is written later in the same poll.
        self.reader.start::<Self>(ctx);
        let tick = (self.config.limits.idle_timeout / 3)
            .min(self.config.write_stall / 3)
            .max(Duration::from_millis(10));
        ctx.spawn(Chores {
            taken: Vec::new(),
            registered: false,
            tick: Ticker::new(tick, Self::on_tick),
        });
        self.writer.start::<Self>(ctx);
        ctx.run_later(self.handshake_timeout, |act, ctx| {
            act.core.handle_timeout(now());
            act.run_core(ctx);
        });
        self.ticket.on_evict(ctx.address().recipient());
        if !self.shutdown.register(self.id, ctx.address().recipient()) {
            self.core.shutdown();
            self.run_core(ctx);
        }
        self.metrics.session_opened();
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // Nobody waits for a session that is gone, nor forwards to it: also not when it
        // ended with more than the threshold in its inbox, which is never taken now.
        self.pressure.closed();
        drop(self.inbox.close());
        self.shutdown.unregister(self.id);
        if let Some(name) = self.core.holds_name() {
            self.router.do_send(Leave {
                session_id: self.id,
                name: name.clone(),
            });
        }
        self.metrics.session_closed();
        debug!(session = self.id, remote = %self.remote, "session ended");
    }
}

impl ReadsStream for Session {
    fn reader(&mut self) -> &mut StreamReader {
        &mut self.reader
    }

    fn input_paused(&mut self, waker: &Waker) -> bool {
        let threshold = self.config.backpressure_bytes;
        if !self.waiting_on.is_empty() {
            self.waiting_on
                .retain(|p| !p.may_continue(threshold, waker));
        }
        !self.waiting_on.is_empty()
    }

    fn on_input(&mut self, input: &mut BytesMut, ctx: &mut Context<Self>) {
        self.core.handle_input(input);
        self.run_core(ctx);
    }

    fn input_closed(&mut self, error: Option<std::io::Error>, ctx: &mut Context<Self>) {
        self.core.input_closed(error.map(|e| e.to_string()), now());
        self.run_core(ctx);
    }
}

impl WritesStream for Session {
    fn writer(&mut self) -> &mut StreamWriter {
        &mut self.writer
    }

    fn queued_output(&mut self) -> usize {
        self.core.queued_bytes()
    }

    fn poll_output(&mut self, _: &mut std::task::Context<'_>) -> Option<Bytes> {
        // Nothing outside this actor queues into its core: `StreamWriter::wake` suffices.
        self.core.poll_transmit()
    }

    fn wrote(&mut self, n: usize) {
        self.core.written(n);
    }

    fn output_closed(&mut self, error: Option<std::io::Error>, ctx: &mut Context<Self>) {
        if let Some(e) = &error {
            debug!(session = self.id, error = %e, "write side failed");
        }
        self.core.output_closed(error.map(|e| e.to_string()), now());
        self.run_core(ctx);
    }
}

impl Handler<Stop> for Session {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        self.core.shutdown();
        self.run_core(ctx);
    }
}

impl Handler<Evicted> for Session {
    type Result = ();

    /// Its handshake was dropped for a newer one: nothing was said yet, nothing to tell.
    fn handle(&mut self, _: Evicted, ctx: &mut Context<Self>) {
        if self.core.is_handshaking() {
            debug!(session = self.id, remote = %self.remote, "handshake dropped for a newer one");
            self.metrics.handshake_failed();
            self.reader.stop();
            self.writer.close();
            ctx.stop();
        }
    }
}

impl Handler<Replaced> for Session {
    type Result = ();

    fn handle(&mut self, Replaced { by }: Replaced, ctx: &mut Context<Self>) {
        let held = self.core.replaced();
        if !held.is_empty() {
            debug!(
                session = self.id,
                frames = held.len(),
                "handing held frames over"
            );
            by.push_always(Forward::untracked(held));
        }
        self.run_core(ctx);
    }
}

/// What a session does besides reading and writing, as one future (actix polls each of
/// an actor's futures on every wake-up): taking what other sessions forwarded, and the
/// periodic check. Polled before the writer, so that what it queues leaves in the same
/// poll.
struct Chores {
    /// Forwards taken from the inbox (a list reused from one poll to the next).
    taken: Vec<Forward>,
    /// The inbox holds the session's waker.
    registered: bool,
    tick: Ticker<fn(&mut Session, &mut Context<Session>)>,
}

impl ActorFuture<Session> for Chores {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        act: &mut Session,
        ctx: &mut Context<Session>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let this = self.get_mut();
        act.inbox.take(&mut this.taken, cx.waker(), this.registered);
        this.registered = true;
        if !this.taken.is_empty() {
            for fwd in this.taken.drain(..) {
                act.on_forward(fwd);
            }
            if act.core.pending_bytes() > act.config.backpressure_bytes
                && !act.pressure.is_congested()
            {
                act.congested(ctx);
            }
            act.run_core(ctx);
        }
        // A burst's worth of room is not kept by an idle session.
        if this.taken.capacity() > 64 {
            this.taken = Vec::new();
        }
        // Never ready: it ticks until the session stops.
        std::pin::Pin::new(&mut this.tick).poll(act, ctx, cx)
    }
}

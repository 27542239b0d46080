//! The `Session` actor: one per connection, whatever the transport.
//!
//! 1. Handshake: read message 1, answer with message 2 (or a refusal), read message 3,
//!    all within the handshake deadline.
//! 2. Join: ask the `Router` for the name; answer `Welcome` and the member list, or an
//!    `Error` frame and close. A connection without a name is an observer: it may only
//!    list peers.
//! 3. Forward: each `Send`/`Broadcast`/`Ack`/`Nack` is turned into `Deliver`/`Ack`/`Nack` frames and
//!    handed straight to the destination sessions found in the routing snapshot, through
//!    their inboxes (see `inbox`), one entry per destination per record. What cannot be
//!    delivered is answered with a `Nack` to the sender: nothing is dropped silently.
//! 4. Close: on `Close`, on any protocol violation (an `Error` frame first), on router
//!    shutdown. Other sessions never notice beyond `PeerLeft`.
//! 5. Park: when a member's connection breaks without `Close` (end of stream, a socket
//!    error, the idle deadline) and it offered a resume token, the session stays as a placeholder for the grace period:
//!    it keeps the name and holds what is sent to it (bounded). When the same key joins
//!    again, the new session takes the held frames; when the grace period ends, each held
//!    message is `Nack`ed to its sender and the member leaves.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use bytes::BytesMut;
use lanmesh_actix::ticker::Ticker;
use lanmesh_actix::{Activity, HasLink, HasReader, Link, LinkError, Reader};
use lanmesh_proto::frame::{Broadcast, Message as Msg, flags};
use lanmesh_proto::{
    Answer, ErrorCode, Frame, Frames, NackReason, Name, PeerInfo, ProtoError, Responder, Transport,
};
use tracing::{debug, info, warn};

use crate::config::RouterConfig;
use crate::inbox::{Forward, Inbox, Refused};
use crate::metrics::Metrics;
use crate::pressure::{Pressure, STUCK_AFTER};
use crate::router::{Join, Leave, ListPeers, Router, SessionCounters};
use crate::shutdown::{Shutdown, Stop};
use crate::table::{Route, Snapshot};

/// A membership change: the new snapshot and the event to tell the peer.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Membership {
    pub(crate) snapshot: Snapshot,
    pub(crate) event: Option<Frame>,
}

/// The same peer (same name, same key) joined on a new connection: this one is stale,
/// and what it holds for the peer goes to the new session.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Replaced {
    /// The new session's inbox.
    pub(crate) by: Arc<Inbox>,
}

enum Phase {
    /// Waiting for message 1 (`Some`) or message 3.
    Handshake(Option<Box<Responder>>),
    /// Handshake done, waiting for the router to accept the name.
    Joining,
    /// In the mesh under this name.
    Member(Name),
    /// Joined without a name: may list peers only.
    Observer,
    /// The connection broke; holding the name and its messages for the grace period.
    Parked(Name),
    /// Closing: queued frames are flushed, nothing more is read.
    Closing,
}

/// One connection to the router.
pub struct Session {
    id: u64,
    remote: SocketAddr,
    transport: Transport,
    config: Arc<RouterConfig>,
    router: Addr<Router>,
    shutdown: Shutdown,
    metrics: Arc<Metrics>,
    reader: Reader,
    link: Link,
    phase: Phase,
    snapshot: Snapshot,
    /// Records from the peer, for the idle deadline.
    rx: Activity,
    ping_seq: u64,
    counters: Arc<SessionCounters>,
    /// The peer offered a resume token, so it may come back after a broken connection.
    resumable: bool,
    /// Frames held while parked, and their size.
    held: Vec<Frame>,
    held_bytes: usize,
    /// This session's congestion, seen by the sessions that forward to it.
    pressure: Arc<Pressure>,
    /// Congested sessions this one forwarded to: it reads no more until they clear.
    waiting_on: Vec<Arc<Pressure>>,
    /// The handshake's deadline, cancelled once the peer is in: actix polls every
    /// pending timer of an actor each time the actor wakes.
    handshake_deadline: Option<SpawnHandle>,
    /// Kept from one record to the next so that its buffers are reused.
    out: Outgoing,
    /// What other sessions forward to this one.
    inbox: Arc<Inbox>,
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: u64,
        remote: SocketAddr,
        transport: Transport,
        config: Arc<RouterConfig>,
        router: Addr<Router>,
        shutdown: Shutdown,
        metrics: Arc<Metrics>,
        reader: Reader,
        link: Link,
    ) -> Self {
        let inbox = Arc::new(Inbox::new(config.mailbox_capacity));
        Self {
            id,
            remote,
            transport,
            config,
            router,
            shutdown,
            metrics,
            reader,
            link,
            phase: Phase::Handshake(None),
            snapshot: Snapshot::default(),
            rx: Activity::new(),
            ping_seq: 0,
            counters: Arc::default(),
            resumable: false,
            held: Vec::new(),
            held_bytes: 0,
            pressure: Arc::default(),
            waiting_on: Vec::new(),
            handshake_deadline: None,
            out: Outgoing::default(),
            inbox,
        }
    }

    fn name(&self) -> Option<&Name> {
        match &self.phase {
            Phase::Member(n) => Some(n),
            _ => None,
        }
    }

    /// Sends an `Error` frame if the transport phase is up, then closes.
    fn fail(&mut self, ctx: &mut Context<Self>, code: ErrorCode, text: impl AsRef<str>) {
        if matches!(self.phase, Phase::Closing) {
            return;
        }
        let text = text.as_ref();
        debug!(session = self.id, remote = %self.remote, ?code, text, "closing session");
        if self.link.connection_ref().is_some() {
            let _ = self.link.send(&Frame::error(code, text));
        }
        self.close(ctx);
    }

    fn cancel_handshake_deadline(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.handshake_deadline.take() {
            ctx.cancel_future(timer);
        }
    }

    fn close(&mut self, ctx: &mut Context<Self>) {
        self.leave();
        self.phase = Phase::Closing;
        self.reader.stop();
        self.link.close();
        // A peer that never reads must not keep the session alive.
        ctx.run_later(std::time::Duration::from_secs(2), |_, ctx| ctx.stop());
    }

    /// The connection broke without `Close`: park, or close when resuming is off.
    fn lose(&mut self, ctx: &mut Context<Self>, why: &str) {
        let grace = self.config.grace;
        let Phase::Member(name) = &self.phase else {
            self.close(ctx);
            return;
        };
        if grace.is_zero() || !self.resumable {
            self.close(ctx);
            return;
        }
        info!(peer = %name, remote = %self.remote, why, "connection lost; holding the name");
        self.phase = Phase::Parked(name.clone());
        self.reader.stop();
        self.link.close();
        ctx.run_later(grace, |act, ctx| {
            if let Phase::Parked(name) = &act.phase {
                info!(peer = %name, "grace period over");
                act.nack_held(NackReason::UnknownPeer);
                act.leave();
                act.phase = Phase::Closing;
                ctx.stop();
            }
        });
    }

    /// Tells the senders of held messages that they will not be delivered.
    fn nack_held(&mut self, reason: NackReason) {
        let Phase::Parked(me) = &self.phase else {
            return;
        };
        for frame in &self.held {
            // Each message once: its first chunk stands for all of it.
            let first = matches!(frame, Frame::Deliver(m) if m.chunk.is_none_or(|c| c.offset == 0));
            if let Some((sender, nack)) = self.nack_for_sender(me, frame, reason).filter(|_| first)
            {
                sender.inbox.push_always(Forward::untracked(vec![nack]));
            }
        }
        self.held.clear();
        self.held_bytes = 0;
    }

    fn leave(&mut self) {
        if let Phase::Member(name) | Phase::Parked(name) = &self.phase {
            self.router.do_send(Leave {
                session_id: self.id,
                name: name.clone(),
            });
        }
    }

    fn handle_record(
        &mut self,
        record: BytesMut,
        ctx: &mut Context<Self>,
    ) -> Result<(), ProtoError> {
        self.rx.mark();
        match &mut self.phase {
            Phase::Handshake(slot) => match slot.take() {
                None => self.on_message_1(&record, ctx),
                Some(responder) => self.on_message_3(*responder, &record, ctx),
            },
            Phase::Member(_) | Phase::Observer => {
                let conn = self.link.connection().ok_or(ProtoError::Negotiation {
                    what: "record before the handshake",
                })?;
                let len = record.len();
                let frames = conn.open_owned(record)?;
                self.metrics.add_in(len);
                let mut out = std::mem::take(&mut self.out);
                let handled = self.on_frames(frames, &mut out, ctx);
                if handled.is_ok() {
                    self.dispatch(&mut out);
                }
                self.out = out.emptied();
                handled
            }
            Phase::Joining => Err(ProtoError::Negotiation {
                what: "frames before Welcome",
            }),
            Phase::Closing | Phase::Parked(_) => Ok(()),
        }
    }

    fn on_message_1(&mut self, msg1: &[u8], ctx: &mut Context<Self>) -> Result<(), ProtoError> {
        let mut responder = Responder::new(&self.config.handshake())?;
        match responder.read_offer(msg1)? {
            Answer::Accept(msg2) => {
                self.link.send_handshake(&msg2)?;
                self.phase = Phase::Handshake(Some(Box::new(responder)));
            }
            Answer::Refuse(msg2, err) => {
                self.link.send_handshake(&msg2)?;
                info!(remote = %self.remote, error = %err, "handshake refused");
                self.metrics.handshake_failed();
                self.close(ctx);
            }
        }
        Ok(())
    }

    fn on_message_3(
        &mut self,
        responder: Responder,
        msg3: &[u8],
        ctx: &mut Context<Self>,
    ) -> Result<(), ProtoError> {
        let est = responder.read_confirm(msg3)?;
        let info_name = est.offer.name.clone();
        let resume = est.offer.resume.clone();
        self.resumable = !resume.is_empty();
        let cipher = est.connection.cipher();
        let compression = est.connection.compression();
        self.link.set_connection(est.connection);
        self.reader.set_max_record(self.config.limits.max_record);
        let Some(name) = info_name else {
            self.phase = Phase::Observer;
            self.cancel_handshake_deadline(ctx);
            return Ok(());
        };
        let joined_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let info = PeerInfo {
            name: name.clone(),
            transport: self.transport,
            cipher,
            compression,
            key: est.remote_key,
            addr: self.remote.to_string(),
            joined_ms,
        };
        self.phase = Phase::Joining;
        let join = Join {
            session_id: self.id,
            route: Arc::new(Route {
                addr: ctx.address(),
                pressure: self.pressure.clone(),
                inbox: self.inbox.clone(),
            }),
            info,
            counters: self.counters.clone(),
            resume,
        };
        // Nothing else is processed until the router has answered.
        ctx.wait(
            self.router
                .send(join)
                .into_actor(self)
                .map(move |res, act, ctx| match res {
                    Ok(Ok(joined)) => {
                        act.snapshot = joined.snapshot;
                        act.phase = Phase::Member(name.clone());
                        act.cancel_handshake_deadline(ctx);
                        let sent = act
                            .link
                            .send(&Frame::Welcome { name })
                            .and_then(|_| send_peer_list(&mut act.link, joined.peers));
                        if let Err(e) = sent {
                            act.fail(ctx, e.code(), e.to_string());
                        }
                    }
                    Ok(Err(refused)) => {
                        info!(remote = %act.remote, reason = %refused.text, "join refused");
                        act.fail(ctx, refused.code, refused.text);
                    }
                    Err(_) => act.fail(ctx, ErrorCode::Shutdown, "router is shutting down"),
                }),
        );
        Ok(())
    }

    /// Handles a record's frames, collecting what goes to other sessions in `out`.
    fn on_frames(
        &mut self,
        frames: Frames,
        out: &mut Outgoing,
        ctx: &mut Context<Self>,
    ) -> Result<(), ProtoError> {
        for frame in frames {
            self.on_frame(frame?, out, ctx)?;
            if matches!(self.phase, Phase::Closing) {
                break;
            }
        }
        Ok(())
    }

    fn on_frame(
        &mut self,
        frame: Frame,
        out: &mut Outgoing,
        ctx: &mut Context<Self>,
    ) -> Result<(), ProtoError> {
        match frame {
            Frame::ListPeers => {
                let router = self.router.clone();
                ctx.spawn(
                    router
                        .send(ListPeers)
                        .into_actor(self)
                        .map(|res, act, ctx| {
                            let peers = res.unwrap_or_default();
                            if let Err(e) = send_peer_list(&mut act.link, peers) {
                                act.fail(ctx, e.code(), e.to_string());
                            }
                        }),
                );
            }
            Frame::Ping(v) => self.link.send(&Frame::Pong(v))?,
            Frame::Pong(_) => {}
            Frame::Close => {
                // Everything before `Close` has been handled; say so and stop. Frames
                // that arrived in the same record go out first: their nacks too.
                self.dispatch(out);
                self.leave();
                self.link.send(&Frame::Close)?;
                self.close(ctx);
            }
            Frame::Error { code, text } => {
                debug!(session = self.id, ?code, text, "peer reported an error");
                self.close(ctx);
            }
            member_only => {
                let Some(me) = self.name().cloned() else {
                    self.fail(
                        ctx,
                        ErrorCode::NotJoined,
                        "join with a name before sending messages",
                    );
                    return Ok(());
                };
                self.on_member_frame(me, member_only, out, ctx);
            }
        }
        Ok(())
    }

    fn on_member_frame(
        &mut self,
        me: Name,
        frame: Frame,
        out: &mut Outgoing,
        ctx: &mut Context<Self>,
    ) {
        match frame {
            Frame::Send(m) => {
                if m.chunk
                    .is_some_and(|c| c.total > self.config.limits.max_message)
                {
                    out.nack(m.peer, m.id, NackReason::TooLarge);
                    return;
                }
                match self.snapshot.route(m.peer.as_str()) {
                    Some(addr) => {
                        self.metrics.message();
                        self.counters
                            .sent
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let dest = m.peer.clone();
                        out.push(dest, addr, Frame::Deliver(Msg { peer: me, ..m }));
                    }
                    None => out.nack(m.peer, m.id, NackReason::UnknownPeer),
                }
            }
            Frame::Broadcast(b) => self.broadcast(me, b, out),
            Frame::Ack { peer, id } => {
                // The sender may be gone: then nobody is waiting for this ack.
                if let Some(addr) = self.snapshot.route(peer.as_str()) {
                    out.push(peer.clone(), addr, Frame::Ack { peer: me, id });
                }
            }
            // End to end, like `Ack`: a recipient refusing a message (a request it has no
            // responder for).
            Frame::Nack { peer, id, reason } => {
                if let Some(addr) = self.snapshot.route(peer.as_str()) {
                    out.push(
                        peer.clone(),
                        addr,
                        Frame::Nack {
                            peer: me,
                            id,
                            reason,
                        },
                    );
                }
            }
            other => {
                let text = format!("a client may not send {}", frame_kind(&other));
                self.fail(ctx, ErrorCode::Protocol, text);
            }
        }
    }

    fn broadcast(&mut self, me: Name, b: Broadcast, out: &mut Outgoing) {
        if b.chunk
            .is_some_and(|c| c.total > self.config.limits.max_message)
        {
            out.nack(me, b.id, NackReason::TooLarge);
            return;
        }
        let snapshot = self.snapshot.clone();
        for (name, addr) in snapshot.routes() {
            if *name == me {
                continue;
            }
            self.metrics.message();
            self.counters
                .sent
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            out.push(
                name.clone(),
                addr,
                Frame::Deliver(Msg {
                    peer: me.clone(),
                    id: b.id,
                    flags: b.flags | flags::BROADCAST,
                    chunk: b.chunk,
                    prev: None,
                    payload: b.payload.clone(),
                }),
            );
        }
    }

    /// Hands each destination its frames; whatever cannot be handed over is `Nack`ed.
    fn dispatch(&mut self, out: &mut Outgoing) {
        for nack in out.nacks.drain(..) {
            if self.link.send(&nack).is_err() {
                break;
            }
        }
        let threshold = self.config.backpressure_bytes;
        for (dest, route, frames) in out.by_dest.drain(..) {
            let forward = Forward::new(frames);
            let bytes = forward.bytes;
            // Counted before it is sent: the recipient may take it at once.
            route.pressure.forwarded(bytes);
            let refused = match route.inbox.push(forward) {
                Ok(()) => {
                    if route.pressure.holds_back(threshold) {
                        self.wait_for(Arc::clone(&route.pressure));
                    }
                    continue;
                }
                Err(refused) => refused,
            };
            route.pressure.taken(bytes, threshold);
            let (reason, Forward { frames, .. }) = match refused {
                Refused::Full(f) => (NackReason::Overloaded, f),
                Refused::Closed(f) => (NackReason::UnknownPeer, f),
            };
            self.metrics.dropped(frames.len());
            for f in frames {
                if let Frame::Deliver(m) = f {
                    if m.flags & flags::BROADCAST == 0 {
                        let nack = Frame::Nack {
                            peer: dest.clone(),
                            id: m.id,
                            reason,
                        };
                        let _ = self.link.send(&nack);
                    }
                }
            }
        }
    }

    /// Reads no more from this peer until `pressure` clears (see `can_read`).
    fn wait_for(&mut self, pressure: Arc<Pressure>) {
        if !self.waiting_on.iter().any(|p| Arc::ptr_eq(p, &pressure)) {
            self.waiting_on.push(pressure);
        }
    }

    /// More than `backpressure_bytes` wait for this peer's socket: senders to it hold
    /// back until half of that is written, unless the socket stops taking bytes.
    fn congested(&mut self, ctx: &mut Context<Self>) {
        self.pressure.set_congested();
        let relieved = self.config.backpressure_bytes / 2;
        ctx.spawn(Link::drained(relieved).map(|_, act: &mut Self, _| act.pressure.clear()));
        self.watch_for_stuck(ctx);
    }

    fn watch_for_stuck(&mut self, ctx: &mut Context<Self>) {
        ctx.run_later(STUCK_AFTER, |act, ctx| {
            if act.pressure.is_congested() {
                act.pressure
                    .set_stuck(act.link.stalled_for() >= STUCK_AFTER);
                act.watch_for_stuck(ctx);
            }
        });
    }

    fn on_idle_tick(&mut self, ctx: &mut Context<Self>) {
        let idle = self.rx.quiet_for(Instant::now());
        let limit = self.config.limits.idle_timeout;
        if matches!(
            self.phase,
            Phase::Handshake(_) | Phase::Joining | Phase::Parked(_) | Phase::Closing
        ) {
            return;
        }
        let stall = self.link.stalled_for();
        if stall > self.config.write_stall {
            // It stopped reading: not a broken connection, so it is not held for a resume.
            info!(session = self.id, remote = %self.remote, ?stall, "peer stopped reading");
            let _ = self.link.send(&Frame::error(
                ErrorCode::Overloaded,
                "stopped reading: disconnected by the write-stall deadline",
            ));
            self.close(ctx);
            return;
        }
        if idle > limit {
            let _ = self.link.send(&Frame::error(
                ErrorCode::IdleTimeout,
                "no traffic within the idle deadline",
            ));
            self.lose(ctx, "idle deadline");
        } else if idle > limit / 3 {
            self.ping_seq += 1;
            let _ = self.link.send(&Frame::Ping(self.ping_seq));
        }
    }
}

fn frame_kind(f: &Frame) -> &'static str {
    match f {
        Frame::Deliver(_) => "Deliver",
        Frame::Welcome { .. } => "Welcome",
        Frame::PeerList { .. } => "PeerList",
        Frame::PeerJoined(_) => "PeerJoined",
        Frame::PeerLeft { .. } => "PeerLeft",
        _ => "this frame",
    }
}

/// Sends the member list in pages that each fit in one record; the last page says so.
fn send_peer_list(link: &mut Link, peers: Vec<PeerInfo>) -> Result<(), ProtoError> {
    const PAGE_BUDGET: usize = 60_000;
    let mut page = Vec::new();
    let mut size = 0;
    for p in peers {
        if size + p.encoded_len() > PAGE_BUDGET && !page.is_empty() {
            link.send(&Frame::PeerList {
                last: false,
                peers: std::mem::take(&mut page),
            })?;
            size = 0;
        }
        size += p.encoded_len();
        page.push(p);
    }
    link.send(&Frame::PeerList {
        last: true,
        peers: page,
    })
}

/// Frames produced while handling one record, grouped by destination in the order the
/// destinations first appear.
///
/// A record usually goes to one or two destinations, found by a scan; only a record
/// reaching many (a broadcast) builds an index.
#[derive(Default)]
struct Outgoing {
    by_dest: Vec<(Name, Arc<Route>, Vec<Frame>)>,
    /// Position in `by_dest` per destination session, once there are more than
    /// [`Outgoing::SCAN`].
    index: HashMap<*const Pressure, usize>,
    nacks: Vec<Frame>,
}

impl Outgoing {
    const SCAN: usize = 8;

    fn push(&mut self, dest: Name, route: &Arc<Route>, frame: Frame) {
        // A session's pressure is its own: the pointer identifies the destination.
        let key = Arc::as_ptr(&route.pressure);
        let found = if self.by_dest.len() <= Self::SCAN {
            self.by_dest
                .iter()
                .position(|(_, r, _)| Arc::as_ptr(&r.pressure) == key)
        } else {
            self.index.get(&key).copied()
        };
        if let Some(i) = found {
            self.by_dest[i].2.push(frame);
            return;
        }
        self.by_dest.push((dest, Arc::clone(route), vec![frame]));
        let len = self.by_dest.len();
        if len == Self::SCAN + 1 {
            for (i, (_, r, _)) in self.by_dest.iter().enumerate() {
                self.index.insert(Arc::as_ptr(&r.pressure), i);
            }
        } else if len > Self::SCAN + 1 {
            self.index.insert(key, len - 1);
        }
    }

    fn nack(&mut self, peer: Name, id: u64, reason: NackReason) {
        self.nacks.push(Frame::Nack { peer, id, reason });
    }

    /// This one, dispatched, to be kept for the next record: its lists keep their room
    /// unless a broadcast made them large, which an idle session should not hold on to.
    fn emptied(mut self) -> Self {
        if self.by_dest.capacity() > Self::SCAN || self.nacks.capacity() > Self::SCAN {
            return Self::default();
        }
        self.by_dest.clear();
        self.nacks.clear();
        self.index.clear();
        self
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
            .max(std::time::Duration::from_millis(10));
        ctx.spawn(Chores {
            taken: Vec::new(),
            registered: false,
            tick: Ticker::new(tick, Self::on_idle_tick),
        });
        self.link.start::<Self>(ctx);
        let deadline = self.config.limits.handshake_timeout;
        let timer = ctx.run_later(deadline, |act, ctx| {
            if matches!(act.phase, Phase::Handshake(_) | Phase::Joining) {
                act.metrics.handshake_failed();
                debug!(remote = %act.remote, "handshake deadline passed");
                act.fail(
                    ctx,
                    ErrorCode::HandshakeTimeout,
                    "handshake not completed in time",
                );
            }
        });
        self.handshake_deadline = Some(timer);
        if !self.shutdown.register(self.id, ctx.address()) {
            self.fail(ctx, ErrorCode::Shutdown, "router is shutting down");
        }
        self.metrics.session_opened();
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // Nobody waits for a session that is gone, nor forwards to it.
        self.pressure.clear();
        drop(self.inbox.close());
        self.shutdown.unregister(self.id);
        self.leave();
        self.metrics.session_closed();
        debug!(session = self.id, remote = %self.remote, "session ended");
    }
}

impl HasLink for Session {
    fn link(&mut self) -> &mut Link {
        &mut self.link
    }

    fn link_closed(&mut self, error: Option<LinkError>, ctx: &mut Context<Self>) {
        match (&self.phase, error) {
            (Phase::Parked(_), _) => {}
            (Phase::Member(_), Some(e)) => {
                debug!(session = self.id, error = %e, "write side failed");
                self.lose(ctx, "write failed");
            }
            (_, error) => {
                if let Some(e) = error {
                    debug!(session = self.id, error = %e, "write side failed");
                }
                self.leave();
                self.phase = Phase::Closing;
                ctx.stop();
            }
        }
    }
}

impl HasReader for Session {
    fn reader(&mut self) -> &mut Reader {
        &mut self.reader
    }

    fn can_read(&mut self, waker: &std::task::Waker) -> bool {
        let threshold = self.config.backpressure_bytes;
        if !self.waiting_on.is_empty() {
            self.waiting_on
                .retain(|p| !p.may_continue(threshold, waker));
        }
        self.waiting_on.is_empty()
    }

    fn on_record(&mut self, record: BytesMut, ctx: &mut Context<Self>) {
        if matches!(self.phase, Phase::Closing | Phase::Parked(_)) {
            return;
        }
        if let Err(e) = self.handle_record(record, ctx) {
            if matches!(self.phase, Phase::Handshake(_)) {
                self.metrics.handshake_failed();
            }
            warn!(session = self.id, remote = %self.remote, error = %e, "closing connection");
            self.fail(ctx, e.code(), e.to_string());
        }
    }

    fn read_closed(&mut self, error: Option<ProtoError>, ctx: &mut Context<Self>) {
        match (&self.phase, error) {
            (Phase::Closing | Phase::Parked(_), _) => {}
            // The stream broke or ended without `Close`: the peer may come back.
            (Phase::Member(_), Some(ProtoError::Io(_)) | None) => {
                self.lose(ctx, "connection broke")
            }
            (_, Some(e)) => {
                if matches!(self.phase, Phase::Handshake(_)) {
                    self.metrics.handshake_failed();
                }
                self.fail(ctx, e.code(), e.to_string());
            }
            // The peer closed its side: nothing more will arrive.
            (_, None) => self.close(ctx),
        }
    }
}

impl Handler<Stop> for Session {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        self.fail(ctx, ErrorCode::Shutdown, "router is shutting down");
    }
}

/// What a session does besides reading and writing, as one future (actix polls each of
/// an actor's futures on every wake-up): taking what other sessions forwarded, and the
/// periodic idle check. Polled before the writer, so that what it queues leaves in the
/// same poll.
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
        for fwd in this.taken.drain(..) {
            act.on_forward(fwd, ctx);
        }
        // A burst's worth of room is not kept by an idle session.
        if this.taken.capacity() > 64 {
            this.taken = Vec::new();
        }
        // Never ready: it ticks until the session stops.
        std::pin::Pin::new(&mut this.tick).poll(act, ctx, cx)
    }
}

impl Session {
    fn on_forward(&mut self, fwd: Forward, ctx: &mut Context<Self>) {
        self.pressure
            .taken(fwd.bytes, self.config.backpressure_bytes);
        if matches!(self.phase, Phase::Closing) {
            return;
        }
        let budget = self.config.limits.max_pending_bytes;
        if matches!(self.phase, Phase::Parked(_)) {
            self.hold(fwd.frames, budget);
            return;
        }
        for frame in fwd.frames {
            if self.link.pending_bytes() > budget {
                // This peer is not reading: refuse rather than grow without bound.
                self.refuse_overloaded(&frame);
                continue;
            }
            self.metrics.add_out(frame.encoded_len());
            if matches!(frame, Frame::Deliver(_)) {
                self.counters
                    .received
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            if let Err(e) = self.link.send(&frame) {
                self.fail(ctx, e.code(), e.to_string());
                return;
            }
        }
        if self.link.pending_bytes() > self.config.backpressure_bytes
            && !self.pressure.is_congested()
        {
            self.congested(ctx);
        }
    }
}

impl Handler<Membership> for Session {
    type Result = ();

    fn handle(&mut self, m: Membership, ctx: &mut Context<Self>) {
        self.snapshot = m.snapshot;
        if let (Phase::Member(_), Some(event)) = (&self.phase, m.event) {
            if let Err(e) = self.link.send(&event) {
                self.fail(ctx, e.code(), e.to_string());
            }
        }
    }
}

impl Handler<Replaced> for Session {
    type Result = ();

    fn handle(&mut self, Replaced { by }: Replaced, ctx: &mut Context<Self>) {
        let was_parked = matches!(self.phase, Phase::Parked(_));
        // The member entry already belongs to the new session: leave without a `Leave`.
        self.phase = Phase::Observer;
        let held = std::mem::take(&mut self.held);
        self.held_bytes = 0;
        if !held.is_empty() {
            debug!(
                session = self.id,
                frames = held.len(),
                "handing held frames over"
            );
            by.push_always(Forward::untracked(held));
        }
        if was_parked {
            self.phase = Phase::Closing;
            ctx.stop();
        } else {
            self.fail(
                ctx,
                ErrorCode::NameTaken,
                "replaced by a newer connection with the same key",
            );
        }
    }
}

impl Session {
    /// Drops a frame this session has no room for; a message (not a broadcast) is
    /// `Nack(Overloaded)`ed to its sender, so nothing is lost silently.
    fn refuse_overloaded(&mut self, frame: &Frame) {
        self.metrics.dropped(1);
        let me = match &self.phase {
            Phase::Member(me) | Phase::Parked(me) => me,
            _ => return,
        };
        if let Some((sender, nack)) = self.nack_for_sender(me, frame, NackReason::Overloaded) {
            let _ = sender.inbox.push(Forward::untracked(vec![nack]));
        }
    }

    /// The `Nack` that tells the sender of `frame` (a `Deliver` to peer `me`) it was not
    /// delivered, with the sender's session; `None` for broadcasts (nobody waits for
    /// them) and for senders that left.
    fn nack_for_sender(
        &self,
        me: &Name,
        frame: &Frame,
        reason: NackReason,
    ) -> Option<(Arc<Route>, Frame)> {
        let Frame::Deliver(m) = frame else {
            return None;
        };
        if m.flags & flags::BROADCAST != 0 {
            return None;
        }
        let sender = Arc::clone(self.snapshot.route(m.peer.as_str())?);
        let nack = Frame::Nack {
            peer: me.clone(),
            id: m.id,
            reason,
        };
        Some((sender, nack))
    }

    /// Keeps frames for a parked peer, within `budget`; a message that does not fit is
    /// `Nack`ed to its sender.
    fn hold(&mut self, frames: Vec<Frame>, budget: usize) {
        for frame in frames {
            let len = frame.encoded_len();
            if self.held_bytes + len > budget {
                self.refuse_overloaded(&frame);
                continue;
            }
            self.held_bytes += len;
            self.held.push(frame);
        }
    }
}

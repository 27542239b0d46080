//! One connection as the router sees it, whatever the transport: the responder's side of
//! the handshake, the join, routing decisions, the budget of what waits for the peer,
//! parking for a resume, and the idle and write-stall deadlines. No socket, no actor, no
//! clock: the router's driver moves bytes, time, membership and forwarded frames in, and
//! takes bytes, events and frames for other sessions out.
//!
//! 1. Handshake: message 1 is answered with message 2 (or a refusal), message 3 completes
//!    it, all within the handshake deadline.
//! 2. Join: [`SessionEvent::Join`] asks the router for the name; the driver answers with
//!    [`SessionCore::joined`] (then `Welcome` and the member list go out, in pages that
//!    each fit a record) or [`SessionCore::refuse`]. A connection without a name is an
//!    observer: it may only list peers.
//! 3. Forward: each `Send`/`Broadcast`/`Ack`/`Nack` from the member becomes
//!    `Deliver`/`Ack`/`Nack` for the destinations its routing table names, stamped with
//!    the member's own name (a peer cannot speak for another), collected per destination
//!    in [`SessionCore::take_outgoing`]. What cannot be routed is answered with a `Nack`
//!    to the sender: nothing is dropped silently.
//! 4. Deliver: frames other sessions forwarded come in through [`SessionCore::deliver`];
//!    beyond the per-peer budget each message is refused to its sender
//!    (`Nack(Overloaded)`) instead of growing without bound.
//! 5. Close: on `Close` (answered with `Close` once everything before it is handled), on
//!    a protocol violation (an `Error` frame first), on shutdown, or when the peer stops
//!    reading for the write-stall deadline.
//! 6. Park: a member whose connection breaks without `Close` (end of stream, an error,
//!    the idle deadline) and who offered a resume token keeps its name for the grace
//!    period, and what is sent to it is held (within the budget). When the same key joins
//!    again, [`SessionCore::replaced`] hands the held frames over; when the grace period
//!    ends, each held message is `Nack`ed to its sender and the member leaves.

mod outgoing;

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use bytes::{Bytes, BytesMut};
use lanmesh_proto::frame::{Broadcast, Message as Msg, flags};
use lanmesh_proto::handshake::slot_of;
use lanmesh_proto::record::handshake_message;
use lanmesh_proto::{
    Answer, Connection, ErrorCode, Frame, Framing, HandshakeConfig, NackReason, Name, PeerInfo,
    ProtoError, RandomSource, RecordDecoder, Responder, Transport,
};

pub use outgoing::Outgoing;

use crate::time::{Instant, earliest};

/// Where a session's frames go: the routing table as of the last membership change.
pub trait Routes {
    /// A handle on one member's session (cheap to clone: an `Arc`).
    type Route: Clone;
    /// The session receiving `name`'s messages.
    fn route(&self, name: &str) -> Option<&Self::Route>;
    /// The session of `name` with id slot `slot` (see
    /// [`lanmesh_proto::Offer::slot`]): where answers to that session's messages go.
    fn route_slot(&self, name: &str, slot: u32) -> Option<&Self::Route> {
        if slot == 0 { self.route(name) } else { None }
    }
    /// Every member and its session.
    fn for_each(&self, f: &mut dyn FnMut(&Name, &Self::Route));
    /// Tells sessions apart (two routes to one session are equal).
    fn identity(route: &Self::Route) -> usize;
}

/// A shared table routes like the table (the router hands every session the same one).
#[cfg(target_has_atomic = "ptr")]
impl<T: Routes> Routes for alloc::sync::Arc<T> {
    type Route = T::Route;

    fn route(&self, name: &str) -> Option<&T::Route> {
        (**self).route(name)
    }

    fn route_slot(&self, name: &str, slot: u32) -> Option<&T::Route> {
        (**self).route_slot(name, slot)
    }

    fn for_each(&self, f: &mut dyn FnMut(&Name, &T::Route)) {
        (**self).for_each(f);
    }

    fn identity(route: &T::Route) -> usize {
        T::identity(route)
    }
}

/// What a session needs.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The router's side of the handshake: its key, the mesh, the mesh key, limits.
    pub handshake: HandshakeConfig,
    /// How the peer is connected.
    pub transport: Transport,
    /// The peer's address, as shown to others.
    pub remote: String,
    /// How long a broken member keeps its name and what is sent to it (zero: no resume).
    pub grace: Duration,
    /// A peer whose socket took nothing for this long while bytes wait is disconnected.
    pub write_stall: Duration,
    /// How long a close waits for the peer to take what is left.
    pub close_timeout: Duration,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// Ask the router to admit this member (`joined_ms` is for the driver to fill), then
    /// call [`SessionCore::joined`] or [`SessionCore::refuse`].
    Join {
        /// The member as others will see it.
        info: PeerInfo,
        /// Its resume token: the same again means the same process reconnecting.
        resume: Bytes,
        /// Its id slot: 0 for a receiving session, else an extra sending one.
        slot: u32,
    },
    /// The handshake failed or was refused (for the metrics).
    HandshakeFailed,
    /// The peer asked for the member list: answer with [`SessionCore::send_peer_list`].
    ListPeers,
    /// The member's name is free: tell the router.
    Leave {
        /// The name.
        name: Name,
    },
    /// The connection broke and the member is parked: drop the socket, keep the session.
    Parked,
    /// Flush what [`SessionCore::poll_transmit`] still gives, then shut the socket down.
    CloseTransport,
    /// The peer asked to close: hand [`SessionCore::take_outgoing`] over, then call
    /// [`SessionCore::answer_close`].
    CloseRequested,
    /// The session is over: stop it.
    Finished,
}

enum Phase {
    /// Waiting for message 1 (`None`) or message 3.
    Handshake(Option<alloc::boxed::Box<Responder>>),
    /// Handshake done, waiting for the router to accept the name.
    Joining(Name),
    /// In the mesh under this name.
    Member(Name),
    /// Joined without a name: may list peers only.
    Observer,
    /// The connection broke; holding the name and its messages until the deadline.
    Parked {
        name: Name,
        until: Instant,
    },
    /// Closing: queued frames are flushed, nothing more is read.
    Closing {
        until: Instant,
    },
    Finished,
}

/// Counters a driver adds to its metrics (see [`SessionCore::take_counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Record bytes received from the peer.
    pub bytes_in: u64,
    /// Frame bytes queued for the peer.
    pub bytes_out: u64,
    /// Messages the peer sent (one per recipient for broadcasts).
    pub sent: u64,
    /// Messages delivered to the peer.
    pub received: u64,
    /// Frames dropped (refused for the budget, or for a full or closed destination).
    pub dropped: u64,
}

/// One connection's state: see the module docs.
pub struct SessionCore<T: Routes> {
    config: SessionConfig,
    random: RandomSource,
    phase: Phase,
    handshake_deadline: Instant,
    connection: Option<Connection>,
    /// Handshake messages (and nothing else) before the connection exists.
    handshake_out: VecDeque<Bytes>,
    decoder: RecordDecoder,
    routes: Option<T>,
    resumable: bool,
    /// The name to leave once a `Close` is answered.
    leaving: Option<Name>,
    /// Frames held while parked, and their size.
    held: Vec<Frame>,
    held_bytes: usize,
    out: Outgoing<T::Route>,
    events: VecDeque<SessionEvent>,
    /// Something arrived since the last timeout check (the check turns it into a time,
    /// so input needs no clock).
    heard: bool,
    /// The latest time a call brought.
    clock: Instant,
    last_heard: Instant,
    last_ping: Instant,
    ping_seq: u64,
    /// Bytes handed out by `poll_transmit` and not yet written.
    in_flight: usize,
    stalled_since: Option<Instant>,
    counts: Counts,
    /// The largest message the peer said it takes (its offer); bigger ones are refused.
    peer_max_message: u64,
    /// What the choice tells a peer that asks how the router stands in its federation.
    router_status: Option<lanmesh_proto::RouterStatus>,
}

impl<T: Routes> core::fmt::Debug for SessionCore<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionCore")
            .field("remote", &self.config.remote)
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

impl<T: Routes> SessionCore<T> {
    /// A session for a connection accepted at `now`.
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        Self::new_with_random(config, RandomSource::default(), now)
    }

    /// A session whose handshake draws its ephemeral key from `random` (a router core on a
    /// board, or in a board's test, has no OS generator).
    pub fn new_with_random(config: SessionConfig, random: RandomSource, now: Instant) -> Self {
        let deadline = now + config.handshake.limits.handshake_timeout;
        Self {
            config,
            random,
            phase: Phase::Handshake(None),
            handshake_deadline: deadline,
            connection: None,
            handshake_out: VecDeque::new(),
            decoder: RecordDecoder::new(lanmesh_proto::limits::MAX_HANDSHAKE_MESSAGE),
            routes: None,
            resumable: false,
            leaving: None,
            held: Vec::new(),
            held_bytes: 0,
            out: Outgoing::default(),
            events: VecDeque::new(),
            heard: false,
            clock: now,
            last_heard: now,
            last_ping: now,
            ping_seq: 0,
            in_flight: 0,
            stalled_since: None,
            counts: Counts::default(),
            peer_max_message: u64::MAX,
            router_status: None,
        }
    }

    /// What this router says of itself to a peer that asks (see
    /// [`lanmesh_proto::Offer::router_status`]); by default, that it is not federated.
    /// Takes effect at the handshake's first message.
    pub fn set_router_status(&mut self, status: lanmesh_proto::RouterStatus) {
        self.router_status = Some(status);
    }

    // -- state --------------------------------------------------------------------------

    /// The member's name, while it is one.
    pub fn name(&self) -> Option<&Name> {
        match &self.phase {
            Phase::Member(n) => Some(n),
            _ => None,
        }
    }

    /// Whether the connection is still read (not closing, parked or finished).
    pub fn reads(&self) -> bool {
        matches!(
            self.phase,
            Phase::Handshake(_) | Phase::Joining(_) | Phase::Member(_) | Phase::Observer
        )
    }

    /// Whether it is parked, waiting for its member to come back.
    pub fn is_parked(&self) -> bool {
        matches!(self.phase, Phase::Parked { .. })
    }

    /// Whether the handshake is still under way.
    pub fn is_handshaking(&self) -> bool {
        matches!(self.phase, Phase::Handshake(_) | Phase::Joining(_))
    }

    /// Bytes waiting for the peer: queued here, or handed out and not yet written.
    pub fn pending_bytes(&self) -> usize {
        self.queued_bytes() + self.in_flight
    }

    /// Bytes queued here, not yet handed out by [`SessionCore::poll_transmit`].
    pub fn queued_bytes(&self) -> usize {
        self.handshake_out.iter().map(Bytes::len).sum::<usize>()
            + self.connection.as_ref().map_or(0, Connection::queued_bytes)
    }

    /// The counters since the last call.
    pub fn take_counts(&mut self) -> Counts {
        core::mem::take(&mut self.counts)
    }

    /// The next thing the driver must do.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Frames for other sessions, produced by the last calls.
    pub fn take_outgoing(&mut self) -> &mut Outgoing<T::Route> {
        &mut self.out
    }

    fn emit(&mut self, event: SessionEvent) {
        self.events.push_back(event);
    }

    fn limits(&self) -> &lanmesh_proto::Limits {
        &self.config.handshake.limits
    }

    // -- bytes --------------------------------------------------------------------------

    /// The next bytes to write (length-prefixed on streams, one message otherwise).
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        let out = match self.handshake_out.pop_front() {
            Some(b) => Some(b),
            None => match self.connection.as_mut()?.poll_transmit() {
                Ok(out) => out,
                Err(e) => {
                    // Sealing fails only when the record counter is used up.
                    self.close(Some((e.code(), e.to_string())));
                    None
                }
            },
        };
        if let Some(b) = &out {
            self.in_flight += b.len();
        }
        out
    }

    /// `n` bytes handed out were written to the socket.
    pub fn written(&mut self, n: usize) {
        self.in_flight = self.in_flight.saturating_sub(n);
    }

    /// Since when the socket has taken nothing while bytes wait (`None`: it keeps up).
    pub fn set_write_stall(&mut self, since: Option<Instant>) {
        self.stalled_since = since;
    }

    fn queue_handshake(&mut self, msg: &[u8]) -> Result<(), ProtoError> {
        let bytes = handshake_message(self.config.handshake.framing, msg)?;
        self.handshake_out.push_back(bytes);
        Ok(())
    }

    /// Takes what the transport received: every whole record off the front of `input`
    /// (length-prefixed framing), or `input` as one record (message framing).
    pub fn handle_input(&mut self, input: &mut BytesMut) {
        while self.reads() {
            let record = match self.config.handshake.framing {
                Framing::LengthPrefixed => match self.decoder.decode(input) {
                    Ok(Some(r)) => r,
                    Ok(None) => return,
                    Err(e) => return self.violation(e),
                },
                Framing::Message if input.is_empty() => return,
                Framing::Message => input.split(),
            };
            self.heard = true;
            self.counts.bytes_in += record.len() as u64;
            if let Err(e) = self.on_record(record) {
                return self.violation(e);
            }
        }
        input.clear();
    }

    fn violation(&mut self, e: ProtoError) {
        if matches!(self.phase, Phase::Handshake(_)) {
            self.emit(SessionEvent::HandshakeFailed);
        }
        self.close(Some((e.code(), e.to_string())));
    }

    fn on_record(&mut self, record: BytesMut) -> Result<(), ProtoError> {
        match &mut self.phase {
            Phase::Handshake(slot) => match slot.take() {
                None => self.on_message_1(&record),
                Some(responder) => self.on_message_3(*responder, &record),
            },
            Phase::Member(_) | Phase::Observer => {
                let conn = self.connection.as_mut().ok_or(ProtoError::Negotiation {
                    what: "record before the handshake",
                })?;
                let frames = conn.open_owned(record)?;
                for frame in frames {
                    self.on_frame(frame?)?;
                    if !self.reads() {
                        break;
                    }
                }
                Ok(())
            }
            Phase::Joining(_) => Err(ProtoError::Negotiation {
                what: "frames before Welcome",
            }),
            Phase::Parked { .. } | Phase::Closing { .. } | Phase::Finished => Ok(()),
        }
    }

    fn on_message_1(&mut self, msg1: &[u8]) -> Result<(), ProtoError> {
        let mut responder = Responder::new_with_random(&self.config.handshake, self.random)?;
        if let Some(status) = &self.router_status {
            responder.set_router_status(status.clone());
        }
        match responder.read_offer(msg1)? {
            Answer::Accept(msg2) => {
                self.queue_handshake(&msg2)?;
                self.phase = Phase::Handshake(Some(alloc::boxed::Box::new(responder)));
            }
            Answer::Refuse(msg2, _err) => {
                self.queue_handshake(&msg2)?;
                self.emit(SessionEvent::HandshakeFailed);
                self.close(None);
            }
        }
        Ok(())
    }

    fn on_message_3(&mut self, responder: Responder, msg3: &[u8]) -> Result<(), ProtoError> {
        let est = responder.read_confirm(msg3)?;
        self.resumable = !est.offer.resume.is_empty();
        let cipher = est.connection.cipher();
        let compression = est.connection.compression();
        let mut connection = est.connection;
        // A small device declared smaller records and messages: records to it are sealed
        // at its size and messages cut to fit (`deliver`).
        connection.set_max_record(est.offer.max_record);
        self.peer_max_message = est.offer.max_message;
        self.connection = Some(connection);
        let max_record = self.limits().max_record;
        self.decoder.set_max(max_record);
        let Some(name) = est.offer.name else {
            self.phase = Phase::Observer;
            return Ok(());
        };
        name.check_len(self.limits().max_name_len)?;
        let info = PeerInfo {
            name: name.clone(),
            transport: self.config.transport,
            cipher,
            compression,
            key: est.remote_key,
            addr: self.config.remote.clone(),
            joined_ms: 0,
            direct: direct_address(
                self.config.transport,
                &self.config.remote,
                est.offer.direct_port,
            ),
            incarnation: est.offer.incarnation,
        };
        self.phase = Phase::Joining(name);
        self.emit(SessionEvent::Join {
            info,
            resume: est.offer.resume,
            slot: est.offer.slot,
        });
        Ok(())
    }

    /// The router admitted the member: `routes` include it, `peers` is the member list.
    pub fn joined(&mut self, routes: T, peers: Vec<PeerInfo>) {
        let Phase::Joining(name) = &self.phase else {
            return;
        };
        let name = name.clone();
        self.routes = Some(routes);
        self.phase = Phase::Member(name.clone());
        let sent = self
            .send(&Frame::Welcome { name })
            .and_then(|()| self.send_peer_list(peers));
        if let Err(e) = sent {
            self.close(Some((e.code(), e.to_string())));
        }
    }

    /// The router refused the member (or the connection must end for another reason):
    /// an `Error` frame with `code` and `text`, then the close.
    pub fn refuse(&mut self, code: ErrorCode, text: &str) {
        self.close(Some((code, text.into())));
    }

    /// The routing table changed; `event` (`PeerJoined`, `PeerLeft`) is for the peer.
    pub fn membership(&mut self, routes: T, event: Option<Frame>) {
        self.routes = Some(routes);
        if let (Phase::Member(_), Some(event)) = (&self.phase, event) {
            if let Err(e) = self.send(&event) {
                self.close(Some((e.code(), e.to_string())));
            }
        }
    }

    /// Sends the member list in pages that each fit in one record; the last page says so.
    pub fn send_peer_list(&mut self, peers: Vec<PeerInfo>) -> Result<(), ProtoError> {
        // Room for the frame's own header within the peer's record.
        let page_budget = self
            .connection
            .as_ref()
            .map_or(60_000, |c| c.max_frame_len().saturating_sub(64).min(60_000));
        let mut page = Vec::new();
        let mut size = 0;
        for p in peers {
            if size + p.encoded_len() > page_budget && !page.is_empty() {
                self.send(&Frame::PeerList {
                    last: false,
                    peers: core::mem::take(&mut page),
                })?;
                size = 0;
            }
            size += p.encoded_len();
            page.push(p);
        }
        self.send(&Frame::PeerList {
            last: true,
            peers: page,
        })
    }

    fn send(&mut self, frame: &Frame) -> Result<(), ProtoError> {
        let conn = self.connection.as_mut().ok_or(ProtoError::Negotiation {
            what: "frame before the handshake completed",
        })?;
        self.counts.bytes_out += frame.encoded_len() as u64;
        conn.send(frame)
    }

    // -- frames from the peer -----------------------------------------------------------

    fn on_frame(&mut self, frame: Frame) -> Result<(), ProtoError> {
        match frame {
            Frame::ListPeers => self.emit(SessionEvent::ListPeers),
            Frame::Ping(v) => self.send(&Frame::Pong(v))?,
            Frame::Pong(_) => {}
            Frame::Close => {
                // Everything before `Close` has been handled: the driver hands what goes
                // to other sessions over (their refusals come back as nacks first), then
                // `answer_close` says so, leaves and stops.
                self.leaving = self.name().cloned();
                self.phase = Phase::Closing {
                    until: self.clock + self.config.close_timeout,
                };
                self.emit(SessionEvent::CloseRequested);
            }
            Frame::Error { .. } => self.close(None),
            member_only => {
                let Phase::Member(me) = &self.phase else {
                    self.close(Some((
                        ErrorCode::NotJoined,
                        "join with a name before sending messages".into(),
                    )));
                    return Ok(());
                };
                let me = me.clone();
                self.on_member_frame(me, member_only)?;
            }
        }
        Ok(())
    }

    fn nack(&mut self, peer: Name, id: u64, reason: NackReason) -> Result<(), ProtoError> {
        self.send(&Frame::Nack { peer, id, reason })
    }

    fn on_member_frame(&mut self, me: Name, frame: Frame) -> Result<(), ProtoError> {
        let max_message = self.limits().max_message;
        match frame {
            Frame::Send(m) => {
                if m.chunk.is_some_and(|c| c.total > max_message) {
                    return self.nack(m.peer, m.id, NackReason::TooLarge);
                }
                let Some(routes) = &self.routes else {
                    return Ok(());
                };
                // An answer (a reply, a file's answer) goes to the session that sent what
                // it answers (that message's slot); anything else to the session that
                // receives the name's messages.
                let route = match m.prev {
                    Some(answered) if m.flags & (flags::REPLY | flags::BLOB) != 0 => {
                        routes.route_slot(m.peer.as_str(), slot_of(answered))
                    }
                    _ => routes.route(m.peer.as_str()),
                };
                match route {
                    Some(route) => {
                        self.counts.sent += 1;
                        let dest = m.peer.clone();
                        self.out
                            .push::<T>(&dest, route, Frame::Deliver(Msg { peer: me, ..m }));
                    }
                    None => self.nack(m.peer, m.id, NackReason::UnknownPeer)?,
                }
            }
            Frame::Broadcast(b) => self.broadcast(me, b)?,
            // Behind the sender's messages to `peer`, in the same order: a peer moving
            // onto a direct link learns when the router path is drained.
            Frame::Mark { peer, token } => {
                if let Some(route) = self.routes.as_ref().and_then(|r| r.route(peer.as_str())) {
                    self.out
                        .push::<T>(&peer, route, Frame::Mark { peer: me, token });
                }
            }
            // End to end: acks, and nacks of a recipient refusing a message (a request it
            // has no responder for). The sender may be gone: then nobody waits for them.
            Frame::Ack { peer, id } => {
                let slot = slot_of(id);
                if let Some(route) = self
                    .routes
                    .as_ref()
                    .and_then(|r| r.route_slot(peer.as_str(), slot))
                {
                    self.out
                        .push::<T>(&peer, route, Frame::Ack { peer: me, id });
                }
            }
            Frame::Nack { peer, id, reason } => {
                let slot = slot_of(id);
                if let Some(route) = self
                    .routes
                    .as_ref()
                    .and_then(|r| r.route_slot(peer.as_str(), slot))
                {
                    let nack = Frame::Nack {
                        peer: me,
                        id,
                        reason,
                    };
                    self.out.push::<T>(&peer, route, nack);
                }
            }
            other => {
                let text = format!("a client may not send {}", frame_kind(&other));
                self.close(Some((ErrorCode::Protocol, text)));
            }
        }
        Ok(())
    }

    fn broadcast(&mut self, me: Name, b: Broadcast) -> Result<(), ProtoError> {
        if b.chunk.is_some_and(|c| c.total > self.limits().max_message) {
            return self.nack(me, b.id, NackReason::TooLarge);
        }
        let Some(routes) = &self.routes else {
            return Ok(());
        };
        let out = &mut self.out;
        let mut sent = 0;
        routes.for_each(&mut |name, route| {
            if *name == me {
                return;
            }
            sent += 1;
            let frame = Frame::Deliver(Msg {
                peer: me.clone(),
                id: b.id,
                flags: b.flags | flags::BROADCAST,
                chunk: b.chunk,
                prev: None,
                payload: b.payload.clone(),
            });
            out.push::<T>(name, route, frame);
        });
        self.counts.sent += sent;
        Ok(())
    }

    /// `frames` for `dest` could not be handed to its session (`reason`: its inbox was
    /// full, or it is gone): each message is `Nack`ed to this peer.
    pub fn refused(&mut self, dest: &Name, frames: Vec<Frame>, reason: NackReason) {
        self.counts.dropped += frames.len() as u64;
        for f in frames {
            if let Frame::Deliver(m) = f {
                if m.flags & flags::BROADCAST == 0 && self.nack(dest.clone(), m.id, reason).is_err()
                {
                    return;
                }
            }
        }
    }

    // -- frames for the peer ------------------------------------------------------------

    /// Frames other sessions forwarded to this one. Beyond the budget
    /// (`limits.max_pending_bytes`) a message is refused to its sender; while parked,
    /// frames are held within the same budget.
    pub fn deliver(&mut self, frames: Vec<Frame>) {
        let budget = self.limits().max_pending_bytes;
        match self.phase {
            Phase::Parked { .. } => return self.hold(frames, budget),
            Phase::Member(_) | Phase::Observer => {}
            _ => return,
        }
        for frame in frames {
            if self.pending_bytes() > budget {
                // This peer is not reading: refuse rather than grow without bound.
                self.refuse_overloaded(&frame);
                continue;
            }
            if let Frame::Deliver(m) = &frame {
                let total = m.chunk.map_or(m.payload.len() as u64, |c| c.total);
                if total > self.peer_max_message {
                    self.refuse_too_large(&frame);
                    continue;
                }
                self.counts.received += 1;
            }
            if let Err(e) = self.send_fitted(frame) {
                self.close(Some((e.code(), e.to_string())));
                return;
            }
        }
    }

    /// Sends a frame, a message cut into chunks when it exceeds the peer's record limit.
    fn send_fitted(&mut self, frame: Frame) -> Result<(), ProtoError> {
        let max = self
            .connection
            .as_ref()
            .map_or(usize::MAX, Connection::max_frame_len);
        if frame.encoded_len() <= max {
            return self.send(&frame);
        }
        match frame {
            Frame::Deliver(m) => {
                for piece in lanmesh_proto::rechunk(m, max) {
                    self.send(&Frame::Deliver(piece))?;
                }
                Ok(())
            }
            // Not a message: it cannot be cut, and `send` says it is too large.
            other => self.send(&other),
        }
    }

    /// A message larger than the peer takes: dropped, and `Nack(TooLarge)`ed to its
    /// sender once (on its first chunk).
    fn refuse_too_large(&mut self, frame: &Frame) {
        self.counts.dropped += 1;
        let Phase::Member(me) = &self.phase else {
            return;
        };
        let first = matches!(frame, Frame::Deliver(m) if m.chunk.is_none_or(|c| c.offset == 0));
        if first
            && let Some((route, nack)) =
                self.nack_for_sender(&me.clone(), frame, NackReason::TooLarge)
        {
            self.out.notice(route, nack);
        }
    }

    /// Drops a frame this session has no room for; a message (not a broadcast) is
    /// `Nack(Overloaded)`ed to its sender, so nothing is lost silently.
    fn refuse_overloaded(&mut self, frame: &Frame) {
        self.counts.dropped += 1;
        let me = match &self.phase {
            Phase::Member(me) | Phase::Parked { name: me, .. } => me.clone(),
            _ => return,
        };
        if let Some((route, nack)) = self.nack_for_sender(&me, frame, NackReason::Overloaded) {
            self.out.notice(route, nack);
        }
    }

    /// The `Nack` that tells the sender of `frame` (a `Deliver` to peer `me`) it was not
    /// delivered, with the sender's route; `None` for broadcasts (nobody waits for them)
    /// and for senders that left.
    fn nack_for_sender(
        &self,
        me: &Name,
        frame: &Frame,
        reason: NackReason,
    ) -> Option<(T::Route, Frame)> {
        let Frame::Deliver(m) = frame else {
            return None;
        };
        if m.flags & flags::BROADCAST != 0 {
            return None;
        }
        let route = self
            .routes
            .as_ref()?
            .route_slot(m.peer.as_str(), slot_of(m.id))?
            .clone();
        let nack = Frame::Nack {
            peer: me.clone(),
            id: m.id,
            reason,
        };
        Some((route, nack))
    }

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

    /// Tells the senders of held messages that they will not be delivered.
    fn nack_held(&mut self, me: &Name, reason: NackReason) {
        for frame in core::mem::take(&mut self.held) {
            // Each message once: its first chunk stands for all of it.
            let first =
                matches!(&frame, Frame::Deliver(m) if m.chunk.is_none_or(|c| c.offset == 0));
            if !first {
                continue;
            }
            if let Some((route, nack)) = self.nack_for_sender(me, &frame, reason) {
                self.out.notice(route, nack);
            }
        }
        self.held_bytes = 0;
    }

    /// The same peer joined on a new connection: this one is stale. Returns what it
    /// holds for the peer, for the new session.
    pub fn replaced(&mut self) -> Vec<Frame> {
        let was_parked = self.is_parked();
        let held = core::mem::take(&mut self.held);
        self.held_bytes = 0;
        // The member entry already belongs to the new session: no `Leave`.
        self.phase = Phase::Observer;
        if was_parked {
            self.finish();
        } else {
            self.close(Some((
                ErrorCode::NameTaken,
                "replaced by a newer connection with the same key".into(),
            )));
        }
        held
    }

    /// Answers the peer's `Close` (everything before it is handled) and closes.
    pub fn answer_close(&mut self) {
        if self.connection.is_some() {
            let _ = self.send(&Frame::Close);
        }
        if let Some(name) = self.leaving.take() {
            self.emit(SessionEvent::Leave { name });
        }
        self.emit(SessionEvent::CloseTransport);
    }

    /// The router is shutting down.
    pub fn shutdown(&mut self) {
        match self.phase {
            Phase::Parked { .. } => {
                self.leave();
                self.finish();
            }
            _ => self.close(Some((
                ErrorCode::Shutdown,
                "router is shutting down".into(),
            ))),
        }
    }

    // -- ending -------------------------------------------------------------------------

    fn leave(&mut self) {
        if let Phase::Member(name) | Phase::Parked { name, .. } = &self.phase {
            let name = name.clone();
            self.emit(SessionEvent::Leave { name });
        }
    }

    /// Sends an `Error` frame (when given, and the transport phase is up), leaves, and
    /// closes: queued frames are flushed, nothing more is read.
    fn close(&mut self, error: Option<(ErrorCode, String)>) {
        if matches!(self.phase, Phase::Closing { .. } | Phase::Finished) {
            return;
        }
        if let Some((code, text)) = error {
            if self.connection.is_some() {
                let _ = self.send(&Frame::error(code, text));
            }
        }
        self.leave();
        // Counted from the last time a call brought the clock: a driver that wants the
        // deadline to the millisecond calls `handle_timeout` `close_timeout` from now.
        self.phase = Phase::Closing {
            until: self.clock + self.config.close_timeout,
        };
        self.emit(SessionEvent::CloseTransport);
    }

    fn finish(&mut self) {
        if !matches!(self.phase, Phase::Finished) {
            self.phase = Phase::Finished;
            self.connection = None;
            self.emit(SessionEvent::Finished);
        }
    }

    /// Whether a member whose connection broke keeps its name for a while.
    fn parks(&self) -> bool {
        matches!(self.phase, Phase::Member(_)) && self.resumable && !self.config.grace.is_zero()
    }

    /// The member's connection is lost at `now`: it keeps its name for the grace period,
    /// and the driver flushes what is queued (an `Error` frame, maybe) and drops the socket.
    fn park(&mut self, now: Instant) {
        let Phase::Member(name) = &self.phase else {
            return;
        };
        self.phase = Phase::Parked {
            name: name.clone(),
            until: now + self.config.grace,
        };
        self.emit(SessionEvent::Parked);
    }

    /// The socket's read side ended at `now`: `error` says how (`None`: the peer closed
    /// its side). A member's broken connection parks it (or closes it, without a resume
    /// token); anything else closes, and what is queued is still flushed.
    pub fn input_closed(&mut self, error: Option<String>, now: Instant) {
        self.clock = self.clock.max(now);
        match &self.phase {
            Phase::Finished | Phase::Parked { .. } | Phase::Closing { .. } => {}
            Phase::Member(_) if self.parks() => self.park(now),
            Phase::Handshake(_) if error.is_some() => {
                self.emit(SessionEvent::HandshakeFailed);
                self.close(None);
            }
            _ => self.close(None),
        }
    }

    /// The socket's write side ended at `now`: after the driver flushed and shut it
    /// down (`error` `None`), or because it failed.
    pub fn output_closed(&mut self, error: Option<String>, now: Instant) {
        self.clock = self.clock.max(now);
        match &self.phase {
            // The socket of a parked session was let go on purpose.
            Phase::Parked { .. } => self.connection = None,
            Phase::Finished => {}
            Phase::Member(_) if error.is_some() && self.parks() => {
                self.park(now);
                self.connection = None;
            }
            _ => {
                self.leave();
                self.finish();
            }
        }
    }

    /// The name this session holds in the mesh: as a member, or parked.
    pub fn holds_name(&self) -> Option<&Name> {
        match &self.phase {
            Phase::Member(n) | Phase::Parked { name: n, .. } => Some(n),
            _ => None,
        }
    }

    // -- time ---------------------------------------------------------------------------

    /// When [`SessionCore::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let idle = self.limits().idle_timeout;
        match &self.phase {
            Phase::Handshake(_) | Phase::Joining(_) => Some(self.handshake_deadline),
            Phase::Member(_) | Phase::Observer => {
                let heard = self.last_heard.max(self.last_ping);
                let stall = self.stalled_since.map(|s| s + self.config.write_stall);
                earliest(Some(heard + idle / 3), stall)
            }
            Phase::Parked { until, .. } | Phase::Closing { until } => Some(*until),
            Phase::Finished => None,
        }
    }

    /// Runs whatever is due at `now`: the handshake deadline, the write-stall and idle
    /// deadlines (pinging a quiet peer at a third of the latter), the end of the grace
    /// period, the end of a close that the peer does not take.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.clock = self.clock.max(now);
        if core::mem::take(&mut self.heard) {
            self.last_heard = now;
        }
        match &self.phase {
            Phase::Handshake(_) | Phase::Joining(_) if now >= self.handshake_deadline => {
                self.emit(SessionEvent::HandshakeFailed);
                self.close(Some((
                    ErrorCode::HandshakeTimeout,
                    "handshake not completed in time".into(),
                )));
            }
            Phase::Member(_) | Phase::Observer => self.check_liveness(now),
            Phase::Parked { name, until } if now >= *until => {
                let name = name.clone();
                self.nack_held(&name, NackReason::UnknownPeer);
                self.emit(SessionEvent::Leave { name });
                self.finish();
            }
            Phase::Closing { until } if now >= *until => self.finish(),
            _ => {}
        }
    }

    fn check_liveness(&mut self, now: Instant) {
        let stall = self
            .stalled_since
            .filter(|_| self.pending_bytes() > 0)
            .map_or(Duration::ZERO, |since| now.saturating_since(since));
        if stall > self.config.write_stall {
            // It stopped reading: not a broken connection, so it is not held for a resume.
            return self.close(Some((
                ErrorCode::Overloaded,
                "stopped reading: disconnected by the write-stall deadline".into(),
            )));
        }
        let idle = self.limits().idle_timeout;
        let quiet = now.saturating_since(self.last_heard);
        if quiet > idle {
            if self.connection.is_some() {
                let _ = self.send(&Frame::error(
                    ErrorCode::IdleTimeout,
                    "no traffic within the idle deadline",
                ));
            }
            // Flush the error, then park (a member that may come back) or close.
            if self.parks() {
                self.park(now);
            } else {
                self.close(None);
            }
        } else if quiet > idle / 3 && now.saturating_since(self.last_ping) >= idle / 3 {
            self.last_ping = now;
            self.ping_seq += 1;
            let ping = Frame::Ping(self.ping_seq);
            if let Err(e) = self.send(&ping) {
                self.close(Some((e.code(), e.to_string())));
            }
        }
    }
}

/// Where a member taking direct links on `port` can be reached: the address it connected
/// from (`ip:port` or `[ip]:port`), with that port. Only the address the router saw, so a
/// member cannot point the others at a third host.
fn direct_address(transport: Transport, remote: &str, port: u16) -> String {
    if port == 0 || transport != Transport::Tcp {
        return String::new();
    }
    match remote.rsplit_once(':') {
        Some((host, _)) if !host.is_empty() => format!("{host}:{port}"),
        _ => String::new(),
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

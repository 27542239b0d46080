//! Direct links: two native peers of one mesh that can reach each other talk over a Noise
//! session of their own instead of through the router (one hop and two AEAD passes
//! instead of two hops and four). No I/O: the peer core drives these links, the driver
//! moves their bytes.
//!
//! * **Introduction.** A peer taking links offers its port in the handshake; the router
//!   pairs it with the address it saw the peer connect from and lists it in
//!   [`PeerInfo::direct`], next to the key it bound the name to.
//! * **Dialing.** The first frame for a member with such an address asks the driver for a
//!   transport ([`super::Event::LinkDial`]); the frame itself and everything until the
//!   switch below still goes through the router.
//! * **Authentication.** Both ends run the mesh's Noise handshake (the mesh key
//!   included). The dialer refuses a responder whose static key is not the one the router
//!   vouched for that name; the responder refuses a dialer whose offered name is not a
//!   member bound to the key it proved. The name↔key binding is the router's, unchanged.
//! * **Two links for one pair** (both dialed at once): the one dialed by the smaller name
//!   wins at both ends; among links dialed by the same end, the newer one.
//! * **The switch** keeps each sender's order: when its link is up, the sender stops
//!   sending to the peer (it holds those frames) and puts a `Mark` through the router
//!   behind everything it sent there. The receiver, having read the mark, has read all
//!   of that; it echoes the mark over the link, and on the echo the sender sends what it
//!   held, and everything after, over the link.
//! * **Fallback.** A link that fails (a transport error, the idle deadline, a protocol
//!   violation, an echo that does not come) is closed and its peer is reached through the
//!   router again at once: what was held goes there, and unacknowledged acked messages to
//!   it are sent again at once (the recipient drops duplicates and keeps the order, see
//!   `streams.rs`). A failed peer is dialed again only after a backoff.
//!
//! File transfers take links like messages: their frames go through the same switch,
//! so a transfer's order holds across it. A link lost mid-transfer costs nothing: the
//! frames it may have lost are said again through the router, and the receiver drops
//! the repeats (see `files.rs`).

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use bytes::{Bytes, BytesMut};
use lanmesh_proto::frame::{Frames, flags};
use lanmesh_proto::handshake::slot_of;
use lanmesh_proto::record::handshake_message;
use lanmesh_proto::{
    Answer, Connection, Frame, HandshakeConfig, Initiator, Limits, Name, Offer, PeerInfo,
    ProtoError, RandomSource, Reassembler, RecordDecoder, Responder,
};

use crate::time::{Instant, earliest};

/// At most this many links (up or in their handshake) at once; an incoming one beyond it
/// is refused.
pub const MAX_LINKS: usize = 64;
/// At most this many incoming links in their handshake at once.
pub const MAX_ACCEPTING: usize = 16;
/// How long a sender holds its frames for the echo of its mark before it gives the link
/// up.
pub const ECHO_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a link may hold bytes that its transport does not take before it is given
/// up: the other end stopped reading (its TCP window is shut). Its peer is then reached
/// through the router, whose budget for a stuck member (`Nack(Overloaded)`) applies.
pub const WRITE_STALL: Duration = Duration::from_secs(1);

/// How long to wait before dialing a peer again after `failures` failed links: 1 s,
/// doubling, at most 60 s.
pub fn redial_delay(failures: u32) -> Duration {
    Duration::from_secs(1 << failures.min(6)).min(Duration::from_secs(60))
}

/// The peer a frame to send is for, when it may take a direct link: messages, file steps
/// and end-to-end answers (replies, a file's answers), to or about a receiving session
/// (id slot 0 — a link always ends at one).
pub(crate) fn target(frame: &Frame) -> Option<&Name> {
    match frame {
        // A file's answer names its offer in `prev`, as a reply names its request.
        Frame::Send(m) if m.flags & (flags::REPLY | flags::BLOB) != 0 && m.prev.is_some() => {
            (slot_of(m.prev.unwrap_or(0)) == 0).then_some(&m.peer)
        }
        Frame::Send(m) => Some(&m.peer),
        Frame::Ack { peer, id } | Frame::Nack { peer, id, .. } => {
            (slot_of(*id) == 0).then_some(peer)
        }
        _ => None,
    }
}

enum Phase {
    /// Waiting for the driver's transport.
    Dialing,
    /// Message 1 went out.
    Initiating(Box<Initiator>),
    /// Incoming: waiting for message 1 (`None`) or message 3.
    Accepting(Option<Box<Responder>>),
    Up(Box<Connection>),
}

pub(crate) struct Link {
    /// The other end: known from the start when we dial, from message 3 when it dials.
    pub(crate) peer: Option<Name>,
    /// The key the router vouched for `peer` (when we dial).
    key: Option<[u8; 32]>,
    pub(crate) dialed_by_us: bool,
    phase: Phase,
    out: VecDeque<Bytes>,
    decoder: RecordDecoder,
    pub(crate) reassembler: Reassembler,
    /// The handshake deadline, then the idle one is computed from `last_rx`.
    deadline: Instant,
    last_rx: Instant,
    /// When its transport last asked for bytes (see [`WRITE_STALL`]).
    last_tx: Instant,
    last_ping: Instant,
    ping_seq: u64,
}

/// A sender's way to one peer over a link.
struct Path {
    link: u64,
    switch: Switch,
}

enum Switch {
    /// The mark went out through the router; frames wait here for its echo.
    Holding {
        token: u64,
        held: Vec<Frame>,
        /// Their encoded size, counted against the sender's room to this peer.
        held_bytes: usize,
        since: Instant,
    },
    /// On the link.
    Direct,
}

/// What [`Links::carry`] did with a frame.
pub(crate) enum Carry {
    /// Sealed into the link's connection.
    Sent,
    /// Held for the switch.
    Held,
    /// Not for a link: the router takes it.
    Router,
    /// The router takes it; and a new link to its peer wants a transport.
    Dial { link: u64, addr: String },
    /// The link could not take it (it is now broken): close it, then the router takes it.
    Broken(u64),
}

/// What a record read on a link asks of the peer core.
pub(crate) enum Input {
    /// Nothing more.
    None,
    /// The link is up (authenticated): see [`Links::up`].
    Up,
    /// Frames from the link's peer, read one by one as they are handled (a record of
    /// 64 B messages holds hundreds: no vector of them is built).
    Frames(Frames),
}

/// Every link of one peer, and the paths over them.
pub(crate) struct Links {
    pub(crate) enabled: bool,
    links: BTreeMap<u64, Link>,
    paths: BTreeMap<Name, Path>,
    /// Marks read from the router that wait for a link to echo them on.
    marks: BTreeMap<Name, u64>,
    /// Peers not to dial before a time, and how many links to them failed in a row.
    backoff: BTreeMap<Name, (Instant, u32)>,
    next_link: u64,
    next_token: u64,
    /// Links closed in order: the records still to write (their last one a `Close`).
    closing: BTreeMap<u64, VecDeque<Bytes>>,
}

impl Links {
    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            links: BTreeMap::new(),
            paths: BTreeMap::new(),
            marks: BTreeMap::new(),
            backoff: BTreeMap::new(),
            next_link: 1,
            next_token: 1,
            closing: BTreeMap::new(),
        }
    }

    /// Closes link `link` in order: what its connection holds, then a `Close`, is still
    /// written (see [`Links::poll_transmit`]); then the link is removed like a broken one.
    pub(crate) fn retire(&mut self, link: u64, now: Instant) {
        if let Some(l) = self.links.get_mut(&link) {
            let mut out = core::mem::take(&mut l.out);
            if let Phase::Up(conn) = &mut l.phase
                && conn.send(&Frame::Close).is_ok()
            {
                while let Ok(Some(b)) = conn.poll_transmit() {
                    out.push_back(b);
                }
            }
            if !out.is_empty() {
                self.closing.insert(link, out);
            }
        }
        self.remove(link, None, now);
    }

    /// Every path still waiting for its echo gives up: the frames it held, for the
    /// router (the peer is closing, and the router's `Close` must come after them).
    pub(crate) fn abandon_holding(&mut self) -> Vec<Frame> {
        let mut out = Vec::new();
        self.paths.retain(|_, p| match &mut p.switch {
            Switch::Holding { held, .. } => {
                out.append(held);
                false
            }
            Switch::Direct => true,
        });
        out
    }

    pub(crate) fn get_mut(&mut self, link: u64) -> Option<&mut Link> {
        self.links.get_mut(&link)
    }

    pub(crate) fn peer_of(&self, link: u64) -> Option<&Name> {
        self.links.get(&link).and_then(|l| l.peer.as_ref())
    }

    /// Whether frames to `peer` go over a link now.
    pub(crate) fn is_direct(&self, peer: &str) -> bool {
        self.paths
            .get(peer)
            .is_some_and(|p| matches!(p.switch, Switch::Direct))
    }

    /// Bytes waiting on the way to `peer` when it is reached over a link (held for the
    /// switch, or queued on the link); `None` when the router carries what goes to it.
    pub(crate) fn path_queued(&self, peer: &str) -> Option<usize> {
        let path = self.paths.get(peer)?;
        Some(match &path.switch {
            Switch::Holding { held_bytes, .. } => *held_bytes,
            Switch::Direct => self.queued_bytes(path.link),
        })
    }

    /// The links, for closing them all.
    pub(crate) fn ids(&self) -> Vec<u64> {
        self.links.keys().copied().collect()
    }

    pub(crate) fn links_to(&self, peer: &Name) -> Vec<u64> {
        self.links
            .iter()
            .filter(|(_, l)| l.peer.as_ref() == Some(peer))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Routes one frame to `peer` (see [`Carry`]); `members` say what the router says of
    /// it, looked up only when there is no path to it yet.
    pub(crate) fn carry(
        &mut self,
        peer: &Name,
        frame: &Frame,
        members: &BTreeMap<Name, PeerInfo>,
        me: Option<&Name>,
        limits: &Limits,
        now: Instant,
    ) -> Carry {
        if let Some(path) = self.paths.get_mut(peer) {
            let id = path.link;
            match &mut path.switch {
                Switch::Holding {
                    held, held_bytes, ..
                } => {
                    *held_bytes += frame.encoded_len();
                    held.push(frame.clone());
                    return Carry::Held;
                }
                Switch::Direct => {
                    return match self.links.get_mut(&id).map(|l| l.queue(frame, now)) {
                        Some(Ok(())) => Carry::Sent,
                        _ => Carry::Broken(id),
                    };
                }
            }
        }
        // Dial it, if it takes links and nothing is under way already.
        let Some(info) = members.get(peer).filter(|i| !i.direct.is_empty()) else {
            return Carry::Router;
        };
        if !self.enabled
            || me.is_none_or(|me| me == peer)
            || self.links.values().any(|l| l.peer.as_ref() == Some(peer))
            || self.links.len() >= MAX_LINKS
            || self
                .backoff
                .get(peer)
                .is_some_and(|(until, _)| now < *until)
        {
            return Carry::Router;
        }
        let link = self.next_link;
        self.next_link += 1;
        self.links.insert(
            link,
            Link::new(Some(peer.clone()), Some(info.key), limits, now),
        );
        Carry::Dial {
            link,
            addr: info.direct.clone(),
        }
    }

    /// A transport for link `link` is open: message 1 goes out.
    pub(crate) fn connected(
        &mut self,
        link: u64,
        config: &HandshakeConfig,
        me: &Name,
        random: RandomSource,
        now: Instant,
    ) -> Result<(), ProtoError> {
        let Some(l) = self.links.get_mut(&link) else {
            return Ok(());
        };
        if !matches!(l.phase, Phase::Dialing) {
            return Ok(());
        }
        let offer = Offer::new(config, Some(me.clone()), Bytes::new());
        let (initiator, msg1) = Initiator::start_with_random(config, offer, random)?;
        l.out.push_back(handshake_message(config.framing, &msg1)?);
        l.phase = Phase::Initiating(Box::new(initiator));
        l.deadline = now + config.limits.handshake_timeout;
        l.last_rx = now;
        Ok(())
    }

    /// An incoming transport: a link that waits for message 1.
    pub(crate) fn accept(&mut self, config: &HandshakeConfig, now: Instant) -> Option<u64> {
        let accepting = self
            .links
            .values()
            .filter(|l| matches!(l.phase, Phase::Accepting(_)))
            .count();
        if !self.enabled || self.links.len() >= MAX_LINKS || accepting >= MAX_ACCEPTING {
            return None;
        }
        let link = self.next_link;
        self.next_link += 1;
        let mut l = Link::new(None, None, &config.limits, now);
        l.dialed_by_us = false;
        l.phase = Phase::Accepting(None);
        l.deadline = now + config.limits.handshake_timeout;
        self.links.insert(link, l);
        Some(link)
    }

    /// Reads one record of link `link`. `members` vouch for keys; `me` is our name.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_record(
        &mut self,
        link: u64,
        record: BytesMut,
        config: &HandshakeConfig,
        members: &BTreeMap<Name, PeerInfo>,
        me: Option<&Name>,
        random: RandomSource,
        now: Instant,
    ) -> Result<Input, ProtoError> {
        let Some(l) = self.links.get_mut(&link) else {
            return Ok(Input::None);
        };
        l.last_rx = now;
        match core::mem::replace(&mut l.phase, Phase::Dialing) {
            Phase::Dialing => Err(ProtoError::Negotiation {
                what: "record before the handshake",
            }),
            Phase::Initiating(initiator) => {
                let (est, msg3) = initiator.read_choice(&record)?;
                if Some(est.remote_key) != l.key {
                    return Err(ProtoError::Negotiation {
                        what: "direct link: the peer's key is not the one the router vouched for",
                    });
                }
                l.out.push_back(handshake_message(config.framing, &msg3)?);
                l.decoder.set_max(config.limits.max_record);
                l.phase = Phase::Up(Box::new(est.connection));
                Ok(Input::Up)
            }
            Phase::Accepting(None) => {
                let mut responder = Responder::new_with_random(config, random)?;
                match responder.read_offer(&record)? {
                    Answer::Accept(msg2) => {
                        l.out.push_back(handshake_message(config.framing, &msg2)?);
                        l.phase = Phase::Accepting(Some(Box::new(responder)));
                        Ok(Input::None)
                    }
                    Answer::Refuse(msg2, e) => {
                        l.out.push_back(handshake_message(config.framing, &msg2)?);
                        Err(e)
                    }
                }
            }
            Phase::Accepting(Some(responder)) => {
                let est = responder.read_confirm(&record)?;
                let vouched = est
                    .offer
                    .name
                    .as_ref()
                    .filter(|n| Some(*n) != me && est.offer.slot == 0)
                    .and_then(|n| members.get(n))
                    .filter(|info| info.key == est.remote_key);
                let Some(info) = vouched else {
                    return Err(ProtoError::Negotiation {
                        what: "direct link from a name the router did not bind to that key",
                    });
                };
                let mut conn = est.connection;
                conn.set_max_record(est.offer.max_record);
                l.peer = Some(info.name.clone());
                l.decoder.set_max(config.limits.max_record);
                l.phase = Phase::Up(Box::new(conn));
                Ok(Input::Up)
            }
            Phase::Up(mut conn) => {
                let frames = conn.open_owned(record);
                l.phase = Phase::Up(conn);
                frames.map(Input::Frames)
            }
        }
    }

    /// Link `link` is up: it becomes the path to its peer unless a better link to it is
    /// there (the other is closed then). Returns the links to close, the mark to put
    /// through the router (`(peer, token)`) and whether a waiting mark is now echoed.
    pub(crate) fn up(&mut self, link: u64, me: &Name, now: Instant) -> UpOutcome {
        let mut outcome = UpOutcome::default();
        let Some(peer) = self.peer_of(link).cloned() else {
            return outcome;
        };
        // The best of every link to that peer stays; the others go once it is up.
        let best = self
            .links_to(&peer)
            .into_iter()
            .max_by_key(|id| self.rank(*id, me, &peer))
            .unwrap_or(link);
        if !self.links.get(&best).is_some_and(Link::is_up) {
            // A better one is still in its handshake: this one waits, unused.
            return outcome;
        }
        for other in self.links_to(&peer) {
            if other != best && self.links.get(&other).is_some_and(Link::is_up) {
                outcome.close.push(other);
            }
        }
        if best != link {
            return outcome;
        }
        self.backoff.remove(&peer);
        match self.paths.get_mut(&peer) {
            // Moving from a link that lost: what it held stays held, the mark in flight
            // still counts (nothing went through the router since).
            Some(path) if matches!(path.switch, Switch::Holding { .. }) => path.link = link,
            _ => {
                let token = self.next_token;
                self.next_token += 1;
                self.paths.insert(
                    peer.clone(),
                    Path {
                        link,
                        switch: Switch::Holding {
                            token,
                            held: Vec::new(),
                            held_bytes: 0,
                            since: now,
                        },
                    },
                );
                outcome.mark = Some((peer.clone(), token));
            }
        }
        outcome.echo = self.marks.get(&peer).copied();
        outcome
    }

    /// Higher is better: dialed by the smaller name, then newer.
    fn rank(&self, link: u64, me: &Name, peer: &Name) -> (bool, u64) {
        let by_us = self.links.get(&link).is_some_and(|l| l.dialed_by_us);
        (by_us == (me < peer), link)
    }

    /// A mark `token` from `peer` came through the router: the link to echo it on, if
    /// any. Only the link that will win is used — the best one to that peer, once it is
    /// up: the peer sends over the link the echo came on, and a link about to lose to a
    /// better one would take what it sent down with it. The mark is kept, to be echoed
    /// when that link comes up (or, should it fail, on the next best).
    pub(crate) fn mark_from_router(&mut self, peer: &Name, token: u64, me: &Name) -> Option<u64> {
        self.marks.insert(peer.clone(), token);
        self.best_if_up(peer, me)
    }

    /// The best link to `peer`, if it is up (see [`Links::rank`]).
    fn best_if_up(&self, peer: &Name, me: &Name) -> Option<u64> {
        self.links_to(peer)
            .into_iter()
            .max_by_key(|id| self.rank(*id, me, peer))
            .filter(|id| self.links.get(id).is_some_and(Link::is_up))
    }

    /// The marks of every path still holding for its echo, for a router connection that
    /// just came (back): their echo timeout starts again now.
    pub(crate) fn waiting_marks(&mut self, now: Instant) -> Vec<(Name, u64)> {
        let mut out = Vec::new();
        for (peer, path) in &mut self.paths {
            if let Switch::Holding { token, since, .. } = &mut path.switch {
                *since = now;
                out.push((peer.clone(), *token));
            }
        }
        out
    }

    /// The echo of mark `token` came over link `link`: the frames held go over it.
    pub(crate) fn echo(&mut self, link: u64, token: u64) -> Option<(Name, Vec<Frame>)> {
        let peer = self.peer_of(link)?.clone();
        let path = self.paths.get_mut(&peer)?;
        match &mut path.switch {
            Switch::Holding { token: t, held, .. } if *t == token && path.link == link => {
                let held = core::mem::take(held);
                path.switch = Switch::Direct;
                Some((peer, held))
            }
            _ => None,
        }
    }

    /// Seals `frame` into link `link` (an answer on the link itself: `Pong`, an echo).
    pub(crate) fn send_on(
        &mut self,
        link: u64,
        frame: &Frame,
        now: Instant,
    ) -> Result<(), ProtoError> {
        match self.links.get_mut(&link) {
            Some(l) if matches!(l.phase, Phase::Up(_)) => l.queue(frame, now),
            _ => Ok(()),
        }
    }

    /// Removes link `link`. Returns what the peer core must do for its peer: the frames
    /// held for the switch (for the router now), whether frames went over it
    /// (unacknowledged ones go again), and another link to it that is up and may take over.
    pub(crate) fn remove(&mut self, link: u64, me: Option<&Name>, now: Instant) -> Option<Removed> {
        let l = self.links.remove(&link)?;
        let peer = l.peer?;
        let mut removed = Removed {
            peer: peer.clone(),
            held: Vec::new(),
            was_direct: false,
            successor: None,
            echo: None,
        };
        if self.paths.get(&peer).is_some_and(|p| p.link == link)
            && let Some(path) = self.paths.remove(&peer)
        {
            match path.switch {
                Switch::Holding { held, .. } => removed.held = held,
                Switch::Direct => removed.was_direct = true,
            }
        }
        // A mark waiting for the winner: the next best link may be it now.
        if let (Some(token), Some(me)) = (self.marks.get(&peer).copied(), me) {
            removed.echo = self.best_if_up(&peer, me).map(|l| (l, token));
        }
        let others = self.links_to(&peer);
        removed.successor = others
            .iter()
            .copied()
            .find(|id| self.links.get(id).is_some_and(Link::is_up));
        if others.is_empty() {
            // Wait before dialing it again (not long after a link that worked).
            let failures = self.backoff.get(&peer).map_or(0, |(_, f)| *f);
            let failures = if removed.was_direct { 0 } else { failures + 1 };
            self.backoff
                .insert(peer.clone(), (now + redial_delay(failures), failures));
        }
        Some(removed)
    }

    /// `peer` left the mesh: nothing more goes to it over a link (the router answers
    /// for it now), but what it sent last may still be arriving on one, which stays until
    /// the peer closes it (or it goes silent). Returns what a switch held, for the router.
    pub(crate) fn drop_path(&mut self, peer: &Name) -> Vec<Frame> {
        self.marks.remove(peer);
        match self.paths.remove(peer) {
            Some(Path {
                switch: Switch::Holding { held, .. },
                ..
            }) => held,
            _ => Vec::new(),
        }
    }

    /// `peer` joined anew (another process): its links and what we knew of it go.
    pub(crate) fn forget(&mut self, peer: &Name) -> Vec<u64> {
        self.marks.remove(peer);
        self.backoff.remove(peer);
        self.links_to(peer)
    }

    /// The next bytes for link `link`'s transport, which asks for them once it has room:
    /// each call is the transport's progress, as of `now`.
    pub(crate) fn poll_transmit(
        &mut self,
        link: u64,
        now: Instant,
    ) -> Result<Option<Bytes>, ProtoError> {
        let Some(l) = self.links.get_mut(&link) else {
            let Some(out) = self.closing.get_mut(&link) else {
                return Ok(None);
            };
            let next = out.pop_front();
            if out.is_empty() {
                self.closing.remove(&link);
            }
            return Ok(next);
        };
        l.last_tx = now;
        if let Some(b) = l.out.pop_front() {
            return Ok(Some(b));
        }
        match &mut l.phase {
            Phase::Up(conn) => conn.poll_transmit(),
            _ => Ok(None),
        }
    }

    pub(crate) fn queued_bytes(&self, link: u64) -> usize {
        if let Some(out) = self.closing.get(&link) {
            return out.iter().map(Bytes::len).sum();
        }
        self.links.get(&link).map_or(0, Link::queued)
    }

    pub(crate) fn decode(
        &mut self,
        link: u64,
        input: &mut BytesMut,
    ) -> Result<Option<BytesMut>, ProtoError> {
        match self.links.get_mut(&link) {
            Some(l) => l.decoder.decode(input),
            None => {
                input.clear();
                Ok(None)
            }
        }
    }

    /// When [`Links::due`] next has something to do.
    pub(crate) fn next_deadline(&self, idle: Duration) -> Option<Instant> {
        let mut at = None;
        for l in self.links.values() {
            let t = match l.phase {
                Phase::Up(_) => {
                    let t = (l.last_rx + idle).min(l.last_rx.max(l.last_ping) + ping_every(idle));
                    if l.queued() > 0 {
                        t.min(l.last_tx + WRITE_STALL)
                    } else {
                        t
                    }
                }
                _ => l.deadline,
            };
            at = earliest(at, Some(t));
        }
        for p in self.paths.values() {
            if let Switch::Holding { since, .. } = p.switch {
                at = earliest(at, Some(since + ECHO_TIMEOUT));
            }
        }
        at
    }

    /// Links that are over at `now` (a handshake or an echo too slow, a silent peer), and
    /// links that need a `Ping`.
    pub(crate) fn due(&mut self, now: Instant, idle: Duration) -> (Vec<u64>, Vec<(u64, u64)>) {
        let mut dead = Vec::new();
        let mut pings = Vec::new();
        for (id, l) in &mut self.links {
            match l.phase {
                Phase::Up(_) => {
                    let quiet = now.saturating_since(l.last_rx);
                    let stalled = l.queued() > 0 && now.saturating_since(l.last_tx) > WRITE_STALL;
                    if quiet > idle || stalled {
                        dead.push(*id);
                    } else if quiet >= ping_every(idle)
                        && now.saturating_since(l.last_ping) >= ping_every(idle)
                    {
                        l.last_ping = now;
                        l.ping_seq += 1;
                        pings.push((*id, l.ping_seq));
                    }
                }
                _ if now >= l.deadline => dead.push(*id),
                _ => {}
            }
        }
        for p in self.paths.values() {
            if let Switch::Holding { since, .. } = p.switch
                && now.saturating_since(since) >= ECHO_TIMEOUT
                && !dead.contains(&p.link)
            {
                dead.push(p.link);
            }
        }
        (dead, pings)
    }
}

/// What [`Links::up`] asks of the peer core.
#[derive(Default)]
pub(crate) struct UpOutcome {
    pub(crate) close: Vec<u64>,
    pub(crate) mark: Option<(Name, u64)>,
    pub(crate) echo: Option<u64>,
}

/// What [`Links::remove`] leaves to the peer core.
pub(crate) struct Removed {
    pub(crate) peer: Name,
    pub(crate) held: Vec<Frame>,
    pub(crate) was_direct: bool,
    pub(crate) successor: Option<u64>,
    /// `(link, token)`: a waiting mark to echo on the link that is now the best.
    pub(crate) echo: Option<(u64, u64)>,
}

impl Link {
    pub(crate) fn is_up(&self) -> bool {
        matches!(self.phase, Phase::Up(_))
    }

    /// Seals `frame` into the connection (up). Bytes queued on an empty link start its
    /// write-stall clock now.
    fn queue(&mut self, frame: &Frame, now: Instant) -> Result<(), ProtoError> {
        let Phase::Up(conn) = &mut self.phase else {
            return Err(ProtoError::Malformed {
                what: "a link not up",
            });
        };
        if self.out.is_empty() && !conn.has_output() {
            self.last_tx = now;
        }
        conn.send(frame)
    }

    /// Bytes waiting for its transport.
    fn queued(&self) -> usize {
        self.out.iter().map(Bytes::len).sum::<usize>()
            + match &self.phase {
                Phase::Up(conn) => conn.queued_bytes(),
                _ => 0,
            }
    }

    fn new(peer: Option<Name>, key: Option<[u8; 32]>, limits: &Limits, now: Instant) -> Self {
        Self {
            peer,
            key,
            dialed_by_us: true,
            phase: Phase::Dialing,
            out: VecDeque::new(),
            decoder: RecordDecoder::new(lanmesh_proto::limits::MAX_HANDSHAKE_MESSAGE),
            reassembler: Reassembler::new(limits.clone()),
            // A dial that never connects is given up with the handshake's time.
            deadline: now + limits.handshake_timeout,
            last_rx: now,
            last_tx: now,
            last_ping: now,
            ping_seq: 0,
        }
    }
}

/// How often a quiet connection is pinged, for an idle deadline of `idle`.
pub(crate) fn ping_every(idle: Duration) -> Duration {
    (idle / 3).max(Duration::from_millis(10))
}

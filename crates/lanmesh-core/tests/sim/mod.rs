//! A whole mesh in memory: peer cores, a router made of session cores and a small
//! stand-in for the router actor, links between them, and a virtual clock. Every step
//! is deterministic for a seed, so a failure replays exactly.
//!
//! Links carry the length-prefixed byte stream both ways, cut into pieces of random
//! size (fragmentation) and held back at random (delay). A cut drops whatever is in
//! flight in both directions and tells both ends, as a broken TCP connection would.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use lanmesh_core::Instant;
use lanmesh_core::peer::{Config, Event, PeerCore};
use lanmesh_core::session::{Routes, SessionConfig, SessionCore, SessionEvent};
use lanmesh_proto::{
    ErrorCode, Frame, HandshakeConfig, Identity, NackReason, Name, PeerInfo, Transport,
};

/// The mesh every simulated peer and router uses.
pub const MESH: &str = "sim";

/// xorshift64*: small, seedable, good enough to pick faults.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `true` with probability 1 / `n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.next() % n == 0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The seed from `LANMESH_SIM_SEED`, else `default`.
pub fn seed(default: u64) -> u64 {
    std::env::var("LANMESH_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The routing table the simulated router hands its sessions: name → receiving session
/// index, and (name, slot) → extra sending session.
#[derive(Clone, Default, Debug)]
pub struct Table(BTreeMap<Name, usize>, BTreeMap<(Name, u32), usize>);

impl Routes for Table {
    type Route = usize;
    fn route(&self, name: &str) -> Option<&usize> {
        self.0.get(name)
    }
    fn route_slot(&self, name: &str, slot: u32) -> Option<&usize> {
        if slot == 0 {
            return self.0.get(name);
        }
        self.1.get(&(Name::new(name).ok()?, slot))
    }
    fn for_each(&self, f: &mut dyn FnMut(&Name, &usize)) {
        for (n, r) in &self.0 {
            f(n, r);
        }
    }
    fn identity(route: &usize) -> usize {
        *route
    }
}

/// What reaches a session from the rest of the router.
enum Item {
    Frames(Vec<Frame>),
    Membership(Table, Option<Frame>),
}

/// Which end of a link is being closed down (after its side's output is flushed).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Closing {
    Open,
    /// The session asked: flush its output, then close.
    BySession,
    /// The peer is closed: flush its output, then close.
    ByPeer,
}

/// A connection between a peer (or a raw attacker) and a session.
pub struct Link {
    pub peer: Option<usize>,
    pub session: usize,
    /// Peer → router bytes written and not yet delivered.
    up: BytesMut,
    /// Router → peer bytes written and not yet delivered.
    down: BytesMut,
    /// The session's input buffer, and the peer's.
    session_in: BytesMut,
    peer_in: BytesMut,
    pub alive: bool,
    closing: Closing,
    /// A raw end (an attacker) reads from here instead of a peer core.
    pub raw_in: BytesMut,
}

struct Place {
    session: usize,
    resume: Bytes,
}

struct Member {
    key: [u8; 32],
    direct: String,
    incarnation: u64,
    receiver: Option<Place>,
    senders: BTreeMap<u32, Place>,
}

impl Member {
    fn sessions(&self) -> impl Iterator<Item = usize> + '_ {
        self.receiver
            .iter()
            .chain(self.senders.values())
            .map(|p| p.session)
    }
}

struct SessionSlot {
    core: SessionCore<Table>,
    inbox: VecDeque<Item>,
    link: Option<usize>,
    finished: bool,
}

/// Faults to inject, per step.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    /// A link carries at most this many bytes each way per step (fragmentation).
    pub max_chunk: usize,
    /// Each way, a link holds its bytes back this step with probability 1 / `delay_one_in`.
    pub delay_one_in: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            max_chunk: 1 << 20,
            delay_one_in: 0,
        }
    }
}

/// The whole mesh.
pub struct Sim {
    pub now: Instant,
    pub rng: Rng,
    pub faults: Faults,
    pub peers: Vec<PeerCore>,
    /// Each peer's current link.
    pub peer_link: Vec<Option<usize>>,
    /// Events each peer produced, for the test to read.
    pub events: Vec<Vec<Event>>,
    pub links: Vec<Link>,
    sessions: Vec<SessionSlot>,
    members: BTreeMap<Name, Member>,
    bindings: BTreeMap<Name, [u8; 32]>,
    router_handshake: HandshakeConfig,
    pub grace: Duration,
    /// Session events seen (for tests about the router's side).
    pub session_events: Vec<(usize, SessionEvent)>,
    /// Direct links between peers.
    pub direct: Vec<DirectLink>,
    /// `(from, to)`: peer `from` cannot open a connection to peer `to` (a firewall).
    pub blocked: std::collections::BTreeSet<(usize, usize)>,
    /// Messages the router forwarded, by recipient.
    pub forwarded: BTreeMap<Name, usize>,
    /// Peers whose next dial waits until they leave this set (see [`Sim::release_dial`]).
    pub hold_dial: std::collections::BTreeSet<usize>,
    held_dials: Vec<usize>,
    /// While set, the direct links peers ask for wait (see [`Sim::release_direct`]).
    pub hold_direct: bool,
    held_direct: Vec<(usize, u64, String)>,
    /// While set, the news that a peer joined waits, while routing to it does not (as
    /// the real router's routes change at once and its news goes through each session's
    /// mailbox); see [`Sim::release_joins`].
    pub hold_joins: bool,
    held_joins: Vec<(usize, Frame)>,
}

/// The port peer `i` takes direct links on, in the simulation.
pub fn direct_port(i: usize) -> u16 {
    7000 + u16::try_from(i).unwrap()
}

/// A direct link between two peers: `a` dialed `b`.
pub struct DirectLink {
    pub a: usize,
    pub a_link: u64,
    pub b: usize,
    pub b_link: u64,
    a_to_b: BytesMut,
    b_to_a: BytesMut,
    a_in: BytesMut,
    b_in: BytesMut,
    pub alive: bool,
    /// One end closed it: what it wrote last is still delivered, then the other end
    /// hears of the close.
    closing: bool,
    /// It carries nothing more, and neither end is told (a cable pulled, a NAT that
    /// forgot it): only silence says so.
    pub silent: bool,
}

impl Sim {
    pub fn new(seed: u64) -> Self {
        Self {
            now: Instant::from_millis(1),
            rng: Rng::new(seed),
            faults: Faults::default(),
            peers: Vec::new(),
            peer_link: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
            sessions: Vec::new(),
            members: BTreeMap::new(),
            bindings: BTreeMap::new(),
            router_handshake: HandshakeConfig::new(Identity::generate().unwrap(), MESH),
            grace: Duration::from_secs(30),
            session_events: Vec::new(),
            direct: Vec::new(),
            blocked: std::collections::BTreeSet::new(),
            forwarded: BTreeMap::new(),
            hold_dial: std::collections::BTreeSet::new(),
            held_dials: Vec::new(),
            hold_direct: false,
            held_direct: Vec::new(),
            hold_joins: false,
            held_joins: Vec::new(),
        }
    }

    /// The router crashes and a new one takes its place: every connection breaks, and
    /// the new router knows no member (name bindings, kept on disk, survive).
    pub fn restart_router(&mut self) {
        for l in 0..self.links.len() {
            self.kill_link(l, "router restarted");
        }
        for s in &mut self.sessions {
            s.finished = true;
            s.inbox.clear();
        }
        self.members.clear();
    }

    /// Lets peer `p` dial again (a dial it asked for meanwhile happens now).
    pub fn release_dial(&mut self, p: usize) {
        self.hold_dial.remove(&p);
        if let Some(i) = self.held_dials.iter().position(|q| *q == p) {
            self.held_dials.remove(i);
            self.dial(p);
        }
    }

    /// Tells the sessions the joins held back by [`Sim::hold_joins`], and holds no more.
    pub fn release_joins(&mut self) {
        self.hold_joins = false;
        let table = self.table();
        for (s, event) in std::mem::take(&mut self.held_joins) {
            if !self.sessions[s].finished {
                self.sessions[s]
                    .inbox
                    .push_back(Item::Membership(table.clone(), Some(event)));
            }
        }
    }

    /// Lets direct links be dialed again (those asked for meanwhile are dialed now).
    pub fn release_direct(&mut self) {
        self.hold_direct = false;
        for (p, link, addr) in std::mem::take(&mut self.held_direct) {
            self.dial_direct(p, link, &addr);
        }
    }

    /// A peer config for `name` that takes and makes direct links (as peer number `i`).
    pub fn direct_config(&mut self, name: &str, i: usize) -> Config {
        let mut c = self.config(name);
        c.direct = true;
        c.direct_port = direct_port(i);
        c
    }

    /// Peer `p` asked for a connection to `addr` for its link `link`.
    fn dial_direct(&mut self, p: usize, link: u64, addr: &str) {
        let now = self.now;
        let target = addr
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse::<usize>().ok())
            .and_then(|port| port.checked_sub(7000))
            .filter(|t| *t < self.peers.len() && !self.blocked.contains(&(p, *t)));
        let accepted = target.and_then(|t| Some((t, self.peers[t].accept_link(now)?)));
        match accepted {
            Some((b, b_link)) => {
                self.direct.push(DirectLink {
                    a: p,
                    a_link: link,
                    b,
                    b_link,
                    a_to_b: BytesMut::new(),
                    b_to_a: BytesMut::new(),
                    a_in: BytesMut::new(),
                    b_in: BytesMut::new(),
                    alive: true,
                    closing: false,
                    silent: false,
                });
                self.peers[p].link_connected(link, now);
            }
            None => self.peers[p].link_closed(link, now),
        }
    }

    /// Peer `p` closed its link `link`: what it still writes is delivered, then the other
    /// end hears of it (see `step_direct`).
    fn close_direct(&mut self, p: usize, link: u64) {
        for i in 0..self.direct.len() {
            let d = &self.direct[i];
            if !d.alive || d.closing {
                continue;
            }
            let a_side = d.a == p && d.a_link == link;
            if !(a_side || (d.b == p && d.b_link == link)) {
                continue;
            }
            while let Some(x) = self.peers[p].poll_link_transmit(link) {
                let d = &mut self.direct[i];
                if a_side {
                    d.a_to_b.extend_from_slice(&x);
                } else {
                    d.b_to_a.extend_from_slice(&x);
                }
            }
            self.direct[i].closing = true;
            return;
        }
    }

    /// Cuts every direct link between `a` and `b`, as a broken connection would.
    pub fn cut_direct(&mut self, a: usize, b: usize) {
        let now = self.now;
        for d in &mut self.direct {
            if d.alive && ((d.a, d.b) == (a, b) || (d.a, d.b) == (b, a)) {
                d.alive = false;
                self.peers[d.a].link_closed(d.a_link, now);
                self.peers[d.b].link_closed(d.b_link, now);
            }
        }
    }

    /// Every direct link between `a` and `b` goes silent: bytes written on it vanish,
    /// and neither end hears of it.
    pub fn silence_direct(&mut self, a: usize, b: usize) {
        for d in &mut self.direct {
            if d.alive && ((d.a, d.b) == (a, b) || (d.a, d.b) == (b, a)) {
                d.silent = true;
            }
        }
    }

    /// Direct links alive now.
    pub fn live_direct(&self) -> usize {
        self.direct.iter().filter(|d| d.alive).count()
    }

    fn step_direct(&mut self) {
        let now = self.now;
        let faults = self.faults;
        for i in 0..self.direct.len() {
            if !self.direct[i].alive {
                continue;
            }
            let (a, al, b, bl) = {
                let d = &self.direct[i];
                (d.a, d.a_link, d.b, d.b_link)
            };
            while let Some(x) = self.peers[a].poll_link_transmit(al) {
                self.direct[i].a_to_b.extend_from_slice(&x);
            }
            while let Some(x) = self.peers[b].poll_link_transmit(bl) {
                self.direct[i].b_to_a.extend_from_slice(&x);
            }
            let d = &mut self.direct[i];
            if d.silent {
                d.a_to_b.clear();
                d.b_to_a.clear();
                if d.closing {
                    d.alive = false;
                }
                continue;
            }
            let to_b = Self::carry(&mut self.rng, faults, &mut d.a_to_b, &mut d.b_in);
            let to_a = Self::carry(&mut self.rng, faults, &mut d.b_to_a, &mut d.a_in);
            if to_b && self.direct[i].alive {
                let mut input = std::mem::take(&mut self.direct[i].b_in);
                self.peers[b].handle_link_input(bl, &mut input, now);
                self.direct[i].b_in = input;
                self.collect_peer(b);
            }
            if to_a && self.direct[i].alive {
                let mut input = std::mem::take(&mut self.direct[i].a_in);
                self.peers[a].handle_link_input(al, &mut input, now);
                self.direct[i].a_in = input;
                self.collect_peer(a);
            }
            let d = &self.direct[i];
            if d.alive && d.closing && d.a_to_b.is_empty() && d.b_to_a.is_empty() {
                self.direct[i].alive = false;
                self.peers[a].link_closed(al, now);
                self.peers[b].link_closed(bl, now);
            }
        }
    }

    /// A peer config for `name`, with a fresh key and a resume token.
    pub fn config(&mut self, name: &str) -> Config {
        let hs = HandshakeConfig::new(Identity::generate().unwrap(), MESH);
        let mut c = Config::new(Some(Name::new(name).unwrap()), hs);
        c.resume_token = Bytes::copy_from_slice(&self.rng.next().to_be_bytes());
        c
    }

    /// Adds a peer and connects it; returns its index.
    pub fn add_peer(&mut self, config: Config) -> usize {
        let i = self.peers.len();
        self.peers.push(PeerCore::new(config));
        self.peer_link.push(None);
        self.events.push(Vec::new());
        self.dial(i);
        i
    }

    fn new_session(&mut self) -> usize {
        let config = SessionConfig {
            handshake: self.router_handshake.clone(),
            transport: Transport::Tcp,
            remote: format!("10.0.0.{}:4000", self.sessions.len() % 250),
            grace: self.grace,
            write_stall: Duration::from_secs(30),
            close_timeout: Duration::from_secs(2),
        };
        self.sessions.push(SessionSlot {
            core: SessionCore::new(config, self.now),
            inbox: VecDeque::new(),
            link: None,
            finished: false,
        });
        self.sessions.len() - 1
    }

    fn new_link(&mut self, peer: Option<usize>) -> usize {
        let session = self.new_session();
        self.links.push(Link {
            peer,
            session,
            up: BytesMut::new(),
            down: BytesMut::new(),
            session_in: BytesMut::new(),
            peer_in: BytesMut::new(),
            alive: true,
            closing: Closing::Open,
            raw_in: BytesMut::new(),
        });
        let l = self.links.len() - 1;
        self.sessions[session].link = Some(l);
        l
    }

    /// A link with a raw end: the test writes bytes into it (`raw_send`) and reads what
    /// the router answers (`Link::raw_in`).
    pub fn raw_link(&mut self) -> usize {
        self.new_link(None)
    }

    pub fn raw_send(&mut self, link: usize, bytes: &[u8]) {
        self.links[link].up.extend_from_slice(bytes);
    }

    fn dial(&mut self, peer: usize) {
        let l = self.new_link(Some(peer));
        self.peer_link[peer] = Some(l);
        let now = self.now;
        self.peers[peer].connect("sim-router", now).unwrap();
    }

    /// Cuts `peer`'s link, if it has one.
    pub fn cut(&mut self, peer: usize) {
        if let Some(l) = self.peer_link[peer].take() {
            self.kill_link(l, "cut");
        }
    }

    fn kill_link(&mut self, l: usize, why: &str) {
        if !self.links[l].alive {
            return;
        }
        let now = self.now;
        let link = &mut self.links[l];
        link.alive = false;
        link.up.clear();
        link.down.clear();
        if let Some(p) = link.peer {
            if self.peer_link[p] == Some(l) {
                self.peer_link[p] = None;
            }
            self.peers[p].transport_closed(Some(why.into()), now);
        }
        let s = self.links[l].session;
        let slot = &mut self.sessions[s];
        if !slot.finished {
            slot.core.input_closed(Some(why.into()), now);
            slot.core.output_closed(Some(why.into()), now);
            slot.link = None;
        }
    }

    /// The member list as the router sees it.
    pub fn member_names(&self) -> Vec<String> {
        self.members.keys().map(|n| n.to_string()).collect()
    }

    fn table(&self) -> Table {
        Table(
            self.members
                .iter()
                .filter_map(|(n, m)| Some((n.clone(), m.receiver.as_ref()?.session)))
                .collect(),
            self.members
                .iter()
                .flat_map(|(n, m)| {
                    m.senders
                        .iter()
                        .map(move |(slot, p)| ((n.clone(), *slot), p.session))
                })
                .collect(),
        )
    }

    fn peer_list(&self) -> Vec<PeerInfo> {
        self.members
            .iter()
            .map(|(n, m)| PeerInfo {
                name: n.clone(),
                transport: Transport::Tcp,
                cipher: lanmesh_proto::Cipher::ChaCha20Poly1305,
                compression: lanmesh_proto::Compression::Snappy,
                key: m.key,
                addr: String::new(),
                joined_ms: 0,
                direct: m.direct.clone(),
                incarnation: m.incarnation,
            })
            .collect()
    }

    fn publish(&mut self, event: Option<Frame>, skip: usize) {
        let table = self.table();
        let targets: Vec<usize> = self.members.values().flat_map(Member::sessions).collect();
        let hold = self.hold_joins && matches!(event, Some(Frame::PeerJoined(_)));
        for s in targets {
            if s != skip && !self.sessions[s].finished {
                let now = if hold {
                    self.held_joins.push((s, event.clone().expect("a join")));
                    None
                } else {
                    event.clone()
                };
                self.sessions[s]
                    .inbox
                    .push_back(Item::Membership(table.clone(), now));
            }
        }
    }

    fn join(&mut self, s: usize, info: PeerInfo, resume: Bytes, slot: u32) {
        if let Some(owner) = self.bindings.get(&info.name) {
            if *owner != info.key {
                self.sessions[s]
                    .core
                    .refuse(ErrorCode::NameTaken, "name belongs to another key");
                return;
            }
        }
        self.bindings.insert(info.name.clone(), info.key);
        let existed = self.members.contains_key(&info.name);
        let member = self.members.entry(info.name.clone()).or_insert(Member {
            key: info.key,
            direct: String::new(),
            incarnation: 0,
            receiver: None,
            senders: BTreeMap::new(),
        });
        if member.key != info.key {
            self.sessions[s]
                .core
                .refuse(ErrorCode::NameTaken, "name held by another peer");
            return;
        }
        if slot == 0 {
            member.direct = info.direct.clone();
            member.incarnation = info.incarnation;
        }
        let place = if slot == 0 {
            member.receiver.take()
        } else {
            member.senders.remove(&slot)
        };
        let resumed = place
            .as_ref()
            .is_some_and(|p| !resume.is_empty() && p.resume == resume);
        let new_place = Place { session: s, resume };
        if slot == 0 {
            member.receiver = Some(new_place);
        } else {
            member.senders.insert(slot, new_place);
        }
        if let Some(old) = place {
            let held = self.sessions[old.session].core.replaced();
            if !held.is_empty() {
                self.sessions[s].inbox.push_back(Item::Frames(held));
            }
        }
        let announce = !existed || (slot == 0 && !resumed);
        let event = announce.then(|| Frame::PeerJoined(info));
        self.publish(event, s);
        let table = self.table();
        let peers = self.peer_list();
        self.sessions[s].core.joined(table, peers);
    }

    fn leave(&mut self, s: usize, name: Name) {
        let Some(m) = self.members.get_mut(&name) else {
            return;
        };
        if m.receiver.as_ref().is_some_and(|p| p.session == s) {
            m.receiver = None;
        } else {
            let before = m.senders.len();
            m.senders.retain(|_, p| p.session != s);
            if m.senders.len() == before {
                return;
            }
        }
        let gone = m.receiver.is_none() && m.senders.is_empty();
        if gone {
            self.members.remove(&name);
        }
        self.publish(gone.then_some(Frame::PeerLeft { name }), usize::MAX);
    }

    /// Does what session `s` asked for and hands its frames on.
    fn run_session(&mut self, s: usize) {
        loop {
            let Some(event) = self.sessions[s].core.poll_event() else {
                break;
            };
            self.session_events.push((s, event.clone()));
            match event {
                SessionEvent::Join { info, resume, slot } => self.join(s, info, resume, slot),
                SessionEvent::ListPeers => {
                    let peers = self.peer_list();
                    self.sessions[s].core.send_peer_list(peers).unwrap();
                }
                SessionEvent::Leave { name } => self.leave(s, name),
                SessionEvent::Parked | SessionEvent::CloseTransport => {
                    if let Some(l) = self.sessions[s].link {
                        self.links[l].closing = Closing::BySession;
                    }
                }
                SessionEvent::CloseRequested => {
                    self.dispatch(s);
                    self.sessions[s].core.answer_close();
                }
                SessionEvent::Finished => {
                    self.sessions[s].finished = true;
                    if let Some(l) = self.sessions[s].link.take() {
                        self.kill_link(l, "session finished");
                    }
                    // What waits for it is refused to its senders, as a closed inbox is.
                    let waiting: Vec<Item> = self.sessions[s].inbox.drain(..).collect();
                    drop(waiting);
                }
                _ => {}
            }
        }
        self.dispatch(s);
    }

    fn dispatch(&mut self, s: usize) {
        let mut forwards = Vec::new();
        let mut notices = Vec::new();
        {
            let out = self.sessions[s].core.take_outgoing();
            forwards.extend(out.drain_forwards());
            notices.extend(out.drain_notices());
        }
        for (dest, route, frames) in forwards {
            let messages = frames
                .iter()
                .filter(|f| matches!(f, Frame::Deliver(_)))
                .count();
            *self.forwarded.entry(dest.clone()).or_default() += messages;
            if self.sessions[route].finished {
                self.sessions[s]
                    .core
                    .refused(&dest, frames, NackReason::UnknownPeer);
            } else {
                self.sessions[route].inbox.push_back(Item::Frames(frames));
            }
        }
        for (route, frame) in notices {
            if !self.sessions[route].finished {
                self.sessions[route]
                    .inbox
                    .push_back(Item::Frames(vec![frame]));
            }
        }
    }

    /// Moves up to one chunk of `from` into `to`, unless held back this step.
    fn carry(rng: &mut Rng, faults: Faults, from: &mut BytesMut, to: &mut BytesMut) -> bool {
        if from.is_empty() {
            return false;
        }
        if faults.delay_one_in > 0 && rng.one_in(faults.delay_one_in) {
            return false;
        }
        let max = faults.max_chunk.max(1) as u64;
        let n = (1 + rng.below(max) as usize).min(from.len());
        to.extend_from_slice(&from.split_to(n));
        true
    }

    /// One step of the whole mesh: time moves on by `dt`.
    pub fn step(&mut self, dt: Duration) {
        self.now = self.now + dt;
        let now = self.now;
        // Peers: timers, then what they write.
        for p in 0..self.peers.len() {
            self.peers[p].handle_timeout(now);
            self.collect_peer(p);
            if let Some(l) = self.peer_link[p] {
                while let Some(b) = self.peers[p].poll_transmit() {
                    self.links[l].up.extend_from_slice(&b);
                }
            }
        }
        // Sessions: timers, inboxes, what they write.
        for s in 0..self.sessions.len() {
            if self.sessions[s].finished {
                continue;
            }
            self.sessions[s].core.handle_timeout(now);
            while let Some(item) = self.sessions[s].inbox.pop_front() {
                match item {
                    Item::Frames(f) => self.sessions[s].core.deliver(f),
                    Item::Membership(t, e) => self.sessions[s].core.membership(t, e),
                }
            }
            self.run_session(s);
            if let Some(l) = self.sessions[s].link {
                while let Some(b) = self.sessions[s].core.poll_transmit() {
                    let n = b.len();
                    self.links[l].down.extend_from_slice(&b);
                    self.sessions[s].core.written(n);
                }
            }
        }
        self.step_direct();
        // Links: carry bytes, deliver them.
        for l in 0..self.links.len() {
            if !self.links[l].alive {
                continue;
            }
            let faults = self.faults;
            let Link {
                up,
                session_in,
                down,
                peer_in,
                ..
            } = &mut self.links[l];
            let up_moved = Self::carry(&mut self.rng, faults, up, session_in);
            let down_moved = Self::carry(&mut self.rng, faults, down, peer_in);
            let s = self.links[l].session;
            if up_moved && !self.sessions[s].finished {
                let mut input = std::mem::take(&mut self.links[l].session_in);
                self.sessions[s].core.handle_input(&mut input);
                self.links[l].session_in = input;
                self.run_session(s);
            }
            if down_moved {
                let mut input = std::mem::take(&mut self.links[l].peer_in);
                match self.links[l].peer {
                    Some(p) => {
                        self.peers[p].handle_input(&mut input, now);
                        self.collect_peer(p);
                    }
                    None => {
                        self.links[l].raw_in.extend_from_slice(&input);
                        input.clear();
                    }
                }
                self.links[l].peer_in = input;
            }
            // A closing end is closed once its side has nothing left to send.
            let session_done = self.links[l].down.is_empty()
                && (self.sessions[s].finished || self.sessions[s].core.queued_bytes() == 0);
            let peer_done = self.links[l].up.is_empty()
                && self.links[l]
                    .peer
                    .is_none_or(|p| self.peers[p].queued_bytes() == 0);
            match self.links[l].closing {
                Closing::BySession if session_done => self.kill_link(l, "closed by the router"),
                Closing::ByPeer if peer_done => self.kill_link(l, "closed by the peer"),
                _ => {}
            }
        }
    }

    /// Takes peer `p`'s events: dials when asked, keeps the rest for the test.
    fn collect_peer(&mut self, p: usize) {
        while let Some(e) = self.peers[p].poll_event() {
            match &e {
                Event::Dial if self.hold_dial.contains(&p) => self.held_dials.push(p),
                Event::Dial => self.dial(p),
                Event::LinkDial { link, addr } if self.hold_direct => {
                    self.held_direct.push((p, *link, addr.clone()));
                }
                Event::LinkDial { link, addr } => {
                    let (link, addr) = (*link, addr.clone());
                    self.dial_direct(p, link, &addr);
                }
                Event::LinkClose { link } => self.close_direct(p, *link),
                Event::Closed { .. } => {
                    if let Some(l) = self.peer_link[p] {
                        // Flush what the peer still has to say (a `Close`, an `Error`).
                        while let Some(b) = self.peers[p].poll_transmit() {
                            self.links[l].up.extend_from_slice(&b);
                        }
                        self.links[l].closing = Closing::ByPeer;
                    }
                }
                _ => {}
            }
            self.events[p].push(e);
        }
        if !self.peers[p].has_transport() {
            if let Some(l) = self.peer_link[p] {
                if self.links[l].closing == Closing::Open {
                    self.peer_link[p] = None;
                    self.kill_link(l, "dropped by the peer");
                }
            }
        }
    }

    /// Steps until `done` holds, or fails after `max` steps.
    pub fn run_until(&mut self, max: usize, dt: Duration, mut done: impl FnMut(&mut Sim) -> bool) {
        for _ in 0..max {
            if done(self) {
                return;
            }
            self.step(dt);
        }
        assert!(done(self), "not done after {max} steps");
    }

    /// Steps until peer `p` is in the mesh.
    pub fn connect(&mut self, p: usize) {
        self.run_until(10_000, Duration::from_millis(1), |sim| {
            sim.peers[p].is_running()
        });
    }

    /// Drains the events peer `p` produced so far.
    pub fn take_events(&mut self, p: usize) -> Vec<Event> {
        std::mem::take(&mut self.events[p])
    }
}

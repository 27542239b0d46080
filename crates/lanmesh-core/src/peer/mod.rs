//! The peer endpoint: one state machine for every kind of lanmesh peer — the native
//! client's actor, the browser's `MeshPeer`, a board's loop — in the shape of
//! quinn-proto. It never touches a socket, a timer, a file or the clock:
//!
//! * bytes in: [`PeerCore::handle_input`] (what the transport received);
//! * bytes out: [`PeerCore::poll_transmit`] (what to write, in order);
//! * time: [`PeerCore::handle_timeout`] when [`PeerCore::poll_timeout`] says so (calling
//!   it more often is harmless);
//! * the application's calls: [`PeerCore::send`], [`PeerCore::send_acked`],
//!   [`PeerCore::request`], [`PeerCore::reply`], [`PeerCore::close`], files …;
//! * what happened: [`PeerCore::poll_event`].
//!
//! One core lives as long as the peer, across reconnects. Its life:
//!
//! 1. [`PeerCore::connect`] on a fresh transport: message 1 of the Noise handshake goes out
//!    (offering the resume token). Message 2 is the router's choice or its refusal;
//!    message 3 confirms. With `verify_router`, the core stops before message 3 with
//!    [`Event::VerifyRouter`] until the driver says whether it trusts the router's key.
//! 2. `Welcome`, then `PeerList` pages until `last` (an observer asks with `ListPeers`):
//!    [`Event::Connected`]. Acked messages waiting from a previous connection go again.
//! 3. Running: sends become frames (compressed when it pays, chunked above one record);
//!    deliveries are reassembled, put in order and filtered for duplicates when they
//!    belong to an acked stream (see `streams.rs`), acknowledged when asked, and handed out as
//!    messages, requests, replies or file steps. `Ack`, `Nack` and replies settle what
//!    waits for them — only when they come from the peer the message went to: the router
//!    stamps every frame with its sender, and a forged answer is dropped and counted.
//! 4. Lost (the transport ends, a deadline, the router going away): with reconnection
//!    on, [`Event::Dial`] asks for a new transport after a backoff
//!    ([`reconnect_delay`]); the next handshake offers the same resume token. Plain
//!    sends fail fast meanwhile; acked sends wait in the outbox.
//! 5. Close: `Close` goes out, the router answers `Close` once everything before it is
//!    handled, and [`Event::Closed`] carries the report of what it could not deliver.
//!    After `Closed` nothing else happens.

mod direct;
mod files;
pub(crate) mod streams;

use alloc::collections::{BTreeMap, BinaryHeap, VecDeque};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cmp::Reverse;
use core::time::Duration;

use bytes::{Bytes, BytesMut};
use lanmesh_proto::blob::AbortReason;
use lanmesh_proto::compress::CompressionProbe;
use lanmesh_proto::frame::{Message as Msg, flags};
use lanmesh_proto::record::handshake_message;
use lanmesh_proto::{
    Cipher, Compression, Connection, Destination, ErrorCode, Established, Frame, Framing,
    HandshakeConfig, Initiator, NackReason, Name, Offer, PeerInfo, ProtoError, RandomSource,
    Reassembler, RecordDecoder, probed_message_frames,
};

pub use direct::{ECHO_TIMEOUT, MAX_ACCEPTING, MAX_LINKS, WRITE_STALL, redial_delay};
pub use files::{FileConfig, FileEvent};

use crate::error::ClientError;
use crate::message::{CloseReport, Message, PeerEvent, Status, Undelivered};
use crate::time::{Instant, earliest};
use streams::{Outbox, Seen, Verdict};

/// At most this many undelivered notices are kept for the close report.
const MAX_UNDELIVERED: usize = 1024;

/// How long to wait before reconnect attempt `failed + 1`, after `failed` attempts failed:
/// 100 ms, doubling, at most 5 s.
pub fn reconnect_delay(failed: u32) -> Duration {
    Duration::from_millis(100 << failed.min(6)).min(Duration::from_secs(5))
}

/// What a peer core needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The name to join under; `None` is an observer that can only list peers.
    pub name: Option<Name>,
    /// Identity, mesh, mesh key, algorithms, limits and the transport's framing.
    pub handshake: HandshakeConfig,
    /// Time allowed from [`PeerCore::connect`] to [`Event::Connected`] (default 5 s).
    pub connect_timeout: Duration,
    /// How long an acked send waits for its ack (default 10 s).
    pub ack_timeout: Duration,
    /// How long an acked message waits before it goes again, with the rest of its stream
    /// (default 1 s; the recipient drops duplicates).
    pub resend_after: Duration,
    /// Ask for a new transport when an established connection is lost (default on).
    pub reconnect: bool,
    /// Offered in every handshake: the router resumes this peer's session with it. Empty
    /// means a peer that will not come back, whose name the router lets go at once.
    pub resume_token: Bytes,
    /// Stop before message 3 until the driver has checked the router's key.
    pub verify_router: bool,
    /// How long a close waits for the router's answer (default 3 s).
    pub close_timeout: Duration,
    /// The id slot: `0` (the default) for the session that receives the name's messages;
    /// a non-zero one (at most [`lanmesh_proto::handshake::MAX_SLOT`]) for an extra
    /// session of the same key that only sends, beside a process that receives. The
    /// router then keeps both, routes the name's messages to the receiving one, and
    /// answers (acks, nacks, replies) to whichever sent what they answer.
    pub slot: u32,
    /// File transfers.
    pub files: FileConfig,
    /// Where handshake keys come from: the OS by default with `std`; a board's generator
    /// ([`RandomSource::from_fn`]) without it, where there is no default.
    pub random: RandomSource,
    /// Direct links to other native peers (see `direct.rs`): dial those the router lists
    /// with an address, and take the links they dial ([`PeerCore::accept_link`]). Off by
    /// default here; the native client turns it on. Only a receiving session (slot 0)
    /// uses links.
    pub direct: bool,
    /// The TCP port the driver takes direct links on, offered to the router (0: none; the
    /// peer may still dial others).
    pub direct_port: u16,
    /// Names this process to the others, the same across its reconnects (a random number
    /// the driver picks; 0: none). When this peer joins again — through a router that
    /// restarted, or another router of the mesh — the others see the same incarnation and
    /// keep their acked streams with it instead of starting them over.
    pub incarnation: u64,
}

impl Config {
    /// Defaults for a peer called `name` (`None`: an observer).
    pub fn new(name: Option<Name>, handshake: HandshakeConfig) -> Self {
        let mut files = FileConfig::new(handshake.limits.max_message);
        files.stall_timeout = handshake.limits.idle_timeout;
        files.max_incoming = handshake.limits.max_partial_messages.max(1);
        Self {
            name,
            handshake,
            connect_timeout: Duration::from_secs(5),
            ack_timeout: Duration::from_secs(10),
            resend_after: Duration::from_secs(1),
            reconnect: true,
            resume_token: Bytes::new(),
            verify_router: false,
            close_timeout: Duration::from_secs(3),
            slot: 0,
            files,
            random: RandomSource::default(),
            direct: false,
            direct_port: 0,
            incarnation: 0,
        }
    }
}

/// What happened, for the driver and the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// In the mesh: welcomed and holding the member list (after every (re)connection).
    Connected,
    /// The status changed.
    Status(Status),
    /// The membership changed.
    Peer(PeerEvent),
    /// A message for the application.
    Message(Message),
    /// A request for the application, which must [`PeerCore::reply`] or
    /// [`PeerCore::decline`] (only while it answers requests, see
    /// [`PeerCore::set_answers_requests`]; otherwise requests are declined for it).
    Request(Message),
    /// The recipient of acked message `id` has it.
    Acked {
        /// The message.
        id: u64,
    },
    /// Acked message `id` will never be acknowledged.
    SendFailed {
        /// The message.
        id: u64,
        /// Why.
        error: ClientError,
    },
    /// The reply to request `id`.
    Reply {
        /// The request.
        id: u64,
        /// The answer (its `data` is the reply's data).
        reply: Message,
    },
    /// Request `id` will get no reply.
    RequestFailed {
        /// The request.
        id: u64,
        /// Why.
        error: ClientError,
    },
    /// A plain send was refused by the router (it is also in the close report).
    Undelivered(Undelivered),
    /// A file transfer moved.
    File(FileEvent),
    /// The handshake waits: call [`PeerCore::router_verified`] or
    /// [`PeerCore::router_rejected`] for this key.
    VerifyRouter {
        /// The router's static key.
        key: [u8; 32],
    },
    /// Open a new transport to a router of the mesh, then call [`PeerCore::connect`] (or
    /// [`PeerCore::dial_failed`]).
    Dial,
    /// Open a TCP connection to `addr` for direct link `link`, then call
    /// [`PeerCore::link_connected`] (or [`PeerCore::link_closed`] when it fails).
    LinkDial {
        /// The link.
        link: u64,
        /// Where its peer takes links (`ip:port`).
        addr: String,
    },
    /// Direct link `link` is over: write what [`PeerCore::poll_link_transmit`] still
    /// gives, then close its transport.
    LinkClose {
        /// The link.
        link: u64,
    },
    /// Messages to `peer` now go over a direct link (`direct`), or through the router
    /// again.
    Path {
        /// The other peer.
        peer: Name,
        /// Over a direct link.
        direct: bool,
    },
    /// The peer is over.
    Closed {
        /// Why (`Disconnected("closed")` after an orderly close).
        error: ClientError,
        /// What the router could not deliver.
        report: CloseReport,
    },
}

enum Phase {
    /// Not connected yet: waiting for the first [`PeerCore::connect`].
    Idle,
    /// Message 1 went out; waiting for message 2.
    Handshake(alloc::boxed::Box<Initiator>),
    /// Message 2 read; waiting for the driver's verdict on the router's key.
    Verifying(alloc::boxed::Box<(Established, Vec<u8>)>),
    /// Established; waiting for `Welcome` and the member list.
    Welcoming,
    Running,
    /// Lost; `retry_at` is when to dial again (`None` while a dial is under way).
    Away {
        retry_at: Option<Instant>,
    },
    /// `Close` went out; waiting for the router's `Close` until the deadline.
    Closing {
        deadline: Instant,
    },
    Closed,
}

struct PendingAck {
    to: Name,
}

struct PendingRequest {
    to: Name,
    timeout: Duration,
}

/// Counters of what the core refused or dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Acks, nacks and replies that named a waiting message but came from another peer
    /// than the one it went to: forged by a member, dropped.
    pub forged: u64,
    /// Acks, nacks and replies for nothing that waits (late or repeated): dropped.
    pub stale: u64,
    /// Acked-stream messages delivered before, dropped (and acknowledged again).
    pub duplicates: u64,
    /// Messages that could not be read (a compressed payload that does not decompress,
    /// chunks that contradict each other, over the size limit): dropped, and their sender
    /// told with a `Nack`. The router only forwards a member's payload, so such a message
    /// says nothing about the connection and never ends the session.
    pub unreadable: u64,
}

/// The peer's protocol state: see the module docs.
pub struct PeerCore {
    config: Config,
    phase: Phase,
    /// Whether any connection was welcomed: before that, a loss ends the peer.
    ever_welcomed: bool,
    /// Failed attempts since the last welcome.
    attempts: u32,
    router: String,
    router_key: Option<[u8; 32]>,
    /// What the router said of its federation, when this peer asked (an observer does).
    router_status: Option<lanmesh_proto::RouterStatus>,
    connection: Option<Connection>,
    /// Bytes to send ahead of the connection's: handshake messages (length-prefixed on
    /// streams), and the last records of a connection that was closed.
    handshake_out: VecDeque<Bytes>,
    decoder: RecordDecoder,
    reassembler: Reassembler,
    welcomed_as: Option<Name>,
    list_so_far: Vec<PeerInfo>,
    members: BTreeMap<Name, PeerInfo>,
    /// The smaller of our message limit and the router's.
    max_message: u64,
    next_id: u64,
    probe: CompressionProbe,
    /// The last destination named, validated once for a run of sends to it.
    last_dest: Option<Name>,
    outbox: Outbox,
    seen: Seen,
    pending_acks: BTreeMap<u64, PendingAck>,
    /// Ack deadlines in the order they were set (every ack waits equally long).
    ack_deadlines: VecDeque<(Instant, u64)>,
    requests: BTreeMap<u64, PendingRequest>,
    request_deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    answers_requests: bool,
    files: files::Files,
    undelivered: Vec<Undelivered>,
    events: VecDeque<Event>,
    status: Status,
    /// The latest time any call brought.
    clock: Instant,
    handshake_deadline: Instant,
    last_rx: Instant,
    last_ping: Instant,
    ping_seq: u64,
    last_resend_check: Instant,
    stats: Stats,
    links: direct::Links,
    /// Members of the last connection's mesh not in the list of the new one (its router
    /// restarted, say, and they have not joined it yet): acked messages to them wait for
    /// their return (until their ack deadline) instead of failing with `UnknownPeer`. With
    /// the incarnation they had, to know them again.
    missing: BTreeMap<Name, u64>,
}

impl core::fmt::Debug for PeerCore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PeerCore")
            .field("name", &self.config.name)
            .field("status", &self.status)
            .field("pending_acks", &self.pending_acks.len())
            .field("requests", &self.requests.len())
            .finish_non_exhaustive()
    }
}

impl PeerCore {
    /// A peer that has not connected yet.
    pub fn new(config: Config) -> Self {
        let limits = config.handshake.limits.clone();
        let mut files = files::Files::new(config.files.clone());
        // A link can lose what it carried, and so can a router connection that is made
        // again: file transfers of a peer that stays keep what to resend.
        files.set_resend(config.slot == 0);
        Self {
            files,
            phase: Phase::Idle,
            ever_welcomed: false,
            attempts: 0,
            router: String::new(),
            router_key: None,
            router_status: None,
            connection: None,
            handshake_out: VecDeque::new(),
            decoder: RecordDecoder::new(lanmesh_proto::limits::MAX_HANDSHAKE_MESSAGE),
            reassembler: Reassembler::new(limits.clone()),
            welcomed_as: None,
            list_so_far: Vec::new(),
            members: BTreeMap::new(),
            max_message: limits.max_message,
            next_id: (u64::from(config.slot.min(lanmesh_proto::handshake::MAX_SLOT))
                << lanmesh_proto::handshake::SLOT_SHIFT)
                + 1,
            probe: CompressionProbe::default(),
            last_dest: None,
            outbox: Outbox::default(),
            seen: Seen::default(),
            pending_acks: BTreeMap::new(),
            ack_deadlines: VecDeque::new(),
            requests: BTreeMap::new(),
            request_deadlines: BinaryHeap::new(),
            answers_requests: false,
            undelivered: Vec::new(),
            events: VecDeque::new(),
            status: Status::Connecting,
            clock: Instant::ZERO,
            handshake_deadline: Instant::NEVER,
            last_rx: Instant::ZERO,
            last_ping: Instant::ZERO,
            ping_seq: 0,
            last_resend_check: Instant::ZERO,
            stats: Stats::default(),
            links: direct::Links::new(config.direct && config.slot == 0),
            missing: BTreeMap::new(),
            config,
        }
    }

    // -- state --------------------------------------------------------------------------

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The name the router welcomed us under (the configured one until then).
    pub fn name(&self) -> Option<&Name> {
        self.welcomed_as.as_ref().or(self.config.name.as_ref())
    }

    /// Where the connection stands.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// In the mesh now: welcomed, holding the member list.
    pub fn is_running(&self) -> bool {
        matches!(self.phase, Phase::Running)
    }

    /// Over for good.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// The members of the mesh (this peer included), by name.
    pub fn peers(&self) -> impl Iterator<Item = &PeerInfo> {
        self.members.values()
    }

    /// The router's static key, once a handshake got that far.
    pub fn router_key(&self) -> Option<&[u8; 32]> {
        self.router_key.as_ref()
    }

    /// How the router stands in a federated mesh, as it said in its last handshake: an
    /// observer (a peer without a name, such as `lanmesh peers`) asks; `None` when this
    /// peer did not ask or the router does not know the question.
    pub fn router_status(&self) -> Option<&lanmesh_proto::RouterStatus> {
        self.router_status.as_ref()
    }

    /// The negotiated record cipher and compression of the current connection.
    pub fn algorithms(&self) -> Option<(Cipher, Compression)> {
        self.connection
            .as_ref()
            .map(|c| (c.cipher(), c.compression()))
    }

    /// The largest message either side accepts.
    pub fn max_message(&self) -> u64 {
        self.max_message
    }

    /// Bytes waiting for [`PeerCore::poll_transmit`]: a sender waits while this is large.
    pub fn queued_bytes(&self) -> usize {
        self.handshake_out.iter().map(Bytes::len).sum::<usize>()
            + self.connection.as_ref().map_or(0, Connection::queued_bytes)
    }

    /// Acked sends still waiting for their ack.
    pub fn pending_acks(&self) -> usize {
        self.pending_acks.len()
    }

    /// Bytes of acked messages held until acknowledged.
    pub fn outbox_bytes(&self) -> usize {
        self.outbox.bytes()
    }

    /// What was refused or dropped so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Answer requests through [`Event::Request`] (`true`), or decline every one for the
    /// application with `NoResponder` (`false`, the default).
    pub fn set_answers_requests(&mut self, on: bool) {
        self.answers_requests = on;
    }

    /// Take offered files (see [`FileEvent::Offered`]) or refuse them all.
    pub fn set_accepts_files(&mut self, on: bool) {
        self.files.set_accept(on);
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn tick(&mut self, now: Instant) {
        self.clock = self.clock.max(now);
        self.files.tick(self.clock);
    }

    fn emit(&mut self, event: Event) {
        self.events.push_back(event);
    }

    fn set_status(&mut self, status: Status) {
        if self.status != status {
            self.status = status.clone();
            self.emit(Event::Status(status));
        }
    }

    // -- transport ----------------------------------------------------------------------

    /// Starts a handshake on a fresh transport to the router at `router` (an address, for
    /// people), at time `now`. Call it first, and after each [`Event::Dial`].
    pub fn connect(&mut self, router: &str, now: Instant) -> Result<(), ClientError> {
        self.tick(now);
        match self.phase {
            Phase::Idle | Phase::Away { retry_at: None } => {}
            Phase::Closed => return Err(ClientError::disconnected("the peer is closed")),
            _ => return Err(ClientError::disconnected("already connected")),
        }
        if let Some(name) = &self.config.name {
            name.check_len(self.config.handshake.limits.max_name_len)
                .map_err(|e| ClientError::invalid(&e))?;
        }
        let mut offer = Offer::new(
            &self.config.handshake,
            self.config.name.clone(),
            self.config.resume_token.clone(),
        );
        offer.slot = self.config.slot;
        if self.links.enabled {
            offer.direct_port = self.config.direct_port;
        }
        offer.incarnation = self.config.incarnation;
        // An observer is there to list the mesh: it asks how the router stands in it too.
        offer.router_status = self.config.name.is_none();
        let (initiator, msg1) =
            Initiator::start_with_random(&self.config.handshake, offer, self.config.random)
                .map_err(ClientError::Handshake)?;
        self.router = router.into();
        self.connection = None;
        self.handshake_out.clear();
        self.decoder = RecordDecoder::new(lanmesh_proto::limits::MAX_HANDSHAKE_MESSAGE);
        self.reassembler = Reassembler::new(self.config.handshake.limits.clone());
        self.list_so_far.clear();
        self.queue_handshake(&msg1)?;
        self.last_rx = now;
        self.phase = Phase::Handshake(alloc::boxed::Box::new(initiator));
        self.handshake_deadline = now + self.config.connect_timeout;
        Ok(())
    }

    fn queue_handshake(&mut self, msg: &[u8]) -> Result<(), ClientError> {
        let bytes = handshake_message(self.config.handshake.framing, msg)
            .map_err(ClientError::Handshake)?;
        self.handshake_out.push_back(bytes);
        Ok(())
    }

    /// The next bytes to write: with length-prefixed framing a run of bytes for the stream,
    /// with message framing one whole message (a handshake message or a record).
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if let Some(b) = self.handshake_out.pop_front() {
            return Some(b);
        }
        let conn = self.connection.as_mut()?;
        match conn.poll_transmit() {
            Ok(out) => out,
            Err(e) => {
                // Sealing fails only when the record counter is used up (or a frame was
                // too large, which the send paths rule out): this connection is done.
                self.lost(ClientError::Protocol(e));
                None
            }
        }
    }

    /// Takes what the transport received at `now`. With length-prefixed framing `input`
    /// is the stream's buffer: every whole record is taken off its front, the rest stays
    /// for the next call. With message framing `input` is one whole message.
    pub fn handle_input(&mut self, input: &mut BytesMut, now: Instant) {
        self.tick(now);
        if !self.has_transport() {
            input.clear();
            return;
        }
        self.last_rx = now;
        loop {
            let record = match self.config.handshake.framing {
                Framing::LengthPrefixed => match self.decoder.decode(input) {
                    Ok(Some(r)) => r,
                    Ok(None) => return,
                    Err(e) => return self.violation(e),
                },
                Framing::Message if input.is_empty() => return,
                Framing::Message => input.split(),
            };
            if let Err(e) = self.on_record(record, now) {
                return self.on_error(e);
            }
            if !self.has_transport() {
                input.clear();
                return;
            }
        }
    }

    /// The transport ended at `now`: `error` says how, `None` when the router closed it.
    pub fn transport_closed(&mut self, error: Option<String>, now: Instant) {
        self.tick(now);
        if !self.has_transport() {
            return;
        }
        let err = match (error, &self.phase) {
            // However it ends, a connection the router drops before welcoming us usually
            // means it refused us without saying so (a mesh key it does not share).
            (_, Phase::Handshake(_) | Phase::Verifying(_) | Phase::Welcoming) => {
                ClientError::ClosedDuringHandshake
            }
            (Some(e), _) => ClientError::disconnected(e),
            (None, Phase::Closing { .. }) => ClientError::disconnected("closed"),
            (None, _) => ClientError::disconnected("the router closed the connection"),
        };
        self.lost(err);
    }

    /// A dial asked for by [`Event::Dial`] failed: another comes after a backoff.
    pub fn dial_failed(&mut self, reason: &str, now: Instant) {
        self.tick(now);
        if let Phase::Away { retry_at: None } = self.phase {
            self.attempts += 1;
            self.phase = Phase::Away {
                retry_at: Some(now + reconnect_delay(self.attempts)),
            };
            let status = Status::Reconnecting {
                attempt: self.attempts + 1,
                reason: reason.into(),
            };
            self.set_status(status);
        }
    }

    /// The driver trusts the router's key: the handshake completes.
    pub fn router_verified(&mut self, now: Instant) {
        self.tick(now);
        if !matches!(self.phase, Phase::Verifying(_)) {
            return;
        }
        let Phase::Verifying(held) = core::mem::replace(&mut self.phase, Phase::Welcoming) else {
            return;
        };
        let (est, msg3) = *held;
        if let Err(e) = self.finish_handshake(est, &msg3) {
            self.on_error(e);
        }
    }

    /// The driver does not trust the router's key: the peer ends with `error` (before
    /// anything more than the handshake's first two messages was said).
    pub fn router_rejected(&mut self, error: ClientError) {
        if matches!(self.phase, Phase::Verifying(_)) {
            self.close_for_good(error);
        }
    }

    /// Lets go of the connection's emptied output buffer instead of keeping it for the
    /// next record (see [`Connection::release_idle_buffer`]): a board driver calls it once
    /// everything sent is written, to trade an allocation per record for a record's worth
    /// of RAM. Native drivers do not.
    pub fn release_idle_buffers(&mut self) {
        if let Some(conn) = self.connection.as_mut() {
            conn.release_idle_buffer();
        }
    }

    /// Whether the core uses a transport now (from [`PeerCore::connect`] until the
    /// connection is lost or closed): a driver holding a socket the core let go of
    /// drops it.
    pub fn has_transport(&self) -> bool {
        matches!(
            self.phase,
            Phase::Handshake(_)
                | Phase::Verifying(_)
                | Phase::Welcoming
                | Phase::Running
                | Phase::Closing { .. }
        )
    }

    /// The router broke the protocol (or a record failed to open): say so, then stop.
    fn violation(&mut self, e: ProtoError) {
        self.on_error(if self.connection.is_some() {
            ClientError::Protocol(e)
        } else {
            ClientError::Handshake(e)
        });
    }

    fn on_error(&mut self, e: ClientError) {
        if let (ClientError::Protocol(pe) | ClientError::Handshake(pe), Some(conn)) =
            (&e, self.connection.as_mut())
        {
            let _ = conn.send(&Frame::error(pe.code(), pe.to_string()));
        }
        self.close_for_good(e);
    }

    fn on_record(&mut self, record: BytesMut, now: Instant) -> Result<(), ClientError> {
        match core::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Handshake(initiator) => {
                let (est, msg3) = initiator.read_choice(&record).map_err(|e| match e {
                    ProtoError::Remote { code, text } => ClientError::Refused { code, text },
                    other => ClientError::Handshake(other),
                })?;
                self.router_key = Some(est.remote_key);
                self.router_status = est.choice.router_status.clone();
                if self.config.verify_router {
                    let key = est.remote_key;
                    self.phase = Phase::Verifying(alloc::boxed::Box::new((est, msg3)));
                    self.emit(Event::VerifyRouter { key });
                    return Ok(());
                }
                self.phase = Phase::Welcoming;
                self.finish_handshake(est, &msg3)
            }
            Phase::Verifying(held) => {
                self.phase = Phase::Verifying(held);
                Err(ClientError::Handshake(ProtoError::Negotiation {
                    what: "record before the handshake completed",
                }))
            }
            other => {
                self.phase = other;
                let conn = self.connection.as_mut().ok_or(ClientError::Protocol(
                    ProtoError::Negotiation {
                        what: "record before the handshake completed",
                    },
                ))?;
                let frames = conn.open_owned(record).map_err(ClientError::Protocol)?;
                for frame in frames {
                    let frame = frame.map_err(ClientError::Protocol)?;
                    self.on_frame(frame, now)?;
                    if !self.has_transport() {
                        break;
                    }
                }
                Ok(())
            }
        }
    }

    fn finish_handshake(&mut self, est: Established, msg3: &[u8]) -> Result<(), ClientError> {
        self.queue_handshake(msg3)?;
        self.max_message = self
            .config
            .handshake
            .limits
            .max_message
            .min(est.choice.max_message);
        self.connection = Some(est.connection);
        self.decoder
            .set_max(self.config.handshake.limits.max_record);
        if self.config.name.is_none() {
            self.send_frame(&Frame::ListPeers)?;
        }
        Ok(())
    }

    /// Sends a frame over the direct link to its peer when there is one, otherwise to the
    /// router (see `direct.rs`).
    fn send_frame(&mut self, frame: &Frame) -> Result<(), ClientError> {
        if self.links.enabled
            && let Some(peer) = direct::target(frame)
        {
            let limits = &self.config.handshake.limits;
            let me = self.welcomed_as.as_ref();
            match self
                .links
                .carry(peer, frame, &self.members, me, limits, self.clock)
            {
                direct::Carry::Sent | direct::Carry::Held => return Ok(()),
                direct::Carry::Router => {}
                direct::Carry::Dial { link, addr } => self.emit(Event::LinkDial { link, addr }),
                direct::Carry::Broken(link) => self.drop_link(link),
            }
        }
        self.send_to_router(frame)
    }

    fn send_to_router(&mut self, frame: &Frame) -> Result<(), ClientError> {
        let conn = self
            .connection
            .as_mut()
            .ok_or_else(|| ClientError::disconnected("not connected"))?;
        conn.send(frame).map_err(ClientError::Protocol)
    }

    fn on_frame(&mut self, frame: Frame, now: Instant) -> Result<(), ClientError> {
        match frame {
            Frame::Deliver(m) => self.on_deliver(m, None, now)?,
            Frame::Mark { peer, token } => {
                // The router path from `peer` is drained up to here: say so over the link.
                if let Some(me) = self.welcomed_as.clone()
                    && let Some(link) = self.links.mark_from_router(&peer, token, &me)
                {
                    self.link_send(link, &Frame::Mark { peer: me, token });
                }
            }
            Frame::Ack { peer, id } => self.on_ack(&peer, id),
            Frame::Nack { peer, id, reason } => self.on_nack(peer, id, reason),
            Frame::Welcome { name } => self.welcomed_as = Some(name),
            Frame::PeerList { last, peers } => {
                self.list_so_far.extend(peers);
                if last {
                    let list = core::mem::take(&mut self.list_so_far);
                    self.set_members(list);
                    if matches!(self.phase, Phase::Welcoming) {
                        self.welcomed(now)?;
                    }
                }
            }
            Frame::PeerJoined(info) => {
                // The same process back under that name (its router restarted, or it moved
                // to another router of the mesh): its acked streams go on. A new process:
                // they start over, and links to the old one are stale.
                let known = self
                    .members
                    .get(&info.name)
                    .map(|old| old.incarnation)
                    .or_else(|| self.missing.get(&info.name).copied());
                let same_process = info.incarnation != 0 && known == Some(info.incarnation);
                if !same_process {
                    self.forget_links(&info.name);
                    self.seen.restart(&info.name);
                    self.outbox.restart(&info.name);
                }
                // Back after a reconnect: what waited for it goes now.
                if self.missing.remove(&info.name).is_some() {
                    self.outbox.path_lost(&info.name);
                    if same_process {
                        self.files.path_lost(&info.name);
                    }
                }
                if !same_process && known.is_some() {
                    // A new process under a name we knew: it knows nothing of our
                    // transfers. News of a name we never knew can come after that
                    // process already took a file from us (the router routes to a new
                    // member before the others hear of it): those go on.
                    self.files.peer_left(&info.name);
                }
                self.members.insert(info.name.clone(), info.clone());
                self.emit(Event::Peer(PeerEvent::Joined(info)));
                self.resend_due(now)?;
            }
            Frame::PeerLeft { name } => {
                self.missing.remove(&name);
                // Its links end when it closes them: what it sent just before leaving may
                // still be on its way there.
                for frame in self.links.drop_path(&name) {
                    self.send_frame(&frame)?;
                }
                self.reassembler.forget(&name);
                self.seen.forget(&name);
                self.outbox.forget(&name);
                self.files.peer_left(&name);
                self.flush_files();
                if self.members.remove(&name).is_some() {
                    self.emit(Event::Peer(PeerEvent::Left(name)));
                }
            }
            Frame::Ping(v) => self.send_frame(&Frame::Pong(v))?,
            Frame::Pong(_) => {}
            Frame::Error { code, text } => match code {
                // The router going away, or a deadline: try again (if reconnecting).
                ErrorCode::Shutdown | ErrorCode::IdleTimeout | ErrorCode::Overloaded => {
                    self.lost(ClientError::disconnected(text));
                }
                _ => self.close_for_good(ClientError::Refused { code, text }),
            },
            Frame::Close => self.close_for_good(ClientError::disconnected("closed")),
            other => {
                return Err(ClientError::Protocol(ProtoError::Malformed {
                    what: if matches!(other, Frame::Send(_) | Frame::Broadcast(_)) {
                        "client frame from the router"
                    } else {
                        "unexpected frame"
                    },
                }));
            }
        }
        Ok(())
    }

    /// A message (or one chunk of it) from another peer: through the router, or over
    /// direct link `link`, whose chunks are reassembled apart (a link that breaks
    /// mid-message leaves nothing half-done on the router path).
    fn on_deliver(&mut self, m: Msg, link: Option<u64>, now: Instant) -> Result<(), ClientError> {
        let ack = m.flags & flags::ACK_REQUESTED != 0;
        let (sender, sent_id, sent_prev, sent_flags) = (m.peer.clone(), m.id, m.prev, m.flags);
        let pushed = match link {
            None => self.reassembler.push(m),
            Some(link) => match self.links.get_mut(link) {
                Some(l) => l.reassembler.push(m),
                None => return Ok(()),
            },
        };
        let done = match pushed {
            Ok(Some(done)) => done,
            Ok(None) => return Ok(()),
            Err(e) => return self.on_unreadable(sender, sent_id, sent_prev, sent_flags, &e),
        };
        let (from, id) = (done.from, done.id);
        if done.flags & flags::BLOB != 0 {
            // A file step; an answer names the offer in `prev`: not a stream.
            let msg = Message {
                from,
                id,
                data: done.data,
                flags: done.flags & !flags::ACK_REQUESTED,
            };
            return self.on_message(msg, now);
        }
        if done.flags & flags::REPLY != 0 {
            // A reply names its request in `prev`: it is not part of a stream.
            let reply = Message {
                from,
                id,
                data: done.data,
                flags: done.flags & !(flags::ACK_REQUESTED | flags::REPLY),
            };
            self.on_reply(done.prev.unwrap_or(0), reply);
            return Ok(());
        }
        if let Some(prev) = done.prev {
            match self.seen.check(&from, id, prev) {
                Verdict::Deliver => {}
                Verdict::Duplicate => {
                    self.stats.duplicates += 1;
                    return self.send_frame(&Frame::Ack { peer: from, id });
                }
                // Its predecessor is missing: the sender sends both again.
                Verdict::Gap => return Ok(()),
            }
        }
        let msg = Message {
            from: from.clone(),
            id,
            data: done.data,
            flags: done.flags & !flags::ACK_REQUESTED,
        };
        self.on_message(msg, now)?;
        if ack {
            self.send_frame(&Frame::Ack { peer: from, id })?;
        }
        Ok(())
    }

    fn welcomed(&mut self, now: Instant) -> Result<(), ClientError> {
        self.phase = Phase::Running;
        self.ever_welcomed = true;
        self.attempts = 0;
        self.last_ping = now;
        self.last_resend_check = now;
        self.emit(Event::Connected);
        let status = Status::Connected {
            router: self.router.clone(),
        };
        self.set_status(status);
        // Links that came up while the router was away still wait for their mark.
        for (peer, token) in self.links.waiting_marks(now) {
            self.send_to_router(&Frame::Mark { peer, token })?;
        }
        // File transfers that waited for the router go on (with members still here; one
        // that comes back later is caught up when it rejoins).
        let members = &self.members;
        self.files.resume(|p| members.contains_key(p));
        self.flush_files();
        self.resend_due(now)
    }

    /// Replaces the member list (on every welcome, so also after a reconnect) and tells
    /// what changed meanwhile.
    fn set_members(&mut self, list: Vec<PeerInfo>) {
        let fresh: BTreeMap<Name, PeerInfo> =
            list.into_iter().map(|p| (p.name.clone(), p)).collect();
        let left: Vec<Name> = self
            .members
            .keys()
            .filter(|n| !fresh.contains_key(*n))
            .cloned()
            .collect();
        let joined: Vec<PeerInfo> = fresh
            .values()
            .filter(|p| !self.members.contains_key(&p.name))
            .cloned()
            .collect();
        let rejoined = !self.members.is_empty();
        let old = core::mem::replace(&mut self.members, fresh);
        for info in &joined {
            self.missing.remove(&info.name);
        }
        for name in left {
            if rejoined && let Some(info) = old.get(&name) {
                self.missing.insert(name.clone(), info.incarnation);
            }
            self.forget_links(&name);
            self.emit(Event::Peer(PeerEvent::Left(name)));
        }
        for info in joined {
            self.emit(Event::Peer(PeerEvent::Joined(info)));
        }
    }

    /// Another member's message that cannot be read: it alone is dropped, counted and
    /// refused to its sender. Were it a session error, any member could disconnect any
    /// other with one corrupt payload.
    fn on_unreadable(
        &mut self,
        from: Name,
        id: u64,
        prev: Option<u64>,
        flag_bits: u8,
        error: &ProtoError,
    ) -> Result<(), ClientError> {
        self.stats.unreadable += 1;
        let reason = match error {
            ProtoError::MessageTooLarge { .. } => NackReason::TooLarge,
            _ => NackReason::Unreadable,
        };
        let is_reply = flag_bits & flags::REPLY != 0;
        match prev {
            // The answer to one of our requests: that request fails now, not at its
            // timeout.
            Some(request)
                if is_reply && self.requests.get(&request).is_some_and(|r| r.to == from) =>
            {
                self.requests.remove(&request);
                let error = ClientError::UnreadableReply {
                    name: from.as_str().to_string(),
                    detail: error.to_string(),
                };
                self.emit(Event::RequestFailed { id: request, error });
            }
            // Consumed, in stream order, so the sender's next message is no gap.
            Some(prev) if !is_reply && flag_bits & flags::BLOB == 0 => {
                let _ = self.seen.check(&from, id, prev);
            }
            _ => {}
        }
        self.send_frame(&Frame::Nack {
            peer: from,
            id,
            reason,
        })
    }

    fn on_message(&mut self, msg: Message, now: Instant) -> Result<(), ClientError> {
        if msg.flags & flags::BLOB != 0 {
            if !msg.is_broadcast() {
                self.files.on_message(&msg.from, msg.id, msg.data, now);
                self.flush_files();
            }
        } else if msg.flags & flags::REQUEST != 0 {
            if self.answers_requests {
                self.emit(Event::Request(msg));
            } else {
                self.send_frame(&Frame::Nack {
                    peer: msg.from,
                    id: msg.id,
                    reason: NackReason::NoResponder,
                })?;
            }
        } else {
            self.emit(Event::Message(msg));
        }
        Ok(())
    }

    fn on_ack(&mut self, peer: &Name, id: u64) {
        match self.pending_acks.get(&id) {
            Some(p) if &p.to == peer => {
                self.pending_acks.remove(&id);
                self.outbox.acked(peer, id);
                self.emit(Event::Acked { id });
            }
            Some(_) => self.stats.forged += 1,
            None => self.stats.stale += 1,
        }
    }

    fn on_nack(&mut self, peer: Name, id: u64, reason: NackReason) {
        if self.files.on_nack(&peer, id, reason) {
            self.flush_files();
            return;
        }
        // A member that has not rejoined the (restarted) router yet: the acked message
        // waits for it in the outbox, and goes again when it is back.
        if reason == NackReason::UnknownPeer
            && self.missing.contains_key(&peer)
            && self.pending_acks.get(&id).is_some_and(|p| p.to == peer)
        {
            return;
        }
        let error = ClientError::from_nack(peer.as_str(), id, reason);
        if let Some(p) = self.pending_acks.get(&id) {
            if p.to != peer {
                self.stats.forged += 1;
                return;
            }
            self.pending_acks.remove(&id);
            self.outbox.abandon(&peer, id);
            self.emit(Event::SendFailed { id, error });
            return;
        }
        if let Some(r) = self.requests.get(&id) {
            if r.to != peer {
                self.stats.forged += 1;
                return;
            }
            self.requests.remove(&id);
            self.emit(Event::RequestFailed { id, error });
            return;
        }
        let undelivered = Undelivered {
            to: peer,
            id,
            reason,
        };
        if self.undelivered.len() < MAX_UNDELIVERED {
            self.undelivered.push(undelivered.clone());
        }
        self.emit(Event::Undelivered(undelivered));
    }

    /// A reply arrived: it settles request `id`, if it comes from the peer asked.
    fn on_reply(&mut self, id: u64, reply: Message) {
        match self.requests.get(&id) {
            Some(r) if r.to == reply.from => {
                self.requests.remove(&id);
                self.emit(Event::Reply { id, reply });
            }
            Some(_) => self.stats.forged += 1,
            None => self.stats.stale += 1,
        }
    }

    // -- losing and closing -------------------------------------------------------------

    /// The connection is gone. Before the first welcome, after a close, or without
    /// reconnection, that ends the peer; otherwise a new transport is asked for.
    fn lost(&mut self, error: ClientError) {
        let closing = matches!(self.phase, Phase::Closing { .. });
        if closing || !self.config.reconnect || !self.ever_welcomed {
            let error = if closing {
                ClientError::disconnected("closed")
            } else {
                error
            };
            return self.close_for_good(error);
        }
        let reason = error.to_string();
        if !matches!(self.phase, Phase::Running) {
            // A reconnect attempt that got a transport but not a welcome.
            self.attempts += 1;
        }
        self.connection = None;
        self.handshake_out.clear();
        self.phase = Phase::Away { retry_at: None };
        // Acked messages wait for the next connection (until their ack deadline).
        self.outbox.connection_lost();
        self.fail_requests(|| ClientError::disconnected("connection lost before the reply"));
        if self.files.survives_reconnect() {
            self.files.pause();
        } else {
            self.files.connection_lost("connection to the router lost");
        }
        self.flush_files();
        self.phase = Phase::Away {
            retry_at: Some(self.clock + reconnect_delay(self.attempts)),
        };
        let status = Status::Reconnecting {
            attempt: self.attempts + 1,
            reason,
        };
        self.set_status(status);
    }

    fn fail_requests(&mut self, error: impl Fn() -> ClientError) {
        self.request_deadlines.clear();
        for (id, _) in core::mem::take(&mut self.requests) {
            self.emit(Event::RequestFailed { id, error: error() });
        }
    }

    fn close_for_good(&mut self, error: ClientError) {
        if self.is_closed() {
            return;
        }
        self.phase = Phase::Closed;
        // Links close in order: what they hold still goes, then their `Close`.
        for link in self.links.ids() {
            self.links.retire(link, self.clock);
            self.emit(Event::LinkClose { link });
        }
        // What the connection still holds (an `Error` frame, a `Close`) goes out last.
        if let Some(mut conn) = self.connection.take() {
            while let Ok(Some(b)) = conn.poll_transmit() {
                self.handshake_out.push_back(b);
            }
        }
        for (id, p) in core::mem::take(&mut self.pending_acks) {
            let error = ClientError::disconnected(format!(
                "connection closed before {} acknowledged message {id}",
                p.to
            ));
            self.emit(Event::SendFailed { id, error });
        }
        self.ack_deadlines.clear();
        self.fail_requests(|| ClientError::disconnected("the peer stopped before the reply"));
        self.files.connection_lost("the connection is closed");
        self.files.frames.clear();
        self.drain_file_events();
        let reason = error.to_string();
        self.set_status(Status::Closed { reason });
        let report = CloseReport {
            undelivered: core::mem::take(&mut self.undelivered),
        };
        self.emit(Event::Closed { error, report });
    }

    /// Leaves the mesh gracefully at `now`: everything sent before is handled by the
    /// router first, and [`Event::Closed`] then reports what it could not deliver.
    pub fn close(&mut self, now: Instant) {
        self.tick(now);
        self.config.reconnect = false;
        if matches!(self.phase, Phase::Running) {
            // Before the Close: the other ends of its file transfers hear why they end.
            self.files.closing();
            self.flush_files();
        }
        if matches!(self.phase, Phase::Running) {
            // Frames held for a link's switch go through the router, ahead of its `Close`.
            for frame in self.links.abandon_holding() {
                let _ = self.send_to_router(&frame);
            }
        }
        if matches!(self.phase, Phase::Running) && self.send_frame(&Frame::Close).is_ok() {
            self.phase = Phase::Closing {
                deadline: now + self.config.close_timeout,
            };
        } else if !matches!(self.phase, Phase::Closing { .. }) {
            self.close_for_good(ClientError::disconnected("closed"));
        }
    }

    /// Drops the connection at once, without telling the router.
    pub fn terminate(&mut self) {
        self.close_for_good(ClientError::disconnected("closed"));
    }

    // -- time ---------------------------------------------------------------------------

    fn idle_timeout(&self) -> Duration {
        self.config.handshake.limits.idle_timeout
    }

    fn ping_every(&self) -> Duration {
        direct::ping_every(self.idle_timeout())
    }

    /// When [`PeerCore::handle_timeout`] next has something to do, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let phase = match &self.phase {
            Phase::Handshake(_) | Phase::Verifying(_) | Phase::Welcoming => {
                Some(self.handshake_deadline)
            }
            Phase::Running => {
                let ping = self.last_rx.max(self.last_ping) + self.ping_every();
                let idle = self.last_rx + self.idle_timeout();
                let resend = self
                    .outbox
                    .next_due(self.config.resend_after)
                    .map(|due| due.max(self.last_resend_check + self.config.resend_after / 4));
                earliest(Some(ping.min(idle)), resend)
            }
            Phase::Away { retry_at } => *retry_at,
            Phase::Closing { deadline } => Some(*deadline),
            Phase::Idle | Phase::Closed => None,
        };
        let acks = self.ack_deadlines.front().map(|(at, _)| *at);
        let requests = self.request_deadlines.peek().map(|Reverse((at, _))| *at);
        let links = self.links.next_deadline(self.idle_timeout());
        earliest(
            earliest(earliest(phase, acks), links),
            earliest(requests, self.files.next_deadline()),
        )
    }

    /// Runs whatever is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        match &self.phase {
            Phase::Handshake(_) | Phase::Verifying(_) | Phase::Welcoming
                if now >= self.handshake_deadline =>
            {
                let error = ClientError::HandshakeTimeout {
                    addr: self.router.clone(),
                    after: self.config.connect_timeout,
                };
                self.lost(error);
            }
            Phase::Running => {
                let quiet = now.saturating_since(self.last_rx);
                if quiet > self.idle_timeout() {
                    self.lost(ClientError::disconnected("the router stopped answering"));
                } else if quiet >= self.ping_every()
                    && now.saturating_since(self.last_ping) >= self.ping_every()
                {
                    self.last_ping = now;
                    self.ping_seq += 1;
                    let ping = Frame::Ping(self.ping_seq);
                    if let Err(e) = self.send_frame(&ping) {
                        self.on_error(e);
                    }
                }
            }
            Phase::Away { retry_at: Some(at) } if now >= *at => {
                self.phase = Phase::Away { retry_at: None };
                self.emit(Event::Dial);
            }
            Phase::Closing { deadline } if now >= *deadline => {
                self.close_for_good(ClientError::disconnected("closed"));
            }
            _ => {}
        }
        while let Some(&(at, id)) = self.ack_deadlines.front() {
            if at > now {
                break;
            }
            self.ack_deadlines.pop_front();
            if let Some(p) = self.pending_acks.remove(&id) {
                self.outbox.abandon(&p.to, id);
                let error = ClientError::AckTimeout {
                    name: p.to.to_string(),
                    id,
                    after: self.config.ack_timeout,
                };
                self.emit(Event::SendFailed { id, error });
            }
        }
        while let Some(&Reverse((at, id))) = self.request_deadlines.peek() {
            if at > now {
                break;
            }
            self.request_deadlines.pop();
            if let Some(r) = self.requests.remove(&id) {
                let error = ClientError::RequestTimeout {
                    name: r.to.to_string(),
                    after: r.timeout,
                };
                self.emit(Event::RequestFailed { id, error });
            }
        }
        // While records still wait for the socket, the acks may simply be behind them.
        if matches!(self.phase, Phase::Running)
            && now.saturating_since(self.last_resend_check) >= self.config.resend_after / 4
            && self.queued_bytes() == 0
        {
            self.last_resend_check = now;
            if let Err(e) = self.resend_due(now) {
                self.on_error(e);
            }
        }
        if !self.files.is_empty() {
            let links = &self.links;
            let suspects = self
                .files
                .handle_timeout(now, &|peer| links.is_direct(peer.as_str()));
            self.flush_files();
            // A transfer stalled on a link: the link may be dead without a word.
            for peer in suspects {
                for link in self.links.links_to(&peer) {
                    self.drop_link(link);
                }
            }
        }
        let (dead, pings) = self.links.due(now, self.idle_timeout());
        for link in dead {
            self.drop_link(link);
        }
        for (link, seq) in pings {
            self.link_send(link, &Frame::Ping(seq));
        }
    }

    /// Sends again the acked messages that are due (see `streams.rs`).
    fn resend_due(&mut self, now: Instant) -> Result<(), ClientError> {
        if !matches!(self.phase, Phase::Running) {
            return Ok(());
        }
        for frame in self.outbox.due(now, self.config.resend_after) {
            self.send_frame(&frame)?;
        }
        Ok(())
    }

    // -- sending ------------------------------------------------------------------------

    /// `to` as a validated name, reusing the last one when it is the same (a loop sending
    /// to one peer validates and copies its name once).
    pub fn name_for(&mut self, to: &str) -> Result<Name, ClientError> {
        if let Some(name) = self.last_dest.as_ref().filter(|n| n.as_str() == to) {
            return Ok(name.clone());
        }
        let name = Name::new(to).map_err(|e| ClientError::invalid(&e))?;
        self.last_dest = Some(name.clone());
        Ok(name)
    }

    fn not_running(&self) -> ClientError {
        match &self.status {
            Status::Closed { reason } => ClientError::disconnected(reason.clone()),
            _ => ClientError::disconnected("not connected"),
        }
    }

    fn check_size(&self, len: usize) -> Result<(), ClientError> {
        let len = len as u64;
        if len > self.max_message {
            return Err(ClientError::TooLarge {
                len,
                max: self.max_message,
            });
        }
        Ok(())
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Encodes a message's frames into the connection; returns its id.
    fn send_message(
        &mut self,
        dest: &Destination,
        data: Bytes,
        flag_bits: u8,
    ) -> Result<u64, ClientError> {
        self.send_message_answering(dest, data, flag_bits, None)
    }

    /// [`PeerCore::send_message`] for an answer (a reply, a file's answer): every frame
    /// names the message answered in `prev`, so the router routes it (each of its chunks)
    /// to the session that sent that one, without reading the payload.
    fn send_message_answering(
        &mut self,
        dest: &Destination,
        data: Bytes,
        flag_bits: u8,
        answers: Option<u64>,
    ) -> Result<u64, ClientError> {
        let Some(compression) = self.connection.as_ref().map(Connection::compression) else {
            return Err(self.not_running());
        };
        let id = self.next_id();
        let mut frames = probed_message_frames(dest, id, flag_bits, data, compression, &self.probe);
        if answers.is_some() {
            for f in &mut frames {
                if let Frame::Send(m) = f {
                    m.prev = answers;
                }
            }
        }
        for frame in &frames {
            self.send_frame(frame)?;
        }
        Ok(id)
    }

    /// Sends `data` to `dest` at most once (`flags`: [`flags::TEXT`] for text). Returns the
    /// message id; if the router cannot deliver it, [`Event::Undelivered`] says so.
    pub fn send(
        &mut self,
        dest: &Destination,
        data: Bytes,
        flag_bits: u8,
    ) -> Result<u64, ClientError> {
        if !self.is_running() {
            return Err(self.not_running());
        }
        self.check_size(data.len())?;
        self.send_message(dest, data, flag_bits & flags::TEXT)
    }

    /// Sends `data` to `to` and keeps it until the recipient acknowledges it
    /// ([`Event::Acked`]) or the ack deadline passes ([`Event::SendFailed`]). Acked
    /// messages to one recipient arrive in the order they were sent, exactly once, also
    /// across lost connections: while the peer is reconnecting they wait and go after the
    /// next welcome.
    pub fn send_acked(
        &mut self,
        to: &Name,
        data: Bytes,
        flag_bits: u8,
        now: Instant,
    ) -> Result<u64, ClientError> {
        let running = self.is_running();
        let reconnecting = self.ever_welcomed
            && matches!(
                self.phase,
                Phase::Away { .. } | Phase::Handshake(_) | Phase::Verifying(_) | Phase::Welcoming
            );
        if !running && !reconnecting {
            return Err(self.not_running());
        }
        self.check_size(data.len())?;
        let id = self.next_id();
        let bits = (flag_bits & flags::TEXT) | flags::ACK_REQUESTED;
        // Before the first welcome of a reconnect there is no connection to ask: its
        // compression is unknown, so the message travels as it is.
        let compression = self
            .connection
            .as_ref()
            .map_or(Compression::None, Connection::compression);
        let dest = Destination::Peer(to.clone());
        let frames = probed_message_frames(&dest, id, bits, data, compression, &self.probe);
        for frame in self.outbox.push(to, id, frames, now, running) {
            self.send_frame(&frame)?;
        }
        self.pending_acks.insert(id, PendingAck { to: to.clone() });
        self.ack_deadlines
            .push_back((now + self.config.ack_timeout, id));
        Ok(id)
    }

    /// Sends `data` to `to` as a request: [`Event::Reply`] or [`Event::RequestFailed`]
    /// (`NoResponder`, `UnknownPeer`, `RequestTimeout` after `timeout`) follows, never
    /// nothing.
    pub fn request(
        &mut self,
        to: &Name,
        data: Bytes,
        flag_bits: u8,
        timeout: Duration,
        now: Instant,
    ) -> Result<u64, ClientError> {
        if !self.is_running() {
            return Err(self.not_running());
        }
        self.check_size(data.len())?;
        let dest = Destination::Peer(to.clone());
        let id = self.send_message(&dest, data, (flag_bits & flags::TEXT) | flags::REQUEST)?;
        self.requests.insert(
            id,
            PendingRequest {
                to: to.clone(),
                timeout,
            },
        );
        self.request_deadlines.push(Reverse((now + timeout, id)));
        Ok(id)
    }

    /// Answers request `request` from `to` with `data`, marked as text when `text` is set
    /// (the caller has checked that `data` is UTF-8; [`flags::TEXT`] says so on the wire).
    pub fn reply(
        &mut self,
        to: &Name,
        request: u64,
        data: &[u8],
        text: bool,
    ) -> Result<u64, ClientError> {
        if !self.is_running() {
            return Err(self.not_running());
        }
        self.check_size(data.len())?;
        let text = if text { flags::TEXT } else { 0 };
        let dest = Destination::Peer(to.clone());
        let data = Bytes::copy_from_slice(data);
        self.send_message_answering(&dest, data, flags::REPLY | text, Some(request))
    }

    /// Tells the sender of request `request` that this peer has no answer
    /// (`NoResponder`).
    pub fn decline(&mut self, to: &Name, request: u64) -> Result<(), ClientError> {
        if !self.is_running() {
            return Err(self.not_running());
        }
        self.send_frame(&Frame::Nack {
            peer: to.clone(),
            id: request,
            reason: NackReason::NoResponder,
        })
    }

    // -- direct links -------------------------------------------------------------------

    /// Whether messages to `peer` go over a direct link now (`peers --json`'s `"path"`).
    pub fn is_direct(&self, peer: &str) -> bool {
        self.links.is_direct(peer)
    }

    /// The transport [`Event::LinkDial`] asked for is open: the link's handshake starts.
    pub fn link_connected(&mut self, link: u64, now: Instant) {
        self.tick(now);
        let Some(me) = self.welcomed_as.clone() else {
            return self.drop_link(link);
        };
        let started =
            self.links
                .connected(link, &self.config.handshake, &me, self.config.random, now);
        if started.is_err() {
            self.drop_link(link);
        }
    }

    /// Someone connected to the port this peer takes direct links on: the new link's id
    /// for the calls below, or `None` when it is refused (close the transport). Whoever
    /// it is must prove, in the handshake, the key the router bound its name to.
    pub fn accept_link(&mut self, now: Instant) -> Option<u64> {
        self.tick(now);
        if self.is_closed() {
            return None;
        }
        self.links.accept(&self.config.handshake, now)
    }

    /// The transport of link `link` ended (or could not be opened).
    pub fn link_closed(&mut self, link: u64, now: Instant) {
        self.tick(now);
        self.drop_link(link);
    }

    /// Takes what link `link`'s transport received (a stream's buffer: whole records are
    /// taken off its front).
    pub fn handle_link_input(&mut self, link: u64, input: &mut BytesMut, now: Instant) {
        self.tick(now);
        loop {
            let record = match self.links.decode(link, input) {
                Ok(Some(record)) => record,
                Ok(None) => return,
                Err(e) => return self.link_violation(link, &e),
            };
            let read = self.links.on_record(
                link,
                record,
                &self.config.handshake,
                &self.members,
                self.welcomed_as.as_ref(),
                self.config.random,
                now,
            );
            match read {
                Ok(direct::Input::None) => {}
                Ok(direct::Input::Up) => self.link_up(link, now),
                Ok(direct::Input::Frames(frames)) => {
                    // As on the router's connection: the frames before a malformed one
                    // are handled, then the link is closed.
                    for frame in frames {
                        let frame = match frame {
                            Ok(frame) => frame,
                            Err(e) => return self.link_violation(link, &e),
                        };
                        if let Err(e) = self.on_link_frame(link, frame, now) {
                            self.on_router_error(e);
                        }
                        if self.links.get_mut(link).is_none() {
                            break;
                        }
                    }
                }
                Err(e) => return self.link_violation(link, &e),
            }
            if self.links.get_mut(link).is_none() {
                input.clear();
                return;
            }
        }
    }

    /// The next bytes to write on link `link`'s transport.
    pub fn poll_link_transmit(&mut self, link: u64) -> Option<Bytes> {
        match self.links.poll_transmit(link, self.clock) {
            Ok(out) => out,
            Err(_) => {
                self.drop_link(link);
                None
            }
        }
    }

    /// Bytes waiting for [`PeerCore::poll_link_transmit`].
    pub fn link_queued_bytes(&self, link: u64) -> usize {
        self.links.queued_bytes(link)
    }

    /// Whether a message to `to` (`None`: a broadcast, or a name not known) finds fewer
    /// than `limit` bytes waiting on its way: on its direct link (or held for the switch
    /// to it) when it has one, otherwise on the router connection. So a linked peer that
    /// stops reading holds up only what is sent to it, not what goes elsewhere.
    pub fn has_room(&self, to: Option<&str>, limit: usize) -> bool {
        match to.and_then(|peer| self.links.path_queued(peer)) {
            Some(queued) => queued < limit,
            None => self.queued_bytes() < limit,
        }
    }

    fn on_link_frame(&mut self, link: u64, frame: Frame, now: Instant) -> Result<(), ClientError> {
        let Some(peer) = self.links.peer_of(link).cloned() else {
            return Ok(());
        };
        match frame {
            // What the router would have stamped, the link's key proves.
            Frame::Send(m) if Some(&m.peer) == self.welcomed_as.as_ref() => {
                return self.on_deliver(Msg { peer, ..m }, Some(link), now);
            }
            Frame::Ack { id, .. } => self.on_ack(&peer, id),
            Frame::Nack { id, reason, .. } => self.on_nack(peer, id, reason),
            Frame::Mark { token, .. } => {
                if let Some((peer, held)) = self.links.echo(link, token) {
                    self.emit(Event::Path {
                        peer: peer.clone(),
                        direct: true,
                    });
                    let mut held = held.into_iter();
                    let mut rest = Vec::new();
                    for frame in held.by_ref() {
                        if self.links.send_on(link, &frame, self.clock).is_err() {
                            self.drop_link(link);
                            rest.push(frame);
                            break;
                        }
                    }
                    for frame in rest.into_iter().chain(held) {
                        self.send_frame(&frame)?;
                    }
                }
            }
            Frame::Ping(v) => self.link_send(link, &Frame::Pong(v)),
            Frame::Pong(_) => {}
            Frame::Close | Frame::Error { .. } => self.drop_link(link),
            _ => {
                let e = ProtoError::Malformed {
                    what: "direct link: a frame a peer may not send",
                };
                self.link_violation(link, &e);
            }
        }
        Ok(())
    }

    /// An answer a link's traffic sent through the router failed. While the router is
    /// away that is expected (an ack goes again with its message's resend, a plain send
    /// is at most once): only an error of a live connection ends the peer.
    fn on_router_error(&mut self, e: ClientError) {
        if self.connection.is_some() {
            self.on_error(e);
        }
    }

    /// Link `link` is authenticated: see [`direct::Links::up`].
    fn link_up(&mut self, link: u64, now: Instant) {
        let Some(me) = self.welcomed_as.clone() else {
            return self.drop_link(link);
        };
        let out = self.links.up(link, &me, now);
        for other in out.close {
            self.drop_link(other);
        }
        // Away from the router the mark waits for the next welcome (see `welcomed`).
        if let Some((peer, token)) = out.mark
            && self.is_running()
            && let Err(e) = self.send_to_router(&Frame::Mark { peer, token })
        {
            self.on_error(e);
        }
        if let Some(token) = out.echo {
            self.link_send(link, &Frame::Mark { peer: me, token });
        }
    }

    fn link_send(&mut self, link: u64, frame: &Frame) {
        if self.links.send_on(link, frame, self.clock).is_err() {
            self.drop_link(link);
        }
    }

    fn link_violation(&mut self, link: u64, e: &ProtoError) {
        let _ = self
            .links
            .send_on(link, &Frame::error(e.code(), e.to_string()), self.clock);
        self.drop_link(link);
    }

    /// Closes link `link`; its peer is reached through the router again at once.
    fn drop_link(&mut self, link: u64) {
        self.drop_link_resending(link, true);
    }

    /// [`PeerCore::drop_link`]; `resend_files`: file frames lost with it go again (not
    /// to a new process under the peer's name, which does not know those transfers).
    fn drop_link_resending(&mut self, link: u64, resend_files: bool) {
        if self.links.get_mut(link).is_none() {
            return;
        }
        self.emit(Event::LinkClose { link });
        let me = self.welcomed_as.clone();
        let Some(removed) = self.links.remove(link, me.as_ref(), self.clock) else {
            return;
        };
        if let (Some((next, token)), Some(me)) = (removed.echo, me) {
            self.link_send(next, &Frame::Mark { peer: me, token });
        }
        if removed.was_direct {
            self.emit(Event::Path {
                peer: removed.peer.clone(),
                direct: false,
            });
            // What went over it may be lost: unacknowledged messages go again now.
            self.outbox.path_lost(&removed.peer);
        }
        let had_path = removed.was_direct || !removed.held.is_empty();
        for frame in removed.held {
            if let Err(e) = self.send_frame(&frame) {
                return self.on_router_error(e);
            }
        }
        if had_path && let Some(next) = removed.successor {
            self.link_up(next, self.clock);
        }
        if removed.was_direct && resend_files {
            // File frames that went over it may be lost too: they go again (files.rs).
            self.files.path_lost(&removed.peer);
            self.flush_files();
        }
        if removed.was_direct
            && let Err(e) = self.resend_due(self.clock)
        {
            self.on_error(e);
        }
    }

    /// `name` left or is a new process: its links go.
    fn forget_links(&mut self, name: &Name) {
        for link in self.links.forget(name) {
            let _ = self.links.send_on(link, &Frame::Close, self.clock);
            self.drop_link_resending(link, false);
        }
    }

    // -- files --------------------------------------------------------------------------

    fn flush_files(&mut self) {
        while let Some((to, frame, via)) = self.files.frames.pop_front() {
            let dest = Destination::Peer(to);
            let answers = match via {
                files::Via::Answer(offer) => Some(offer),
                _ => None,
            };
            match self.send_message_answering(&dest, frame.to_bytes(), flags::BLOB, answers) {
                Ok(id) => {
                    if let files::Via::Outgoing(blob) = via {
                        self.files.remember(blob, id);
                    }
                }
                // Not connected: the transfers end with the connection anyway.
                Err(_) => self.files.frames.clear(),
            }
        }
        self.drain_file_events();
    }

    fn drain_file_events(&mut self) {
        while let Some(e) = self.files.events.pop_front() {
            self.events.push_back(Event::File(e));
        }
    }

    /// Offers a file of `size` bytes, called `name`, to `to`; returns the transfer's id.
    /// [`FileEvent::Accepted`] (then send chunks with [`PeerCore::file_chunk`]) or
    /// [`FileEvent::SendFailed`] follows.
    pub fn offer_file(
        &mut self,
        to: &Name,
        size: u64,
        name: &str,
        now: Instant,
    ) -> Result<u64, ClientError> {
        if !self.is_running() {
            return Err(self.not_running());
        }
        let blob = self.files.offer(to, size, name, now)?;
        self.flush_files();
        Ok(blob)
    }

    /// How many bytes the next chunk of outgoing `blob` must have, if one may go now
    /// (none while the router is away: the transfer waits for it).
    pub fn file_room(&self, blob: u64) -> Option<usize> {
        if !self.is_running() {
            return None;
        }
        self.files.room(blob)
    }

    /// Bytes of outgoing `blob` sent and acknowledged so far (`None` once it is over).
    pub fn file_progress(&self, blob: u64) -> Option<(u64, u64)> {
        self.files.progress(blob)
    }

    /// Sends the next chunk of outgoing `blob` (exactly [`PeerCore::file_room`] bytes).
    pub fn file_chunk(&mut self, blob: u64, data: Bytes) -> Result<(), ClientError> {
        // A chunk read while the router went away is kept with the unacknowledged ones,
        // and goes when it is back.
        if self.is_closed() || (!self.is_running() && !self.files.survives_reconnect()) {
            return Err(self.not_running());
        }
        self.files.chunk(blob, data)?;
        self.flush_files();
        Ok(())
    }

    /// Gives up on outgoing `blob`; the receiver deletes what it has.
    pub fn cancel_file(&mut self, blob: u64, text: &str) {
        self.files.cancel(blob, text);
        self.flush_files();
    }

    /// Takes offered file `blob` from `from` (after [`FileEvent::Offered`]).
    pub fn accept_file(&mut self, from: &Name, blob: u64, now: Instant) {
        self.tick(now);
        self.files.accept(from, blob, now);
        self.flush_files();
    }

    /// Refuses, or stops receiving, file `blob` from `from`, telling its sender why.
    pub fn abort_file(&mut self, from: &Name, blob: u64, reason: AbortReason, text: &str) {
        self.files.abort(from, blob, reason, text);
        self.flush_files();
    }

    /// The first `written` bytes of incoming `blob` from `from` are stored.
    pub fn file_written(&mut self, from: &Name, blob: u64, written: u64, now: Instant) {
        self.tick(now);
        self.files.written(from, blob, written, now);
        self.flush_files();
    }

    /// Incoming `blob` from `from` is stored whole under its final name.
    pub fn file_saved(&mut self, from: &Name, blob: u64) {
        self.files.saved(from, blob);
        self.flush_files();
    }
}

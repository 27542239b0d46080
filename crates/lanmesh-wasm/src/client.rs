//! The browser peer's protocol state machine, with no socket and no clock.
//!
//! The shell (`MeshPeer`) moves WebSocket messages in and out and tells it the time;
//! tests drive it against an in-memory `Responder`. Every WebSocket message is one
//! handshake message or one record ([`Framing::Message`]: no length prefix).
//!
//! 1. [`Client::start`] queues handshake message 1.
//! 2. Message 2 arrives: the choice is read, message 3 is queued; the connection is
//!    established (or the router's refusal ends it).
//! 3. `Welcome`, then `PeerList` pages until `last`: [`Event::Connected`].
//! 4. Running: `Deliver` frames are reassembled into [`Event::Message`] (and answered with
//!    an `Ack` when the sender asked); `Ack`/`Nack` settle acknowledged sends;
//!    `PeerJoined`/`PeerLeft` give [`Event::PeersChanged`]; `Ping` is answered with
//!    `Pong`, and an idle router is pinged, then given up on.
//! 5. An `Error` or `Close` from the router, a protocol violation, a deadline, a lost
//!    socket or [`Client::close`]: [`Event::Closed`], exactly once.
//!
//! Time is milliseconds on whatever clock the caller uses (`Date.now()` in the browser);
//! [`Client::poll_timeout`] says when [`Client::handle_timeout`] is next due.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use lanmesh_proto::frame::flags;
use lanmesh_proto::{
    Cipher, Compression, Connection, Destination, Frame, Framing, HandshakeConfig, Initiator,
    NackReason, Name, PeerInfo, ProtoError, Reassembler, message_frames,
};

use crate::error::ClientError;

/// The mesh joined when none is given (the router's default too).
pub const DEFAULT_MESH: &str = "lanmesh";

/// What the browser peer needs to connect.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The name to join under.
    pub name: Name,
    /// Identity, mesh, mesh key and limits. Its framing is forced to
    /// [`Framing::Message`]: one record per WebSocket message.
    pub handshake: HandshakeConfig,
    /// Time allowed from [`Client::start`] to [`Event::Connected`] (default 10 s).
    pub connect_timeout: Duration,
    /// How long an acknowledged send waits for the recipient (default 10 s).
    pub ack_timeout: Duration,
}

impl ClientConfig {
    /// Defaults for a peer called `name`.
    pub fn new(name: Name, handshake: HandshakeConfig) -> Self {
        Self {
            name,
            handshake,
            connect_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(10),
        }
    }
}

/// Application data, as JavaScript sees it: text (the `TEXT` flag) or bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// UTF-8 text; becomes a JavaScript string.
    Text(String),
    /// Bytes; becomes a `Uint8Array`.
    Binary(Bytes),
}

impl Payload {
    fn into_parts(self) -> (u8, Bytes) {
        match self {
            Self::Text(s) => (flags::TEXT, Bytes::from(s)),
            Self::Binary(b) => (0, b),
        }
    }

    fn from_parts(flag_bits: u8, data: Bytes) -> Self {
        if flag_bits & flags::TEXT != 0 {
            Self::Text(match String::from_utf8(data.to_vec()) {
                Ok(s) => s,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            })
        } else {
            Self::Binary(data)
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Self::Text(s) => s.len(),
            Self::Binary(b) => b.len(),
        }
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A message received from another peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The sender.
    pub from: Name,
    /// The sender's serial number for it.
    pub id: u64,
    /// The data.
    pub data: Payload,
    /// It was broadcast to every peer.
    pub broadcast: bool,
}

/// What the application learns from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Welcomed, with the whole member list: the peer is in the mesh.
    Connected,
    /// A message from another peer.
    Message(Incoming),
    /// The member list changed (a join, a leave, or a new list).
    PeersChanged,
    /// The recipient of acknowledged message `id` has it.
    Acked {
        /// The message.
        id: u64,
    },
    /// Acknowledged message `id` will never be acknowledged.
    AckFailed {
        /// The message.
        id: u64,
        /// Why.
        error: ClientError,
    },
    /// A message sent without asking for an acknowledgement was refused by the router.
    Undelivered {
        /// The intended recipient.
        to: Name,
        /// The message.
        id: u64,
        /// Why.
        reason: NackReason,
    },
    /// The connection is over; nothing else will happen.
    Closed {
        /// Why, for people.
        reason: String,
    },
}

enum Phase {
    /// Message 1 is queued; waiting for message 2.
    Handshake(Box<Initiator>),
    /// Established; waiting for `Welcome` and the member list.
    Welcoming,
    Running,
    Closed,
}

#[derive(Debug)]
struct PendingAck {
    to: Name,
    deadline: u64,
}

/// The browser peer's protocol core: bytes and time in, events and bytes out.
pub struct Client {
    config: ClientConfig,
    phase: Phase,
    connection: Option<Connection>,
    /// WebSocket messages to send, in order.
    outbox: VecDeque<Bytes>,
    welcomed_as: Option<Name>,
    router_key: Option<[u8; 32]>,
    list_so_far: Vec<PeerInfo>,
    peers: BTreeMap<Name, PeerInfo>,
    reassembler: Reassembler,
    next_id: u64,
    pending_acks: BTreeMap<u64, PendingAck>,
    /// The smaller of our message limit and the router's.
    max_message: u64,
    connect_deadline: u64,
    last_rx: u64,
    /// When to ping the router next if it stays silent.
    ping_due: u64,
    ping_seq: u64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("name", &self.config.name)
            .field("connected", &self.is_connected())
            .field("closed", &self.is_closed())
            .field("peers", &self.peers.len())
            .field("pending_acks", &self.pending_acks.len())
            .finish_non_exhaustive()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Client {
    /// Starts the handshake at time `now`; message 1 is the first thing
    /// [`Client::poll_transmit`] returns.
    pub fn start(mut config: ClientConfig, now: u64) -> Result<Self, ClientError> {
        config.handshake.framing = Framing::Message;
        config
            .name
            .check_len(config.handshake.limits.max_name_len)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let (initiator, msg1) =
            Initiator::start(&config.handshake, Some(config.name.clone()), Bytes::new())
                .map_err(ClientError::Handshake)?;
        let limits = config.handshake.limits.clone();
        let connect_deadline = now.saturating_add(millis(config.connect_timeout));
        Ok(Self {
            phase: Phase::Handshake(Box::new(initiator)),
            connection: None,
            outbox: VecDeque::from([Bytes::from(msg1)]),
            welcomed_as: None,
            router_key: None,
            list_so_far: Vec::new(),
            peers: BTreeMap::new(),
            reassembler: Reassembler::new(limits.clone()),
            next_id: 1,
            pending_acks: BTreeMap::new(),
            max_message: limits.max_message,
            connect_deadline,
            last_rx: now,
            ping_due: u64::MAX,
            ping_seq: 0,
            config,
        })
    }

    /// The name the router welcomed us under (the requested one until then).
    pub fn name(&self) -> &Name {
        self.welcomed_as.as_ref().unwrap_or(&self.config.name)
    }

    /// Welcomed and holding the member list, and not closed.
    pub fn is_connected(&self) -> bool {
        matches!(self.phase, Phase::Running)
    }

    /// Closed for good.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// The members of the mesh (this peer included), by name.
    pub fn peers(&self) -> impl Iterator<Item = &PeerInfo> {
        self.peers.values()
    }

    /// The router's static key, once the handshake is done.
    pub fn router_key(&self) -> Option<&[u8; 32]> {
        self.router_key.as_ref()
    }

    /// The negotiated cipher and compression, once the handshake is done.
    pub fn algorithms(&self) -> Option<(Cipher, Compression)> {
        self.connection
            .as_ref()
            .map(|c| (c.cipher(), c.compression()))
    }

    /// Acknowledged sends still waiting.
    pub fn pending_acks(&self) -> usize {
        self.pending_acks.len()
    }

    /// The next WebSocket message to send (one handshake message or one record).
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.outbox.pop_front()
    }

    /// When [`Client::handle_timeout`] should next be called, if ever.
    pub fn poll_timeout(&self) -> Option<u64> {
        let ack = self.pending_acks.values().map(|p| p.deadline).min();
        let phase = match self.phase {
            Phase::Handshake(_) | Phase::Welcoming => Some(self.connect_deadline),
            Phase::Running => Some(self.ping_due.min(self.idle_deadline())),
            Phase::Closed => None,
        };
        match (ack, phase) {
            (Some(a), Some(p)) => Some(a.min(p)),
            (a, p) => a.or(p),
        }
    }

    fn idle_deadline(&self) -> u64 {
        self.last_rx
            .saturating_add(millis(self.config.handshake.limits.idle_timeout))
    }

    fn ping_interval(&self) -> u64 {
        (millis(self.config.handshake.limits.idle_timeout) / 3).max(10)
    }

    /// Runs the deadlines that have passed at `now`.
    pub fn handle_timeout(&mut self, now: u64) -> Vec<Event> {
        let mut events = Vec::new();
        match self.phase {
            Phase::Closed => return events,
            Phase::Handshake(_) | Phase::Welcoming if now >= self.connect_deadline => {
                let after = self.config.connect_timeout;
                self.fail(ClientError::HandshakeTimeout { after }, &mut events);
                return events;
            }
            Phase::Running if now >= self.idle_deadline() => {
                self.fail(
                    ClientError::disconnected("the router stopped answering"),
                    &mut events,
                );
                return events;
            }
            Phase::Running if now >= self.ping_due => {
                self.ping_seq += 1;
                self.ping_due = now.saturating_add(self.ping_interval());
                let ping = Frame::Ping(self.ping_seq);
                if let Err(e) = self.queue_frames(&[ping]) {
                    self.fail(e, &mut events);
                    return events;
                }
            }
            _ => {}
        }
        let expired: Vec<u64> = self
            .pending_acks
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(p) = self.pending_acks.remove(&id) {
                let error = ClientError::AckTimeout {
                    name: p.to.to_string(),
                    id,
                    after: self.config.ack_timeout,
                };
                events.push(Event::AckFailed { id, error });
            }
        }
        events
    }

    /// Takes one WebSocket message from the router (copied; see [`Client::feed_owned`]).
    pub fn feed(&mut self, message: &[u8], now: u64) -> Vec<Event> {
        self.feed_owned(BytesMut::from(message), now)
    }

    /// Takes one WebSocket message from the router; a record is decrypted in place.
    pub fn feed_owned(&mut self, message: BytesMut, now: u64) -> Vec<Event> {
        let mut events = Vec::new();
        if self.is_closed() {
            return events;
        }
        self.last_rx = now;
        if self.is_connected() {
            self.ping_due = now.saturating_add(self.ping_interval());
        }
        let result = self
            .on_message(message, now, &mut events)
            .and_then(|()| self.flush());
        if let Err(e) = result {
            self.fail(e, &mut events);
        }
        events
    }

    fn on_message(
        &mut self,
        message: BytesMut,
        now: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), ClientError> {
        // Take the initiator out; every other phase is put straight back.
        match std::mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Handshake(initiator) => {
                let (est, msg3) = initiator.read_choice(&message).map_err(|e| match e {
                    ProtoError::Remote { code, text } => ClientError::Refused { code, text },
                    other => ClientError::Handshake(other),
                })?;
                self.outbox.push_back(Bytes::from(msg3));
                self.max_message = self.max_message.min(est.choice.max_message);
                self.router_key = Some(est.remote_key);
                self.connection = Some(est.connection);
                self.phase = Phase::Welcoming;
                return Ok(());
            }
            other => self.phase = other,
        }
        let connection =
            self.connection
                .as_mut()
                .ok_or(ClientError::Protocol(ProtoError::Malformed {
                    what: "record without a connection",
                }))?;
        let frames: Vec<Frame> = connection
            .open_owned(message)
            .map_err(ClientError::Protocol)?
            .collect::<Result<_, _>>()
            .map_err(ClientError::Protocol)?;
        for frame in frames {
            self.on_frame(frame, now, events)?;
            if self.is_closed() {
                break;
            }
        }
        Ok(())
    }

    fn on_frame(
        &mut self,
        frame: Frame,
        now: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), ClientError> {
        match frame {
            Frame::Deliver(m) => {
                let ack = m.flags & flags::ACK_REQUESTED != 0;
                if let Some(done) = self.reassembler.push(m).map_err(ClientError::Protocol)? {
                    if ack {
                        self.queue_frames(&[Frame::Ack {
                            peer: done.from.clone(),
                            id: done.id,
                        }])?;
                    }
                    events.push(Event::Message(Incoming {
                        broadcast: done.flags & flags::BROADCAST != 0,
                        data: Payload::from_parts(done.flags, done.data),
                        from: done.from,
                        id: done.id,
                    }));
                }
            }
            Frame::Ack { id, .. } => {
                if self.pending_acks.remove(&id).is_some() {
                    events.push(Event::Acked { id });
                }
            }
            Frame::Nack { peer, id, reason } => match self.pending_acks.remove(&id) {
                Some(_) => {
                    let error = match reason {
                        NackReason::UnknownPeer => ClientError::UnknownPeer {
                            name: peer.to_string(),
                        },
                        NackReason::TooLarge => ClientError::TooLarge {
                            len: 0,
                            max: self.max_message,
                        },
                        _ => ClientError::Overloaded {
                            name: peer.to_string(),
                            id,
                        },
                    };
                    events.push(Event::AckFailed { id, error });
                }
                None => events.push(Event::Undelivered {
                    to: peer,
                    id,
                    reason,
                }),
            },
            Frame::Welcome { name } => self.welcomed_as = Some(name),
            Frame::PeerList { last, peers } => {
                self.list_so_far.extend(peers);
                if last {
                    self.peers = std::mem::take(&mut self.list_so_far)
                        .into_iter()
                        .map(|p| (p.name.clone(), p))
                        .collect();
                    if matches!(self.phase, Phase::Welcoming) {
                        self.phase = Phase::Running;
                        self.ping_due = now.saturating_add(self.ping_interval());
                        events.push(Event::Connected);
                    }
                    events.push(Event::PeersChanged);
                }
            }
            Frame::PeerJoined(info) => {
                self.peers.insert(info.name.clone(), info);
                events.push(Event::PeersChanged);
            }
            Frame::PeerLeft { name } => {
                self.reassembler.forget(&name);
                if self.peers.remove(&name).is_some() {
                    events.push(Event::PeersChanged);
                }
            }
            Frame::Ping(v) => self.queue_frames(&[Frame::Pong(v)])?,
            Frame::Pong(_) => {}
            Frame::Error { code, text } => {
                let error = if self.is_connected() {
                    ClientError::disconnected(text)
                } else {
                    ClientError::Refused { code, text }
                };
                self.close_with(error, false, events);
            }
            Frame::Close => self.close_with(
                ClientError::disconnected("the router closed the connection"),
                false,
                events,
            ),
            _ => {
                return Err(ClientError::Protocol(ProtoError::Malformed {
                    what: "unexpected frame from the router",
                }));
            }
        }
        Ok(())
    }

    /// Sends application data at time `now`; returns the message id. With `acked`, an
    /// [`Event::Acked`] or [`Event::AckFailed`] for that id follows.
    pub fn send(
        &mut self,
        dest: Destination,
        data: Payload,
        acked: bool,
        now: u64,
    ) -> Result<u64, ClientError> {
        if !self.is_connected() {
            return Err(ClientError::disconnected(if self.is_closed() {
                "the connection is closed"
            } else {
                "not connected yet"
            }));
        }
        if acked && dest == Destination::Everyone {
            return Err(ClientError::Invalid(
                "an acknowledged send needs one recipient".into(),
            ));
        }
        let len = data.len() as u64;
        if len > self.max_message {
            return Err(ClientError::TooLarge {
                len,
                max: self.max_message,
            });
        }
        let (mut bits, bytes) = data.into_parts();
        if acked {
            bits |= flags::ACK_REQUESTED;
        }
        let compression = self
            .connection
            .as_ref()
            .map_or(Compression::None, Connection::compression);
        let id = self.next_id;
        let frames = message_frames(&dest, id, bits, bytes, compression);
        self.queue_frames(&frames)?;
        self.next_id += 1;
        if let (true, Destination::Peer(to)) = (acked, dest) {
            let deadline = now.saturating_add(millis(self.config.ack_timeout));
            self.pending_acks.insert(id, PendingAck { to, deadline });
        }
        Ok(id)
    }

    /// Closes in order: queues `Close` for the router and ends everything waiting.
    pub fn close(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        if !self.is_closed() {
            self.close_with(ClientError::Closed, true, &mut events);
        }
        events
    }

    /// The WebSocket closed or failed underneath; `detail` says how.
    pub fn connection_lost(&mut self, detail: &str) -> Vec<Event> {
        let error = match self.phase {
            Phase::Running | Phase::Closed => ClientError::disconnected(detail),
            Phase::Handshake(_) | Phase::Welcoming => ClientError::ClosedDuringHandshake {
                detail: detail.to_owned(),
            },
        };
        self.abort(error)
    }

    /// Ends the connection with `error` (for failures the shell detects itself).
    pub fn abort(&mut self, error: ClientError) -> Vec<Event> {
        let mut events = Vec::new();
        if !self.is_closed() {
            self.close_with(error, false, &mut events);
        }
        events
    }

    /// Queues frames and seals them into records at once: the shell sends right after.
    fn queue_frames(&mut self, frames: &[Frame]) -> Result<(), ClientError> {
        let connection = self
            .connection
            .as_mut()
            .ok_or_else(|| ClientError::disconnected("not connected"))?;
        for frame in frames {
            connection.send(frame).map_err(ClientError::Protocol)?;
        }
        self.flush()
    }

    fn flush(&mut self) -> Result<(), ClientError> {
        if let Some(connection) = self.connection.as_mut() {
            while let Some(record) = connection.poll_transmit().map_err(ClientError::Protocol)? {
                self.outbox.push_back(record);
            }
        }
        Ok(())
    }

    /// A failure on our side: tell the router why when we can, then close.
    fn fail(&mut self, error: ClientError, events: &mut Vec<Event>) {
        if let (ClientError::Protocol(pe), Some(connection)) = (&error, self.connection.as_mut()) {
            let _ = connection.send(&Frame::error(pe.code(), pe.to_string()));
            let _ = self.flush();
        }
        self.close_with(error, false, events);
    }

    fn close_with(&mut self, error: ClientError, send_close: bool, events: &mut Vec<Event>) {
        if send_close && self.is_connected() {
            let _ = self.queue_frames(&[Frame::Close]);
        }
        self.phase = Phase::Closed;
        self.connection = None;
        self.list_so_far.clear();
        let reason = error.to_string();
        for (id, p) in std::mem::take(&mut self.pending_acks) {
            events.push(Event::AckFailed {
                id,
                error: ClientError::disconnected(format!(
                    "connection closed before {} acknowledged message {id} ({reason})",
                    p.to
                )),
            });
        }
        events.push(Event::Closed { reason });
    }
}

#[cfg(test)]
mod tests {
    use lanmesh_proto::Identity;

    use super::*;

    fn config(name: &str) -> ClientConfig {
        let handshake = HandshakeConfig::new(Identity::generate().unwrap(), DEFAULT_MESH);
        ClientConfig::new(Name::new(name).unwrap(), handshake)
    }

    #[test]
    fn payload_flags_round_trip_and_bad_text_is_replaced() {
        let (bits, bytes) = Payload::Text("héllo".into()).into_parts();
        assert_eq!(bits, flags::TEXT);
        assert_eq!(
            Payload::from_parts(bits, bytes),
            Payload::Text("héllo".into())
        );
        let (bits, bytes) = Payload::Binary(Bytes::from_static(b"\xff")).into_parts();
        assert_eq!((bits, &bytes[..]), (0, &b"\xff"[..]));
        assert_eq!(
            Payload::from_parts(flags::TEXT, Bytes::from_static(b"a\xffb")),
            Payload::Text("a\u{fffd}b".into())
        );
    }

    #[test]
    fn start_queues_message_1_and_arms_the_connect_deadline() {
        let mut client = Client::start(config("web-1"), 500).unwrap();
        assert!(client.poll_transmit().is_some_and(|m| !m.is_empty()));
        assert!(client.poll_transmit().is_none());
        assert_eq!(client.poll_timeout(), Some(10_500));
        assert!(!client.is_connected() && !client.is_closed());
        assert_eq!(client.name().as_str(), "web-1");
    }

    #[test]
    fn a_name_over_the_configured_limit_is_refused_up_front() {
        let err = Client::start(config(&"n".repeat(65)), 0).unwrap_err();
        assert!(matches!(err, ClientError::Invalid(_)), "{err}");
    }

    #[test]
    fn garbage_instead_of_message_2_closes_once() {
        let mut client = Client::start(config("web-1"), 0).unwrap();
        let events = client.feed(b"not a handshake message", 1);
        assert!(
            matches!(&events[..], [Event::Closed { reason }] if reason.starts_with("handshake failed")),
            "{events:?}"
        );
        assert_eq!(client.feed(b"again", 2), vec![]);
        assert_eq!(client.handle_timeout(20_000), vec![]);
        assert_eq!(client.poll_timeout(), None);
    }
}

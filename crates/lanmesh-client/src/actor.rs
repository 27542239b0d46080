//! The `PeerActor`: owns the connection to the router, and replaces it when it is lost.
//!
//! 1. Handshake: send message 1, read message 2, send message 3 (deadline: the connect
//!    timeout).
//! 2. Welcome: wait for `Welcome` and the member list (an observer sends `ListPeers` and
//!    waits for the list instead). Only then does `connect` return.
//! 3. Running: application sends become frames (compressed, chunked); deliveries are
//!    reassembled, decompressed, acknowledged if asked and put in the shared inbox; acks
//!    and nacks settle `send_acked` calls; membership events update the member list.
//! 4. Close: `Close` → the router answers `Close` once everything before it is handled,
//!    so a closing peer learns about every message the router could not deliver.
//! 5. Lost: when the connection drops after the first welcome, the actor dials again
//!    with exponential backoff (100 ms doubling to 5 s) and handshakes anew, offering the
//!    same resume token so the router resumes the session; the inbox and the handles
//!    survive. Plain sends fail fast while it is away; acked sends are kept and go (again)
//!    after the welcome, and duplicates are dropped on arrival (see [`crate::stream`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use lanmesh_actix::{Activity, HasLink, HasReader, Link, LinkError, Reader, ticker};
use lanmesh_proto::frame::flags;
use lanmesh_proto::{
    Destination, ErrorCode, Frame, Initiator, NackReason, Name, PeerInfo, ProtoError, Reassembler,
    probed_message_frames,
};
use tokio::sync::oneshot;
use tracing::debug;

use crate::config::PeerConfig;
use crate::dial::{Dialed, dial};
use crate::error::ClientError;
use crate::shared::{Message as Inbound, Shared, Status};
use crate::stream::{Outbox, Seen, Verdict};

/// What the application learns about a message it sent without waiting for an ack, and
/// that the router could not deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undelivered {
    /// The intended recipient.
    pub to: Name,
    /// The message id.
    pub id: u64,
    /// Why.
    pub reason: NackReason,
}

/// What `close` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloseReport {
    /// Messages sent with `send` that the router refused (unknown peer, overloaded, …).
    pub undelivered: Vec<Undelivered>,
}

enum State {
    Handshake(Option<Box<Initiator>>),
    Welcoming,
    Running,
    /// The connection was lost; a new one is being dialled.
    Away,
    Closing,
}

type Ready = oneshot::Sender<Result<(), ClientError>>;

struct PendingAck {
    to: Name,
    reply: oneshot::Sender<Result<(), ClientError>>,
}

/// Answers requests: gets the request, returns the reply's data. It runs on the peer's
/// actor, so it should be quick; slow work belongs in a task that replies itself.
pub type RequestHandler = Arc<dyn Fn(&Inbound) -> Bytes + Send + Sync>;

/// The actor behind a [`crate::Peer`] handle.
pub struct PeerActor {
    config: Arc<PeerConfig>,
    shared: Arc<Shared>,
    reader: Reader,
    link: Link,
    state: State,
    ready: Option<Ready>,
    list_so_far: Vec<PeerInfo>,
    reassembler: Reassembler,
    pending_acks: HashMap<u64, PendingAck>,
    handler: Option<RequestHandler>,
    undelivered: Vec<Undelivered>,
    close_waiters: Vec<oneshot::Sender<CloseReport>>,
    /// Records from the router, for the idle deadline.
    rx: Activity,
    ping_seq: u64,
    owns_system: bool,
    router_addr: String,
    /// Failed attempts since the connection was lost.
    attempts: u32,
    /// Counts connections, so timers of an old one do nothing on a new one.
    epoch: u64,
    /// Offered in every handshake: the router resumes this peer's session with it.
    resume_token: Bytes,
    /// Acked messages not yet acknowledged, per recipient.
    outbox: Outbox,
    /// The acked streams from other peers.
    seen: Seen,
    /// Ack deadlines in the order they were set (all acks wait equally long). One sweep
    /// on the tick replaces a timer per message, which actix would poll on every wakeup.
    ack_deadlines: VecDeque<(Instant, u64)>,
    last_resend_check: Instant,
    /// When the idle check last ran (it rides on the deadline tick).
    last_idle_check: Instant,
    /// The handshake's deadline, cancelled once the peer is running: actix polls every
    /// pending timer of an actor each time the actor wakes.
    handshake_deadline: Option<SpawnHandle>,
}

/// How often deadlines are checked: the precision of ack and request timeouts.
const DEADLINE_TICK: Duration = Duration::from_millis(20);

/// At most this many undelivered notices are kept for `close`.
const MAX_UNDELIVERED: usize = 1024;

impl PeerActor {
    pub(crate) fn new(
        config: Arc<PeerConfig>,
        shared: Arc<Shared>,
        dialed: Dialed,
        ready: Ready,
        owns_system: bool,
    ) -> Self {
        let reconnect = config.reconnect;
        Self {
            reassembler: Reassembler::new(config.limits.clone()),
            config,
            shared,
            reader: Reader::new(dialed.read, lanmesh_proto::limits::MAX_HANDSHAKE_MESSAGE),
            link: Link::new(dialed.write),
            state: State::Handshake(None),
            ready: Some(ready),
            list_so_far: Vec::new(),
            pending_acks: HashMap::new(),
            handler: None,
            undelivered: Vec::new(),
            close_waiters: Vec::new(),
            rx: Activity::new(),
            ping_seq: 0,
            owns_system,
            router_addr: dialed.addr,
            attempts: 0,
            epoch: 0,
            // A peer that will not reconnect offers no token: the router then lets its
            // name go as soon as the connection breaks.
            resume_token: if reconnect {
                new_resume_token()
            } else {
                Bytes::new()
            },
            outbox: Outbox::default(),
            seen: Seen::default(),
            ack_deadlines: VecDeque::new(),
            last_resend_check: Instant::now(),
            last_idle_check: Instant::now(),
            handshake_deadline: None,
        }
    }

    /// Lets handles send through the lane into this connection's link.
    fn open_lane(&mut self) {
        if let Some(conn) = self.link.connection_ref() {
            let compression = conn.compression();
            self.link.set_lane(self.shared.lane.clone());
            self.shared.lane.open(compression);
        }
    }

    /// Ends the peer with `err`; everything waiting learns why.
    fn fail(&mut self, err: ClientError, ctx: &mut Context<Self>) {
        if matches!(self.state, State::Closing) && self.ready.is_none() {
            ctx.stop();
            return;
        }
        let reason = err.to_string();
        debug!(error = %reason, "peer connection ending");
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(err));
        }
        self.shared.close(reason.clone());
        self.shared.set_status(Status::Closed { reason });
        self.state = State::Closing;
        self.shared.lane.close();
        self.reader.stop();
        self.link.close();
        ctx.run_later(Duration::from_secs(1), |_, ctx| ctx.stop());
    }

    /// The connection is gone. Before the first welcome, or without reconnection, that
    /// ends the peer; otherwise a new connection is dialled.
    fn lost(&mut self, err: ClientError, ctx: &mut Context<Self>) {
        let reconnect = self.config.reconnect
            && self.ready.is_none()
            && !matches!(self.state, State::Closing | State::Away);
        if !reconnect {
            if matches!(self.state, State::Away) {
                return;
            }
            self.fail(err, ctx);
            return;
        }
        let reason = err.to_string();
        debug!(error = %reason, "connection to the router lost; reconnecting");
        self.state = State::Away;
        self.shared.lane.close();
        self.epoch += 1;
        // Retire the old connection: its reader and writer futures end on their own.
        self.reader = Reader::detached();
        self.link = Link::detached();
        // Acked messages wait for the next connection (until their ack deadline).
        self.outbox.connection_lost();
        self.shared
            .requests
            .fail_all("connection lost before the reply");
        self.shared
            .set_status(Status::Reconnecting { attempt: 1, reason });
        self.redial_later(ctx);
    }

    fn redial_later(&mut self, ctx: &mut Context<Self>) {
        let exp = self.attempts.min(6);
        let delay = Duration::from_millis(100 << exp).min(Duration::from_secs(5));
        let epoch = self.epoch;
        ctx.run_later(delay, move |act, ctx| {
            if act.epoch != epoch || !matches!(act.state, State::Away) {
                return;
            }
            let config = act.config.clone();
            ctx.spawn(async move { dial(&config).await }.into_actor(act).map(
                move |res, act, ctx| {
                    if act.epoch != epoch || !matches!(act.state, State::Away) {
                        return;
                    }
                    match res {
                        Ok(dialed) => act.attach(dialed, ctx),
                        Err(e) => {
                            act.attempts += 1;
                            act.shared.set_status(Status::Reconnecting {
                                attempt: act.attempts + 1,
                                reason: e.to_string(),
                            });
                            act.redial_later(ctx);
                        }
                    }
                },
            ));
        });
    }

    /// Takes a freshly dialled connection and starts the handshake on it.
    fn attach(&mut self, dialed: Dialed, ctx: &mut Context<Self>) {
        self.reader = Reader::new(dialed.read, lanmesh_proto::limits::MAX_HANDSHAKE_MESSAGE);
        self.link = Link::new(dialed.write);
        self.router_addr = dialed.addr;
        self.epoch += 1;
        self.reassembler = Reassembler::new(self.config.limits.clone());
        // The reader first: what it queues is written later in the same poll.
        self.reader.start::<Self>(ctx);
        self.link.start::<Self>(ctx);
        self.begin_handshake(ctx);
    }

    fn begin_handshake(&mut self, ctx: &mut Context<Self>) {
        self.rx.mark();
        let start = Initiator::start(
            &self.config.handshake(),
            self.config.name.clone(),
            self.resume_token.clone(),
        );
        match start.and_then(|(init, msg1)| {
            self.link.send_handshake(&msg1)?;
            Ok(init)
        }) {
            Ok(init) => self.state = State::Handshake(Some(Box::new(init))),
            Err(e) => {
                self.fail(ClientError::Handshake(e), ctx);
                return;
            }
        }
        let deadline = self.config.connect_timeout;
        let epoch = self.epoch;
        self.cancel_handshake_deadline(ctx);
        let timer = ctx.run_later(deadline, move |act, ctx| {
            if act.epoch == epoch && matches!(act.state, State::Handshake(_) | State::Welcoming) {
                let addr = act.router_addr.clone();
                act.lost(
                    ClientError::HandshakeTimeout {
                        addr,
                        after: deadline,
                    },
                    ctx,
                );
            }
        });
        self.handshake_deadline = Some(timer);
    }

    fn cancel_handshake_deadline(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.handshake_deadline.take() {
            ctx.cancel_future(timer);
        }
    }

    fn handle_record(
        &mut self,
        record: BytesMut,
        ctx: &mut Context<Self>,
    ) -> Result<(), ClientError> {
        self.rx.mark();
        if let State::Handshake(slot) = &mut self.state {
            let init = slot
                .take()
                .ok_or(ClientError::Handshake(ProtoError::Negotiation {
                    what: "second handshake message from the router",
                }))?;
            let (est, msg3) = init.read_choice(&record).map_err(|e| match e {
                ProtoError::Remote { code, text } => ClientError::Refused { code, text },
                other => ClientError::Handshake(other),
            })?;
            // Before confirming: an unknown router learns nothing more from us.
            if let Some(pins) = &self.config.router_pins {
                pins.check(&self.config.mesh, &est.remote_key)?;
            }
            self.link
                .send_handshake(&msg3)
                .map_err(ClientError::Handshake)?;
            self.link.set_connection(est.connection);
            self.reader.set_max_record(self.config.limits.max_record);
            self.state = State::Welcoming;
            if self.config.name.is_none() {
                self.send(&Frame::ListPeers)?;
            }
            return Ok(());
        }
        let conn =
            self.link
                .connection()
                .ok_or(ClientError::Handshake(ProtoError::Negotiation {
                    what: "record before the handshake",
                }))?;
        let frames = conn.open_owned(record).map_err(ClientError::Handshake)?;
        for frame in frames {
            let frame = frame.map_err(ClientError::Handshake)?;
            self.on_frame(frame, ctx)?;
        }
        Ok(())
    }

    fn send(&mut self, frame: &Frame) -> Result<(), ClientError> {
        self.link.send(frame).map_err(ClientError::Handshake)
    }

    fn on_frame(&mut self, frame: Frame, ctx: &mut Context<Self>) -> Result<(), ClientError> {
        match frame {
            Frame::Deliver(m) => {
                let ack = m.flags & flags::ACK_REQUESTED != 0;
                if let Some(done) = self.reassembler.push(m).map_err(ClientError::Handshake)? {
                    let (from, id) = (done.from.clone(), done.id);
                    if let Some(prev) = done.prev {
                        match self.seen.check(&from, id, prev) {
                            Verdict::Deliver => {}
                            Verdict::Duplicate => {
                                return self.send(&Frame::Ack { peer: from, id });
                            }
                            Verdict::Gap => {
                                debug!(%from, id, prev, "message ahead of its predecessor; dropped");
                                return Ok(());
                            }
                        }
                    }
                    let msg = Inbound {
                        from: done.from,
                        id: done.id,
                        data: done.data,
                        flags: done.flags & !flags::ACK_REQUESTED,
                    };
                    if msg.flags & flags::BLOB != 0 {
                        crate::blob::on_message(&self.shared, &ctx.address(), msg);
                    } else if msg.flags & flags::REQUEST != 0 {
                        self.answer(msg)?;
                    } else if msg.flags & flags::REPLY != 0 {
                        self.settle_reply(msg);
                    } else {
                        self.shared.push(msg);
                    }
                    if ack {
                        self.send(&Frame::Ack { peer: from, id })?;
                    }
                }
            }
            Frame::Ack { peer, id } => {
                self.outbox.acked(&peer, id);
                if let Some(p) = self.pending_acks.remove(&id) {
                    let _ = p.reply.send(Ok(()));
                }
            }
            Frame::Nack { peer, id, reason } => {
                if crate::blob::on_nack(&self.shared, &peer, id, reason) {
                    return Ok(());
                }
                let err = match reason {
                    NackReason::UnknownPeer => ClientError::UnknownPeer {
                        name: peer.to_string(),
                    },
                    NackReason::TooLarge => ClientError::TooLarge {
                        len: 0,
                        max: self.config.limits.max_message,
                    },
                    NackReason::NoResponder => ClientError::NoResponder {
                        name: peer.to_string(),
                    },
                    _ => ClientError::Overloaded {
                        name: peer.to_string(),
                        id,
                    },
                };
                if let Some(p) = self.pending_acks.remove(&id) {
                    self.outbox.abandon(&peer, id);
                    let _ = p.reply.send(Err(err));
                    return Ok(());
                }
                if self.shared.requests.settle(id, Err(err)) {
                    return Ok(());
                }
                debug!(to = %peer, id, ?reason, "message not delivered");
                if self.undelivered.len() < MAX_UNDELIVERED {
                    self.undelivered.push(Undelivered {
                        to: peer,
                        id,
                        reason,
                    });
                }
            }
            Frame::Welcome { name } => debug!(%name, "welcomed into the mesh"),
            Frame::PeerList { last, peers } => {
                self.list_so_far.extend(peers);
                if last {
                    self.shared.set_peers(std::mem::take(&mut self.list_so_far));
                    if matches!(self.state, State::Welcoming) {
                        self.state = State::Running;
                        self.cancel_handshake_deadline(ctx);
                        self.open_lane();
                        self.attempts = 0;
                        self.resend_due()?;
                        self.shared.set_status(Status::Connected {
                            router: self.router_addr.clone(),
                        });
                        if let Some(ready) = self.ready.take() {
                            let _ = ready.send(Ok(()));
                        }
                    }
                }
            }
            Frame::PeerJoined(info) => {
                // A new process under that name: acked streams with it start over.
                self.seen.forget(&info.name);
                self.outbox.restart(&info.name);
                self.shared.peer_joined(info);
                self.resend_due()?;
            }
            Frame::PeerLeft { name } => {
                self.reassembler.forget(&name);
                self.seen.forget(&name);
                self.outbox.forget(&name);
                crate::blob::on_peer_left(&self.shared, &name);
                self.shared.peer_left(&name);
            }
            Frame::Ping(v) => self.send(&Frame::Pong(v))?,
            Frame::Pong(_) => {}
            Frame::Error { code, text } => match code {
                // The router going away, or a deadline: try again (if reconnecting).
                ErrorCode::Shutdown | ErrorCode::IdleTimeout | ErrorCode::Overloaded => {
                    self.lost(ClientError::disconnected(text), ctx);
                }
                _ => self.fail(ClientError::Refused { code, text }, ctx),
            },
            Frame::Close => {
                let report = CloseReport {
                    undelivered: std::mem::take(&mut self.undelivered),
                };
                for w in self.close_waiters.drain(..) {
                    let _ = w.send(report.clone());
                }
                self.fail(ClientError::disconnected("closed"), ctx);
            }
            other => {
                return Err(ClientError::Handshake(ProtoError::Malformed {
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

    /// A request arrived: answer it with the handler, or say there is none.
    fn answer(&mut self, req: Inbound) -> Result<(), ClientError> {
        let Some(handler) = self.handler.clone() else {
            if self.shared.queues_requests() {
                // The application answers later with `Peer::reply` (hooks do).
                self.shared.push(req);
                return Ok(());
            }
            return self.send(&Frame::Nack {
                peer: req.from,
                id: req.id,
                reason: NackReason::NoResponder,
            });
        };
        let data = handler(&req);
        let mut payload = Vec::with_capacity(8 + data.len());
        payload.extend_from_slice(&req.id.to_be_bytes());
        payload.extend_from_slice(&data);
        let id = self.shared.next_id();
        let compression = self
            .link
            .connection_ref()
            .map_or(lanmesh_proto::Compression::None, |c| c.compression());
        let text = if std::str::from_utf8(&data).is_ok() {
            flags::TEXT
        } else {
            0
        };
        for frame in probed_message_frames(
            &Destination::Peer(req.from),
            id,
            flags::REPLY | text,
            Bytes::from(payload),
            compression,
            &self.shared.compression,
        ) {
            self.send(&frame)?;
        }
        Ok(())
    }

    /// A reply arrived: hand it to the request waiting for it (a late one is dropped).
    fn settle_reply(&mut self, mut reply: Inbound) {
        if reply.data.len() < 8 {
            debug!(from = %reply.from, "reply without a request id; dropped");
            return;
        }
        let corr = reply.data.split_to(8);
        let corr = u64::from_be_bytes(corr[..].try_into().unwrap_or([0; 8]));
        reply.flags &= !flags::REPLY;
        if !self.shared.requests.settle(corr, Ok(reply)) {
            debug!(corr, "reply to no pending request; dropped");
        }
    }

    /// After the application asked to close, a lost connection is final.
    fn config_reconnect_off(&mut self) {
        if self.config.reconnect {
            let mut c = (*self.config).clone();
            c.reconnect = false;
            self.config = Arc::new(c);
        }
    }

    /// Sends again the acked messages that are due (see [`crate::stream`]).
    fn resend_due(&mut self) -> Result<(), ClientError> {
        for frame in self.outbox.due(Instant::now(), self.config.resend_after) {
            self.send(&frame)?;
        }
        Ok(())
    }

    /// Expires acks and requests whose deadline passed, resends what is due, and checks
    /// that the router still answers.
    fn on_deadline_tick(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        while let Some(&(at, id)) = self.ack_deadlines.front() {
            if at > now {
                break;
            }
            self.ack_deadlines.pop_front();
            if let Some(p) = self.pending_acks.remove(&id) {
                self.outbox.abandon(&p.to, id);
                let _ = p.reply.send(Err(ClientError::AckTimeout {
                    name: p.to.to_string(),
                    id,
                    after: self.config.ack_timeout,
                }));
            }
        }
        self.shared.requests.expire(now);
        // While the socket is still busy the acks may simply be behind it.
        let check_every = self.config.resend_after / 4;
        if matches!(self.state, State::Running)
            && now.duration_since(self.last_resend_check) >= check_every
            && self.link.pending_bytes() == 0
        {
            self.last_resend_check = now;
            if let Err(e) = self.resend_due() {
                self.fail(e, ctx);
                return;
            }
        }
        let idle_every = (self.config.limits.idle_timeout / 3).max(Duration::from_millis(10));
        if now.duration_since(self.last_idle_check) >= idle_every {
            self.last_idle_check = now;
            self.on_idle_check(now, ctx);
        }
    }

    fn on_idle_check(&mut self, now: Instant, ctx: &mut Context<Self>) {
        if !matches!(self.state, State::Running) {
            return;
        }
        let idle = self.rx.quiet_for(now);
        let limit = self.config.limits.idle_timeout;
        if idle > limit {
            self.fail(
                ClientError::disconnected("the router stopped answering"),
                ctx,
            );
        } else if idle > limit / 3 {
            self.ping_seq += 1;
            let _ = self.link.send(&Frame::Ping(self.ping_seq));
        }
    }
}

impl Actor for PeerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(256);
        // The reader first: what it queues is written later in the same poll.
        self.reader.start::<Self>(ctx);
        self.link.start::<Self>(ctx);
        self.begin_handshake(ctx);
        // One timer for every periodic check, and one that is not looked at between
        // ticks: actix polls every future of an actor whenever the actor wakes.
        ticker::every(ctx, DEADLINE_TICK, |act: &mut Self, ctx| {
            act.on_deadline_tick(ctx);
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.shared.lane.close();
        self.shared
            .requests
            .fail_all("the peer stopped before the reply");
        self.shared.close("the connection is closed".into());
        self.shared.set_status(Status::Closed {
            reason: "closed".into(),
        });
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(ClientError::ClosedDuringHandshake));
        }
        for (id, p) in self.pending_acks.drain() {
            let _ = p.reply.send(Err(ClientError::disconnected(format!(
                "connection closed before {} acknowledged message {id}",
                p.to
            ))));
        }
        let report = CloseReport {
            undelivered: std::mem::take(&mut self.undelivered),
        };
        for w in self.close_waiters.drain(..) {
            let _ = w.send(report.clone());
        }
        if self.owns_system {
            System::current().stop();
        }
    }
}

impl HasLink for PeerActor {
    fn link(&mut self) -> &mut Link {
        &mut self.link
    }

    fn link_closed(&mut self, error: Option<LinkError>, ctx: &mut Context<Self>) {
        match error {
            Some(e) => self.lost(ClientError::disconnected(e.to_string()), ctx),
            None if matches!(self.state, State::Closing) => ctx.stop(),
            None => self.lost(
                ClientError::disconnected("the connection was shut down"),
                ctx,
            ),
        }
    }
}

impl HasReader for PeerActor {
    fn reader(&mut self) -> &mut Reader {
        &mut self.reader
    }

    fn can_read(&mut self, waker: &Waker) -> bool {
        self.shared.reader_may_continue(waker)
    }

    fn on_record(&mut self, record: BytesMut, ctx: &mut Context<Self>) {
        if let Err(e) = self.handle_record(record, ctx) {
            if let ClientError::Handshake(pe) = &e {
                if self.link.connection_ref().is_some() {
                    let _ = self.link.send(&Frame::error(pe.code(), pe.to_string()));
                }
            }
            self.fail(e, ctx);
        }
    }

    fn read_closed(&mut self, error: Option<ProtoError>, ctx: &mut Context<Self>) {
        let err = match (error, &self.state) {
            (Some(e), _) => ClientError::disconnected(e.to_string()),
            (None, State::Handshake(_) | State::Welcoming) => ClientError::ClosedDuringHandshake,
            (None, _) => ClientError::disconnected("the router closed the connection"),
        };
        self.lost(err, ctx);
    }
}

/// Send application data.
#[derive(Message)]
#[rtype(result = "Result<Sent, ClientError>")]
pub(crate) struct SendData {
    pub(crate) dest: Destination,
    pub(crate) data: Bytes,
    pub(crate) flags: u8,
    pub(crate) ack: bool,
}

/// A queued message: its id, and the acknowledgement to wait for if one was asked.
pub(crate) struct Sent {
    pub(crate) id: u64,
    pub(crate) ack: Option<oneshot::Receiver<Result<(), ClientError>>>,
}

impl Handler<SendData> for PeerActor {
    type Result = ActorResponse<Self, Result<Sent, ClientError>>;

    fn handle(&mut self, msg: SendData, _: &mut Context<Self>) -> Self::Result {
        let result = self.queue(msg);
        let budget = self.config.limits.max_pending_bytes;
        if self.link.pending_bytes() <= budget {
            return ActorResponse::reply(result);
        }
        // Answer once the socket has taken enough: a fast sender waits here instead of
        // growing the queue, while the actor keeps reading meanwhile.
        ActorResponse::r#async(Link::drained(budget).map(move |_, _, _| result))
    }
}

impl PeerActor {
    fn queue(&mut self, msg: SendData) -> Result<Sent, ClientError> {
        let running = matches!(self.state, State::Running);
        let reconnecting = self.ready.is_none()
            && matches!(
                self.state,
                State::Away | State::Handshake(_) | State::Welcoming
            );
        // An acked message to a peer survives a lost connection: it waits in the outbox.
        let acked_to_peer = msg.ack && matches!(msg.dest, Destination::Peer(_));
        let keep = acked_to_peer && (running || reconnecting);
        if !running && !keep {
            return Err(self.shared.disconnected("not connected"));
        }
        self.shared.check_size(msg.data.len())?;
        let id = self.shared.next_id();
        let mut bits = msg.flags;
        if msg.ack {
            bits |= flags::ACK_REQUESTED;
        }
        let compression = self
            .link
            .connection_ref()
            .map(|c| c.compression())
            .unwrap_or(lanmesh_proto::Compression::None);
        let probe = &self.shared.compression;
        let frames = probed_message_frames(&msg.dest, id, bits, msg.data, compression, probe);
        let frames = match (&msg.dest, keep) {
            (Destination::Peer(to), true) => {
                self.outbox.push(to, id, frames, Instant::now(), running)
            }
            _ => frames,
        };
        for frame in frames {
            self.send(&frame)?;
        }
        let ack = match (&msg.dest, msg.ack) {
            (Destination::Peer(to), true) => {
                let (tx, rx) = oneshot::channel();
                self.pending_acks.insert(
                    id,
                    PendingAck {
                        to: to.clone(),
                        reply: tx,
                    },
                );
                self.ack_deadlines
                    .push_back((Instant::now() + self.config.ack_timeout, id));
                Some(rx)
            }
            _ => None,
        };
        Ok(Sent { id, ack })
    }
}

/// Close gracefully and report what was not delivered.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Close(pub(crate) oneshot::Sender<CloseReport>);

impl Handler<Close> for PeerActor {
    type Result = ();

    fn handle(&mut self, Close(reply): Close, ctx: &mut Context<Self>) {
        self.close_waiters.push(reply);
        self.config_reconnect_off();
        self.shared.lane.close();
        if matches!(self.state, State::Running) && self.link.send(&Frame::Close).is_ok() {
            self.state = State::Closing;
            // The router answers `Close`; if it does not, stop anyway.
            ctx.run_later(Duration::from_secs(3), |_, ctx| ctx.stop());
        } else {
            ctx.stop();
        }
    }
}

/// Drop the connection now.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Terminate;

impl Handler<Terminate> for PeerActor {
    type Result = ();

    fn handle(&mut self, _: Terminate, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Install or remove the request handler.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SetHandler(pub(crate) Option<RequestHandler>);

impl Handler<SetHandler> for PeerActor {
    type Result = ();

    fn handle(&mut self, SetHandler(h): SetHandler, _: &mut Context<Self>) {
        self.handler = h;
    }
}

/// A random token naming this peer's session across reconnects.
fn new_resume_token() -> Bytes {
    let mut token = [0u8; 16];
    // Without randomness the router cannot tell a resume from a restart; an empty token
    // makes every reconnect count as a new session, which is safe.
    match getrandom::fill(&mut token) {
        Ok(()) => Bytes::copy_from_slice(&token),
        Err(_) => Bytes::new(),
    }
}

/// Tell a requester that this peer has no answer (`NoResponder`).
#[derive(Message)]
#[rtype(result = "Result<(), ClientError>")]
pub(crate) struct Decline {
    pub(crate) to: Name,
    pub(crate) id: u64,
}

impl Handler<Decline> for PeerActor {
    type Result = Result<(), ClientError>;

    fn handle(&mut self, Decline { to, id }: Decline, _: &mut Context<Self>) -> Self::Result {
        self.send(&Frame::Nack {
            peer: to,
            id,
            reason: NackReason::NoResponder,
        })
    }
}

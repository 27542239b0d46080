//! The peer core behind one lock, shared by the handles and the driver (quinn's
//! `ConnectionInner` shape).
//!
//! A handle's call locks the core and calls it directly: a `send` is a lock, an encode
//! into the record being filled and, when the writer sleeps, a wake — no trip through an
//! actor's mailbox. The driver locks it to hand in bytes and time and to take bytes out.
//!
//! Whoever unlocks also hands the core's events on ([`Locked`]'s `Drop`): messages into
//! the [`Inbox`], acks and replies to the calls waiting for them, status and membership
//! to their channels, file steps to the transfers' tasks. What needs the driver's own
//! thread (answering a request with the application's handler, accepting a file,
//! dialling, checking a router's key) is queued for it ([`State::for_driver`]), and the
//! driver is woken. Wakers are called after the lock is released.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use lanmesh_core::peer::{Event, FileEvent, PeerCore};
use lanmesh_core::{ClientError, CloseReport, Instant, Message, PeerEvent, Status};
use lanmesh_proto::Name;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::inbox::Inbox;

/// Bytes a peer's sends queue ahead of its socket before `send` waits. Larger than one
/// large message: a 1 MiB `send` finds room while the previous one is still being
/// written, so the sender encrypts the next message while the socket takes the last
/// (with a window smaller than the message, every large send waited for the one before
/// to drain). The router still starts on the first records at once: they are handed
/// out as soon as they are sealed.
pub const SEND_QUEUE_BYTES: usize = 2 * 1024 * 1024;

/// Membership events kept for a handle that has not read them yet; one that falls further
/// behind learns it (`Lagged`) and reads the member list instead.
const MEMBERSHIP_EVENTS: usize = 256;

/// Answers requests: gets the request, returns the reply's data. It runs on the peer's
/// driver, so it should be quick; slow work belongs in a task that replies itself.
pub type RequestHandler = Arc<dyn Fn(&Message) -> bytes::Bytes + Send + Sync>;

/// How an outgoing file stands, for the task sending it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sending {
    /// The receiver accepted, granting this window.
    pub(crate) accepted: Option<u32>,
    /// Bytes the receiver has written.
    pub(crate) acked: u64,
    /// Over: the size delivered, or why not.
    pub(crate) end: Option<Result<u64, ClientError>>,
}

/// What reaches the task writing an incoming file.
#[derive(Debug)]
pub(crate) enum Chunk {
    Data { data: bytes::Bytes, last: bool },
    Failed(String),
}

/// Everything behind the lock.
pub(crate) struct State {
    pub(crate) core: PeerCore,
    acks: BTreeMap<u64, oneshot::Sender<Result<(), ClientError>>>,
    replies: BTreeMap<u64, oneshot::Sender<Result<Message, ClientError>>>,
    sending: BTreeMap<u64, watch::Sender<Sending>>,
    receiving: BTreeMap<(Name, u64), mpsc::Sender<Chunk>>,
    ready: Option<oneshot::Sender<Result<(), ClientError>>>,
    close_waiters: Vec<oneshot::Sender<CloseReport>>,
    /// The report of the close, once closed.
    report: Option<CloseReport>,
    /// Events the driver handles on its own thread.
    pub(crate) for_driver: VecDeque<Event>,
    /// Answers requests on the driver, when set.
    pub(crate) handler: Option<RequestHandler>,
    /// Requests go to the inbox for `Peer::reply` (hooks do that).
    pub(crate) queue_requests: bool,
    /// Requests go to this channel for `Peer::reply` (`Peer::request_queue`).
    pub(crate) request_queue: Option<mpsc::Sender<Message>>,
    /// The driver's writer, asleep with nothing to write.
    writer: Option<Waker>,
    /// Direct links' writers, asleep with nothing to write.
    link_writers: Vec<(u64, Waker)>,
    /// The driver, asleep.
    driver: Option<Waker>,
    /// Handles waiting for room in the send queue.
    senders: Vec<Waker>,
}

impl State {
    /// An acked send's outcome goes to `tx`.
    pub(crate) fn wait_ack(&mut self, id: u64, tx: oneshot::Sender<Result<(), ClientError>>) {
        self.acks.insert(id, tx);
    }

    /// A request's reply goes to `tx`.
    pub(crate) fn wait_reply(
        &mut self,
        id: u64,
        tx: oneshot::Sender<Result<Message, ClientError>>,
    ) {
        self.replies.insert(id, tx);
    }

    /// Outgoing file `blob`'s progress goes to the returned receiver.
    pub(crate) fn watch_sending(&mut self, blob: u64) -> watch::Receiver<Sending> {
        let (tx, rx) = watch::channel(Sending::default());
        self.sending.insert(blob, tx);
        rx
    }

    pub(crate) fn forget_sending(&mut self, blob: u64) {
        self.sending.remove(&blob);
    }

    /// Incoming file `blob` from `from`'s chunks go to `tx`.
    pub(crate) fn receive_into(&mut self, from: Name, blob: u64, tx: mpsc::Sender<Chunk>) {
        self.receiving.insert((from, blob), tx);
    }

    pub(crate) fn forget_receiving(&mut self, from: &Name, blob: u64) {
        self.receiving.remove(&(from.clone(), blob));
    }

    /// `tx` hears once the first connection is in the mesh, or why it never got there.
    pub(crate) fn on_ready(&mut self, tx: oneshot::Sender<Result<(), ClientError>>) {
        self.ready = Some(tx);
    }

    /// `tx` gets the close report (at once if closed already).
    pub(crate) fn on_closed(&mut self, tx: oneshot::Sender<CloseReport>) {
        match &self.report {
            Some(r) => {
                let _ = tx.send(r.clone());
            }
            None => self.close_waiters.push(tx),
        }
    }

    /// The writer, asleep, is woken when bytes are queued.
    pub(crate) fn park_writer(&mut self, waker: &Waker) {
        if !self.writer.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.writer = Some(waker.clone());
        }
    }

    /// Link `link`'s writer, asleep, is woken when bytes are queued for it.
    pub(crate) fn park_link_writer(&mut self, link: u64, waker: &Waker) {
        match self.link_writers.iter_mut().find(|(l, _)| *l == link) {
            Some((_, w)) if w.will_wake(waker) => {}
            Some((_, w)) => *w = waker.clone(),
            None => self.link_writers.push((link, waker.clone())),
        }
    }

    /// The driver, asleep, is woken when something is queued for it.
    pub(crate) fn park_driver(&mut self, waker: &Waker) {
        if !self.driver.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.driver = Some(waker.clone());
        }
    }

    /// Whether the core must tell requesters that this peer answers requests.
    pub(crate) fn answers_requests(&self) -> bool {
        self.handler.is_some() || self.queue_requests || self.request_queue.is_some()
    }

    /// A handle waits for room in the send queue.
    pub(crate) fn park_sender(&mut self, waker: &Waker) {
        if !self.senders.iter().any(|w| w.will_wake(waker)) {
            self.senders.push(waker.clone());
        }
    }

    /// Room in the send queue: the handles waiting for it are woken.
    pub(crate) fn take_senders(&mut self) -> Vec<Waker> {
        std::mem::take(&mut self.senders)
    }
}

/// The shared peer: see the module docs.
pub(crate) struct Endpoint {
    state: Mutex<State>,
    pub(crate) inbox: Inbox,
    status: watch::Sender<Status>,
    membership: broadcast::Sender<PeerEvent>,
    /// `(peer, direct)` whenever messages to a peer move onto a direct link or off it.
    paths: broadcast::Sender<(Name, bool)>,
    origin: std::time::Instant,
}

impl Endpoint {
    pub(crate) fn new(core: PeerCore, inbox_capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                core,
                acks: BTreeMap::new(),
                replies: BTreeMap::new(),
                sending: BTreeMap::new(),
                receiving: BTreeMap::new(),
                ready: None,
                close_waiters: Vec::new(),
                report: None,
                for_driver: VecDeque::new(),
                handler: None,
                queue_requests: false,
                request_queue: None,
                writer: None,
                link_writers: Vec::new(),
                driver: None,
                senders: Vec::new(),
            }),
            inbox: Inbox::new(inbox_capacity),
            status: watch::Sender::new(Status::Connecting),
            membership: broadcast::Sender::new(MEMBERSHIP_EVENTS),
            paths: broadcast::Sender::new(MEMBERSHIP_EVENTS),
            origin: std::time::Instant::now(),
        }
    }

    /// The core's clock: time since this peer was made.
    pub(crate) fn now(&self) -> Instant {
        Instant::since_origin(self.origin.elapsed())
    }

    /// Locks the core; unlocking hands its events on.
    pub(crate) fn lock(&self) -> Locked<'_> {
        Locked {
            // Each critical section leaves the state consistent before anything that can
            // panic runs (application handlers run outside it): a poisoned lock is fine.
            guard: Some(self.state.lock().unwrap_or_else(PoisonError::into_inner)),
            endpoint: self,
        }
    }

    pub(crate) fn status(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    /// A writer (the router's or a link's) wrote: the handles waiting for room are woken
    /// once its own queue has some (each waits for the way to its own recipient, and
    /// looks again).
    pub(crate) fn wake_senders_if_room(&self, link: Option<u64>) {
        let senders = {
            let mut st = self.lock();
            let queued = match link {
                Some(link) => st.core.link_queued_bytes(link),
                None => st.core.queued_bytes(),
            };
            if queued < SEND_QUEUE_BYTES {
                st.take_senders()
            } else {
                Vec::new()
            }
        };
        for w in senders {
            w.wake();
        }
    }

    pub(crate) fn peer_events(&self) -> broadcast::Receiver<PeerEvent> {
        self.membership.subscribe()
    }

    pub(crate) fn path_events(&self) -> broadcast::Receiver<(Name, bool)> {
        self.paths.subscribe()
    }
}

/// The locked core. Dropping it dispatches the core's events, then wakes whoever must run.
pub(crate) struct Locked<'a> {
    guard: Option<MutexGuard<'a, State>>,
    endpoint: &'a Endpoint,
}

impl std::ops::Deref for Locked<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.guard.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.guard.as_mut().expect("present until dropped")
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let Some(mut st) = self.guard.take() else {
            return;
        };
        let mut wake_driver = false;
        while let Some(event) = st.core.poll_event() {
            wake_driver |= dispatch(&mut st, self.endpoint, event);
        }
        let writer = if st.core.queued_bytes() > 0 && lanmesh_actix::same_poll::note_write() {
            st.writer.take()
        } else {
            None
        };
        let driver = if wake_driver || !st.for_driver.is_empty() {
            st.driver.take()
        } else {
            None
        };
        let senders = if st.core.is_closed() {
            st.take_senders()
        } else {
            Vec::new()
        };
        // A link's writer runs in an actor of its own: always woken, never noted.
        let mut links = Vec::new();
        if !st.link_writers.is_empty() {
            let state = &mut *st;
            let core = &state.core;
            let (due, asleep): (Vec<_>, Vec<_>) = std::mem::take(&mut state.link_writers)
                .into_iter()
                .partition(|(l, _)| core.link_queued_bytes(*l) > 0);
            state.link_writers = asleep;
            links = due.into_iter().map(|(_, w)| w).collect();
        }
        drop(st);
        for w in writer.into_iter().chain(driver).chain(senders).chain(links) {
            w.wake();
        }
    }
}

/// Hands one event on; returns whether the driver must run.
fn dispatch(st: &mut State, endpoint: &Endpoint, event: Event) -> bool {
    match event {
        Event::Connected => {
            if let Some(ready) = st.ready.take() {
                let _ = ready.send(Ok(()));
            }
        }
        Event::Status(s) => {
            endpoint.status.send_replace(s);
        }
        Event::Peer(e) => {
            // No subscriber is the usual case, not an error.
            let _ = endpoint.membership.send(e);
        }
        Event::Message(m) => endpoint.inbox.push(m),
        Event::Path { peer, direct } => {
            if direct {
                tracing::info!(%peer, "messages to {peer} go over a direct link");
            } else {
                tracing::info!(%peer, "messages to {peer} go through the router again");
            }
            let _ = endpoint.paths.send((peer, direct));
        }
        Event::Acked { id } => {
            if let Some(tx) = st.acks.remove(&id) {
                let _ = tx.send(Ok(()));
            }
        }
        Event::SendFailed { id, error } => {
            if let Some(tx) = st.acks.remove(&id) {
                let _ = tx.send(Err(error));
            }
        }
        Event::Reply { id, reply } => {
            if let Some(tx) = st.replies.remove(&id) {
                let _ = tx.send(Ok(reply));
            }
        }
        Event::RequestFailed { id, error } => {
            if let Some(tx) = st.replies.remove(&id) {
                let _ = tx.send(Err(error));
            }
        }
        // Kept by the core for the close report.
        Event::Undelivered(_) => {}
        Event::File(f) => return dispatch_file(st, f),
        Event::Closed { error, report } => {
            if let Some(ready) = st.ready.take() {
                let _ = ready.send(Err(error.clone()));
            }
            for w in st.close_waiters.drain(..) {
                let _ = w.send(report.clone());
            }
            st.report = Some(report);
            for (_, tx) in std::mem::take(&mut st.receiving) {
                let _ = tx.try_send(Chunk::Failed("the connection is closed".into()));
            }
            endpoint.inbox.close(error.to_string());
            return true;
        }
        other => {
            st.for_driver.push_back(other);
            return true;
        }
    }
    false
}

fn dispatch_file(st: &mut State, event: FileEvent) -> bool {
    let update = |st: &mut State, blob: u64, f: &mut dyn FnMut(&mut Sending)| {
        if let Some(tx) = st.sending.get(&blob) {
            tx.send_modify(|s| f(s));
        }
    };
    match event {
        FileEvent::Accepted { blob, window } => update(st, blob, &mut |s| {
            s.accepted.get_or_insert(window);
        }),
        FileEvent::Acked { blob, acked } => update(st, blob, &mut |s| s.acked = acked),
        FileEvent::Delivered { blob, size } => update(st, blob, &mut |s| {
            s.acked = size;
            s.end.get_or_insert(Ok(size));
        }),
        FileEvent::SendFailed { blob, error } => update(st, blob, &mut |s| {
            s.end.get_or_insert_with(|| Err(error.clone()));
        }),
        FileEvent::Data {
            from,
            blob,
            data,
            last,
            ..
        } => {
            let key = (from, blob);
            let Some(tx) = st.receiving.get(&key) else {
                return false;
            };
            if tx.try_send(Chunk::Data { data, last }).is_err() {
                // The writing task cannot keep up with chunks this small: the transfer
                // breaks rather than memory growing.
                st.receiving.remove(&key);
                st.core.abort_file(
                    &key.0,
                    blob,
                    lanmesh_proto::blob::AbortReason::Protocol,
                    "too many small chunks in flight",
                );
            }
        }
        FileEvent::ReceiveFailed { from, blob, reason } => {
            if let Some(tx) = st.receiving.remove(&(from, blob)) {
                let _ = tx.try_send(Chunk::Failed(reason));
            }
        }
        offered @ FileEvent::Offered { .. } => {
            st.for_driver.push_back(Event::File(offered));
            return true;
        }
        _ => {}
    }
    false
}

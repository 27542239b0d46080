//! State shared between the `PeerActor` and the handles: the inbox and the member list.
//!
//! The inbox lives behind a mutex rather than in the actor so that `recv` and `get` do not
//! need a round trip through the actor's mailbox. When it is full (or delivery is paused)
//! the actor stops reading from the socket; whoever takes messages out wakes it again.
//! Checking and parking happen under the same lock, so no wake-up is lost.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;

use bytes::Bytes;
use lanmesh_actix::Lane;
use lanmesh_proto::frame::flags;
use lanmesh_proto::{Name, PeerInfo};
use tokio::sync::{Notify, broadcast, watch};

use crate::hooks::PeerEvent;

/// Membership events kept for a handle that has not read them yet; one that falls further
/// behind learns it (`Lagged`) and reads the member list instead.
const MEMBERSHIP_EVENTS: usize = 256;

use crate::blob::Blobs;

/// Where the connection to the router stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// The first connection is being made.
    Connecting,
    /// In the mesh, through the router at this address.
    Connected {
        /// The router's address.
        router: String,
    },
    /// The connection was lost; dialling again (attempt counts from 1).
    Reconnecting {
        /// Which attempt is under way.
        attempt: u32,
        /// Why the last connection or attempt ended.
        reason: String,
    },
    /// Closed for good.
    Closed {
        /// Why.
        reason: String,
    },
}

/// A message received from another peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sender.
    pub from: Name,
    /// The sender's serial number for it.
    pub id: u64,
    /// The payload.
    pub data: Bytes,
    /// Protocol flags (text, broadcast).
    pub flags: u8,
}

impl Message {
    /// The payload as text, if the sender sent text.
    pub fn text(&self) -> Option<&str> {
        if self.flags & flags::TEXT != 0 {
            std::str::from_utf8(&self.data).ok()
        } else {
            None
        }
    }

    /// The payload decoded from JSON (see `Peer::send_json`).
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::ClientError> {
        serde_json::from_slice(&self.data).map_err(|e| crate::ClientError::Json(e.to_string()))
    }

    /// Whether it was sent to everyone.
    pub fn is_broadcast(&self) -> bool {
        self.flags & flags::BROADCAST != 0
    }

    /// Whether it is a request waiting for `Peer::reply` (only seen after
    /// `Peer::queue_requests`, or in `Hooks::on_request`).
    pub fn is_request(&self) -> bool {
        self.flags & flags::REQUEST != 0
    }
}

#[derive(Default)]
struct InboxState {
    queue: VecDeque<Message>,
    paused: bool,
    parked_reader: Option<Waker>,
    closed: Option<String>,
}

/// Shared between the actor and every handle.
pub(crate) struct Shared {
    inbox: Mutex<InboxState>,
    arrived: Notify,
    capacity: usize,
    peers: Mutex<BTreeMap<Name, PeerInfo>>,
    status: watch::Sender<Status>,
    events: broadcast::Sender<PeerEvent>,
    /// Requests go to the inbox (for `Peer::reply`) when no handler answers them.
    queue_requests: AtomicBool,
    /// File transfers in both directions.
    pub(crate) blobs: Blobs,
    /// Plain sends from handles, straight to the link (see `lanmesh_actix::Lane`).
    pub(crate) lane: Arc<Lane>,
    /// The next message id, for the actor and for sends through the lane.
    next_id: AtomicU64,
    /// The largest message the peer sends.
    pub(crate) max_message: u64,
    /// The last name sent to: a loop sending to one peer validates and copies it once.
    last_dest: Mutex<Option<Name>>,
    /// Requests waiting for replies.
    pub(crate) requests: crate::requests::Requests,
    /// Whether payloads are worth compressing, from how the last ones went.
    pub(crate) compression: lanmesh_proto::compress::CompressionProbe,
}

impl Shared {
    pub(crate) fn new(capacity: usize, blobs: Blobs, max_message: u64) -> Self {
        Self {
            blobs,
            lane: Arc::new(Lane::new()),
            next_id: AtomicU64::new(1),
            max_message,
            inbox: Mutex::new(InboxState::default()),
            arrived: Notify::new(),
            capacity: capacity.max(1),
            peers: Mutex::new(BTreeMap::new()),
            status: watch::Sender::new(Status::Connecting),
            events: broadcast::Sender::new(MEMBERSHIP_EVENTS),
            queue_requests: AtomicBool::new(false),
            last_dest: Mutex::new(None),
            requests: crate::requests::Requests::default(),
            compression: Default::default(),
        }
    }

    /// `to` as a validated name, reusing the last one when it is the same.
    pub(crate) fn name(&self, to: &str) -> Result<Name, crate::ClientError> {
        let mut last = self
            .last_dest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(name) = last.as_ref().filter(|n| n.as_str() == to) {
            return Ok(name.clone());
        }
        let name = Name::new(to).map_err(crate::ClientError::Invalid)?;
        *last = Some(name.clone());
        Ok(name)
    }

    /// The error for a send that found no connection: why it closed, or `otherwise`.
    pub(crate) fn disconnected(&self, otherwise: &str) -> crate::ClientError {
        crate::ClientError::disconnected(self.closed_reason().unwrap_or_else(|| otherwise.into()))
    }

    /// Refuses a message larger than the peer's limit.
    pub(crate) fn check_size(&self, len: usize) -> Result<(), crate::ClientError> {
        let len = len as u64;
        if len > self.max_message {
            return Err(crate::ClientError::TooLarge {
                len,
                max: self.max_message,
            });
        }
        Ok(())
    }

    /// A fresh message id.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn set_queue_requests(&self, on: bool) {
        self.queue_requests.store(on, Ordering::Relaxed);
    }

    pub(crate) fn queues_requests(&self) -> bool {
        self.queue_requests.load(Ordering::Relaxed)
    }

    pub(crate) fn subscribe_events(&self) -> broadcast::Receiver<PeerEvent> {
        self.events.subscribe()
    }

    fn emit(&self, event: PeerEvent) {
        // No subscriber is the usual case, not an error.
        let _ = self.events.send(event);
    }

    pub(crate) fn set_status(&self, status: Status) {
        self.status.send_replace(status);
    }

    pub(crate) fn status(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InboxState> {
        // A panic while holding this lock cannot leave the queue half-updated (each
        // critical section is one push or pop), so a poisoned lock is still usable.
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Actor side: may the reader take more? If not, park its waker.
    pub(crate) fn reader_may_continue(&self, waker: &Waker) -> bool {
        let mut st = self.lock();
        if st.paused || st.queue.len() >= self.capacity {
            st.parked_reader = Some(waker.clone());
            return false;
        }
        true
    }

    pub(crate) fn push(&self, m: Message) {
        let mut st = self.lock();
        let was_empty = st.queue.is_empty();
        st.queue.push_back(m);
        drop(st);
        // Only a reader that found the inbox empty waits, and the push that ended the
        // emptiness woke it: later pushes need not pay for the notification.
        if was_empty {
            self.arrived.notify_waiters();
        }
    }

    fn wake_reader(&self, mut st: std::sync::MutexGuard<'_, InboxState>) {
        let waker = if !st.paused && st.queue.len() < self.capacity {
            st.parked_reader.take()
        } else {
            None
        };
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Up to `n` messages, oldest first, without waiting.
    pub(crate) fn take(&self, n: usize) -> Vec<Message> {
        let mut st = self.lock();
        let k = n.min(st.queue.len());
        let out: Vec<Message> = st.queue.drain(..k).collect();
        self.wake_reader(st);
        out
    }

    /// The next message, waiting for one; `Err` once the connection is gone and the inbox
    /// is empty.
    pub(crate) async fn next(&self) -> Result<Message, String> {
        loop {
            let notified = self.arrived.notified();
            {
                let mut st = self.lock();
                if let Some(m) = st.queue.pop_front() {
                    self.wake_reader(st);
                    return Ok(m);
                }
                if let Some(reason) = &st.closed {
                    return Err(reason.clone());
                }
            }
            notified.await;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub(crate) fn set_paused(&self, paused: bool) {
        let mut st = self.lock();
        st.paused = paused;
        self.wake_reader(st);
    }

    pub(crate) fn close(&self, reason: String) {
        let mut st = self.lock();
        st.closed.get_or_insert(reason);
        drop(st);
        self.arrived.notify_waiters();
    }

    pub(crate) fn closed_reason(&self) -> Option<String> {
        self.lock().closed.clone()
    }

    fn peers_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Name, PeerInfo>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the member list (on every welcome, so also after a reconnect) and tells
    /// subscribers what changed meanwhile.
    pub(crate) fn set_peers(&self, list: Vec<PeerInfo>) {
        let mut map = self.peers_lock();
        let fresh: BTreeMap<Name, PeerInfo> =
            list.into_iter().map(|p| (p.name.clone(), p)).collect();
        let left: Vec<Name> = map
            .keys()
            .filter(|n| !fresh.contains_key(*n))
            .cloned()
            .collect();
        let joined: Vec<PeerInfo> = fresh
            .values()
            .filter(|p| !map.contains_key(&p.name))
            .cloned()
            .collect();
        *map = fresh;
        // Emitting under the lock keeps events in the order the list changed.
        for name in left {
            self.emit(PeerEvent::Left(name));
        }
        for info in joined {
            self.emit(PeerEvent::Joined(info));
        }
    }

    pub(crate) fn peer_joined(&self, p: PeerInfo) {
        let mut map = self.peers_lock();
        map.insert(p.name.clone(), p.clone());
        self.emit(PeerEvent::Joined(p));
    }

    pub(crate) fn peer_left(&self, name: &Name) {
        let mut map = self.peers_lock();
        if map.remove(name).is_some() {
            self.emit(PeerEvent::Left(name.clone()));
        }
    }

    pub(crate) fn peers(&self) -> Vec<PeerInfo> {
        self.peers_lock().values().cloned().collect()
    }
}

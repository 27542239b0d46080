//! Messages taken from the native inbox ahead of the application.
//!
//! A `recv` that finds the inbox empty sleeps until a message arrives; by the time it is
//! awake, more have usually come. Taking them all then (up to [`BATCH`]) in one lock,
//! and handing them out one `recv` at a time from here, saves a lock, a notification and
//! often a sleep per message. The messages stay this peer's: `get`, `pending`, iteration,
//! the callback thread and the asyncio peer all take from here first, so the order is
//! the order of arrival, and backpressure is unchanged but for at most one batch.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Messages taken from the native inbox at once, at most.
pub(crate) const BATCH: usize = 256;

/// See the module docs.
#[derive(Default)]
pub(crate) struct Ahead {
    queue: Mutex<VecDeque<lanmesh::Message>>,
}

impl Ahead {
    fn lock(&self) -> MutexGuard<'_, VecDeque<lanmesh::Message>> {
        // Each critical section is a pop or an extend: a poisoned lock is still whole.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next message if one is here or waiting in the inbox, without waiting.
    pub(crate) fn next_ready(&self, peer: &lanmesh::Peer) -> Option<lanmesh::Message> {
        let mut queue = self.lock();
        if let Some(m) = queue.pop_front() {
            return Some(m);
        }
        let mut batch = peer.get(BATCH).into_iter();
        let first = batch.next()?;
        queue.extend(batch);
        Some(first)
    }

    /// After a wait returned a message: takes what arrived with it.
    pub(crate) fn refill(&self, peer: &lanmesh::Peer) {
        let mut queue = self.lock();
        if queue.is_empty() {
            queue.extend(peer.get(BATCH - 1));
        }
    }

    /// The next message, waiting for one; `Err` once the peer is closed and every
    /// message was taken.
    pub(crate) async fn next(
        &self,
        peer: &lanmesh::Peer,
    ) -> Result<lanmesh::Message, lanmesh::ClientError> {
        if let Some(m) = self.next_ready(peer) {
            return Ok(m);
        }
        let m = peer.recv().await?;
        self.refill(peer);
        Ok(m)
    }

    /// Up to `n` messages, oldest first, without waiting.
    pub(crate) fn take(&self, peer: &lanmesh::Peer, n: usize) -> Vec<lanmesh::Message> {
        let mut queue = self.lock();
        let here = n.min(queue.len());
        let mut out: Vec<lanmesh::Message> = queue.drain(..here).collect();
        if out.len() < n {
            out.extend(peer.get(n - out.len()));
        }
        out
    }

    /// Messages here (not counting the native inbox).
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

//! The messages waiting for the application, behind a lock of their own.
//!
//! The inbox is not in the peer core's lock, so `recv` and `get` never wait for the
//! driver decrypting a record. When it is full (or delivery is paused) the driver stops
//! reading from the socket; whoever takes messages out wakes it again. Checking and
//! parking happen under the same lock, so no wake-up is lost.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use lanmesh_core::Message;
use tokio::sync::Notify;

#[derive(Default)]
struct State {
    queue: VecDeque<Message>,
    paused: bool,
    /// The readers waiting for room (the router's, and each direct link's).
    parked_readers: Vec<Waker>,
    closed: Option<String>,
}

/// See the module docs.
pub(crate) struct Inbox {
    state: Mutex<State>,
    arrived: Notify,
    capacity: usize,
}

impl Inbox {
    /// An inbox whose reader pauses at `capacity` messages.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::default(),
            arrived: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Each critical section is one push or pop: a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Driver side: must the reader wait? If so, park its waker.
    pub(crate) fn reader_must_wait(&self, waker: &Waker) -> bool {
        let mut st = self.lock();
        if st.paused || st.queue.len() >= self.capacity {
            if !st.parked_readers.iter().any(|w| w.will_wake(waker)) {
                st.parked_readers.push(waker.clone());
            }
            return true;
        }
        false
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

    fn wake_reader(&self, mut st: MutexGuard<'_, State>) {
        let wakers = if !st.paused && st.queue.len() < self.capacity {
            std::mem::take(&mut st.parked_readers)
        } else {
            Vec::new()
        };
        drop(st);
        for w in wakers {
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

    /// The next message, waiting for one; `Err` with the reason once the peer is closed
    /// and the inbox is empty.
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

    /// No more messages will come; readers learn `reason` once the queue is empty.
    pub(crate) fn close(&self, reason: String) {
        let mut st = self.lock();
        st.closed.get_or_insert(reason);
        drop(st);
        self.arrived.notify_waiters();
    }
}

//! Frames on their way from one session to another, without the actor mailbox.
//!
//! Every forwarded record used to be an actix message: a boxed envelope and a queue node
//! allocated per record, and the mailbox machinery around them. A session's inbox is a
//! list behind a lock that the other sessions append to; the session takes the whole
//! list at once, in its own poll, before its writer runs. The order of what one session
//! forwards to another is kept, as the mailbox kept it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use lanmesh_proto::Frame;

use crate::table::Snapshot;

/// Frames for a session's peer, from another session (or the router's own nacks), or a
/// membership change from the router. Both come through the same list, so a peer hears
/// of another's leaving only after everything that one sent before it left.
#[derive(Debug)]
pub(crate) struct Forward {
    pub(crate) frames: Vec<Frame>,
    /// Their encoded size, counted in the recipient's `Pressure` until it takes them.
    pub(crate) bytes: usize,
    /// The new routing table and the event to tell the peer.
    pub(crate) membership: Option<Box<(Snapshot, Option<Frame>)>>,
}

impl Forward {
    /// Frames that count towards the recipient's congestion.
    pub(crate) fn new(frames: Vec<Frame>) -> Self {
        let bytes = frames.iter().map(Frame::encoded_len).sum();
        Self {
            frames,
            bytes,
            membership: None,
        }
    }

    /// Frames the router sends on its own account (nacks, handovers).
    pub(crate) fn untracked(frames: Vec<Frame>) -> Self {
        Self {
            frames,
            bytes: 0,
            membership: None,
        }
    }

    /// A membership change.
    pub(crate) fn membership(snapshot: Snapshot, event: Option<Frame>) -> Self {
        Self {
            frames: Vec::new(),
            bytes: 0,
            membership: Some(Box::new((snapshot, event))),
        }
    }
}

/// Why a forward was not taken; the forward comes back.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The inbox holds as many forwards as it may.
    Full(Forward),
    /// The session has stopped.
    Closed(Forward),
}

/// One session's inbox, shared with every session that forwards to it.
#[derive(Debug)]
pub(crate) struct Inbox {
    state: Mutex<State>,
    /// Something is waiting: the owner's poll need not take the lock otherwise.
    ready: AtomicBool,
    /// Forwards it may hold before `push` refuses more.
    capacity: usize,
}

#[derive(Debug, Default)]
struct State {
    forwards: Vec<Forward>,
    /// The owner's task, woken by the first forward after it emptied the inbox.
    waker: Option<Waker>,
    closed: bool,
}

impl Inbox {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::default(),
            ready: AtomicBool::new(false),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a forward, unless the inbox is full or closed.
    pub(crate) fn push(&self, forward: Forward) -> Result<(), Refused> {
        let state = self.lock();
        if state.closed {
            return Err(Refused::Closed(forward));
        }
        if state.forwards.len() >= self.capacity {
            return Err(Refused::Full(forward));
        }
        self.append(state, forward);
        Ok(())
    }

    /// Appends a forward even to a full inbox: the router's own nacks and handovers,
    /// which are few and must arrive. `false` if the session has stopped.
    pub(crate) fn push_always(&self, forward: Forward) -> bool {
        let state = self.lock();
        if state.closed {
            return false;
        }
        self.append(state, forward);
        true
    }

    fn append(&self, mut state: MutexGuard<'_, State>, forward: Forward) {
        state.forwards.push(forward);
        let was_ready = self.ready.swap(true, Ordering::AcqRel);
        let waker = if was_ready { None } else { state.waker.clone() };
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Owner side: moves everything waiting into `into` (which should be empty), and
    /// keeps `waker` for the next forward. With `registered`, the caller says its waker
    /// is already kept, and nothing is locked when nothing is waiting.
    pub(crate) fn take(&self, into: &mut Vec<Forward>, waker: &Waker, registered: bool) {
        if registered && !self.ready.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.lock();
        std::mem::swap(into, &mut state.forwards);
        self.ready.store(false, Ordering::Release);
        if !state.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            state.waker = Some(waker.clone());
        }
    }

    /// Owner side, when it stops: refuses everything from now on and hands back what
    /// was still waiting.
    pub(crate) fn close(&self) -> Vec<Forward> {
        let mut state = self.lock();
        state.closed = true;
        state.waker = None;
        self.ready.store(false, Ordering::Release);
        std::mem::take(&mut state.forwards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    #[derive(Default)]
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn ping(n: u64) -> Forward {
        Forward::new(vec![Frame::Ping(n)])
    }

    fn pings(forwards: &[Forward]) -> Vec<u64> {
        forwards
            .iter()
            .flat_map(|f| &f.frames)
            .map(|f| match f {
                Frame::Ping(n) => *n,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn forwards_come_out_in_order_with_one_wake_per_batch() {
        let inbox = Inbox::new(8);
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        let mut got = Vec::new();
        inbox.take(&mut got, &waker, false);
        assert!(got.is_empty());
        for n in 0..3 {
            inbox.push(ping(n)).unwrap();
        }
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "woken once for the batch"
        );
        inbox.take(&mut got, &waker, true);
        assert_eq!(pings(&got), [0, 1, 2]);
        got.clear();
        inbox.take(&mut got, &waker, true);
        assert!(got.is_empty());
        inbox.push(ping(3)).unwrap();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            2,
            "woken again after emptying"
        );
        inbox.take(&mut got, &waker, true);
        assert_eq!(pings(&got), [3]);
    }

    #[test]
    fn a_full_inbox_refuses_data_but_takes_the_routers_own_frames() {
        let inbox = Inbox::new(2);
        inbox.push(ping(0)).unwrap();
        inbox.push(ping(1)).unwrap();
        assert!(
            matches!(inbox.push(ping(2)), Err(Refused::Full(f)) if f.frames == [Frame::Ping(2)])
        );
        assert!(inbox.push_always(ping(3)));
        let left = inbox.close();
        assert_eq!(pings(&left), [0, 1, 3]);
        assert!(matches!(inbox.push(ping(4)), Err(Refused::Closed(_))));
        assert!(!inbox.push_always(ping(5)));
    }
}

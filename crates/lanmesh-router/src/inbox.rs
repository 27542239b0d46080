//! What other sessions hand a session, without the actor mailbox.
//!
//! Every forwarded record used to be an actix message: a boxed envelope and a queue node
//! allocated per record, and the mailbox machinery around them. A session's inbox is a
//! list behind a lock that the other sessions append to; the session takes the whole
//! list at once, in its own poll, before its writer runs. The order of what one session
//! forwards to another is kept, as the mailbox kept it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Waker;

/// Why a forward was not taken; the forward comes back.
#[derive(Debug)]
pub(crate) enum Refused<T> {
    /// The inbox holds as many forwards as it may.
    Full(T),
    /// The session has stopped.
    Closed(T),
}

/// One session's inbox, shared with every session that forwards to it.
#[derive(Debug)]
pub(crate) struct Inbox<T> {
    state: Mutex<State<T>>,
    /// Something is waiting: the owner's poll need not take the lock otherwise.
    ready: AtomicBool,
    /// Forwards it may hold before `push` refuses more.
    capacity: usize,
}

#[derive(Debug)]
struct State<T> {
    forwards: Vec<T>,
    /// The owner's task, woken by the first forward after it emptied the inbox.
    waker: Option<Waker>,
    closed: bool,
}

impl<T> Inbox<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                forwards: Vec::new(),
                waker: None,
                closed: false,
            }),
            ready: AtomicBool::new(false),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a forward, unless the inbox is full or closed.
    pub(crate) fn push(&self, forward: T) -> Result<(), Refused<T>> {
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

    /// Whether a [`Inbox::push`] now would be refused as full.
    #[cfg_attr(not(feature = "federation"), allow(dead_code))]
    pub(crate) fn is_full(&self) -> bool {
        self.lock().forwards.len() >= self.capacity
    }

    /// Appends a forward even to a full inbox: the router's own nacks and handovers,
    /// which are few and must arrive. `false` if the session has stopped.
    pub(crate) fn push_always(&self, forward: T) -> bool {
        let state = self.lock();
        if state.closed {
            return false;
        }
        self.append(state, forward);
        true
    }

    fn append(&self, mut state: MutexGuard<'_, State<T>>, forward: T) {
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
    pub(crate) fn take(&self, into: &mut Vec<T>, waker: &Waker, registered: bool) {
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
    pub(crate) fn close(&self) -> Vec<T> {
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

    /// A forward standing in for frames: just a number.
    fn ping(n: u64) -> Vec<u64> {
        vec![n]
    }

    fn pings(forwards: &[Vec<u64>]) -> Vec<u64> {
        forwards.iter().flatten().copied().collect()
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
        assert!(matches!(inbox.push(ping(2)), Err(Refused::Full(f)) if f == [2]));
        assert!(inbox.push_always(ping(3)));
        let left = inbox.close();
        assert_eq!(pings(&left), [0, 1, 3]);
        assert!(matches!(inbox.push(ping(4)), Err(Refused::Closed(_))));
        assert!(!inbox.push_always(ping(5)));
    }
}

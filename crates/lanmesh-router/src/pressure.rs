//! Backpressure from a slow recipient to the sessions that feed it.
//!
//! A session whose peer reads more slowly than others send to it marks itself congested
//! once [`RouterConfig::backpressure_bytes`](crate::RouterConfig) wait for its socket.
//! A session that forwarded to a congested one stops reading from its own peer until the
//! congestion clears, so TCP slows that sender down instead of the router refusing its
//! messages. Only a recipient that drains counts: one whose socket took nothing for
//! [`STUCK_AFTER`] is marked stuck, nobody waits for it, and what is sent to it meets the
//! per-session budget and its `Nack(Overloaded)` as before. A stuck peer therefore costs
//! its senders at most that long.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::Waker;
use std::time::Duration;

/// How long a congested recipient may go without its socket taking bytes before senders
/// stop waiting for it.
pub(crate) const STUCK_AFTER: Duration = Duration::from_millis(200);

/// The congestion state of one session, shared with the sessions that forward to it.
#[derive(Debug, Default)]
pub(crate) struct Pressure {
    /// Bytes forwarded to this session that it has not taken from its inbox yet.
    in_flight: AtomicUsize,
    /// More than the threshold waits for this session's socket.
    congested: AtomicBool,
    /// Congested and its socket took nothing for [`STUCK_AFTER`].
    stuck: AtomicBool,
    /// Readers of sessions waiting for the congestion to clear.
    waiters: Mutex<Vec<Waker>>,
}

impl Pressure {
    /// Whether a sender should wait before forwarding more, given the threshold.
    pub(crate) fn holds_back(&self, threshold: usize) -> bool {
        !self.stuck.load(Ordering::Acquire)
            && (self.congested.load(Ordering::Acquire)
                || self.in_flight.load(Ordering::Acquire) > threshold)
    }

    /// Sender side: `true` if it may read on; otherwise keeps `waker` for the moment the
    /// congestion clears (checked again under the lock, so no wake-up is lost).
    pub(crate) fn may_continue(&self, threshold: usize, waker: &Waker) -> bool {
        if !self.holds_back(threshold) {
            return true;
        }
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.holds_back(threshold) {
            return true;
        }
        if !waiters.iter().any(|w| w.will_wake(waker)) {
            waiters.push(waker.clone());
        }
        false
    }

    /// Sender side: `bytes` were put in this session's inbox.
    pub(crate) fn forwarded(&self, bytes: usize) {
        self.in_flight.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Recipient side: `bytes` were taken from the inbox.
    pub(crate) fn taken(&self, bytes: usize, threshold: usize) {
        let before = self.in_flight.fetch_sub(bytes, Ordering::AcqRel);
        if before > threshold && before - bytes <= threshold {
            self.release();
        }
    }

    /// Recipient side: whether it is marked congested.
    pub(crate) fn is_congested(&self) -> bool {
        self.congested.load(Ordering::Acquire)
    }

    /// Recipient side: more than the threshold waits for the socket.
    pub(crate) fn set_congested(&self) {
        self.congested.store(true, Ordering::Release);
    }

    /// Recipient side: whether its socket stopped taking bytes (senders go on without
    /// it) or started again.
    pub(crate) fn set_stuck(&self, stuck: bool) {
        self.stuck.store(stuck, Ordering::Release);
        if stuck {
            self.release();
        }
    }

    /// Recipient side: the socket caught up (or the session ended).
    pub(crate) fn clear(&self) {
        self.congested.store(false, Ordering::Release);
        self.stuck.store(false, Ordering::Release);
        self.release();
    }

    /// Recipient side: the session ended. Nobody waits for it again, however many of
    /// the bytes forwarded to it it never took (those are answered by its closed inbox).
    pub(crate) fn closed(&self) {
        self.congested.store(false, Ordering::Release);
        self.stuck.store(true, Ordering::Release);
        self.release();
    }

    fn release(&self) {
        let waiters =
            std::mem::take(&mut *self.waiters.lock().unwrap_or_else(PoisonError::into_inner));
        for w in waiters {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Flag>, Waker) {
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        (flag.clone(), Waker::from(flag))
    }

    #[test]
    fn a_congested_recipient_holds_senders_until_it_clears() {
        let p = Pressure::default();
        let (woken, w) = waker();
        assert!(p.may_continue(1000, &w));
        p.set_congested();
        assert!(!p.may_continue(1000, &w));
        assert!(!woken.0.load(Ordering::SeqCst));
        p.clear();
        assert!(woken.0.load(Ordering::SeqCst));
        assert!(p.may_continue(1000, &w));
    }

    #[test]
    fn bytes_in_the_inbox_count_until_taken() {
        let p = Pressure::default();
        let (woken, w) = waker();
        p.forwarded(600);
        assert!(p.may_continue(1000, &w));
        p.forwarded(600);
        assert!(!p.may_continue(1000, &w));
        p.taken(600, 1000);
        assert!(woken.0.load(Ordering::SeqCst));
        assert!(p.may_continue(1000, &w));
    }

    #[test]
    fn nobody_waits_for_a_session_that_ended_over_the_threshold() {
        let p = Pressure::default();
        let (woken, w) = waker();
        p.forwarded(5000);
        assert!(!p.may_continue(1000, &w));
        p.closed();
        assert!(woken.0.load(Ordering::SeqCst));
        // Its untaken bytes never come down; a sender woken or arriving later goes on.
        let (again, w2) = waker();
        assert!(p.may_continue(1000, &w2));
        assert!(!again.0.load(Ordering::SeqCst));
    }

    #[test]
    fn nobody_waits_for_a_stuck_recipient() {
        let p = Pressure::default();
        let (woken, w) = waker();
        p.set_congested();
        assert!(!p.may_continue(1000, &w));
        p.set_stuck(true);
        assert!(woken.0.load(Ordering::SeqCst));
        assert!(p.may_continue(1000, &w));
        p.clear();
        p.set_congested();
        assert!(!p.may_continue(1000, &w), "a fresh congestion holds again");
    }
}

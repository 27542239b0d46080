//! When a connection was last heard from, to the precision of the owner's periodic
//! check.
//!
//! Idle deadlines are tens of seconds long and checked on a timer, while records arrive
//! thousands of times a second. A clock read costs tens of nanoseconds on a virtual
//! machine, which is more than the rest of noting the arrival; so an arrival only sets a
//! flag, and the periodic check reads the clock once and turns the flag into a time.

use std::time::{Duration, Instant};

/// The time of the last event, as seen by whoever checks it periodically.
#[derive(Debug, Clone, Copy)]
pub struct Activity {
    /// Something happened since the last check.
    seen: bool,
    /// The check that first saw the last event (or the start).
    since: Instant,
}

impl Activity {
    /// Starts the clock now, as if something had just happened.
    pub fn new() -> Self {
        Self {
            seen: false,
            since: Instant::now(),
        }
    }

    /// Something happened: a plain store, no clock read.
    pub fn mark(&mut self) {
        self.seen = true;
    }

    /// How long nothing has happened, as of `now`. It counts from the first check that
    /// saw the last event, so it falls short of the truth by at most the time between
    /// two checks: the caller checks often compared to the deadline it enforces.
    pub fn quiet_for(&mut self, now: Instant) -> Duration {
        if std::mem::take(&mut self.seen) {
            self.since = now;
        }
        now.saturating_duration_since(self.since)
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_time_counts_from_the_check_that_saw_the_last_event() {
        let mut a = Activity::new();
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        // Nothing happened: quiet since it was made.
        assert!(a.quiet_for(at(100)) >= Duration::from_millis(100));
        a.mark();
        a.mark();
        // The check at 200 ms sees the events: quiet from then on.
        assert_eq!(a.quiet_for(at(200)), Duration::ZERO);
        assert_eq!(a.quiet_for(at(350)), Duration::from_millis(150));
        a.mark();
        assert_eq!(a.quiet_for(at(400)), Duration::ZERO);
        assert_eq!(a.quiet_for(at(1_400)), Duration::from_secs(1));
    }

    #[test]
    fn a_check_in_the_past_is_not_negative() {
        let mut a = Activity::new();
        a.mark();
        let now = Instant::now();
        assert_eq!(a.quiet_for(now), Duration::ZERO);
        assert_eq!(a.quiet_for(now - Duration::from_millis(5)), Duration::ZERO);
    }
}

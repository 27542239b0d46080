//! Backpressure across routers: what one router has published to a remote name and the
//! holding router has not yet confirmed. No client, time passed in.
//!
//! Local sessions count what they forward to a remote name in its route's `Pressure`,
//! as for a local recipient, and hold back once more than the router's backpressure
//! threshold is counted. For a remote name those bytes stay counted until the router
//! holding the name has handed them to the recipient's session:
//!
//! 1. The driver publishes a batch with a reply subject naming the destination and the
//!    batch's number in its [`Window`] ([`Window::sent`]).
//! 2. The holding router waits, like a local sender, while the recipient's session is
//!    congested, then hands the batch over and publishes an empty message to the reply
//!    subject (one for several batches that arrived together: numbers are cumulative).
//! 3. That confirmation settles every batch up to that number ([`Window::confirmed`]);
//!    their bytes leave the `Pressure`, and senders held back go on.
//! 4. A batch not confirmed within [`CONFIRM_WAIT`] (lost while a NATS node went away, or
//!    its router gone) and every batch sent on a connection that was lost stop counting
//!    ([`Window::expire`], [`Window::release_all`]): what they carried is resent by the
//!    sending peers' acked streams, and nothing waits for it for ever.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a published batch counts against its destination without a confirmation.
pub(crate) const CONFIRM_WAIT: Duration = Duration::from_secs(5);

/// The batches published to one remote name and not confirmed yet.
#[derive(Debug, Default)]
pub(crate) struct Window {
    /// The number of the last batch published (the first is 1).
    last: u64,
    /// Oldest first: its number, the bytes it counts for, when it went.
    unconfirmed: VecDeque<(u64, usize, Instant)>,
}

impl Window {
    /// A batch counting `bytes` is published at `now`: its number, for the reply subject.
    pub(crate) fn sent(&mut self, bytes: usize, now: Instant) -> u64 {
        self.last += 1;
        self.unconfirmed.push_back((self.last, bytes, now));
        self.last
    }

    /// The holding router has every batch up to `upto`: the bytes they counted for.
    /// A number beyond the last one given settles nothing. (A late confirmation meant
    /// for an earlier route to the same name may settle batches early: then senders go
    /// on a little sooner, nothing is lost.)
    pub(crate) fn confirmed(&mut self, upto: u64) -> usize {
        if upto > self.last {
            return 0;
        }
        let mut bytes = 0;
        while let Some(&(n, b, _)) = self.unconfirmed.front() {
            if n > upto {
                break;
            }
            bytes += b;
            self.unconfirmed.pop_front();
        }
        bytes
    }

    /// Batches older than [`CONFIRM_WAIT`] at `now` stop counting: their bytes.
    pub(crate) fn expire(&mut self, now: Instant) -> usize {
        let mut bytes = 0;
        while let Some(&(_, b, at)) = self.unconfirmed.front() {
            if now.saturating_duration_since(at) < CONFIRM_WAIT {
                break;
            }
            bytes += b;
            self.unconfirmed.pop_front();
        }
        bytes
    }

    /// Nothing published so far will be confirmed: the bytes it counted for.
    pub(crate) fn release_all(&mut self) -> usize {
        self.unconfirmed.drain(..).map(|(_, b, _)| b).sum()
    }

    /// Whether some batch waits for its confirmation.
    pub(crate) fn is_waiting(&self) -> bool {
        !self.unconfirmed.is_empty()
    }
}

/// The subject confirmations for router `router`'s batches come on: one token more, the
/// destination, and one more, the batch number.
pub(crate) fn confirm_prefix(mesh: &str, router: &str) -> String {
    format!(
        "lanmesh.{}.confirm.{}",
        super::wire::escape(mesh),
        super::wire::escape(router)
    )
}

/// The reply subject of batch `n` to `dest`.
pub(crate) fn reply_subject(prefix: &str, dest: &str, n: u64) -> String {
    format!("{prefix}.{}.{n}", super::wire::escape(dest))
}

/// The destination and batch number a confirmation's subject names, under `prefix`.
pub(crate) fn parse_reply(prefix: &str, subject: &str) -> Option<(String, u64)> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    let (dest, n) = rest.split_once('.')?;
    Some((super::wire::unescape(dest)?, n.parse().ok()?))
}

/// The part of a reply subject that names who sent it and to whom: confirmations for the
/// same sender and destination replace each other, the last one covering all.
pub(crate) fn reply_stream(reply: &str) -> &str {
    reply.rsplit_once('.').map_or(reply, |(stream, _)| stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmations_are_cumulative_and_stale_ones_settle_nothing() {
        let t0 = Instant::now();
        let mut w = Window::default();
        assert_eq!(w.sent(100, t0), 1);
        assert_eq!(w.sent(200, t0), 2);
        assert_eq!(w.sent(300, t0), 3);
        assert_eq!(w.confirmed(2), 300, "batches 1 and 2");
        assert_eq!(w.confirmed(2), 0, "twice is once");
        assert_eq!(w.confirmed(1), 0, "an older one after a newer one");
        assert_eq!(w.confirmed(9), 0, "a number never given");
        assert!(w.is_waiting());
        assert_eq!(w.confirmed(3), 300);
        assert!(!w.is_waiting());
    }

    #[test]
    fn unconfirmed_batches_stop_counting_in_time() {
        let t0 = Instant::now();
        let mut w = Window::default();
        w.sent(10, t0);
        w.sent(20, t0 + Duration::from_secs(1));
        assert_eq!(w.expire(t0 + CONFIRM_WAIT - Duration::from_millis(1)), 0);
        assert_eq!(w.expire(t0 + CONFIRM_WAIT), 10);
        w.sent(40, t0 + Duration::from_secs(2));
        assert_eq!(w.release_all(), 60);
        assert!(!w.is_waiting());
        assert_eq!(
            w.sent(1, t0),
            4,
            "numbers go on: late confirmations stay stale"
        );
    }

    #[test]
    fn reply_subjects_name_the_destination_and_the_batch() {
        let prefix = confirm_prefix("home", "site.a");
        assert_eq!(prefix, "lanmesh.home.confirm.site_2Ea");
        let reply = reply_subject(&prefix, "pc.1", 42);
        assert_eq!(reply, "lanmesh.home.confirm.site_2Ea.pc_2E1.42");
        assert_eq!(parse_reply(&prefix, &reply), Some(("pc.1".into(), 42)));
        assert_eq!(reply_stream(&reply), "lanmesh.home.confirm.site_2Ea.pc_2E1");
        assert_eq!(
            parse_reply(&prefix, "lanmesh.home.confirm.other.pc.1"),
            None
        );
        assert_eq!(parse_reply(&prefix, &format!("{prefix}.pc_2E1.x")), None);
        assert_eq!(parse_reply(&prefix, &format!("{prefix}x.pc.1")), None);
    }
}

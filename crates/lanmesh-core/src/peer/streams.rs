//! Acked streams: exactly-once, in-order delivery of `send_acked` messages across lost
//! connections. No I/O and no clock of its own: the caller passes `now` in.
//!
//! Every acked message to a peer belongs to the sender's stream to that peer and carries
//! `prev`, the id of the stream's previous message (0 for the first). Then:
//!
//! 1. The sender keeps each message until its `Ack` arrives ([`Outbox`]).
//! 2. The recipient ([`Seen`]) hands a message to the application only when it follows
//!    what it already has (`prev` ≤ the last id it delivered from that sender), drops one
//!    it has already delivered (`id` ≤ that last id) but acknowledges it again, and
//!    silently drops one whose predecessor is missing (a gap).
//! 3. After a reconnect, and whenever the oldest unacknowledged message has waited longer
//!    than the resend interval, the sender sends everything unacknowledged again, oldest
//!    first (go-back-N). Whatever was lost is filled in, whatever arrived twice is dropped.
//! 4. A message the sender gives up on (a `Nack` or its ack deadline) leaves the stream:
//!    the next one takes its `prev`, so the recipient does not wait for it forever.
//! 5. A recipient that joins anew (another process: the router announces it with
//!    `PeerJoined`) has no memory of the stream, so the sender restarts it at 0; a sender
//!    that joins anew is forgotten by its recipients for the same reason.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::time::Duration;

use lanmesh_proto::{Frame, Name};

use crate::time::Instant;

struct Unacked {
    id: u64,
    prev: u64,
    frames: Vec<Frame>,
    bytes: usize,
    sent_at: Option<Instant>,
}

impl Unacked {
    fn set_prev(&mut self, prev: u64) {
        self.prev = prev;
        for f in &mut self.frames {
            if let Frame::Send(m) = f {
                m.prev = Some(prev);
            }
        }
    }
}

#[derive(Default)]
struct OutStream {
    /// The id of the newest message of the stream (0: none yet).
    tail: u64,
    unacked: VecDeque<Unacked>,
}

impl OutStream {
    /// Re-links the chain from `from` on, after a message left it or it restarted.
    fn relink(&mut self, from: usize, mut prev: u64) {
        for u in self.unacked.iter_mut().skip(from) {
            u.set_prev(prev);
            u.sent_at = None;
            prev = u.id;
        }
        self.tail = prev;
    }
}

/// The sender's side: unacknowledged messages per recipient.
#[derive(Default)]
pub(crate) struct Outbox {
    streams: BTreeMap<Name, OutStream>,
    bytes: usize,
}

impl Outbox {
    /// Adds message `id` (already cut into `Send` frames) to the stream to `to`, stamps
    /// its `prev`, and returns the frames to send (none while `connected` is false: they
    /// go out after the next welcome).
    pub(crate) fn push(
        &mut self,
        to: &Name,
        id: u64,
        frames: Vec<Frame>,
        now: Instant,
        connected: bool,
    ) -> Vec<Frame> {
        let stream = self.streams.entry(to.clone()).or_default();
        let mut u = Unacked {
            id,
            prev: 0,
            frames,
            bytes: 0,
            sent_at: connected.then_some(now),
        };
        u.set_prev(stream.tail);
        u.bytes = u.frames.iter().map(Frame::encoded_len).sum();
        let bytes = u.bytes;
        stream.tail = id;
        let out = if connected {
            u.frames.clone()
        } else {
            Vec::new()
        };
        stream.unacked.push_back(u);
        self.bytes += bytes;
        out
    }

    /// The recipient has message `id`. Only an ack from the peer the message went to
    /// counts; returns whether it settled anything.
    pub(crate) fn acked(&mut self, to: &Name, id: u64) -> bool {
        let Some(stream) = self.streams.get_mut(to) else {
            return false;
        };
        let Some(i) = stream.unacked.iter().position(|u| u.id == id) else {
            return false;
        };
        if let Some(u) = stream.unacked.remove(i) {
            self.bytes -= u.bytes;
        }
        // The tail stays: the next message must still name its predecessor.
        true
    }

    /// The sender gives up on message `id`: it leaves the stream and the messages after
    /// it are re-linked (and so sent again by the next [`Outbox::due`]).
    pub(crate) fn abandon(&mut self, to: &Name, id: u64) {
        let Some(stream) = self.streams.get_mut(to) else {
            return;
        };
        let Some(i) = stream.unacked.iter().position(|u| u.id == id) else {
            return;
        };
        let Some(u) = stream.unacked.remove(i) else {
            return;
        };
        self.bytes -= u.bytes;
        if i < stream.unacked.len() {
            stream.relink(i, u.prev);
        } else if stream.tail == id {
            stream.tail = u.prev;
        }
    }

    /// `to` joined anew and remembers nothing: its stream restarts at 0, and everything
    /// unacknowledged goes again.
    pub(crate) fn restart(&mut self, to: &Name) {
        if let Some(stream) = self.streams.get_mut(to) {
            stream.relink(0, 0);
        }
    }

    /// `to` left the mesh for good.
    pub(crate) fn forget(&mut self, to: &Name) {
        if let Some(stream) = self.streams.get_mut(to) {
            if stream.unacked.is_empty() {
                self.streams.remove(to);
            } else {
                stream.relink(0, 0);
            }
        }
    }

    /// Frames to send again: every stream whose oldest unacknowledged message was never
    /// sent on this connection, or was sent more than `resend_after` ago, goes again from
    /// its oldest message.
    pub(crate) fn due(&mut self, now: Instant, resend_after: Duration) -> Vec<Frame> {
        let mut out = Vec::new();
        for stream in self.streams.values_mut() {
            let stale = stream.unacked.iter().any(|u| match u.sent_at {
                None => true,
                Some(t) => now.saturating_since(t) >= resend_after,
            });
            if !stale {
                continue;
            }
            for u in &mut stream.unacked {
                u.sent_at = Some(now);
                out.extend(u.frames.iter().cloned());
            }
        }
        out
    }

    /// The connection was lost: nothing in flight counts as sent any more.
    pub(crate) fn connection_lost(&mut self) {
        for stream in self.streams.values_mut() {
            for u in &mut stream.unacked {
                u.sent_at = None;
            }
        }
    }

    /// What went to `to` over a direct link that broke may be lost: it counts as unsent,
    /// so the next [`Outbox::due`] sends it again (through the router).
    pub(crate) fn path_lost(&mut self, to: &Name) {
        if let Some(stream) = self.streams.get_mut(to) {
            for u in &mut stream.unacked {
                u.sent_at = None;
            }
        }
    }

    /// Bytes held for unacknowledged messages.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The earliest time a message waiting to be acknowledged is due to go again, if one
    /// waits: a message not sent on this connection is due at once.
    pub(crate) fn next_due(&self, resend_after: Duration) -> Option<Instant> {
        self.streams
            .values()
            .flat_map(|s| s.unacked.iter())
            .map(|u| u.sent_at.map_or(Instant::ZERO, |t| t + resend_after))
            .min()
    }
}

/// What the recipient does with a sequenced message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// New and next in the stream: deliver it and acknowledge it.
    Deliver,
    /// Delivered before: acknowledge it again, do not deliver it.
    Duplicate,
    /// Its predecessor has not arrived: drop it; the sender will send both again.
    Gap,
}

/// The recipient's side: the last id delivered from each sender.
#[derive(Default)]
pub(crate) struct Seen {
    /// The last id delivered per stream: a sender's name and the id slot of its session
    /// (0 for its receiving session; others for extra sending sessions of the same key,
    /// such as a `lanmesh send` beside a `lanmesh listen`), with when it was last used.
    last: BTreeMap<(Name, u32), (u64, u64)>,
    uses: u64,
}

/// Streams of extra sending sessions remembered at most; the least recently used goes
/// first. Each one-shot `lanmesh send --ack` is one; a receiving session's stream (slot
/// 0) is never dropped this way.
const MAX_SENDER_STREAMS: usize = 4096;

impl Seen {
    /// Judges message `id` from `from`, whose predecessor in the stream is `prev`.
    pub(crate) fn check(&mut self, from: &Name, id: u64, prev: u64) -> Verdict {
        let key = (from.clone(), lanmesh_proto::handshake::slot_of(id));
        self.uses += 1;
        let last = self.last.get(&key).map(|(l, _)| *l);
        if last.is_some_and(|l| id <= l) {
            return Verdict::Duplicate;
        }
        if prev > last.unwrap_or(0) {
            return Verdict::Gap;
        }
        if last.is_none() && key.1 != 0 && self.last.len() >= MAX_SENDER_STREAMS {
            let oldest = self
                .last
                .iter()
                .filter(|((_, slot), _)| *slot != 0)
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.last.remove(&k);
            }
        }
        match self.last.get_mut(&key) {
            Some(entry) => *entry = (id, self.uses),
            // A new stream: its key keeps its own copy of the name, not the record the
            // name was sliced out of.
            None => {
                self.last.insert((key.0.detached(), key.1), (id, self.uses));
            }
        }
        Verdict::Deliver
    }

    /// `from` left: its streams start from nothing.
    pub(crate) fn forget(&mut self, from: &Name) {
        self.last.retain(|(name, _), _| name != from);
    }

    /// `from`'s receiving session is a new process: its stream starts from nothing (its
    /// extra sending sessions keep theirs).
    pub(crate) fn restart(&mut self, from: &Name) {
        self.last.remove(&(from.clone(), 0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use bytes::Bytes;
    use lanmesh_proto::frame::Message;

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn frame(to: &str, id: u64) -> Vec<Frame> {
        vec![Frame::Send(Message {
            peer: name(to),
            id,
            flags: 0,
            chunk: None,
            prev: None,
            payload: Bytes::from(id.to_string()),
        })]
    }

    fn prevs(frames: &[Frame]) -> Vec<(u64, u64)> {
        frames
            .iter()
            .map(|f| match f {
                Frame::Send(m) => (m.id, m.prev.unwrap()),
                _ => panic!("not a Send"),
            })
            .collect()
    }

    /// Feeds frames to a recipient and returns what it delivered.
    fn receive(seen: &mut Seen, frames: &[Frame]) -> Vec<u64> {
        let mut out = Vec::new();
        for f in frames {
            let Frame::Send(m) = f else { panic!() };
            if seen.check(&name("A"), m.id, m.prev.unwrap()) == Verdict::Deliver {
                out.push(m.id);
            }
        }
        out
    }

    #[test]
    fn messages_chain_to_their_predecessor() {
        let mut o = Outbox::default();
        let t = Instant::from_millis(1_000);
        let mut sent = o.push(&name("B"), 3, frame("B", 3), t, true);
        sent.extend(o.push(&name("B"), 7, frame("B", 7), t, true));
        sent.extend(o.push(&name("C"), 8, frame("C", 8), t, true));
        assert_eq!(prevs(&sent), vec![(3, 0), (7, 3), (8, 0)]);
    }

    #[test]
    fn a_lost_message_is_resent_with_its_followers_and_duplicates_drop() {
        let mut o = Outbox::default();
        let mut seen = Seen::default();
        let t = Instant::from_millis(1_000);
        let all: Vec<Vec<Frame>> = (1..=4)
            .map(|id| o.push(&name("B"), id, frame("B", id), t, true))
            .collect();
        // 1 arrives, 2 is lost, 3 and 4 arrive and are held back.
        assert_eq!(receive(&mut seen, &all[0]), vec![1]);
        assert_eq!(receive(&mut seen, &all[2]), Vec::<u64>::new());
        assert_eq!(receive(&mut seen, &all[3]), Vec::<u64>::new());
        assert!(
            !o.acked(&name("C"), 2),
            "an ack from another peer settles nothing"
        );
        assert!(o.acked(&name("B"), 1));
        // Not due before the resend interval…
        assert!(o.due(t, Duration::from_secs(1)).is_empty());
        // …then everything unacked goes again, in order.
        let again = o.due(t + Duration::from_secs(1), Duration::from_secs(1));
        assert_eq!(prevs(&again), vec![(2, 1), (3, 2), (4, 3)]);
        assert_eq!(receive(&mut seen, &again), vec![2, 3, 4]);
        // A second copy of all of it is only acknowledged.
        assert_eq!(receive(&mut seen, &again), Vec::<u64>::new());
        assert_eq!(seen.check(&name("A"), 4, 3), Verdict::Duplicate);
    }

    #[test]
    fn an_abandoned_message_leaves_the_chain() {
        let mut o = Outbox::default();
        let mut seen = Seen::default();
        let t = Instant::from_millis(1_000);
        let first = o.push(&name("B"), 1, frame("B", 1), t, true);
        let _lost = o.push(&name("B"), 2, frame("B", 2), t, true);
        let third = o.push(&name("B"), 3, frame("B", 3), t, true);
        assert_eq!(receive(&mut seen, &first), vec![1]);
        assert_eq!(receive(&mut seen, &third), Vec::<u64>::new());
        o.acked(&name("B"), 1);
        o.abandon(&name("B"), 2);
        let again = o.due(t, Duration::from_secs(1));
        assert_eq!(prevs(&again), vec![(3, 1)]);
        assert_eq!(receive(&mut seen, &again), vec![3]);
        let next = o.push(&name("B"), 4, frame("B", 4), t, true);
        assert_eq!(prevs(&next), vec![(4, 3)]);
        o.acked(&name("B"), 3);
        o.abandon(&name("B"), 4);
        let fifth = o.push(&name("B"), 5, frame("B", 5), t, true);
        assert_eq!(prevs(&fifth), vec![(5, 3)]);
        assert_eq!(
            o.bytes(),
            fifth.iter().map(Frame::encoded_len).sum::<usize>()
        );
    }

    #[test]
    fn a_new_recipient_gets_the_stream_from_zero() {
        let mut o = Outbox::default();
        let t = Instant::from_millis(1_000);
        o.push(&name("B"), 1, frame("B", 1), t, true);
        o.push(&name("B"), 2, frame("B", 2), t, true);
        o.acked(&name("B"), 1);
        o.restart(&name("B"));
        let again = o.due(t, Duration::from_secs(1));
        assert_eq!(prevs(&again), vec![(2, 0)]);
        let mut fresh = Seen::default();
        assert_eq!(receive(&mut fresh, &again), vec![2]);
    }

    #[test]
    fn messages_queued_while_away_go_after_the_welcome() {
        let mut o = Outbox::default();
        let t = Instant::from_millis(1_000);
        assert!(o.push(&name("B"), 1, frame("B", 1), t, false).is_empty());
        assert_eq!(prevs(&o.due(t, Duration::from_secs(60))), vec![(1, 0)]);
        o.connection_lost();
        assert_eq!(prevs(&o.due(t, Duration::from_secs(60))), vec![(1, 0)]);
    }

    #[test]
    fn a_forgotten_sender_starts_a_new_stream() {
        let mut seen = Seen::default();
        assert_eq!(seen.check(&name("A"), 5, 0), Verdict::Deliver);
        assert_eq!(seen.check(&name("A"), 9, 7), Verdict::Gap);
        seen.forget(&name("A"));
        assert_eq!(seen.check(&name("A"), 1, 0), Verdict::Deliver);
    }
}

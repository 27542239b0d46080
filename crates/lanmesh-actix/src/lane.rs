//! A way into a [`Link`](crate::Link) that does not pass through the owning actor.
//!
//! An actor's mailbox costs a message, a boxed future and a reply channel per call: a few
//! microseconds, which is the whole budget of a small message. A [`Lane`] is a queue of
//! frames behind a mutex, shared between the actor's link and the handles of its users.
//! A handle pushes frames while the lane is open and wakes the link's writer; the writer
//! moves them into the connection just before it seals, so they join the same records as
//! everything else. The actor's own frames take whatever the lane holds first, so the
//! order in which a user queued things is the order on the wire.
//!
//! Pushers wait while [`LANE_BYTES`] are queued ahead of the socket: a fast sender fills
//! the lane, the writer empties it into a few large records, and the sender goes on.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use lanmesh_proto::{Compression, Connection, Frame, ProtoError};

/// Bytes of frames a lane holds before pushers wait: enough for a few full records, few
/// enough that the router starts on the first ones while the sender makes the next.
pub const LANE_BYTES: usize = 256 * 1024;

/// The largest emptied queue kept for reuse (in frames): enough for a burst of small
/// messages without holding much memory after it.
const SPARE_FRAMES: usize = 1024;

/// Frames queued by handles for a link; see the module docs.
#[derive(Debug, Default)]
pub struct Lane {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// `Some` (with the connection's compression) while pushes are accepted.
    open: Option<Compression>,
    frames: VecDeque<Frame>,
    /// The queue the writer last emptied, kept with its room for the next batch.
    spare: VecDeque<Frame>,
    bytes: usize,
    /// The link's writer, waiting for frames.
    writer: Option<Waker>,
    /// Pushers waiting for room.
    pushers: Vec<Waker>,
}

/// What [`Lane::poll_push`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// The frames are queued.
    Queued,
    /// The lane is closed (no connection in the transport phase): nothing was queued.
    Closed,
}

impl Lane {
    /// A closed, empty lane.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing under this lock can leave the queue half-changed.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Accepts pushes; frames are meant for a connection with this compression.
    pub fn open(&self, compression: Compression) {
        self.lock().open = Some(compression);
    }

    /// Refuses pushes from now on, and lets waiting pushers find that out. Frames already
    /// queued stay for the next connection's writer.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.open = None;
        for w in inner.pushers.drain(..) {
            w.wake();
        }
    }

    /// The compression of the open connection, `None` when the lane is closed.
    pub fn compression(&self) -> Option<Compression> {
        self.lock().open
    }

    /// Queues `frames` together (the chunks of one message stay contiguous) once fewer
    /// than [`LANE_BYTES`] wait, and wakes the writer.
    pub fn poll_push(&self, cx: &mut Context<'_>, frames: &mut Vec<Frame>) -> Poll<Pushed> {
        let mut inner = self.lock();
        if inner.open.is_none() {
            return Poll::Ready(Pushed::Closed);
        }
        if inner.bytes >= LANE_BYTES {
            if !inner.pushers.iter().any(|w| w.will_wake(cx.waker())) {
                inner.pushers.push(cx.waker().clone());
            }
            return Poll::Pending;
        }
        for frame in frames.drain(..) {
            inner.bytes += frame.encoded_len();
            inner.frames.push_back(frame);
        }
        let writer = inner.writer.take();
        drop(inner);
        if let Some(w) = writer {
            w.wake();
        }
        Poll::Ready(Pushed::Queued)
    }

    /// Moves every queued frame into `conn`. With `writer`, an empty lane keeps that waker
    /// to call on the next push.
    pub(crate) fn drain_into(
        &self,
        conn: &mut Connection,
        writer: Option<&Waker>,
    ) -> Result<(), ProtoError> {
        let mut inner = self.lock();
        if inner.frames.is_empty() {
            if let Some(w) = writer {
                if !inner.writer.as_ref().is_some_and(|old| old.will_wake(w)) {
                    inner.writer = Some(w.clone());
                }
            }
            return Ok(());
        }
        let spare = std::mem::take(&mut inner.spare);
        let mut frames = std::mem::replace(&mut inner.frames, spare);
        inner.bytes = 0;
        let pushers = std::mem::take(&mut inner.pushers);
        drop(inner);
        for w in pushers {
            w.wake();
        }
        let sent = frames.iter().try_for_each(|frame| conn.send(frame));
        frames.clear();
        if frames.capacity() <= SPARE_FRAMES {
            self.lock().spare = frames;
        }
        sent
    }

    /// Bytes of frames queued.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::sync::Arc;

    use bytes::Bytes;
    use lanmesh_proto::Name;
    use lanmesh_proto::frame::Message;

    fn frame(id: u64, len: usize) -> Frame {
        Frame::Send(Message {
            peer: Name::new("b").unwrap(),
            id,
            flags: 0,
            chunk: None,
            prev: None,
            payload: Bytes::from(vec![0; len]),
        })
    }

    fn push(lane: &Lane, f: Frame) -> Poll<Pushed> {
        let waker = Waker::noop();
        lane.poll_push(&mut Context::from_waker(waker), &mut vec![f])
    }

    #[test]
    fn a_closed_lane_takes_nothing() {
        let lane = Lane::new();
        assert_eq!(push(&lane, frame(1, 8)), Poll::Ready(Pushed::Closed));
        assert_eq!(lane.queued_bytes(), 0);
        lane.open(Compression::None);
        assert_eq!(push(&lane, frame(1, 8)), Poll::Ready(Pushed::Queued));
        assert!(lane.queued_bytes() > 8);
        lane.close();
        assert_eq!(push(&lane, frame(2, 8)), Poll::Ready(Pushed::Closed));
    }

    #[test]
    fn a_full_lane_makes_pushers_wait_until_the_writer_drains_it() {
        let lane = Lane::new();
        lane.open(Compression::None);
        let mut n = 0;
        while push(&lane, frame(n, 1000)) == Poll::Ready(Pushed::Queued) {
            n += 1;
            assert!(n < 1000, "the lane never filled");
        }
        assert!(lane.queued_bytes() >= LANE_BYTES);
        let (mut a, _) = crate::test_support::pair();
        lane.drain_into(&mut a.connection, None).unwrap();
        assert_eq!(lane.queued_bytes(), 0);
        assert!(a.connection.queued_bytes() >= LANE_BYTES);
        assert_eq!(push(&lane, frame(n, 1000)), Poll::Ready(Pushed::Queued));
    }

    #[actix_rt::test]
    async fn closing_releases_a_waiting_pusher() {
        let lane = Arc::new(Lane::new());
        lane.open(Compression::None);
        while push(&lane, frame(0, 4000)) == Poll::Ready(Pushed::Queued) {}
        let waiting = {
            let lane = lane.clone();
            actix_rt::spawn(async move {
                poll_fn(|cx| lane.poll_push(cx, &mut vec![frame(9, 1)])).await
            })
        };
        tokio::task::yield_now().await;
        lane.close();
        assert_eq!(waiting.await.unwrap(), Pushed::Closed);
    }
}

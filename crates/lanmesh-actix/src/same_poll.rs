//! Starting an actor so that what it queues is written in the same poll.
//!
//! A [`StreamWriter`](crate::StreamWriter) runs as one of the futures in the actor's
//! context. Queueing a frame
//! used to wake the actor so the writer would run, but usually the writer runs later in
//! the very same poll anyway: actix handles the mailbox before it polls the futures, and
//! the reader is polled before the writer. The wake then only cost a second poll of the
//! whole actor, every timer and future in it, for nothing.
//!
//! [`start`] runs the actor's context inside a wrapper that marks the poll. While it is
//! marked, [`StreamWriter::wake`](crate::StreamWriter::wake) (and [`note_write`], for
//! queueing that happens elsewhere) only notes that a write is needed, and the
//! writer clears the note when it runs. If a note is left when the poll ends (something
//! queued after the writer had run), the wrapper wakes the actor then.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix::{Actor, Addr};

thread_local! {
    /// `None` outside a marked poll; inside one, whether a write is still needed.
    static MARK: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Starts `act` like `Actor::start`, with its polls marked (see the module docs).
pub fn start<A>(act: A) -> Addr<A>
where
    A: Actor<Context = actix::Context<A>>,
{
    let fut = actix::Context::new().into_future(act);
    let addr = fut.address();
    actix::spawn(Marked(fut));
    addr
}

/// Called when a frame is queued. Returns `true` when the caller must wake the writer
/// itself (no marked poll is running).
pub fn note_write() -> bool {
    MARK.with(|p| match p.get() {
        Some(_) => {
            p.set(Some(true));
            false
        }
        None => true,
    })
}

/// Called by the writer when it has taken everything queued so far.
pub fn wrote() {
    MARK.with(|p| {
        if p.get().is_some() {
            p.set(Some(false));
        }
    });
}

struct Marked<F>(F);

impl<F: Future<Output = ()> + Unpin> Future for Marked<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Actors do not poll each other, so the mark is this actor's alone.
        let mark = Mark::begin();
        let result = Pin::new(&mut self.0).poll(cx);
        let left = mark.end() == Some(true);
        if left && result.is_pending() {
            cx.waker().wake_by_ref();
        }
        result
    }
}

/// Puts back the mark that was there before, even when the actor's poll panics.
struct Mark {
    outer: Option<bool>,
    ended: bool,
}

impl Mark {
    fn begin() -> Self {
        Self {
            outer: MARK.with(|p| p.replace(Some(false))),
            ended: false,
        }
    }

    /// Ends the marked poll; returns the note it left.
    fn end(mut self) -> Option<bool> {
        self.ended = true;
        MARK.with(|p| p.replace(self.outer))
    }
}

impl Drop for Mark {
    fn drop(&mut self) {
        // Without `end`, that is, while unwinding: leave no mark behind.
        if !self.ended {
            MARK.with(|p| p.set(self.outer));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Polls, inside a marked poll, a future that queues (and maybe writes) once;
    /// returns how often the actor was woken.
    fn wakes(write_after_queueing: bool) -> usize {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut marked = Marked(std::future::poll_fn(move |_| {
            assert!(
                !note_write(),
                "inside a marked poll nobody wakes the writer"
            );
            if write_after_queueing {
                wrote();
            }
            Poll::<()>::Pending
        }));
        let _ = Pin::new(&mut marked).poll(&mut Context::from_waker(&waker));
        count.0.load(Ordering::SeqCst)
    }

    #[test]
    fn a_write_later_in_the_same_poll_needs_no_wake() {
        assert_eq!(wakes(true), 0);
    }

    #[test]
    fn a_frame_queued_after_the_writer_ran_wakes_the_actor_once() {
        assert_eq!(wakes(false), 1);
    }

    #[test]
    fn a_panicking_actor_leaves_no_mark_behind() {
        let caught = std::panic::catch_unwind(|| {
            let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
            let mut marked = Marked(std::future::poll_fn(|_| -> Poll<()> {
                panic!("a handler panicked");
            }));
            let _ = Pin::new(&mut marked).poll(&mut Context::from_waker(&waker));
        });
        assert!(caught.is_err());
        assert!(note_write(), "no marked poll is running any more");
    }

    #[test]
    fn outside_a_marked_poll_the_queueing_side_wakes_the_writer() {
        assert!(note_write());
        wrote();
        assert!(note_write());
    }
}

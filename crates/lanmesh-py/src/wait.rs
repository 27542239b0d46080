//! Waiting for the native peer from Python.
//!
//! The peer's futures (a send waiting for room, an ack, the next message) are polled on
//! the calling thread, which sleeps between wake-ups (`thread::park`): no hop through
//! another thread, and no GIL held while asleep. A wait without the GIL lasts at most
//! [`SLICE`]; between slices the thread takes the GIL back and lets Python run its signal
//! handlers, so Ctrl-C ends a blocking `recv` or `send_acked` with `KeyboardInterrupt`
//! within one slice.
//!
//! A small tokio runtime (one worker) serves what needs one: timers and blocking file
//! reads of file transfers, and the asyncio bridge (`aio`), whose futures run on it.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

/// The longest a wait runs without checking for signals.
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// Wakes a parked thread.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

thread_local! {
    static WAKER: Waker = Waker::from(Arc::new(Unpark(std::thread::current())));
}

static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();

/// The package's tokio runtime, started on first use.
pub(crate) fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    let rt = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("lanmesh-io")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start lanmesh's runtime: {e}"))
    });
    rt.as_ref().map_err(|e| PyRuntimeError::new_err(e.clone()))
}

/// Polls `fut` on this thread, asleep between wake-ups, until it is ready or `until`
/// passes (`None`: no limit).
pub(crate) fn poll_until<F: Future + ?Sized>(
    rt: &tokio::runtime::Runtime,
    mut fut: Pin<&mut F>,
    until: Option<Instant>,
) -> Option<F::Output> {
    let _context = rt.enter();
    WAKER.with(|waker| {
        let mut cx = Context::from_waker(waker);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return Some(v);
            }
            match until {
                None => std::thread::park(),
                Some(until) => {
                    let now = Instant::now();
                    if now >= until {
                        return None;
                    }
                    std::thread::park_timeout(until - now);
                }
            }
        }
    })
}

/// Polls `fut` once on this thread: its output if it is ready at once.
pub(crate) fn poll_once<F: Future + ?Sized>(
    rt: &tokio::runtime::Runtime,
    fut: Pin<&mut F>,
) -> Option<F::Output> {
    let _context = rt.enter();
    let mut cx = Context::from_waker(Waker::noop());
    match fut.poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// Runs `fut` to completion without the GIL, giving up after `timeout` (`Ok(None)`), and
/// raising `KeyboardInterrupt` (or whatever a signal handler raises) when a signal comes.
pub(crate) fn wait<F>(
    py: Python<'_>,
    fut: F,
    timeout: Option<Duration>,
) -> PyResult<Option<F::Output>>
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = runtime()?;
    let mut fut = pin!(fut);
    // First without letting go of the GIL: most sends, and a `recv` with messages
    // waiting, are ready at once.
    if let Some(v) = poll_once(rt, fut.as_mut()) {
        return Ok(Some(v));
    }
    wait_pinned(py, rt, fut, timeout)
}

/// [`wait_done`] for a future that needs no runtime until it has to wait (a send, which
/// only waits for room in the send queue): its first poll skips entering the runtime,
/// which took 6 % of the calling thread's time in a profile of 64 B sends.
pub(crate) fn wait_queued<F>(py: Python<'_>, fut: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let mut fut = pin!(fut);
    if let Poll::Ready(v) = fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        return Ok(v);
    }
    no_deadline(wait_pinned(py, runtime()?, fut, None)?)
}

/// The waiting part of [`wait`], for a future that was polled once already.
fn wait_pinned<F>(
    py: Python<'_>,
    rt: &'static tokio::runtime::Runtime,
    mut fut: Pin<&mut F>,
    timeout: Option<Duration>,
) -> PyResult<Option<F::Output>>
where
    F: Future + Send,
    F::Output: Send,
{
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let slice_end = Instant::now() + SLICE;
        let until = deadline.map_or(slice_end, |d| d.min(slice_end));
        let f = fut.as_mut();
        if let Some(v) = py.detach(move || poll_until(rt, f, Some(until))) {
            return Ok(Some(v));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        py.check_signals()?;
    }
}

/// [`wait`] without a time limit.
pub(crate) fn wait_done<F>(py: Python<'_>, fut: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    no_deadline(wait(py, fut, None)?)
}

/// The outcome of a wait that had no deadline.
fn no_deadline<T>(done: Option<T>) -> PyResult<T> {
    done.ok_or_else(|| PyRuntimeError::new_err("a wait without a deadline timed out"))
}

/// Seconds from Python (`None`: no limit) as a duration.
pub(crate) fn seconds(value: Option<f64>, what: &str) -> PyResult<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(s) if s.is_infinite() && s > 0.0 => Ok(None),
        Some(s) => Duration::try_from_secs_f64(s).map(Some).map_err(|_| {
            PyValueError::new_err(format!(
                "{what} must be a non-negative number of seconds, not {s}"
            ))
        }),
    }
}

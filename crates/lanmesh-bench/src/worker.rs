//! Bench threads. Each side of a scenario (sender, receiver, responder) runs on a thread
//! of its own with its own actix system, so a lanmesh peer's actor runs next to the loop
//! that drives it, and the two sides of a test use both cores as the server does.
//!
//! A worker hands its result back and then keeps its connections open until it is
//! dropped: a sender's last messages may still be on their way when it reports.
//!
//! The work runs as a task spawned on the system, as an application's would, not as the
//! future the thread blocks on: tokio polls for I/O once more (an `epoll_wait` with no
//! timeout) each time that root future is woken from its own thread, which a lanmesh
//! peer's actor does on every reply. The harness is the same for every system
//! measured (async-nats's own connection task runs outside the actix `LocalSet` and
//! still causes the extra poll).

use std::any::Any;
use std::future::Future;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::error::BenchError;

/// The longest any worker may take to report: every scenario is bounded well below it.
const REPORT_TIMEOUT: Duration = Duration::from_secs(120);

/// Connections and tasks a worker keeps alive after reporting.
pub(crate) type Keep = Box<dyn Any>;

/// A running bench thread.
pub(crate) struct Worker<T> {
    result: mpsc::Receiver<Result<T, BenchError>>,
    finish: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Worker<T> {
    /// Runs `f` on a new thread inside a new actix system.
    pub(crate) fn spawn<F, Fut>(name: &str, f: F) -> Result<Self, BenchError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(T, Keep), BenchError>> + 'static,
    {
        let (tx, result) = mpsc::sync_channel(1);
        let (finish, finished) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                actix_rt::System::new().block_on(async move {
                    // A panic in the work ends it like a failed thread.
                    let work = actix_rt::spawn(f());
                    match work.await.unwrap_or(Err(BenchError::Thread)) {
                        Ok((value, keep)) => {
                            let _ = tx.send(Ok(value));
                            let _ = finished.await;
                            drop(keep);
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })?;
        Ok(Self {
            result,
            finish: Some(finish),
            thread: Some(thread),
        })
    }

    /// Waits for the worker's result.
    pub(crate) fn result(&self) -> Result<T, BenchError> {
        match self.result.recv_timeout(REPORT_TIMEOUT) {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(BenchError::Client {
                system: "bench",
                text: format!("no result within {REPORT_TIMEOUT:?}"),
            }),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(BenchError::Thread),
        }
    }
}

impl<T> Drop for Worker<T> {
    fn drop(&mut self) {
        if let Some(f) = self.finish.take() {
            let _ = f.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A one-shot "I am ready" from a worker, so the next one starts only after it.
pub(crate) struct Ready {
    rx: mpsc::Receiver<()>,
}

/// The sending half of [`Ready`].
pub(crate) type ReadyTx = mpsc::SyncSender<()>;

impl Ready {
    pub(crate) fn new() -> (ReadyTx, Self) {
        let (tx, rx) = mpsc::sync_channel(1);
        (tx, Self { rx })
    }

    /// Waits for the signal; if the worker failed first, returns its error.
    pub(crate) fn wait<T: Send + 'static>(&self, worker: &Worker<T>) -> Result<(), BenchError> {
        match self.rx.recv_timeout(REPORT_TIMEOUT) {
            Ok(()) => Ok(()),
            Err(_) => match worker.result() {
                Err(e) => Err(e),
                Ok(_) => Err(BenchError::Thread),
            },
        }
    }
}

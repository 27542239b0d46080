//! The asyncio bridge behind `lanmesh.aio.Peer`.
//!
//! Each operation makes the native future and polls it once on the calling thread: a
//! send with room, or a `recv` with a message waiting, is done then and there, and the
//! coroutine returns without suspending. Otherwise the future moves to the package's
//! runtime, and the caller gets an asyncio future of its event loop, settled with
//! `loop.call_soon_threadsafe` when the native one completes — so it works in any
//! running loop. Cancelling the asyncio future aborts the native one; a message that was
//! taken just as its `recv` was cancelled is handed to `lost` instead of being dropped.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::dispatch::finalizing;
use crate::errors::{raise, to_py};
use crate::message::{PyMessage, PyUndelivered};
use crate::payload::{self, Payload};
use crate::peer::{ConnectOptions, Inner, PyPeer};
use crate::wait::{poll_once, runtime, seconds};

/// `lanmesh.aio._settle(future, ok, value, lost)`.
static SETTLE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn settle_fn(py: Python<'_>) -> PyResult<&Py<PyAny>> {
    SETTLE.get_or_try_init(py, || -> PyResult<_> {
        Ok(py.import("lanmesh.aio")?.getattr("_settle")?.unbind())
    })
}

/// Converts a native result into Python, with the GIL.
type Convert<T> = Box<dyn FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send>;

/// Aborts the native future when its asyncio future is cancelled.
#[pyclass(frozen, module = "lanmesh._native")]
struct AbortOnCancel(tokio::task::AbortHandle);

#[pymethods]
impl AbortOnCancel {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if future.call_method0("cancelled")?.is_truthy()? {
            self.0.abort();
        }
        Ok(())
    }
}

/// Runs `fut` for asyncio: `(True, value)` when it is done at once, else `(False,
/// asyncio_future)`.
fn start<F>(
    py: Python<'_>,
    event_loop: &Bound<'_, PyAny>,
    fut: F,
    convert: Convert<F::Output>,
    lost: Option<Py<PyAny>>,
) -> PyResult<(bool, Py<PyAny>)>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let rt = runtime()?;
    let mut fut = Box::pin(fut);
    if let Some(out) = poll_once(rt, fut.as_mut()) {
        return Ok((true, convert(py, out)?));
    }
    let settle = settle_fn(py)?.clone_ref(py);
    let future = event_loop.call_method0("create_future")?;
    let (target, event_loop) = (future.clone().unbind(), event_loop.clone().unbind());
    let task = rt.spawn(async move {
        let out = fut.await;
        if finalizing() {
            return;
        }
        Python::attach(|py| {
            let (ok, value) = match convert(py, out) {
                Ok(v) => (true, v),
                Err(e) => (false, e.into_value(py).into_any()),
            };
            let lost = lost.map_or_else(|| py.None(), |l| l.clone_ref(py));
            let call = event_loop.call_method1(
                py,
                "call_soon_threadsafe",
                (settle, target, ok, value, lost),
            );
            if let Err(e) = call {
                // The loop is closed: nobody is waiting any more.
                tracing::debug!(error = %e, "event loop gone before a lanmesh future settled");
            }
        });
    });
    future.call_method1("add_done_callback", (AbortOnCancel(task.abort_handle()),))?;
    Ok((false, future.unbind()))
}

fn inner(peer: &Bound<'_, PyPeer>) -> PyResult<Arc<Inner>> {
    Ok(peer.get().inner()?.clone())
}

fn id_of(py: Python<'_>, r: Result<u64, lanmesh::ClientError>) -> PyResult<Py<PyAny>> {
    Ok(r.map_err(to_py)?.into_pyobject(py)?.into_any().unbind())
}

/// Connects `peer` (an empty `_native.Peer`) from a coroutine.
#[pyfunction]
#[pyo3(signature = (peer, event_loop, name, router=None, *, mesh="lanmesh", mesh_key=None,
    identity=None, ack_timeout=10.0, reconnect=true, discovery_timeout=3.0, interface=None,
    save_dir=None, max_file_size=None, cipher="chacha20poly1305", inbox_capacity=65536,
        direct=true))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn aio_connect(
    py: Python<'_>,
    peer: Py<PyPeer>,
    event_loop: &Bound<'_, PyAny>,
    name: &str,
    router: Option<&str>,
    mesh: &str,
    mesh_key: Option<&Bound<'_, PyAny>>,
    identity: Option<PathBuf>,
    ack_timeout: f64,
    reconnect: bool,
    discovery_timeout: f64,
    interface: Option<String>,
    save_dir: Option<PathBuf>,
    max_file_size: Option<u64>,
    cipher: &str,
    inbox_capacity: usize,
    direct: bool,
) -> PyResult<(bool, Py<PyAny>)> {
    let options = ConnectOptions::new(
        name,
        router,
        mesh,
        mesh_key,
        identity,
        ack_timeout,
        reconnect,
        discovery_timeout,
        interface,
        save_dir,
        max_file_size,
        cipher,
        inbox_capacity,
        direct,
    )?;
    let convert: Convert<_> = Box::new(move |py, r: Result<Arc<Inner>, lanmesh::ClientError>| {
        let inner = r.map_err(to_py)?;
        peer.bind(py).get().set_inner(inner)?;
        Ok(py.None())
    });
    start(py, event_loop, options.connect(), convert, None)
}

/// `send`, as a coroutine's first step.
#[pyfunction]
pub(crate) fn aio_send(
    py: Python<'_>,
    peer: &Bound<'_, PyPeer>,
    event_loop: &Bound<'_, PyAny>,
    to: String,
    data: &Bound<'_, PyAny>,
) -> PyResult<(bool, Py<PyAny>)> {
    let inner = inner(peer)?;
    let payload = payload::encode(data)?;
    let fut = async move {
        match payload {
            Payload::Binary(b) => inner.peer.send(&to, b).await,
            Payload::Text(t) => inner.peer.send_text(&to, &t).await,
        }
    };
    start(py, event_loop, fut, Box::new(id_of), None)
}

/// `broadcast`.
#[pyfunction]
pub(crate) fn aio_broadcast(
    py: Python<'_>,
    peer: &Bound<'_, PyPeer>,
    event_loop: &Bound<'_, PyAny>,
    data: &Bound<'_, PyAny>,
) -> PyResult<(bool, Py<PyAny>)> {
    let inner = inner(peer)?;
    let payload = payload::encode(data)?;
    let fut = async move {
        match payload {
            Payload::Binary(b) => inner.peer.broadcast(b).await,
            Payload::Text(t) => inner.peer.broadcast_text(&t).await,
        }
    };
    start(py, event_loop, fut, Box::new(id_of), None)
}

/// `send_acked`.
#[pyfunction]
#[pyo3(signature = (peer, event_loop, to, data, timeout=None))]
pub(crate) fn aio_send_acked(
    py: Python<'_>,
    peer: &Bound<'_, PyPeer>,
    event_loop: &Bound<'_, PyAny>,
    to: String,
    data: &Bound<'_, PyAny>,
    timeout: Option<f64>,
) -> PyResult<(bool, Py<PyAny>)> {
    let inner = inner(peer)?;
    let payload = payload::encode(data)?;
    let limit = seconds(timeout, "timeout")?;
    let fut = async move {
        let acked = async {
            match payload {
                Payload::Binary(b) => inner.peer.send_acked(&to, b).await,
                Payload::Text(t) => inner.peer.send_text_acked(&to, &t).await,
            }
        };
        match limit {
            None => Ok(acked.await),
            Some(t) => tokio::time::timeout(t, acked).await.map_err(|_| (to, t)),
        }
    };
    let convert: Convert<_> = Box::new(|py, r| match r {
        Ok(r) => id_of(py, r),
        Err((to, t)) => Err(raise(
            "Timeout",
            format!("no acknowledgement from {to:?} within {t:?}"),
            Some(to),
        )),
    });
    start(py, event_loop, fut, convert, None)
}

/// `request`.
#[pyfunction]
#[pyo3(signature = (peer, event_loop, to, data, timeout=5.0))]
pub(crate) fn aio_request(
    py: Python<'_>,
    peer: &Bound<'_, PyPeer>,
    event_loop: &Bound<'_, PyAny>,
    to: String,
    data: &Bound<'_, PyAny>,
    timeout: f64,
) -> PyResult<(bool, Py<PyAny>)> {
    let inner = inner(peer)?;
    let payload = payload::encode(data)?;
    let limit = seconds(Some(timeout), "timeout")?.unwrap_or(Duration::MAX);
    let fut = async move {
        match payload {
            Payload::Binary(b) => inner.peer.request(&to, b, limit).await,
            Payload::Text(t) => inner.peer.request_text(&to, &t, limit).await,
        }
    };
    let convert: Convert<_> = Box::new(|py, r: Result<lanmesh::Message, lanmesh::ClientError>| {
        let reply = r.map_err(to_py)?;
        Ok(payload::decode(py, &reply.data, reply.flags)?.1)
    });
    start(py, event_loop, fut, convert, None)
}

/// `recv`: `None` after `timeout`; a message taken after its future was cancelled goes
/// to `lost`.
#[pyfunction]
#[pyo3(signature = (peer, event_loop, timeout, lost))]
pub(crate) fn aio_recv(
    py: Python<'_>,
    peer: &Bound<'_, PyPeer>,
    event_loop: &Bound<'_, PyAny>,
    timeout: Option<f64>,
    lost: Py<PyAny>,
) -> PyResult<(bool, Py<PyAny>)> {
    let inner = inner(peer)?;
    let limit = seconds(timeout, "timeout")?;
    let fut = async move {
        let next = inner.ahead.next(&inner.peer);
        match limit {
            None => Some(next.await),
            Some(t) => tokio::time::timeout(t, next).await.ok(),
        }
    };
    let convert: Convert<_> = Box::new(|py, r| match r {
        None => Ok(py.None()),
        Some(Ok(m)) => Ok(Py::new(py, PyMessage::new(py, m)?)?.into_any()),
        Some(Err(e)) => Err(to_py(e)),
    });
    start(py, event_loop, fut, convert, Some(lost))
}

/// `send_file`; `progress(done, total)` is called on the event loop.
#[pyfunction]
#[pyo3(signature = (peer, event_loop, to, path, progress=None))]
pub(crate) fn aio_send_file(
    py: Python<'_>,
    peer: &Bound<'_, PyPeer>,
    event_loop: &Bound<'_, PyAny>,
    to: String,
    path: PathBuf,
    progress: Option<Py<PyAny>>,
) -> PyResult<(bool, Py<PyAny>)> {
    let inner = inner(peer)?;
    let loop_ref = event_loop.clone().unbind();
    let next_tell = Mutex::new(Instant::now());
    let fut = async move {
        inner
            .peer
            .send_file_with_progress(&to, &path, move |p| {
                let Some(cb) = &progress else { return };
                let mut next = next_tell.lock().unwrap_or_else(PoisonError::into_inner);
                let now = Instant::now();
                if now < *next && p.acked < p.total {
                    return;
                }
                *next = now + Duration::from_millis(100);
                if finalizing() {
                    return;
                }
                Python::attach(|py| {
                    let call =
                        loop_ref.call_method1(py, "call_soon_threadsafe", (cb, p.acked, p.total));
                    if let Err(e) = call {
                        tracing::debug!(error = %e, "could not report file progress");
                    }
                });
            })
            .await
    };
    let convert: Convert<_> = Box::new(|py, r: Result<lanmesh::FileSent, lanmesh::ClientError>| {
        let sent = r.map_err(to_py)?;
        Ok(sent.bytes.into_pyobject(py)?.into_any().unbind())
    });
    start(py, event_loop, fut, convert, None)
}

/// `close`: the list of undelivered sends.
#[pyfunction]
pub(crate) fn aio_close(
    py: Python<'_>,
    peer: &Bound<'_, PyPeer>,
    event_loop: &Bound<'_, PyAny>,
) -> PyResult<(bool, Py<PyAny>)> {
    let inner = inner(peer)?;
    let fut = async move {
        let report = inner.peer.close().await;
        // Handed over once, as by the blocking peer's `close`.
        let first = !inner
            .reported
            .swap(true, std::sync::atomic::Ordering::AcqRel);
        if first {
            report.undelivered
        } else {
            Vec::new()
        }
    };
    let convert: Convert<_> = Box::new(|py, undelivered: Vec<lanmesh::Undelivered>| {
        let list = undelivered
            .iter()
            .map(|u| Py::new(py, PyUndelivered::new(u)))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(pyo3::types::PyList::new(py, list)?.into_any().unbind())
    });
    start(py, event_loop, fut, convert, None)
}

/// `wait`: `True` once closed, `False` after `timeout`.
#[pyfunction]
#[pyo3(signature = (peer, event_loop, timeout=None))]
pub(crate) fn aio_wait(
    py: Python<'_>,
    peer: &Bound<'_, PyPeer>,
    event_loop: &Bound<'_, PyAny>,
    timeout: Option<f64>,
) -> PyResult<(bool, Py<PyAny>)> {
    let inner = inner(peer)?;
    let limit = seconds(timeout, "timeout")?;
    let mut status = inner.peer.watch_status();
    let fut = async move {
        let closed = status.wait_for(|s| matches!(s, lanmesh::Status::Closed { .. }));
        match limit {
            None => closed.await.is_ok(),
            Some(t) => matches!(tokio::time::timeout(t, closed).await, Ok(Ok(_))),
        }
    };
    let convert: Convert<_> =
        Box::new(|py, closed: bool| Ok(closed.into_pyobject(py)?.to_owned().into_any().unbind()));
    start(py, event_loop, fut, convert, None)
}

/// `_reply` for a request answered on the event loop.
#[pyfunction]
pub(crate) fn aio_reply(
    py: Python<'_>,
    peer: &Bound<'_, PyPeer>,
    event_loop: &Bound<'_, PyAny>,
    request: &Bound<'_, PyMessage>,
    value: &Bound<'_, PyAny>,
) -> PyResult<(bool, Py<PyAny>)> {
    let inner = inner(peer)?;
    let Some(req) = request.get().request().cloned() else {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "only a request can be answered",
        ));
    };
    let data = payload::encode(value)?;
    let fut = async move { data.reply(&inner.peer, &req).await };
    start(py, event_loop, fut, Box::new(id_of), None)
}

/// `_decline` for a request answered on the event loop.
#[pyfunction]
pub(crate) fn aio_decline(
    py: Python<'_>,
    peer: &Bound<'_, PyPeer>,
    event_loop: &Bound<'_, PyAny>,
    request: &Bound<'_, PyMessage>,
) -> PyResult<(bool, Py<PyAny>)> {
    let inner = inner(peer)?;
    let Some(req) = request.get().request().cloned() else {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "only a request can be declined",
        ));
    };
    let fut = async move { inner.peer.decline(&req).await };
    let convert: Convert<_> = Box::new(|py, r: Result<(), lanmesh::ClientError>| {
        r.map_err(to_py)?;
        Ok(py.None())
    });
    start(py, event_loop, fut, convert, None)
}

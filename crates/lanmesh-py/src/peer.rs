//! `lanmesh._native.Peer`: the blocking peer, the base of `lanmesh.Peer`.
//!
//! Constructing one makes an empty shell; `lanmesh.Peer.__init__` connects it with
//! `_connect` (so that subclasses may have an `__init__` of their own), and the router
//! hands its in-process peer over with `_adopt`. Every call that can wait does so
//! without the GIL, in slices that let Ctrl-C through (see `wait`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use lanmesh::PeerBuilder;
use pyo3::exceptions::{PyStopIteration, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::ahead::Ahead;
use crate::dispatch::{Dispatcher, Follow};
use crate::errors::{raise, to_py};
use crate::message::{PyMessage, PyStatus, PyUndelivered};
use crate::payload::{self, Payload};
use crate::wait::{self, SLICE, seconds, wait, wait_done, wait_queued};

/// How long `close()` waits, after the report, for the connection to say it is closed.
const CLOSED_GRACE: Duration = Duration::from_secs(1);

/// How often `send_file` calls its progress function at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// A connected peer and its callback thread.
pub(crate) struct Inner {
    pub(crate) peer: lanmesh::Peer,
    /// Messages taken from the inbox ahead of `recv` (see `ahead`).
    pub(crate) ahead: Arc<Ahead>,
    name: String,
    callbacks: Mutex<Callbacks>,
    /// The close report was handed to Python: a later `close()` returns an empty list.
    pub(crate) reported: std::sync::atomic::AtomicBool,
}

/// The callback thread, once one is needed.
#[derive(Default)]
struct Callbacks {
    follow: Arc<Follow>,
    dispatcher: Option<Dispatcher>,
}

impl Inner {
    pub(crate) fn new(peer: lanmesh::Peer, name: String) -> Arc<Self> {
        Arc::new(Self {
            peer,
            ahead: Arc::default(),
            name,
            callbacks: Mutex::default(),
            reported: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn callbacks(&self) -> MutexGuard<'_, Callbacks> {
        // Each critical section leaves the state whole: a poisoned lock is still usable.
        self.callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A peer dropped without `close()` still leaves gracefully, in the background:
        // what it sent goes out first.
        if !self.peer.is_closed() {
            if let Ok(rt) = wait::runtime() {
                let peer = self.peer.clone();
                rt.spawn(async move {
                    peer.close().await;
                });
            }
        }
    }
}

/// The blocking peer (see the module docs).
#[pyclass(frozen, subclass, weakref, module = "lanmesh._native", name = "Peer")]
pub(crate) struct PyPeer {
    inner: OnceLock<Arc<Inner>>,
}

impl PyPeer {
    pub(crate) fn inner(&self) -> PyResult<&Arc<Inner>> {
        self.inner.get().ok_or_else(|| {
            raise(
                "Error",
                "this Peer is not connected (a subclass's __init__ must call \
                 super().__init__(name, ...))"
                    .to_owned(),
                None,
            )
        })
    }

    pub(crate) fn set_inner(&self, inner: Arc<Inner>) -> PyResult<()> {
        self.inner
            .set(inner)
            .map_err(|_| raise("Error", "this Peer is connected already".to_owned(), None))
    }
}

/// The options of `lanmesh.Peer(...)`, shared by the blocking and the asyncio peer.
#[derive(Debug)]
pub(crate) struct ConnectOptions {
    pub(crate) name: String,
    builder: PeerBuilder,
}

impl ConnectOptions {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
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
    ) -> PyResult<Self> {
        let mut b = lanmesh::Peer::builder(name)
            .mesh(mesh)
            .direct(direct)
            .reconnect(reconnect)
            .inbox_capacity(inbox_capacity);
        if let Some(t) = seconds(Some(ack_timeout), "ack_timeout")? {
            b = b.ack_timeout(t);
        }
        if let Some(t) = seconds(Some(discovery_timeout), "discovery_timeout")? {
            b = b.discovery_timeout(t);
        }
        if let Some(router) = router {
            // UltraSockets' addresses read "tcp://host:port".
            let router = router.strip_prefix("tcp://").unwrap_or(router);
            b = b.router(router);
        }
        let identity = match identity {
            Some(path) => lanmesh::load_or_create_identity(&path),
            None => lanmesh::Home::locate().and_then(|h| h.peer_identity()),
        }
        .map_err(|e| raise("Error", e.to_string(), None))?;
        b = b.identity(identity);
        if let Some(key) = mesh_key {
            b = b.mesh_key(parse_mesh_key(key)?);
        }
        b = b.cipher(match cipher {
            "chacha20poly1305" => lanmesh::proto::Cipher::ChaCha20Poly1305,
            "aes256gcm" => lanmesh::proto::Cipher::Aes256Gcm,
            other => {
                return Err(PyValueError::new_err(format!(
                    "cipher must be \"chacha20poly1305\" or \"aes256gcm\", not {other:?}"
                )));
            }
        });
        if let Some(i) = interface {
            b = b.interface(i);
        }
        if let Some(dir) = save_dir {
            std::fs::create_dir_all(&dir).map_err(|e| {
                raise(
                    "Error",
                    format!("cannot create the save directory {}: {e}", dir.display()),
                    None,
                )
            })?;
            b = b.save_dir(std::fs::canonicalize(&dir).unwrap_or(dir));
        }
        if let Some(max) = max_file_size {
            b = b.max_file_size(max);
        }
        // Checks the name now, with the GIL, for a clear error before any connecting.
        b.config().map_err(to_py)?;
        Ok(Self {
            name: name.to_owned(),
            builder: b,
        })
    }

    /// Connects, handshakes and joins.
    pub(crate) async fn connect(self) -> Result<Arc<Inner>, lanmesh::ClientError> {
        let peer = self.builder.connect().await?;
        Ok(Inner::new(peer, self.name))
    }
}

/// A mesh key from Python: 32 bytes, 64 hex digits, or the path of a key file.
pub(crate) fn parse_mesh_key(value: &Bound<'_, PyAny>) -> PyResult<[u8; 32]> {
    if let Ok(b) = value.cast::<PyBytes>() {
        return b.as_bytes().try_into().map_err(|_| {
            PyValueError::new_err(format!(
                "a mesh key is 32 bytes, not {}",
                b.as_bytes().len()
            ))
        });
    }
    if let Ok(s) = value.cast::<PyString>() {
        let s = s.to_cow()?;
        let trimmed = s.trim();
        if trimmed.len() == 64 && trimmed.bytes().all(|c| c.is_ascii_hexdigit()) {
            let mut key = [0u8; 32];
            hex::decode_to_slice(trimmed, &mut key)
                .map_err(|e| PyValueError::new_err(format!("mesh key: {e}")))?;
            return Ok(key);
        }
    }
    let path: PathBuf = value.extract().map_err(|_| {
        PyTypeError::new_err("mesh_key must be 32 bytes, 64 hex digits, or the path of a key file")
    })?;
    lanmesh::mesh_key_from_file(&path).map_err(|e| raise("InvalidArgument", e.to_string(), None))
}

/// Messages as Python objects.
pub(crate) fn messages(
    py: Python<'_>,
    batch: Vec<lanmesh::Message>,
) -> PyResult<Bound<'_, PyList>> {
    let items = batch
        .into_iter()
        .map(|m| Py::new(py, PyMessage::new(py, m)?))
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// The id of a send, or its error.
fn sent(r: Result<u64, lanmesh::ClientError>) -> PyResult<u64> {
    r.map_err(to_py)
}

/// `n` of `get(n)`: a positive count, or `"all"`.
fn count(n: &Bound<'_, PyAny>) -> PyResult<usize> {
    if let Ok(s) = n.extract::<String>() {
        if s == "all" {
            return Ok(usize::MAX);
        }
    } else if let Ok(k) = n.extract::<usize>() {
        if k > 0 {
            return Ok(k);
        }
    }
    Err(PyValueError::new_err(format!(
        "get() takes a positive number of messages or \"all\", not {}",
        n.repr()?
    )))
}

#[pymethods]
impl PyPeer {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyAny>>) -> Self {
        Self {
            inner: OnceLock::new(),
        }
    }

    /// Connects this peer (called by `lanmesh.Peer.__init__`).
    #[pyo3(signature = (name, router=None, *, mesh="lanmesh", mesh_key=None, identity=None,
        ack_timeout=10.0, reconnect=true, discovery_timeout=3.0, interface=None,
        save_dir=None, max_file_size=None, cipher="chacha20poly1305", inbox_capacity=65536,
        direct=true))]
    #[allow(clippy::too_many_arguments)]
    fn _connect(
        &self,
        py: Python<'_>,
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
    ) -> PyResult<()> {
        if self.inner.get().is_some() {
            return Err(raise(
                "Error",
                "this Peer is connected already".to_owned(),
                None,
            ));
        }
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
        let inner = wait_done(py, options.connect())?.map_err(to_py)?;
        self.set_inner(inner)
    }

    /// Takes over the in-process peer of `router` (for `lanmesh.Router.peer`).
    fn _adopt(&self, router: &crate::router::PyRouter) -> PyResult<()> {
        let (Some(peer), Some(name)) = (router.local.clone(), router.local_name()) else {
            return Err(raise(
                "Error",
                "the router was started without a name".to_owned(),
                None,
            ));
        };
        self.set_inner(Inner::new(peer, name))
    }

    /// This peer's name.
    #[getter]
    fn name(&self) -> PyResult<String> {
        Ok(self.inner()?.name.clone())
    }

    /// Sends `data` to `to`, at most once (a message the router cannot deliver is listed
    /// by `close()`). Returns the message id.
    fn send(&self, py: Python<'_>, to: &str, data: &Bound<'_, PyAny>) -> PyResult<u64> {
        let inner = self.inner()?;
        let peer = &inner.peer;
        match payload::encode(data)? {
            Payload::Binary(b) => sent(wait_queued(py, peer.send(to, b))?),
            Payload::Text(t) => sent(wait_queued(py, peer.send_text(to, &t))?),
        }
    }

    /// Sends `data` to `to` and waits until `to`'s client has it. Raises `UnknownPeer`,
    /// `Overloaded`, or `Timeout` after `timeout` seconds (default: the peer's
    /// `ack_timeout`). Returns the message id.
    #[pyo3(signature = (to, data, timeout=None))]
    fn send_acked(
        &self,
        py: Python<'_>,
        to: &str,
        data: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<u64> {
        let inner = self.inner()?;
        let peer = &inner.peer;
        let limit = seconds(timeout, "timeout")?;
        let done = match payload::encode(data)? {
            Payload::Binary(b) => wait(py, peer.send_acked(to, b), limit)?,
            Payload::Text(t) => wait(py, peer.send_text_acked(to, &t), limit)?,
        };
        match done {
            Some(r) => sent(r),
            None => Err(raise(
                "Timeout",
                format!(
                    "no acknowledgement from {to:?} within {:?}",
                    limit.unwrap_or_default()
                ),
                Some(to.to_owned()),
            )),
        }
    }

    /// Sends `data` to every other peer. Returns the message id.
    fn broadcast(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<u64> {
        let inner = self.inner()?;
        let peer = &inner.peer;
        match payload::encode(data)? {
            Payload::Binary(b) => sent(wait_queued(py, peer.broadcast(b))?),
            Payload::Text(t) => sent(wait_queued(py, peer.broadcast_text(&t))?),
        }
    }

    /// Sends `data` to `to` as a request and returns the reply's data (of the kind the
    /// responder returned). Raises `UnknownPeer`, `NoResponder` or `Timeout` — never
    /// hangs.
    #[pyo3(signature = (to, data, timeout=5.0))]
    fn request(
        &self,
        py: Python<'_>,
        to: &str,
        data: &Bound<'_, PyAny>,
        timeout: f64,
    ) -> PyResult<Py<PyAny>> {
        let inner = self.inner()?;
        let peer = &inner.peer;
        let limit = seconds(Some(timeout), "timeout")?.unwrap_or(Duration::MAX);
        let reply = match payload::encode(data)? {
            Payload::Binary(b) => wait_done(py, peer.request(to, b, limit))?,
            Payload::Text(t) => wait_done(py, peer.request_text(to, &t, limit))?,
        };
        let reply = reply.map_err(to_py)?;
        Ok(payload::decode(py, &reply.data, reply.flags)?.1)
    }

    /// Streams the file at `path` to `to` (which must accept files: `save_dir`) and
    /// returns its size once `to` has all of it on disk. `progress(done, total)` is
    /// called as the recipient confirms bytes (at most every 0.1 s, and at the end).
    #[pyo3(signature = (to, path, progress=None))]
    fn send_file(
        &self,
        py: Python<'_>,
        to: &str,
        path: PathBuf,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<u64> {
        let inner = self.inner()?;
        let latest: Arc<Mutex<Option<(u64, u64)>>> = Arc::default();
        let seen = latest.clone();
        let fut = inner.peer.send_file_with_progress(to, &path, move |p| {
            *seen.lock().unwrap_or_else(PoisonError::into_inner) = Some((p.acked, p.total));
        });
        let mut fut = std::pin::pin!(fut);
        let rt = wait::runtime()?;
        let mut told: Option<(u64, u64)> = None;
        let mut next_tell = Instant::now();
        let result = loop {
            let until = Instant::now() + SLICE.min(PROGRESS_EVERY);
            let f = fut.as_mut();
            let done = py.detach(move || wait::poll_until(rt, f, Some(until)));
            if let Some(cb) = &progress {
                let now = *latest.lock().unwrap_or_else(PoisonError::into_inner);
                if now.is_some() && now != told && (done.is_some() || Instant::now() >= next_tell) {
                    told = now;
                    next_tell = Instant::now() + PROGRESS_EVERY;
                    if let Some((acked, total)) = now {
                        cb.call1(py, (acked, total))?;
                    }
                }
            }
            if let Some(r) = done {
                break r;
            }
            py.check_signals()?;
        };
        let sent = result.map_err(to_py)?;
        if let Some(cb) = &progress {
            if told != Some((sent.bytes, sent.bytes)) {
                cb.call1(py, (sent.bytes, sent.bytes))?;
            }
        }
        Ok(sent.bytes)
    }

    /// The next message, waiting for one up to `timeout` seconds (default: no limit);
    /// `None` when none came in time. Raises `Disconnected` once the peer is closed and
    /// every message that arrived before was taken.
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<PyMessage>> {
        let inner = self.inner()?;
        let limit = seconds(timeout, "timeout")?;
        if let Some(m) = inner.ahead.next_ready(&inner.peer) {
            return Ok(Some(PyMessage::new(py, m)?));
        }
        match wait(py, inner.ahead.next(&inner.peer), limit)? {
            None => Ok(None),
            Some(Ok(m)) => Ok(Some(PyMessage::new(py, m)?)),
            Some(Err(e)) => Err(to_py(e)),
        }
    }

    /// Up to `n` waiting messages (`"all"`: every one), oldest first, without waiting;
    /// `None` when there are none (UltraSockets' `get`).
    fn get<'py>(
        &self,
        py: Python<'py>,
        n: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyList>>> {
        let n = count(n)?;
        let inner = self.inner()?;
        let batch = inner.ahead.take(&inner.peer, n);
        if batch.is_empty() {
            return Ok(None);
        }
        messages(py, batch).map(Some)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next message; the iteration ends when the peer is closed.
    fn __next__(&self, py: Python<'_>) -> PyResult<PyMessage> {
        let inner = self.inner()?;
        if let Some(m) = inner.ahead.next_ready(&inner.peer) {
            return PyMessage::new(py, m);
        }
        match wait_done(py, inner.ahead.next(&inner.peer))? {
            Ok(m) => PyMessage::new(py, m),
            Err(lanmesh::ClientError::Disconnected { .. }) => Err(PyStopIteration::new_err(())),
            Err(e) => Err(to_py(e)),
        }
    }

    /// Whether messages to `name` go over a direct link now (else through the router).
    fn is_direct(&self, name: &str) -> PyResult<bool> {
        Ok(self.inner()?.peer.is_direct(name))
    }

    /// The names of the peers in the mesh, this one included, sorted.
    fn peers(&self) -> PyResult<Vec<String>> {
        let mut names: Vec<String> = self
            .inner()?
            .peer
            .peers()
            .into_iter()
            .map(|p| p.name.as_str().to_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Messages waiting to be taken.
    #[getter]
    fn pending(&self) -> PyResult<usize> {
        let inner = self.inner()?;
        Ok(inner.ahead.len() + inner.peer.pending())
    }

    /// Where the connection stands (compares equal to `"connected"`, `"reconnecting"`,
    /// `"closed"`).
    #[getter]
    fn status(&self) -> PyResult<PyStatus> {
        Ok(PyStatus::new(&self.inner()?.peer.status()))
    }

    /// Whether the connection is closed for good.
    #[getter]
    fn closed(&self) -> PyResult<bool> {
        Ok(self.inner()?.peer.is_closed())
    }

    /// Stops taking messages from the router (UltraSockets' `close()`): they wait there,
    /// up to its budget. Messages already received stay readable.
    fn pause(&self) -> PyResult<()> {
        self.inner()?.peer.pause();
        Ok(())
    }

    /// Takes messages again after `pause()` (UltraSockets' `open()`).
    fn resume(&self) -> PyResult<()> {
        self.inner()?.peer.resume();
        Ok(())
    }

    /// Drops the connection at once; what was not sent yet is lost.
    fn terminate(&self) -> PyResult<()> {
        self.inner()?.peer.terminate();
        Ok(())
    }

    /// Leaves the mesh gracefully: everything sent before is handled by the router
    /// first. Returns the messages sent with `send` that could not be delivered (an
    /// empty list when all were). Waits for the callbacks to finish, unless called from
    /// one.
    #[pyo3(signature = (timeout=None))]
    fn close(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Vec<PyUndelivered>> {
        let inner = self.inner()?;
        let limit = seconds(timeout, "timeout")?;
        let report = wait(py, inner.peer.close(), limit)?;
        if report.is_none() {
            inner.peer.terminate();
        }
        // The report comes a moment before the connection says it is closed.
        wait(py, closed(&inner.peer), Some(CLOSED_GRACE))?;
        join_callbacks(py, inner, limit)?;
        let first = !inner
            .reported
            .swap(true, std::sync::atomic::Ordering::AcqRel);
        Ok(report
            .filter(|_| first)
            .map(|r| r.undelivered.iter().map(PyUndelivered::new).collect())
            .unwrap_or_default())
    }

    /// Blocks until the peer is closed (by `close()`, `terminate()`, the router, or a
    /// callback) and its callbacks have finished, or `timeout` seconds pass. Returns
    /// whether it is closed.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let inner = self.inner()?;
        let limit = seconds(timeout, "timeout")?;
        if wait(py, closed(&inner.peer), limit)?.is_none() {
            return Ok(false);
        }
        join_callbacks(py, inner, None)?;
        Ok(true)
    }

    /// Starts or changes what the callback thread follows; `handler(kind, arg)` gets each
    /// event (see `lanmesh.Peer._dispatch`).
    #[pyo3(signature = (handler, *, messages, membership, status))]
    fn _follow(
        &self,
        handler: Py<PyAny>,
        messages: bool,
        membership: bool,
        status: bool,
    ) -> PyResult<()> {
        use std::sync::atomic::Ordering::Release;
        let inner = self.inner()?;
        let mut cb = inner.callbacks();
        cb.follow.messages.store(messages, Release);
        cb.follow.membership.store(membership, Release);
        cb.follow.status.store(status, Release);
        cb.follow.changed();
        if cb.dispatcher.is_none() {
            let d = Dispatcher::start(
                inner.peer.clone(),
                inner.ahead.clone(),
                handler,
                cb.follow.clone(),
            )
            .map_err(|e| {
                raise(
                    "Error",
                    format!("cannot start the callback thread: {e}"),
                    None,
                )
            })?;
            cb.dispatcher = Some(d);
        }
        Ok(())
    }

    /// Sends requests to the callback thread (`on`) or answers them with `NoResponder`.
    fn _respond(&self, py: Python<'_>, on: bool) -> PyResult<()> {
        let inner = self.inner()?;
        if !on {
            return wait_done(py, inner.peer.stop_responding())?.map_err(to_py);
        }
        let cb = inner.callbacks();
        if cb.dispatcher.is_none() {
            return Err(raise(
                "Error",
                "respond() needs the callback thread".to_owned(),
                None,
            ));
        }
        cb.follow.respond(&inner.peer);
        Ok(())
    }

    /// Answers `request` with `value` (any kind `send` takes).
    fn _reply(
        &self,
        py: Python<'_>,
        request: &PyMessage,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        let inner = self.inner()?;
        let Some(req) = request.request() else {
            return Err(PyValueError::new_err("only a request can be answered"));
        };
        let data = payload::encode(value)?;
        sent(wait_done(py, data.reply(&inner.peer, req))?)
    }

    /// Tells the sender of `request` that there is no answer (`NoResponder`).
    fn _decline(&self, py: Python<'_>, request: &PyMessage) -> PyResult<()> {
        let inner = self.inner()?;
        let Some(req) = request.request() else {
            return Err(PyValueError::new_err("only a request can be declined"));
        };
        wait_done(py, inner.peer.decline(req))?.map_err(to_py)
    }

    /// Closes the peer for the interpreter's exit: gracefully within `timeout` seconds,
    /// then at once; the callback thread is stopped.
    fn _shutdown(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        let Some(inner) = self.inner.get() else {
            return Ok(());
        };
        let limit = seconds(Some(timeout), "timeout")?;
        if !inner.peer.is_closed() && wait(py, inner.peer.close(), limit)?.is_none() {
            inner.peer.terminate();
        }
        if join_callbacks(py, inner, limit).is_err() {
            if let Some(d) = &inner.callbacks().dispatcher {
                d.stop();
            }
        }
        Ok(())
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        if self.inner.get().is_some() {
            self.close(py, None)?;
        }
        Ok(false)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let class = slf.get_type().qualname()?;
        Ok(match slf.get().inner.get() {
            Some(inner) => format!(
                "<{class} {:?} {}>",
                inner.name,
                PyStatus::new(&inner.peer.status()).describe()
            ),
            None => format!("<{class} (not connected)>"),
        })
    }
}

/// Resolves once `peer`'s connection is closed for good.
fn closed(peer: &lanmesh::Peer) -> impl std::future::Future<Output = ()> + Send + use<> {
    let mut status = peer.watch_status();
    async move {
        let _ = status
            .wait_for(|s| matches!(s, lanmesh::Status::Closed { .. }))
            .await;
    }
}

/// Waits for the callback thread to finish (unless this is it), at most `limit`.
fn join_callbacks(py: Python<'_>, inner: &Inner, limit: Option<Duration>) -> PyResult<()> {
    let done = {
        let mut cb = inner.callbacks();
        match &mut cb.dispatcher {
            Some(d) if !d.is_current() => d.take_done(),
            _ => None,
        }
    };
    let Some(done) = done else {
        return Ok(());
    };
    if wait(py, done, limit)?.is_none() {
        return Err(raise(
            "Timeout",
            "the callbacks did not finish in time".to_owned(),
            None,
        ));
    }
    if let Some(d) = &mut inner.callbacks().dispatcher {
        d.join();
    }
    Ok(())
}

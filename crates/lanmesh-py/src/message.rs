//! What a Python peer hands its application: `Message`, `Status` and `Undelivered`.

use pyo3::exceptions::{PyIndexError, PyUnicodeDecodeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

use crate::payload::{self, Kind};

/// A message received from another peer.
///
/// `sender`, `data` and `id` are also its three items, so UltraSockets' `[name,
/// message, serial]` entries keep working: `sender, data, id = msg`, `msg[1]`.
#[pyclass(frozen, module = "lanmesh._native", name = "Message")]
pub(crate) struct PyMessage {
    sender: Py<PyString>,
    data: Py<PyAny>,
    id: u64,
    flags: u8,
    kind: Kind,
    /// Requests keep the native message, to be answered with it.
    request: Option<lanmesh::Message>,
}

impl PyMessage {
    /// The Python form of `msg`.
    pub(crate) fn new(py: Python<'_>, msg: lanmesh::Message) -> PyResult<Self> {
        let (kind, data) = payload::decode(py, &msg.data, msg.flags)?;
        let request = msg.is_request().then(|| lanmesh::Message {
            data: bytes::Bytes::new(),
            ..msg.clone()
        });
        Ok(Self {
            sender: PyString::new(py, msg.from.as_str()).unbind(),
            data,
            id: msg.id,
            flags: msg.flags,
            kind,
            request,
        })
    }

    /// The native request this message is, if it is one.
    pub(crate) fn request(&self) -> Option<&lanmesh::Message> {
        self.request.as_ref()
    }

    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(
            py,
            [
                self.sender.bind(py).clone().into_any(),
                self.data.bind(py).clone(),
                self.id.into_pyobject(py)?.into_any(),
            ],
        )
    }
}

#[pymethods]
impl PyMessage {
    /// The sender's name (as the router saw it: a peer cannot claim another's name).
    #[getter]
    fn sender(&self, py: Python<'_>) -> Py<PyString> {
        self.sender.clone_ref(py)
    }

    /// The payload, of the kind it was sent as: `bytes`, `str`, or the JSON value.
    #[getter]
    fn data(&self, py: Python<'_>) -> Py<PyAny> {
        self.data.clone_ref(py)
    }

    /// The sender's serial number for this message.
    #[getter]
    fn id(&self) -> u64 {
        self.id
    }

    /// `"bytes"`, `"text"`, `"json"` or `"file"` (the notice of a received file).
    #[getter]
    fn kind(&self) -> &'static str {
        self.kind.as_str()
    }

    /// Whether it was broadcast to every peer.
    #[getter]
    fn is_broadcast(&self) -> bool {
        self.flags & lanmesh::proto::frame::flags::BROADCAST != 0
    }

    /// Whether it is a request (seen by `respond` handlers).
    #[getter]
    fn is_request(&self) -> bool {
        self.request.is_some()
    }

    /// For the notice of a received file: `{"file", "bytes", "path"}`; else `None`.
    #[getter]
    fn file(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        (self.kind == Kind::File).then(|| self.data.clone_ref(py))
    }

    /// The payload as text: a `str` as it is, bytes decoded as UTF-8 (`UnicodeDecodeError`
    /// if they are not), a JSON value as its JSON text.
    fn text<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let data = self.data.bind(py);
        match self.kind {
            Kind::Text => Ok(data.clone()),
            Kind::Bytes => {
                let bytes = data.cast::<PyBytes>()?.as_bytes();
                match std::str::from_utf8(bytes) {
                    Ok(s) => Ok(PyString::new(py, s).into_any()),
                    Err(e) => Err(PyUnicodeDecodeError::new_utf8(py, bytes, e)?.into()),
                }
            }
            Kind::Json | Kind::File => payload::encoder(py)?.call1((data,)),
        }
    }

    /// The payload as a JSON value: a JSON message's value, or text and bytes parsed as
    /// JSON (`ValueError` when they are not JSON).
    fn json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let data = self.data.bind(py);
        match self.kind {
            Kind::Json | Kind::File => Ok(data.clone()),
            Kind::Text | Kind::Bytes => payload::loads(py)?.call1((data,)),
        }
    }

    fn __len__(&self) -> usize {
        3
    }

    fn __getitem__<'py>(&self, py: Python<'py>, index: isize) -> PyResult<Bound<'py, PyAny>> {
        let i = if index < 0 { index + 3 } else { index };
        match i {
            0 => Ok(self.sender.bind(py).clone().into_any()),
            1 => Ok(self.data.bind(py).clone()),
            2 => Ok(self.id.into_pyobject(py)?.into_any()),
            _ => Err(PyIndexError::new_err(
                "a Message has 3 items: sender, data, id",
            )),
        }
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.items(py)?.into_any().try_iter()?.into_any())
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        match other.cast::<PyMessage>() {
            Ok(o) => {
                let o = o.get();
                Ok(self.id == o.id
                    && self.sender.bind(py).as_any().eq(o.sender.bind(py))?
                    && self.data.bind(py).eq(o.data.bind(py))?)
            }
            Err(_) => Ok(false),
        }
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Message(sender={}, id={}, data={})",
            self.sender.bind(py).repr()?,
            self.id,
            self.data.bind(py).repr()?
        ))
    }
}

/// Where the connection to the router stands. Compares equal to its `state` string:
/// `peer.status == "connected"`.
#[pyclass(frozen, module = "lanmesh._native", name = "Status")]
pub(crate) struct PyStatus {
    state: &'static str,
    router: Option<String>,
    attempt: Option<u32>,
    reason: Option<String>,
}

impl PyStatus {
    pub(crate) fn new(status: &lanmesh::Status) -> Self {
        let mut s = Self {
            state: "connecting",
            router: None,
            attempt: None,
            reason: None,
        };
        match status {
            lanmesh::Status::Connecting => {}
            lanmesh::Status::Connected { router } => {
                s.state = "connected";
                s.router = Some(router.clone());
            }
            lanmesh::Status::Reconnecting { attempt, reason } => {
                s.state = "reconnecting";
                s.attempt = Some(*attempt);
                s.reason = Some(reason.clone());
            }
            lanmesh::Status::Closed { reason } => {
                s.state = "closed";
                s.reason = Some(reason.clone());
            }
            _ => s.state = "unknown",
        }
        s
    }

    /// One line: `connected to 127.0.0.1:7400`, `closed: left`.
    pub(crate) fn describe(&self) -> String {
        match (self.state, &self.router, self.attempt, &self.reason) {
            ("connected", Some(r), _, _) => format!("connected to {r}"),
            ("reconnecting", _, Some(a), Some(why)) => {
                format!("reconnecting (attempt {a}): {why}")
            }
            (state, _, _, Some(why)) => format!("{state}: {why}"),
            (state, ..) => state.to_owned(),
        }
    }
}

#[pymethods]
impl PyStatus {
    /// `"connecting"`, `"connected"`, `"reconnecting"` or `"closed"`.
    #[getter]
    fn state(&self) -> &'static str {
        self.state
    }

    /// The router's address, when connected.
    #[getter]
    fn router(&self) -> Option<String> {
        self.router.clone()
    }

    /// Which reconnection attempt is under way, when reconnecting.
    #[getter]
    fn attempt(&self) -> Option<u32> {
        self.attempt
    }

    /// Why the connection was lost or closed.
    #[getter]
    fn reason(&self) -> Option<String> {
        self.reason.clone()
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        if let Ok(s) = other.extract::<String>() {
            return s == self.state;
        }
        match other.cast::<PyStatus>() {
            Ok(o) => {
                let o = o.get();
                self.state == o.state
                    && self.router == o.router
                    && self.attempt == o.attempt
                    && self.reason == o.reason
            }
            Err(_) => false,
        }
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.state.hash(&mut h);
        h.finish()
    }

    fn __str__(&self) -> String {
        self.describe()
    }

    fn __repr__(&self) -> String {
        format!("Status({:?})", self.describe())
    }
}

/// A message sent with `send` that the router could not deliver (listed by `close()`).
#[pyclass(frozen, module = "lanmesh._native", name = "Undelivered")]
pub(crate) struct PyUndelivered {
    to: String,
    id: u64,
    reason: &'static str,
}

impl PyUndelivered {
    pub(crate) fn new(u: &lanmesh::Undelivered) -> Self {
        use lanmesh::proto::NackReason;
        let reason = match u.reason {
            NackReason::UnknownPeer => "unknown peer",
            NackReason::Overloaded => "overloaded",
            NackReason::TooLarge => "too large",
            NackReason::NoResponder => "no responder",
            NackReason::Unreadable => "unreadable",
            _ => "refused",
        };
        Self {
            to: u.to.as_str().to_owned(),
            id: u.id,
            reason,
        }
    }
}

#[pymethods]
impl PyUndelivered {
    /// The intended recipient.
    #[getter]
    fn to(&self) -> String {
        self.to.clone()
    }

    /// The message id (what `send` returned).
    #[getter]
    fn id(&self) -> u64 {
        self.id
    }

    /// Why: `"unknown peer"`, `"overloaded"`, `"too large"`, ...
    #[getter]
    fn reason(&self) -> &'static str {
        self.reason
    }

    fn __repr__(&self) -> String {
        format!(
            "Undelivered(to={:?}, id={}, reason={:?})",
            self.to, self.id, self.reason
        )
    }
}

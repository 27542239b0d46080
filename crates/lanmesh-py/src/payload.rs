//! What Python values become on the wire, and back.
//!
//! The wire knows two kinds of payload: bytes, and text (the `TEXT` flag). Python sends
//! three, and the receiver gets back the kind that was sent:
//!
//! | Python value | on the wire |
//! |---|---|
//! | `bytes`, `bytearray`, `memoryview` | the bytes, no flag |
//! | `str` | its UTF-8, `TEXT` |
//! | anything else JSON can encode (`dict`, `list`, `int`, `float`, `bool`, `None`) | `TEXT`: a tab, then the compact JSON |
//!
//! The tab marks JSON apart from text. JSON parsers skip it as white space, so a Rust
//! peer's `msg.json()`, a browser's `JSON.parse` and `jq` read such a message as it is,
//! and `lanmesh listen` shows the JSON after a tab (`--json`: `"data":"\t{...}"`). A `str`
//! that itself starts with a tab is sent as a JSON string, so it still comes back a `str`.
//! Text from elsewhere (the CLI, a browser, `send_json` in Rust) that starts with a tab
//! and parses as JSON is read as JSON; any other text is a `str`.

use bytes::Bytes;
use lanmesh::proto::frame::flags;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyMemoryView, PyString};

/// What starts a JSON payload.
pub(crate) const JSON_MARK: char = '\t';

/// A payload ready for the wire.
pub(crate) enum Payload {
    Binary(Bytes),
    Text(String),
}

impl Payload {
    /// Answers `request` with this payload, of the same kind: bytes stay bytes even when
    /// they happen to be UTF-8.
    pub(crate) async fn reply(
        self,
        peer: &lanmesh::Peer,
        request: &lanmesh::Message,
    ) -> Result<u64, lanmesh::ClientError> {
        match self {
            Self::Binary(b) => peer.reply_bytes(request, b).await,
            Self::Text(t) => peer.reply(request, Bytes::from(t.into_bytes())).await,
        }
    }
}

/// The kind of payload a received message carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Bytes,
    Text,
    Json,
    File,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Bytes => "bytes",
            Self::Text => "text",
            Self::Json => "json",
            Self::File => "file",
        }
    }
}

static ENCODE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static DECODE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `json.JSONEncoder(...).encode`: compact, strict (no NaN), non-ASCII kept as it is.
pub(crate) fn encoder(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    let f = ENCODE.get_or_try_init(py, || -> PyResult<_> {
        let kwargs = PyDict::new(py);
        kwargs.set_item("ensure_ascii", false)?;
        kwargs.set_item("allow_nan", false)?;
        kwargs.set_item("separators", (",", ":"))?;
        let encoder = py
            .import("json")?
            .getattr("JSONEncoder")?
            .call((), Some(&kwargs))?;
        Ok(encoder.getattr("encode")?.unbind())
    })?;
    Ok(f.bind(py))
}

/// `json.loads`.
pub(crate) fn loads(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    let f = DECODE.get_or_try_init(py, || -> PyResult<_> {
        Ok(py.import("json")?.getattr("loads")?.unbind())
    })?;
    Ok(f.bind(py))
}

/// The wire form of `value` (see the module docs); a `TypeError` naming its type for
/// anything that is neither bytes, text nor JSON.
pub(crate) fn encode(value: &Bound<'_, PyAny>) -> PyResult<Payload> {
    if let Ok(b) = value.cast::<PyBytes>() {
        return Ok(Payload::Binary(Bytes::copy_from_slice(b.as_bytes())));
    }
    if let Ok(s) = value.cast::<PyString>() {
        let text = s.to_cow()?;
        if !text.starts_with(JSON_MARK) {
            return Ok(Payload::Text(text.into_owned()));
        }
        return json(value);
    }
    if let Ok(b) = value.cast::<PyByteArray>() {
        return Ok(Payload::Binary(Bytes::from(b.to_vec())));
    }
    if value.is_instance_of::<PyMemoryView>() {
        let b = value.call_method0("tobytes")?;
        let b = b.cast::<PyBytes>()?;
        return Ok(Payload::Binary(Bytes::copy_from_slice(b.as_bytes())));
    }
    json(value)
}

fn json(value: &Bound<'_, PyAny>) -> PyResult<Payload> {
    let py = value.py();
    match encoder(py)?.call1((value,)) {
        Ok(s) => {
            let s = s.cast::<PyString>()?.to_cow()?;
            let mut text = String::with_capacity(1 + s.len());
            text.push(JSON_MARK);
            text.push_str(&s);
            Ok(Payload::Text(text))
        }
        Err(e) if e.is_instance_of::<PyTypeError>(py) => {
            let type_name = value
                .get_type()
                .name()
                .map_or_else(|_| "?".to_owned(), |n| n.to_string());
            Err(PyTypeError::new_err(format!(
                "cannot send a value of type {type_name}: lanmesh sends bytes, bytearray, \
                 memoryview, str, or what JSON encodes ({})",
                e.value(py)
            )))
        }
        Err(e) => Err(e),
    }
}

/// The Python value of a received payload and its kind.
pub(crate) fn decode(py: Python<'_>, data: &[u8], bits: u8) -> PyResult<(Kind, Py<PyAny>)> {
    if bits & flags::BLOB != 0 {
        // The notice of a completed file: JSON {"file","bytes","path"}.
        let value = loads(py)?.call1((PyBytes::new(py, data),))?;
        return Ok((Kind::File, value.unbind()));
    }
    if bits & flags::TEXT != 0 {
        if let Ok(text) = std::str::from_utf8(data) {
            if text.starts_with(JSON_MARK) {
                if let Ok(value) = loads(py)?.call1((text,)) {
                    // A str sent as JSON (one that starts with the mark) is text again.
                    let kind = if value.is_instance_of::<PyString>() {
                        Kind::Text
                    } else {
                        Kind::Json
                    };
                    return Ok((kind, value.unbind()));
                }
            }
            return Ok((Kind::Text, PyString::new(py, text).into_any().unbind()));
        }
    }
    Ok((Kind::Bytes, PyBytes::new(py, data).into_any().unbind()))
}

//! Native errors as Python exceptions.
//!
//! The exception classes live in `lanmesh/_errors.py` (so that they can have two bases,
//! such as `Timeout(Error, TimeoutError)`); this module picks the class for each
//! [`ClientError`] and raises it with the error's one-line text, the same line the CLI
//! prints after `lanmesh: `.

use lanmesh::ClientError;
use lanmesh::proto::ErrorCode;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// The exception for `err`, with the name of the peer it is about as `.peer` when there
/// is one.
pub(crate) fn to_py(err: ClientError) -> PyErr {
    let (class, peer): (&str, Option<&str>) = match &err {
        ClientError::UnknownPeer { name } => ("UnknownPeer", Some(name)),
        ClientError::Overloaded { name, .. } => ("Overloaded", Some(name)),
        ClientError::NoResponder { name } => ("NoResponder", Some(name)),
        ClientError::RequestTimeout { name, .. } | ClientError::AckTimeout { name, .. } => {
            ("Timeout", Some(name))
        }
        ClientError::HandshakeTimeout { .. } => ("Timeout", None),
        ClientError::TooLarge { .. } => ("TooLarge", None),
        ClientError::RefusedTooLarge { name, .. } => ("TooLarge", Some(name)),
        ClientError::Disconnected { .. } => ("Disconnected", None),
        ClientError::Connect { .. } => ("ConnectFailed", None),
        ClientError::Discovery(_) => ("NoRouter", None),
        ClientError::ClosedDuringHandshake => ("MeshKeyRefused", None),
        ClientError::Handshake(_) => ("HandshakeFailed", None),
        ClientError::Refused {
            code: ErrorCode::NameTaken,
            ..
        } => ("NameTaken", None),
        // A name the router's rules refuse is as invalid as one the client refuses.
        ClientError::Refused {
            code: ErrorCode::NameInvalid,
            ..
        } => ("InvalidArgument", None),
        ClientError::Refused { .. } => ("Refused", None),
        ClientError::RouterKeyChanged { .. } => ("RouterKeyChanged", None),
        ClientError::FileRefused { name, .. } => ("FileRefused", Some(name)),
        ClientError::FileFailed { name, .. } => ("FileFailed", Some(name)),
        ClientError::File { .. } => ("FileUnreadable", None),
        ClientError::Invalid(_) => ("InvalidArgument", None),
        ClientError::Unreadable { name, .. } | ClientError::UnreadableReply { name, .. } => {
            ("Error", Some(name))
        }
        _ => ("Error", None),
    };
    let peer = peer.map(str::to_owned);
    raise(class, err.to_string(), peer)
}

/// An exception of class `class` (a name in `lanmesh._errors`) with `text`.
pub(crate) fn raise(class: &str, text: String, peer: Option<String>) -> PyErr {
    Python::attach(|py| match build(py, class, &text, peer) {
        Ok(e) => e,
        Err(e) => e,
    })
}

fn build(py: Python<'_>, class: &str, text: &str, peer: Option<String>) -> PyResult<PyErr> {
    let errors = py.import("lanmesh._errors").map_err(|e| {
        PyRuntimeError::new_err(format!("{text} (and lanmesh._errors is missing: {e})"))
    })?;
    let exc = errors.getattr(class)?.call1((text,))?;
    if let Some(peer) = peer {
        exc.setattr("peer", peer)?;
    }
    Ok(PyErr::from_value(exc))
}

//! `lanmesh._native`: the native half of the `lanmesh` Python package.
//!
//! Python reaches the same peer and router as Rust programs do (the `lanmesh` facade);
//! nothing of the protocol is written again here. This crate only translates:
//!
//! * `peer`: `Peer`, the blocking peer (the base of `lanmesh.Peer`), whose waits let go
//!   of the GIL and stop for Ctrl-C (`wait`);
//! * `dispatch`: the one thread per peer that runs its callbacks, in order;
//! * `aio`: the asyncio bridge behind `lanmesh.aio.Peer`;
//! * `router`: `Router`, a router on a thread of this process;
//! * `ahead`: messages taken from the inbox in batches, handed out one `recv` at a time;
//! * `payload`: Python values to payloads and back (bytes, text, JSON);
//! * `message`: `Message`, `Status`, `Undelivered`;
//! * `errors`: native errors as the exceptions of `lanmesh._errors`.
//!
//! The Python side (`python/lanmesh/`) adds the callbacks' plumbing, context managers,
//! the asyncio class and the type stubs.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod ahead;
mod aio;
mod dispatch;
mod errors;
mod message;
mod payload;
mod peer;
mod router;
mod wait;

use pyo3::prelude::*;

/// Reports `error`, raised by the callback `callback`, through `sys.unraisablehook`
/// (printed to stderr by default; the peer carries on).
#[pyfunction]
fn report(py: Python<'_>, error: &Bound<'_, PyAny>, callback: &Bound<'_, PyAny>) {
    PyErr::from_value(error.clone()).write_unraisable(py, Some(callback));
}

/// Called at interpreter exit, after every peer and router was closed: from now on no
/// native thread calls into Python.
#[pyfunction]
fn _finalizing() {
    dispatch::FINALIZING.store(true, std::sync::atomic::Ordering::Release);
}

/// A new random mesh key, as the 64 hex digits `lanmesh keygen` prints.
#[pyfunction]
fn keygen() -> PyResult<String> {
    let key =
        lanmesh::generate_mesh_key().map_err(|e| errors::raise("Error", e.to_string(), None))?;
    Ok(lanmesh::mesh_key_to_text(&key))
}

#[pymodule(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("JSON_MARK", payload::JSON_MARK.to_string())?;
    m.add_class::<peer::PyPeer>()?;
    m.add_class::<router::PyRouter>()?;
    m.add_class::<message::PyMessage>()?;
    m.add_class::<message::PyStatus>()?;
    m.add_class::<message::PyUndelivered>()?;
    m.add_function(wrap_pyfunction!(report, m)?)?;
    m.add_function(wrap_pyfunction!(_finalizing, m)?)?;
    m.add_function(wrap_pyfunction!(keygen, m)?)?;
    m.add_function(wrap_pyfunction!(aio::aio_connect, m)?)?;
    m.add_function(wrap_pyfunction!(aio::aio_send, m)?)?;
    m.add_function(wrap_pyfunction!(aio::aio_broadcast, m)?)?;
    m.add_function(wrap_pyfunction!(aio::aio_send_acked, m)?)?;
    m.add_function(wrap_pyfunction!(aio::aio_request, m)?)?;
    m.add_function(wrap_pyfunction!(aio::aio_recv, m)?)?;
    m.add_function(wrap_pyfunction!(aio::aio_send_file, m)?)?;
    m.add_function(wrap_pyfunction!(aio::aio_close, m)?)?;
    m.add_function(wrap_pyfunction!(aio::aio_wait, m)?)?;
    m.add_function(wrap_pyfunction!(aio::aio_reply, m)?)?;
    m.add_function(wrap_pyfunction!(aio::aio_decline, m)?)?;
    Ok(())
}

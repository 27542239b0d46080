//! `lanmesh._native.Router`: a router in the Python process, on a thread of its own.
//!
//! The router's actors need an actix system: the thread runs one, starts the router on
//! it, hands back what Python needs (addresses, the in-process peer, the handle), and
//! waits for `stop()`, then shuts the router down there (peers are told why).

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};
use tokio::sync::oneshot;

use crate::errors::raise;
use crate::wait::{seconds, wait_done};

/// Where a router listens unless told otherwise (the CLI's default too).
const DEFAULT_LISTEN: &str = "0.0.0.0:7400";

/// What the router's thread reports once started.
struct Started {
    addrs: Vec<String>,
    http: Vec<String>,
    local: Option<lanmesh::Peer>,
    handle: lanmesh::RouterHandle,
}

/// The running router's thread.
struct Running {
    stop: oneshot::Sender<()>,
    done: oneshot::Receiver<()>,
    thread: JoinHandle<()>,
}

/// A router running in this process.
#[pyclass(frozen, subclass, weakref, module = "lanmesh._native", name = "Router")]
pub(crate) struct PyRouter {
    running: Mutex<Option<Running>>,
    addrs: Vec<String>,
    http: Vec<String>,
    mesh: String,
    pub(crate) local: Option<lanmesh::Peer>,
    local_name: Option<String>,
    handle: lanmesh::RouterHandle,
}

/// Listen addresses from Python: one string or several.
fn listen_addrs(value: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
    let Some(value) = value else {
        return Ok(vec![DEFAULT_LISTEN.to_owned()]);
    };
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(vec![s.to_cow()?.into_owned()]);
    }
    if let Ok(list) = value.cast::<PyList>() {
        return list.iter().map(|a| a.extract::<String>()).collect();
    }
    if let Ok(t) = value.cast::<PyTuple>() {
        return t.iter().map(|a| a.extract::<String>()).collect();
    }
    Err(PyTypeError::new_err(
        "listen must be an address (\"host:port\") or a list of them",
    ))
}

impl PyRouter {
    /// The in-process peer's name, when it has one.
    pub(crate) fn local_name(&self) -> Option<String> {
        self.local_name.clone()
    }
}

#[pymethods]
impl PyRouter {
    #[new]
    #[pyo3(signature = (listen=None, *, name=None, mesh="lanmesh", mesh_key=None, http=None,
        mdns=true, state_dir=None, grace=30.0, interface=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        listen: Option<&Bound<'_, PyAny>>,
        name: Option<String>,
        mesh: &str,
        mesh_key: Option<&Bound<'_, PyAny>>,
        http: Option<String>,
        mdns: bool,
        state_dir: Option<PathBuf>,
        grace: f64,
        interface: Option<String>,
    ) -> PyResult<Self> {
        let mut b = lanmesh::Router::builder().mesh(mesh).mdns(mdns);
        for addr in listen_addrs(listen)? {
            let addr = addr.strip_prefix("tcp://").unwrap_or(&addr).to_owned();
            b = b.listen(addr);
        }
        if let Some(g) = seconds(Some(grace), "grace")? {
            b = b.grace(g);
        }
        if let Some(n) = &name {
            b = b.name(n.clone());
        }
        if let Some(key) = mesh_key {
            b = b.mesh_key(crate::peer::parse_mesh_key(key)?);
        }
        if let Some(h) = http {
            b = b.http(h);
        }
        if let Some(i) = interface {
            b = b.interface(i);
        }
        if let Some(dir) = state_dir {
            // Like `lanmesh router`: the key lives with the name bindings, so that peers
            // pinning it and names bound to keys survive restarts.
            let identity = lanmesh::load_or_create_identity(&dir.join("identity"))
                .map_err(|e| raise("Error", e.to_string(), None))?;
            b = b.identity(identity).state_dir(dir);
        }
        let (started_tx, started_rx) = oneshot::channel::<Result<Started, String>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("lanmesh-router".into())
            .spawn(move || {
                let system = actix_rt::System::new();
                system.block_on(async move {
                    match b.start().await {
                        Err(e) => {
                            let _ = started_tx.send(Err(e.to_string()));
                        }
                        Ok(router) => {
                            let started = Started {
                                addrs: router.local_addrs().iter().map(|a| a.to_string()).collect(),
                                http: router.http_addrs().iter().map(|a| a.to_string()).collect(),
                                local: router.local_peer().cloned(),
                                handle: router.handle().clone(),
                            };
                            if started_tx.send(Ok(started)).is_ok() {
                                let _ = stop_rx.await;
                            }
                            router.shutdown().await;
                        }
                    }
                });
                let _ = done_tx.send(());
            })
            .map_err(|e| {
                raise(
                    "RouterFailed",
                    format!("cannot start the router's thread: {e}"),
                    None,
                )
            })?;
        let started = match wait_done(py, started_rx)? {
            Ok(Ok(s)) => s,
            Ok(Err(text)) => {
                let _ = thread.join();
                return Err(raise("RouterFailed", text, None));
            }
            Err(_) => {
                let _ = thread.join();
                return Err(raise(
                    "RouterFailed",
                    "the router's thread ended".to_owned(),
                    None,
                ));
            }
        };
        Ok(Self {
            running: Mutex::new(Some(Running {
                stop: stop_tx,
                done: done_rx,
                thread,
            })),
            addrs: started.addrs,
            http: started.http,
            mesh: mesh.to_owned(),
            local: started.local,
            local_name: name,
            handle: started.handle,
        })
    }

    /// The first TCP address it listens on, `"host:port"` (what peers pass as `router`).
    #[getter]
    fn address(&self) -> Option<String> {
        self.addrs.first().cloned()
    }

    /// Every TCP address it listens on.
    #[getter]
    fn addresses(&self) -> Vec<String> {
        self.addrs.clone()
    }

    /// The gateway's HTTP addresses (dashboard, WebSocket `/mesh`), when `http` was given.
    #[getter]
    fn http_addresses(&self) -> Vec<String> {
        self.http.clone()
    }

    /// The mesh it serves.
    #[getter]
    fn mesh(&self) -> String {
        self.mesh.clone()
    }

    /// The name the router's own peer joined under, if any.
    #[getter]
    fn name(&self) -> Option<String> {
        self.local_name.clone()
    }

    /// The names of the peers in the mesh, sorted.
    fn peers(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let handle = self.handle.clone();
        let peers = wait_done(py, async move { handle.peers().await })?
            .map_err(|e| raise("Error", e.to_string(), None))?;
        let mut names: Vec<String> = peers
            .into_iter()
            .map(|p| p.name.as_str().to_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Whether it is running.
    #[getter]
    fn running(&self) -> bool {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Stops the router: its own peer leaves, every other peer is disconnected with the
    /// reason, and it stops listening. Safe to call twice.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(running) = running else {
            return Ok(());
        };
        let _ = running.stop.send(());
        let _ = wait_done(py, running.done)?;
        let thread = running.thread;
        py.detach(move || {
            let _ = thread.join();
        });
        Ok(())
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.stop(py)?;
        Ok(false)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let class = slf.get_type().qualname()?;
        let r = slf.get();
        let state = if r.running() { "running" } else { "stopped" };
        Ok(format!(
            "<{class} mesh {:?} on {} {state}>",
            r.mesh,
            r.addrs.join(", ")
        ))
    }
}

impl Drop for PyRouter {
    fn drop(&mut self) {
        let running = self
            .running
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(r) = running {
            let _ = r.stop.send(());
        }
    }
}

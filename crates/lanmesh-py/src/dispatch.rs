//! The callback thread of a Python peer.
//!
//! Callbacks (`on_message`, `on_peer_joined`, `on_peer_left`, `on_status`, `on_join`,
//! `on_leave` and the `respond` handler) run on one thread per peer, one at a time, in
//! the order things happen:
//!
//! 1. `join` once, when the thread starts (the peer is in the mesh).
//! 2. Then, as they come: membership changes first, then status changes, requests, and
//!    messages (in batches, one GIL acquisition for all that are waiting).
//! 3. `leave` once the connection is closed for good and every message that arrived
//!    before it has been handed on (when messages are followed).
//!
//! The thread waits without the GIL and calls one Python function, the peer's
//! `_dispatch(kind, arg)`, which finds the user's callback and reports its exceptions.
//! A callback may send on the same peer: sends never need this thread. What the thread
//! follows can change while it runs (a callback set later): the flags are read anew
//! after every wake-up.

use std::collections::BTreeSet;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{JoinHandle, ThreadId};

use pyo3::prelude::*;
use tokio::sync::{Notify, broadcast, mpsc, oneshot};

use crate::ahead::{Ahead, BATCH};
use crate::message::{PyMessage, PyStatus};
use crate::wait::{poll_until, runtime};

/// Requests waiting for the callback thread; beyond this, requesters get `NoResponder`.
pub(crate) const REQUEST_QUEUE: usize = 1024;

/// What the thread follows; set from Python at any time.
#[derive(Default)]
pub(crate) struct Follow {
    pub(crate) messages: AtomicBool,
    pub(crate) membership: AtomicBool,
    pub(crate) status: AtomicBool,
    stop: AtomicBool,
    changed: Notify,
    /// A new queue of requests for the `respond` handler (`Peer::request_queue`), until
    /// the thread takes it.
    requests: Mutex<Option<mpsc::Receiver<lanmesh::Message>>>,
}

impl Follow {
    /// Tells the thread to look at the flags again.
    pub(crate) fn changed(&self) {
        self.changed.notify_one();
    }

    /// Hands the thread the requests of `peer`, for the `respond` handler.
    pub(crate) fn respond(&self, peer: &lanmesh::Peer) {
        let queue = peer.request_queue(REQUEST_QUEUE);
        *self.requests.lock().unwrap_or_else(PoisonError::into_inner) = Some(queue);
        self.changed();
    }

    fn take_requests(&self) -> Option<mpsc::Receiver<lanmesh::Message>> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// A running callback thread.
pub(crate) struct Dispatcher {
    pub(crate) follow: Arc<Follow>,
    thread: Option<JoinHandle<()>>,
    thread_id: ThreadId,
    done: Option<oneshot::Receiver<()>>,
}

impl Dispatcher {
    /// Starts the thread for `peer`, calling `handler(kind, arg)` for each event.
    pub(crate) fn start(
        peer: lanmesh::Peer,
        ahead: Arc<Ahead>,
        handler: Py<PyAny>,
        follow: Arc<Follow>,
    ) -> std::io::Result<Self> {
        let (done_tx, done_rx) = oneshot::channel();
        let thread_follow = follow.clone();
        // Subscribed here, before the thread starts, so that nothing that happens from
        // now on is missed, and nothing before is reported as new.
        let mut status = peer.watch_status();
        status.borrow_and_update();
        let sources = Sources {
            events: peer.peer_events(),
            status,
            requests: None,
            known: member_names(&peer),
            status_open: true,
            ahead,
        };
        let thread = std::thread::Builder::new()
            .name("lanmesh-callbacks".into())
            .spawn(move || {
                run(&peer, &handler, &thread_follow, sources);
                // The handler is let go with the GIL held, not in the reference pool.
                Python::attach(|_| drop(handler));
                let _ = done_tx.send(());
            })?;
        Ok(Self {
            follow,
            thread_id: thread.thread().id(),
            thread: Some(thread),
            done: Some(done_rx),
        })
    }

    /// Whether the calling thread is this dispatcher's (a callback is running).
    pub(crate) fn is_current(&self) -> bool {
        std::thread::current().id() == self.thread_id
    }

    /// Asks the thread to stop after the callback it may be running.
    pub(crate) fn stop(&self) {
        self.follow.stop.store(true, Ordering::Release);
        self.follow.changed();
    }

    /// The signal that the thread has finished, to wait on (taken once).
    pub(crate) fn take_done(&mut self) -> Option<oneshot::Receiver<()>> {
        self.done.take()
    }

    /// Joins the finished thread.
    pub(crate) fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One thing to hand to Python.
enum Event {
    Messages(Vec<lanmesh::Message>),
    Request(lanmesh::Message),
    /// Peers that joined (`true`) or left (`false`).
    Membership(Vec<(bool, String)>),
    Status(lanmesh::Status),
    /// Closed for good, for this reason.
    Closed(String),
    Stop,
}

/// What the thread listens to.
struct Sources {
    events: broadcast::Receiver<lanmesh::PeerEvent>,
    status: tokio::sync::watch::Receiver<lanmesh::Status>,
    /// Requests for the `respond` handler, while it is set.
    requests: Option<mpsc::Receiver<lanmesh::Message>>,
    /// The members the callbacks were told about.
    known: BTreeSet<String>,
    /// Until the status says `Closed`.
    status_open: bool,
    /// Messages `recv` took ahead, handed on first.
    ahead: Arc<Ahead>,
}

fn run(peer: &lanmesh::Peer, handler: &Py<PyAny>, follow: &Follow, mut sources: Sources) {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            Python::attach(|py| e.write_unraisable(py, Some(handler.bind(py))));
            return;
        }
    };
    Python::attach(|py| {
        call(py, handler, "join", py.None());
        let closed = loop {
            let next = next_event(peer, follow, &mut sources);
            let Some(event) = py.detach(|| poll_until(rt, pin!(next), None)) else {
                continue;
            };
            match event {
                Event::Stop => break None,
                Event::Closed(reason) => break Some(reason),
                Event::Messages(batch) => {
                    for m in batch {
                        call_with(py, handler, "message", |py| {
                            Ok(Py::new(py, PyMessage::new(py, m)?)?.into_any())
                        });
                    }
                }
                Event::Request(r) => call_with(py, handler, "request", |py| {
                    Ok(Py::new(py, PyMessage::new(py, r)?)?.into_any())
                }),
                Event::Membership(changes) => {
                    for (joined, name) in changes {
                        let kind = if joined { "peer_joined" } else { "peer_left" };
                        call_with(py, handler, kind, |py| {
                            Ok(name.into_pyobject(py)?.into_any().unbind())
                        });
                    }
                }
                Event::Status(s) => call_with(py, handler, "status", |py| {
                    Ok(Py::new(py, PyStatus::new(&s))?.into_any())
                }),
            }
        };
        if let Some(reason) = closed {
            call_with(py, handler, "leave", |py| {
                Ok(reason.into_pyobject(py)?.into_any().unbind())
            });
        }
    });
}

fn member_names(peer: &lanmesh::Peer) -> BTreeSet<String> {
    peer.peers()
        .into_iter()
        .map(|p| p.name.as_str().to_owned())
        .collect()
}

/// Calls `handler(kind, arg())`; what either raises is reported, never propagated.
fn call_with(
    py: Python<'_>,
    handler: &Py<PyAny>,
    kind: &str,
    arg: impl FnOnce(Python<'_>) -> PyResult<Py<PyAny>>,
) {
    let called = arg(py).and_then(|arg| handler.call1(py, (kind, arg)));
    if let Err(e) = called {
        e.write_unraisable(py, Some(handler.bind(py)));
    }
}

fn call(py: Python<'_>, handler: &Py<PyAny>, kind: &str, arg: Py<PyAny>) {
    call_with(py, handler, kind, |_| Ok(arg));
}

/// Waits for the next event worth a callback.
async fn next_event(peer: &lanmesh::Peer, follow: &Follow, src: &mut Sources) -> Event {
    loop {
        // Registered before the flags are read, so that no change is missed.
        let changed = follow.changed.notified();
        if follow.stop.load(Ordering::Acquire) {
            return Event::Stop;
        }
        if let Some(queue) = follow.take_requests() {
            src.requests = Some(queue);
        }
        let messages = follow.messages.load(Ordering::Acquire);
        let membership = follow.membership.load(Ordering::Acquire);
        let wants_status = follow.status.load(Ordering::Acquire);
        if messages {
            let ready = src.ahead.take(peer, BATCH);
            if !ready.is_empty() {
                return Event::Messages(ready);
            }
        }
        if !src.status_open && !messages {
            let reason = match &*src.status.borrow() {
                lanmesh::Status::Closed { reason } => reason.clone(),
                _ => "closed".to_owned(),
            };
            return Event::Closed(reason);
        }
        tokio::select! {
            biased;
            () = changed => {}
            event = src.events.recv(), if membership => match event {
                Ok(lanmesh::PeerEvent::Joined(info)) => {
                    let name = info.name.as_str().to_owned();
                    if src.known.insert(name.clone()) {
                        return Event::Membership(vec![(true, name)]);
                    }
                }
                Ok(lanmesh::PeerEvent::Left(name)) => {
                    let name = name.as_str().to_owned();
                    if src.known.remove(&name) {
                        return Event::Membership(vec![(false, name)]);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let changes = catch_up(peer, &mut src.known);
                    if !changes.is_empty() {
                        return Event::Membership(changes);
                    }
                }
                // The peer is gone; its status says so too.
                Err(broadcast::error::RecvError::Closed) => src.status_open = false,
            },
            changed = src.status.changed(), if src.status_open => match changed {
                Ok(()) => {
                    let now = src.status.borrow_and_update().clone();
                    if matches!(now, lanmesh::Status::Closed { .. }) {
                        src.status_open = false;
                    }
                    if wants_status {
                        return Event::Status(now);
                    }
                }
                Err(_) => src.status_open = false,
            },
            request = next_request(&mut src.requests), if src.requests.is_some() => match request {
                Some(request) => return Event::Request(request),
                // `stop_responding` let the queue go.
                None => src.requests = None,
            },
            msg = peer.recv(), if messages => match msg {
                Ok(m) => {
                    let mut batch = vec![m];
                    batch.extend(src.ahead.take(peer, BATCH - 1));
                    return Event::Messages(batch);
                }
                Err(e) => {
                    let reason = match e {
                        lanmesh::ClientError::Disconnected { reason } => reason,
                        other => other.to_string(),
                    };
                    return Event::Closed(reason);
                }
            },
        }
    }
}

async fn next_request(
    queue: &mut Option<mpsc::Receiver<lanmesh::Message>>,
) -> Option<lanmesh::Message> {
    match queue {
        Some(q) => q.recv().await,
        None => None,
    }
}

/// After missed membership events: the difference between what the callbacks were told
/// and the member list now.
fn catch_up(peer: &lanmesh::Peer, known: &mut BTreeSet<String>) -> Vec<(bool, String)> {
    let now = member_names(peer);
    let mut changes: Vec<(bool, String)> =
        known.difference(&now).map(|n| (false, n.clone())).collect();
    changes.extend(now.difference(known).map(|n| (true, n.clone())));
    *known = now;
    changes
}

/// Shared flag: the interpreter is exiting; nothing may call into Python any more.
pub(crate) static FINALIZING: AtomicBool = AtomicBool::new(false);

/// Whether the interpreter is exiting.
pub(crate) fn finalizing() -> bool {
    FINALIZING.load(Ordering::Acquire)
}

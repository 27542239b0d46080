//! Lifecycle hooks on the router side (tinyproto's server `pre_loop` / `conn_init` /
//! `conn_shutdown` / `post_loop`).
//!
//! 1. [`RouterHooks::on_start`] once every listener is bound and accepting.
//! 2. [`RouterHooks::on_peer_joined`] / [`RouterHooks::on_peer_left`] for each membership
//!    change, in order, exactly when the other peers are told (a reconnect that replaces
//!    a stale session of the same key is neither a leave nor a join).
//! 3. [`RouterHooks::on_shutdown`] once, after `RouterHandle::shutdown` has closed the
//!    sessions and every resulting `on_peer_left` has run.
//!
//! Membership hooks run on the `Router` actor, which is on the control path only (joins
//! and leaves, never messages): keep them quick and hand slow work to a task. A hook that
//! panics is logged and does not take the router down.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use lanmesh_proto::{Frame, Name, PeerInfo};

use crate::RouterHandle;

/// What a router does at each point of its life. Every method has an empty default.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use lanmesh_router::RouterHooks;
///
/// #[derive(Default)]
/// struct Census(AtomicUsize);
///
/// impl RouterHooks for Census {
///     fn on_peer_joined(&self, peer: &lanmesh_proto::PeerInfo) {
///         self.0.fetch_add(1, Ordering::Relaxed);
///         tracing::info!(peer = %peer.name, "hello");
///     }
/// }
/// ```
pub trait RouterHooks: Send + Sync + 'static {
    /// Once: the router is accepting connections.
    fn on_start(&self, router: &RouterHandle) {
        let _ = router;
    }

    /// A peer joined the mesh.
    fn on_peer_joined(&self, peer: &PeerInfo) {
        let _ = peer;
    }

    /// A peer left the mesh (closed, dropped, or disconnected by the router).
    fn on_peer_left(&self, name: &Name) {
        let _ = name;
    }

    /// Once: the router has shut down.
    fn on_shutdown(&self) {}
}

/// Lets the application keep a handle on its hooks' state: `.hooks(Arc::clone(&mine))`.
impl<T: RouterHooks> RouterHooks for Arc<T> {
    fn on_start(&self, router: &RouterHandle) {
        (**self).on_start(router);
    }
    fn on_peer_joined(&self, peer: &PeerInfo) {
        (**self).on_peer_joined(peer);
    }
    fn on_peer_left(&self, name: &Name) {
        (**self).on_peer_left(name);
    }
    fn on_shutdown(&self) {
        (**self).on_shutdown();
    }
}

impl std::fmt::Debug for dyn RouterHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouterHooks")
    }
}

/// Calls the hooks, if any, shielding the router from their panics.
#[derive(Clone, Default)]
pub(crate) struct Dispatch {
    hooks: Option<Arc<dyn RouterHooks>>,
    shut_down: Arc<AtomicBool>,
}

impl Dispatch {
    pub(crate) fn new(hooks: Option<Arc<dyn RouterHooks>>) -> Self {
        Self {
            hooks,
            shut_down: Arc::new(AtomicBool::new(false)),
        }
    }

    fn call(&self, what: &'static str, f: impl FnOnce(&dyn RouterHooks)) {
        let Some(hooks) = &self.hooks else { return };
        if catch_unwind(AssertUnwindSafe(|| f(hooks.as_ref()))).is_err() {
            tracing::error!(hook = what, "a router hook panicked; the router carries on");
        }
    }

    /// The membership event the other peers are about to see.
    pub(crate) fn membership(&self, event: Option<&Frame>) {
        match event {
            Some(Frame::PeerJoined(info)) => {
                self.call("on_peer_joined", |h| h.on_peer_joined(info))
            }
            Some(Frame::PeerLeft { name }) => self.call("on_peer_left", |h| h.on_peer_left(name)),
            _ => {}
        }
    }

    pub(crate) fn started(&self, router: &RouterHandle) {
        self.call("on_start", |h| h.on_start(router));
    }

    /// Calls `on_shutdown` the first time only.
    pub(crate) fn shut_down(&self) {
        if !self.shut_down.swap(true, Ordering::AcqRel) {
            self.call("on_shutdown", |h| h.on_shutdown());
        }
    }
}

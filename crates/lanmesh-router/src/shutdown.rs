//! Router shutdown: one signal that reaches every open session.
//!
//! Sessions register their address, and a shutdown sends each one a [`Stop`] message.
//! They do not each await a cancellation future: actix polls every future of an actor
//! whenever the actor wakes, so such a future would cost on every message forwarded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use actix::{Message, Recipient};
use tokio_util::sync::CancellationToken;

/// Tells a session that the router is shutting down.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Stop;

/// The shutdown signal and the sessions it must reach.
#[derive(Clone, Default)]
pub(crate) struct Shutdown {
    /// Awaited by the accept loops; cancelled first, so a session registering late
    /// sees it.
    token: CancellationToken,
    sessions: Arc<Mutex<HashMap<u64, Recipient<Stop>>>>,
}

impl Shutdown {
    /// Adds a session. Returns `false` when the shutdown has already begun: the
    /// session must then stop by itself.
    pub(crate) fn register(&self, id: u64, addr: Recipient<Stop>) -> bool {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, addr);
        !self.token.is_cancelled()
    }

    /// Removes a session that ended.
    pub(crate) fn unregister(&self, id: u64) {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    /// Stops accepting and tells every registered session to close.
    pub(crate) fn begin(&self) {
        self.token.cancel();
        let sessions =
            std::mem::take(&mut *self.sessions.lock().unwrap_or_else(PoisonError::into_inner));
        for addr in sessions.into_values() {
            addr.do_send(Stop);
        }
    }

    /// Whether [`Shutdown::begin`] was called.
    pub(crate) fn has_begun(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes once the shutdown begins.
    pub(crate) async fn begun(&self) {
        self.token.cancelled().await;
    }
}

//! The lanmesh router: actix actors that admit peers and move their messages.
//!
//! * [`Router`]: one actor owning membership (names, keys) and publishing an immutable
//!   routing snapshot to every session whenever membership changes.
//! * [`Session`]: one actor per connection. It runs the handshake, then forwards frames
//!   straight to the destination sessions it finds in its snapshot, so the data path never
//!   funnels through one mailbox.
//! * [`RouterHandle`]: start (bind every listen address), inspect, shut down.
//!
//! The router must run inside an actix `System` (for example under `#[actix_rt::main]`).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod admission;
mod bindings;
mod config;
#[cfg(feature = "federation")]
pub mod federation;
mod hooks;
mod inbox;
mod listener;
mod metrics;
mod pressure;
mod router;
mod session;
mod shutdown;
mod table;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use actix::Actor;
use lanmesh_proto::PeerInfo;

pub use bindings::{BINDINGS_FILE, list_bindings, release_binding};
pub use config::{BindingRate, DEFAULT_MESH, DEFAULT_PORT, RouterConfig};
#[cfg(feature = "federation")]
pub use federation::FederationConfig;
pub use hooks::RouterHooks;
pub use metrics::{Metrics, MetricsSnapshot};
pub use router::{ListPeerStats, ListPeers, PeerStats, Router};
pub use session::Session;
pub use table::{Route, RoutingTable};

/// Errors of the router crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// A listen address could not be bound.
    #[error("{0}")]
    Bind(std::io::Error),
    /// The router actor is gone.
    #[error("the router has stopped")]
    Stopped,
    /// NATS (federation) did not do what was asked.
    #[error("{0}")]
    Federation(String),
    /// The state directory or the allow-list could not be used.
    #[error("{path}: {reason}")]
    State {
        /// The file or directory.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A running router.
#[derive(Clone)]
pub struct RouterHandle {
    shared: listener::Shared,
    addrs: Vec<SocketAddr>,
    hooks: hooks::Dispatch,
}

impl std::fmt::Debug for RouterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterHandle")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl RouterHandle {
    /// Binds every listen address and starts accepting. Must be called inside an actix
    /// `System`.
    pub async fn start(config: RouterConfig) -> Result<Self, RouterError> {
        Self::start_inner(config, hooks::Dispatch::default()).await
    }

    /// [`RouterHandle::start`], calling `hooks` at each point of the router's life.
    pub async fn start_with_hooks(
        config: RouterConfig,
        hooks: Arc<dyn RouterHooks>,
    ) -> Result<Self, RouterError> {
        Self::start_inner(config, hooks::Dispatch::new(Some(hooks))).await
    }

    async fn start_inner(
        config: RouterConfig,
        hooks: hooks::Dispatch,
    ) -> Result<Self, RouterError> {
        let listeners = listener::bind_all(&config.listen)
            .await
            .map_err(RouterError::Bind)?;
        let addrs = listeners
            .iter()
            .map(|l| l.local_addr())
            .collect::<Result<Vec<_>, _>>()
            .map_err(RouterError::Bind)?;
        let bindings = bindings::Bindings::load(
            config.state_dir.as_deref(),
            config.allow_list.as_deref(),
            config.binding_limits(),
        )?;
        let config = Arc::new(config);
        let shutdown = shutdown::Shutdown::default();
        // The NATS options are checked (files read, seeds parsed) before anything starts:
        // a wrong one is this call's error, not a log line later.
        #[cfg(feature = "federation")]
        let federation = match config.federation.as_ref().zip(config.router_id()) {
            Some((f, id)) => Some((
                federation::Link::new(id, config.mailbox_capacity),
                f.clone(),
                federation::client_options(f).map_err(RouterError::Federation)?,
            )),
            None => None,
        };
        let shared = listener::Shared {
            config: config.clone(),
            router: {
                let mut router = Router::new(bindings);
                router.hooks = hooks.clone();
                #[cfg(feature = "federation")]
                {
                    router.federation = federation.as_ref().map(|(link, ..)| link.clone());
                }
                router.start()
            },
            shutdown: shutdown.clone(),
            metrics: Arc::new(Metrics::default()),
            next_id: Arc::new(AtomicU64::new(1)),
            admission: admission::Admission::new(&config),
        };
        for l in listeners {
            listener::spawn(l, shared.clone());
        }
        #[cfg(feature = "federation")]
        if federation.is_some() {
            shared.metrics.nats(false);
        }
        #[cfg(feature = "federation")]
        if let Some((link, federation, options)) = federation {
            federation::start(
                &link,
                federation::Start {
                    config: federation,
                    options,
                    mesh: config.mesh.clone(),
                    router: shared.router.clone(),
                    shutdown,
                    capacity: config.mailbox_capacity,
                    threshold: config.backpressure_bytes,
                    metrics: shared.metrics.clone(),
                },
            );
        }
        tracing::info!(mesh = %config.mesh, ?addrs, key = %lanmesh_proto::handshake::fingerprint(config.identity.public()), "router listening");
        let handle = Self {
            shared,
            addrs,
            hooks,
        };
        handle.hooks.started(&handle);
        Ok(handle)
    }

    /// The bound TCP addresses (with real ports when port 0 was asked for).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The configuration the router runs with.
    pub fn config(&self) -> &RouterConfig {
        &self.shared.config
    }

    /// Starts a session for a connection that arrived by another transport (the
    /// WebSocket gateway bridges its messages to a byte stream). Must be called on an
    /// actix arbiter. Returns `false`, dropping the connection, when there is no slot for
    /// it (see [`RouterConfig::max_connections`] and the budgets beside it).
    pub fn attach(
        &self,
        remote: SocketAddr,
        transport: lanmesh_proto::Transport,
        read: impl tokio::io::AsyncRead + 'static,
        write: impl tokio::io::AsyncWrite + 'static,
    ) -> bool {
        if self.is_shut_down() {
            self.shared.metrics.refused_connection();
            return false;
        }
        let Some((id, ticket)) = self.shared.admit(remote) else {
            return false;
        };
        listener::start_session(&self.shared, id, ticket, remote, transport, read, write);
        true
    }

    /// The mesh's peers: members with their traffic counters and, when federated, the
    /// other routers' members (see [`PeerStats`]).
    pub async fn peer_stats(&self) -> Result<Vec<PeerStats>, RouterError> {
        self.shared
            .router
            .send(ListPeerStats)
            .await
            .map_err(|_| RouterError::Stopped)
    }

    /// Current members.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, RouterError> {
        self.shared
            .router
            .send(ListPeers)
            .await
            .map_err(|_| RouterError::Stopped)
    }

    /// Current counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut m = self.shared.metrics.snapshot();
        // The admission's counts are the ones the limits apply to: taken at accept.
        m.sessions_open = self.shared.admission.open() as u64;
        m.handshakes_open = self.shared.admission.handshaking() as u64;
        m
    }

    /// Stops accepting, tells every session to close (peers get an `Error(Shutdown)`),
    /// and waits up to `grace` for them to finish.
    pub async fn shutdown(&self, grace: Duration) {
        self.shared.shutdown.begin();
        let _ = tokio::time::timeout(grace, self.shared.metrics.all_closed()).await;
        // Sessions send `Leave` before they count as closed: one round trip through the
        // router's mailbox runs every `on_peer_left` before `on_shutdown`.
        let _ = self.shared.router.send(ListPeers).await;
        self.hooks.shut_down();
    }

    /// Whether `shutdown` was called.
    pub fn is_shut_down(&self) -> bool {
        self.shared.shutdown.has_begun()
    }
}

//! The lanmesh gateway: actix-web in the router process.
//!
//! * `GET /mesh` upgrades to a WebSocket (binary messages, one record each, limits set
//!   explicitly) and attaches a router `Session` — the same actor as for TCP, so a
//!   browser is a peer like any other, running the same Noise handshake inside the
//!   WebSocket.
//! * `GET /` the dashboard, `GET /pkg/*` the wasm client, and the rest of `web/`,
//!   embedded in the binary at build time.
//! * `GET /api/peers` the member list as JSON (the fields of `lanmesh peers --json`, plus
//!   message counters); `GET /metrics` Prometheus text. On a mesh with a key both answer
//!   loopback or a bearer token derived from the key only ([`GatewayConfig`], [`http_token`]).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod access;
mod assets;
pub mod frame_guard;
mod frame_headers;
mod json;
mod metrics;
mod ws;

pub use ws::records as ws_records;

use std::net::SocketAddr;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};
use lanmesh_router::RouterHandle;

pub use access::{GatewayConfig, http_token};
pub use json::peer_json;

/// Default HTTP port of the gateway.
pub const DEFAULT_HTTP_PORT: u16 = 7401;

/// Errors of the gateway.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The HTTP address could not be bound.
    #[error("cannot serve HTTP on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    addrs: Vec<SocketAddr>,
    server: ServerHandle,
}

impl Gateway {
    /// Serves the gateway for `router` on `addr` with the default [`GatewayConfig`]. Call
    /// inside an actix system.
    pub fn start(router: RouterHandle, addr: SocketAddr) -> Result<Self, GatewayError> {
        Self::start_with(router, addr, GatewayConfig::default())
    }

    /// Serves the gateway for `router` on `addr`; `config` says who may read the JSON API
    /// and metrics. Call inside an actix system.
    pub fn start_with(
        router: RouterHandle,
        addr: SocketAddr,
        config: GatewayConfig,
    ) -> Result<Self, GatewayError> {
        let access = web::Data::new(access::Access::new(
            config,
            router.config().mesh_key.as_ref(),
        ));
        let state = web::Data::new(router);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(access.clone())
                .route("/mesh", web::get().to(ws::upgrade))
                .route("/api/peers", web::get().to(json::peers))
                .route("/metrics", web::get().to(metrics::prometheus))
                .default_service(web::get().to(assets::serve))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .bind(addr)
        .map_err(|source| GatewayError::Bind { addr, source })?;
        let addrs = server.addrs();
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        tracing::info!(?addrs, "gateway serving the dashboard and /mesh");
        Ok(Self {
            addrs,
            server: handle,
        })
    }

    /// The bound HTTP addresses.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stops serving (open WebSockets end with their sessions).
    pub async fn stop(&self) {
        self.server.stop(true).await;
    }
}

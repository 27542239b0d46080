//! lanmesh: named, encrypted, compressed messaging between the devices of one LAN.
//!
//! ```no_run
//! # #[actix_rt::main]
//! # async fn main() -> anyhow::Result<()> {
//! // A router, which is also a peer called "hub".
//! let router = lanmesh::Router::builder().listen("127.0.0.1:7400").mdns(false).name("hub").start().await?;
//! // A peer somewhere else on the LAN.
//! let peer = lanmesh::Peer::builder("PC2").router("127.0.0.1:7400").connect().await?;
//! peer.send_acked("hub", &b"hello"[..]).await?;
//! let msg = router.local_peer().expect("named").recv().await?;
//! assert_eq!(&msg.data[..], b"hello");
//! # Ok(()) }
//! ```
//!
//! The pieces: [`proto`] (the sans-IO protocol), the router actors
//! ([`lanmesh_router`]), and the native peer ([`Peer`], [`blocking::Peer`]). Lifecycle
//! hooks: [`Hooks`] for a peer (driven by [`Peer::run`]) and [`RouterHooks`] for a router
//! ([`RouterBuilder::hooks`]).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod home;
mod keys;
mod router;

pub use home::{Home, HomeError, load_or_create_identity};
pub use keys::{KeyError, generate_mesh_key, mesh_key_from_file, mesh_key_to_text};
pub use lanmesh_client::{
    Acked, ClientError, CloseReport, FileSent, Hooks, Message, Peer, PeerBuilder, PeerConfig,
    PeerEvent, Progress, ReceivedFile, RouterPins, Status, Undelivered, blocking,
    remove_partial_files,
};
pub use lanmesh_discovery as discovery;
pub use lanmesh_gateway::{GatewayConfig, http_token};
pub use lanmesh_proto as proto;
#[cfg(feature = "federation")]
pub use lanmesh_router::FederationConfig;
pub use lanmesh_router::{BindingRate, MetricsSnapshot, RouterConfig, RouterHandle, RouterHooks};
pub use router::{Router, RouterBuilder, RunningRouter, StartError};

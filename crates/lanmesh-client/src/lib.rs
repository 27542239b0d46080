//! The native lanmesh peer: a driver around the sans-IO [`lanmesh_core::peer::PeerCore`].
//!
//! A [`Peer`] is an async handle. It calls the core directly under its lock (see
//! `endpoint`), so a send costs a lock and an encode, not an actor round trip; the
//! `PeerActor` moves bytes between the socket and the core, hands it the time, and does
//! what needs the outside world (dialling again, checking pinned router keys, answering
//! requests with the application's handler, files on disk). The inbox is bounded: when it
//! is full the driver stops reading, so pressure reaches the router rather than memory.
//! [`blocking::Peer`] is the same for scripts without async. Files of any size stream
//! from and to disk with [`Peer::send_file`] and a save directory
//! ([`PeerBuilder::save_dir`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), lanmesh_client::ClientError> {
//! let peer = lanmesh_client::Peer::builder("PC2").router("127.0.0.1:7400").connect().await?;
//! peer.send_acked("PC1", &b"hello"[..]).await?;
//! let msg = peer.recv().await?;
//! println!("{} says {:?}", msg.from, msg.text());
//! # Ok(()) }
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod blocking;
mod config;
mod dial;
mod driver;
mod endpoint;
mod files;
mod hooks;
mod inbox;
mod last_routers;
mod links;
mod peer;
mod pins;

pub use config::PeerConfig;
pub use driver::PeerActor;
pub use endpoint::{RequestHandler, SEND_QUEUE_BYTES};
pub use files::{FileSent, Progress, ReceivedFile, remove_partial_files};
pub use hooks::Hooks;
pub use lanmesh_core::{ClientError, CloseReport, Message, PeerEvent, Status, Undelivered};
pub use peer::{Acked, Peer, PeerBuilder};
pub use pins::RouterPins;

//! The native lanmesh peer.
//!
//! A [`Peer`] is an async handle to a `PeerActor` that owns the connection to the
//! router: it runs the Noise handshake, turns sends into compressed, chunked, batched
//! frames, keeps the inbox (bounded: when it is full the actor stops reading, so pressure
//! reaches the router rather than memory) and settles acknowledgements.
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

mod actor;
mod blob;
pub mod blocking;
mod config;
mod dial;
mod error;
mod hooks;
mod peer;
mod pins;
mod requests;
mod shared;
mod stream;

pub use actor::{CloseReport, PeerActor, RequestHandler, Undelivered};
pub use blob::{FileSent, Progress, ReceivedFile};
pub use config::PeerConfig;
pub use error::ClientError;
pub use hooks::{Hooks, PeerEvent};
pub use peer::{Acked, Peer, PeerBuilder};
pub use pins::RouterPins;
pub use shared::{Message, Status};

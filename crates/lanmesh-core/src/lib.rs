//! The sans-IO state machines of lanmesh, one per role, in the shape of quinn-proto:
//! bytes, time and the application's calls in; bytes, deadlines and events out. No
//! socket, no runtime, no clock, no file.
//!
//! * [`peer::PeerCore`]: a peer of the mesh, across reconnects — the handshake, joining,
//!   sends (plain, acked exactly-once streams, requests, broadcasts), what arrives, file
//!   transfers with their windows, pings, deadlines, the backoff between reconnects and
//!   the close. The native client's actor, the browser's `MeshPeer` and a board's loop
//!   are drivers around it.
//! * [`session::SessionCore`]: one connection as the router sees it — the responder's
//!   handshake, the join, routing decisions, member-list paging, budgets, parking for a
//!   resume, idle and write-stall deadlines. The router's actors drive it.
//!
//! Both sit on [`lanmesh_proto`] (frames, records, the Noise handshake) and take time as
//! an [`Instant`] from the driver.
#![cfg_attr(not(feature = "std"), no_std)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

extern crate alloc;

mod error;
mod message;
pub mod peer;
pub mod session;
mod time;

pub use error::ClientError;
#[cfg(feature = "std")]
pub use message::ReceivedFile;
pub use message::{CloseReport, Message, PeerEvent, Status, Undelivered};
pub use time::Instant;

/// The mesh a peer or router joins when none is given.
pub const DEFAULT_MESH: &str = "lanmesh";

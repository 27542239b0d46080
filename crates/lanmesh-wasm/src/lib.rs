//! The lanmesh browser peer.
//!
//! Two layers, like `quinn-proto` under `quinn`:
//!
//! * [`client`]: a plain-Rust state machine ([`Client`]) that takes WebSocket messages and
//!   the time, and gives events and WebSocket messages back. It runs the same Noise
//!   handshake and frames as the native peer (`lanmesh-proto`), and is tested natively and
//!   in headless Chromium against an in-memory router.
//! * `MeshPeer` (wasm32 only): the thin wasm-bindgen shell that owns a `WebSocket`, one
//!   timer and the JavaScript callbacks, and exposes the contract of DESIGN.md §7:
//!
//! ```js
//! import init, { MeshPeer } from '/pkg/lanmesh_wasm.js';
//! await init();
//! const peer = await MeshPeer.connect('ws://host:7401/mesh', 'web-1', { meshKey: null });
//! peer.onmessage = (from, data, id) => {};   // data: string (text) or Uint8Array
//! peer.onpeers = (names) => {};
//! await peer.send('laptop', 'hello');
//! await peer.sendAcked('laptop', bytes);
//! peer.peers();
//! peer.close();
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod client;
pub mod error;
pub mod keys;
#[cfg(target_arch = "wasm32")]
mod peer;

pub use client::{Client, ClientConfig, Event, Incoming, Payload};
pub use error::ClientError;
pub use keys::{IDENTITY_STORAGE_KEY, identity_from_text, identity_to_text, mesh_key_from_text};
#[cfg(target_arch = "wasm32")]
pub use peer::{MeshPeer, stored_identity};

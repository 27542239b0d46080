//! The lanmesh browser peer: `MeshPeer`, a wasm-bindgen driver around the same sans-IO
//! [`lanmesh_core::peer::PeerCore`] the native peer runs (handshake, frames, acked
//! streams, requests, files, reconnects). It owns a `WebSocket`, one timer and the
//! page's callbacks, and exposes the contract of DESIGN.md §7, extended in its style:
//!
//! ```js
//! import init, { MeshPeer } from '/pkg/lanmesh_wasm.js';
//! await init();
//! const peer = await MeshPeer.connect('ws://host:7401/mesh', 'web-1', { meshKey: null });
//! peer.onmessage = (from, data, id) => {};   // data: string (text) or Uint8Array
//! peer.onpeers = (names) => {};
//! peer.onstatus = (status, detail) => {};    // "reconnecting", "connected", "closed"
//! peer.onfile = (from, blob, name) => {};    // files sent with `lanmesh send --file`
//! peer.respond((from, data, id) => 'answer');
//! await peer.send('laptop', 'hello');
//! await peer.sendAcked('laptop', bytes);
//! const reply = await peer.request('sensor', 'temp?', 2000);
//! await peer.sendFile('laptop', fileInput.files[0], { onprogress: (p) => {} });
//! peer.peers();
//! peer.close();
//! ```
//!
//! On other targets only the key helpers build (the native tests use them).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

#[cfg(target_arch = "wasm32")]
mod driver;
#[cfg(target_arch = "wasm32")]
mod js;
pub mod keys;
#[cfg(target_arch = "wasm32")]
mod peer;

pub use keys::{IDENTITY_STORAGE_KEY, identity_from_text, identity_to_text, mesh_key_from_text};
#[cfg(target_arch = "wasm32")]
pub use peer::{MeshPeer, stored_identity};

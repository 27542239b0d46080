//! The sans-IO core of lanmesh.
//!
//! Bytes in, events and bytes out: this crate never touches a socket, a timer or the
//! clock, so the router, the native client and the browser client all run the same code,
//! and tests drive two endpoints in memory step by step.
//!
//! * [`handshake`]: the Noise XX (or XXpsk3) handshake and the negotiation of cipher and
//!   compression in its payloads.
//! * [`connection`]: the transport phase: frames batched into encrypted records.
//! * [`cipher`]: the per-direction record cipher (Noise's transport `CipherState`).
//! * [`record`]: length-prefixed framing of records on byte streams.
//! * [`frame`]: the frame codec.
//! * [`message`]: compression and chunking of application messages, and reassembly.
//! * [`blob`]: files streamed in acknowledged chunks with a window (flow control).
//! * [`limits`]: the limits every endpoint enforces.
//! * [`random`]: where the handshake's randomness comes from (the OS, or the board).
//!
//! With the default `std` feature off the crate is `no_std` + `alloc`, for boards: no
//! Snappy (the offer then says compression `none`), ChaCha20-Poly1305 records only, and a
//! [`RandomSource`] the caller supplies instead of the OS's.
#![cfg_attr(not(feature = "std"), no_std)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

extern crate alloc;

pub mod algorithms;
pub mod blob;
pub mod cipher;
mod codes;
pub mod compress;
pub mod connection;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod limits;
pub mod message;
pub mod name;
mod prelude;
pub mod random;
pub mod record;
mod wire;

pub use algorithms::{Cipher, Compression, Transport};
pub use blob::BlobFrame;
pub use connection::{Connection, Framing};
pub use error::ProtoError;
pub use frame::{ErrorCode, Frame, Frames, Message, NackReason, PeerInfo};
pub use handshake::{
    Answer, Established, HandshakeConfig, Identity, Initiator, Offer, Responder, RouterStatus,
};
pub use limits::Limits;
pub use message::{
    Complete, Destination, Reassembler, message_frames, probed_message_frames, rechunk,
};
pub use name::Name;
pub use random::RandomSource;
pub use record::RecordDecoder;

#[cfg(test)]
mod pair_tests;

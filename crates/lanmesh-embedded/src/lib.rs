//! lanmesh on microcontrollers: a `no_std` + `alloc` driver of the sans-IO peer core
//! ([`lanmesh_core::peer::PeerCore`]) over an `embedded-io` byte stream.
//!
//! A board's main loop, with whatever TCP/IP stack it has:
//!
//! 1. open a TCP connection to the router (port 7400), then [`Client::connect`];
//! 2. on every turn of the loop call [`Client::poll`] with the stream and the time: it
//!    reads what arrived, runs the core's deadlines and writes what the core has to send,
//!    never blocking (it asks the stream [`ReadReady`](embedded_io::ReadReady) /
//!    [`WriteReady`](embedded_io::WriteReady) first);
//! 3. take what happened from [`Client::poll_event`] (connected, messages, acks, a
//!    request to dial again after a lost connection) and call the core's sends through
//!    [`Client::core`];
//! 4. wake up again at [`Client::poll_timeout`] at the latest.
//!
//! The crate brings no randomness of its own: the board's generator goes in
//! [`peer::Config::random`](lanmesh_core::peer::Config::random) (see
//! [`lanmesh_proto::RandomSource::from_fn`]). Without std there is no Snappy: the offer
//! says compression `none`.
//!
//! * [`Client`]: the driver.
//! * [`tcp`] (feature `smoltcp`): a smoltcp TCP socket as an `embedded-io` stream.
#![no_std]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

extern crate alloc;

mod client;
mod error;
#[cfg(feature = "smoltcp")]
pub mod tcp;

pub use client::{Client, small_limits};
pub use error::EmbeddedError;
pub use lanmesh_core::Instant;
pub use lanmesh_core::peer::{Config, Event, PeerCore};

//! The actix side of lanmesh's drivers: what the router's `Session` actor and the
//! client's `PeerActor` share to move bytes between a socket and the sans-IO core they
//! drive. Nothing here knows the protocol.
//!
//! * [`StreamReader`] reads for an actor, and stops reading while the actor says it
//!   cannot take more (backpressure through TCP instead of an unbounded queue).
//! * [`StreamWriter`] writes what the actor's core hands out, only when the socket has
//!   taken the previous bytes, so that frames pile up meanwhile and leave together in
//!   large records — with no timer.
//! * [`bridge`] puts message transports (WebSocket) under the same actors.
//! * [`ticker::every`] runs a periodic check that costs nothing between ticks.
//! * [`same_poll::start`] starts such an actor so that what it queues while it runs is
//!   written in the same poll, without waking it again.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod bridge;
pub mod same_poll;
mod stream_reader;
mod stream_writer;
pub mod ticker;

pub use bridge::{Bridged, bridge};
pub use stream_reader::{ReadsStream, StreamReader};
pub use stream_writer::{COALESCE_BYTES, Drained, StreamWriter, WritesStream};

/// Each reader and writer gets a distinct generation, so the futures of a replaced
/// connection notice that the actor moved on and end quietly.
pub(crate) fn next_generation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod test_support {
    use bytes::Bytes;
    use lanmesh_proto::{
        Answer, Established, HandshakeConfig, Identity, Initiator, Name, Responder,
    };

    /// Both ends of a completed handshake: a peer named "a" and its router.
    pub(crate) fn pair() -> (Established, Established) {
        let cfg = || HandshakeConfig::new(Identity::generate().unwrap(), "test");
        let (peer, router) = (cfg(), cfg());
        let (init, msg1) =
            Initiator::start(&peer, Some(Name::new("a").unwrap()), Bytes::new()).unwrap();
        let mut resp = Responder::new(&router).unwrap();
        let Answer::Accept(msg2) = resp.read_offer(&msg1).unwrap() else {
            panic!("refused")
        };
        let (client, msg3) = init.read_choice(&msg2).unwrap();
        (client, resp.read_confirm(&msg3).unwrap())
    }
}

//! Transport glue shared by the router's `Session` actor and the client's `Peer` actor.
//!
//! * [`Reader`] reads records for an actor, and stops reading while the actor says it
//!   cannot take more (backpressure through TCP instead of an unbounded queue).
//! * [`Link`] is the write side. An actor queues frames into the link's
//!   [`Connection`](lanmesh_proto::Connection) and calls [`Link::wake`]; a writer future
//!   running in the actor's own context seals everything queued into records only when the
//!   socket has taken the previous bytes. No timer is involved: while the socket is busy,
//!   frames pile up and leave together in large records.
//! * [`bridge`] puts message transports (WebSocket) under the same actors.
//! * [`Activity`] notes arrivals without reading the clock, for idle deadlines.
//! * [`ticker::every`] runs a periodic check that costs nothing between ticks.
//! * [`same_poll::start`] starts such an actor so that what it queues while it runs is
//!   written in the same poll, without waking it again.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod activity;
mod bridge;
mod lane;
mod link;
mod reader;
pub mod same_poll;
mod stream_reader;
mod stream_writer;
pub mod ticker;

pub use activity::Activity;
pub use bridge::{Bridged, bridge};
pub use lane::{LANE_BYTES, Lane, Pushed};
pub use link::{COALESCE_BYTES, Drained, HasLink, Link, LinkError};
pub use reader::{HasReader, Reader};
pub use stream_reader::{ReadsStream, StreamReader};
pub use stream_writer::{
    COALESCE_BYTES as WRITE_COALESCE_BYTES, Drained as OutputDrained, StreamWriter, WritesStream,
};

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

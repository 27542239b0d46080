//! Helpers shared by the end-to-end tests: routers on 127.0.0.1:0, peers, and waiting
//! for conditions (never a blind sleep).
#![allow(dead_code, clippy::unwrap_used)]

pub(crate) mod chaos;
pub(crate) mod netns;
pub(crate) mod proc;
pub(crate) mod webdriver;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lanmesh::{Peer, PeerBuilder, Router, RouterBuilder, RunningRouter};

/// A router builder listening on an ephemeral loopback port.
pub(crate) fn router() -> RouterBuilder {
    // Loopback only and no mDNS: nothing leaves the machine.
    Router::builder().listen("127.0.0.1:0").mdns(false)
}

pub(crate) async fn start(builder: RouterBuilder) -> RunningRouter {
    builder.start().await.expect("router starts")
}

pub(crate) fn addr(r: &RunningRouter) -> SocketAddr {
    r.local_addrs()[0]
}

/// A peer builder aimed at `r`.
pub(crate) fn builder(r: &RunningRouter, name: &str) -> PeerBuilder {
    Peer::builder(name).router(addr(r).to_string())
}

pub(crate) async fn peer(r: &RunningRouter, name: &str) -> Peer {
    builder(r, name).connect().await.expect("peer joins")
}

/// Waits until `cond` holds, checking every few milliseconds; panics after `limit`.
pub(crate) async fn eventually(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub(crate) fn names(p: &Peer) -> Vec<String> {
    p.peers().iter().map(|i| i.name.to_string()).collect()
}

/// Deterministic pseudo-random bytes (xorshift), so a failure can be replayed.
/// A TCP port on 127.0.0.1 that was free a moment ago (for servers that need one given).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Asserts that joining as `name` is refused because the name is held.
pub(crate) async fn assert_name_taken(r: &RunningRouter, name: &str) {
    let err = Peer::builder(name)
        .router(addr(r).to_string())
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            lanmesh::ClientError::Refused {
                code: lanmesh::proto::ErrorCode::NameTaken,
                ..
            }
        ),
        "{err:?}"
    );
}

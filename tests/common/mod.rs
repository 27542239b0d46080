//! Helpers shared by the end-to-end tests: routers on 127.0.0.1:0, peers, and waiting
//! for conditions (never a blind sleep).
#![allow(dead_code, clippy::unwrap_used)]

pub(crate) mod netns;
pub(crate) mod proc;
pub(crate) mod webdriver;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lanmesh::{Peer, Router, RouterBuilder, RunningRouter};

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

pub(crate) async fn peer(r: &RunningRouter, name: &str) -> Peer {
    Peer::builder(name)
        .router(addr(r).to_string())
        .connect()
        .await
        .expect("peer joins")
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

//! Counters the router keeps for `/metrics` and for tests.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Router-wide counters, updated without locks.
#[derive(Debug, Default)]
pub struct Metrics {
    closed: tokio::sync::Notify,
    sessions_open: AtomicU64,
    sessions_total: AtomicU64,
    handshake_failures: AtomicU64,
    messages: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    dropped: AtomicU64,
    refused_connections: AtomicU64,
    federated: AtomicBool,
    nats_connected: AtomicBool,
    remote_peers: AtomicU64,
    nats_frames_out: AtomicU64,
    nats_frames_in: AtomicU64,
    nats_broadcasts_out: AtomicU64,
    nats_broadcasts_in: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsSnapshot {
    /// Connections currently open (handshaking or joined), counted from the moment they
    /// are accepted; never more than `max_connections`.
    pub sessions_open: u64,
    /// Of those, the ones still handshaking; never more than `max_handshakes`.
    pub handshakes_open: u64,
    /// Connections accepted since start.
    pub sessions_total: u64,
    /// Handshakes that failed or timed out.
    pub handshake_failures: u64,
    /// Messages forwarded (one per recipient).
    pub messages: u64,
    /// Record bytes received.
    pub bytes_in: u64,
    /// Frame bytes queued to peers.
    pub bytes_out: u64,
    /// Frames dropped (with a `Nack` to the sender) because a recipient was overloaded.
    pub dropped: u64,
    /// Connections closed at once, or refused with "router full", for lack of a slot.
    pub refused_connections: u64,
    /// The router is federated (`--federate`): the fields below count.
    pub federated: bool,
    /// Federated and connected to NATS now.
    pub nats_connected: bool,
    /// Peers of the mesh served by other routers.
    pub remote_peers: u64,
    /// Frames published to other routers (messages, acks, nacks).
    pub nats_frames_out: u64,
    /// Frames received from other routers.
    pub nats_frames_in: u64,
    /// Of `nats_frames_out`, broadcasts: one per broadcast (a chunked one: per chunk),
    /// however many routers and remote peers there are.
    pub nats_broadcasts_out: u64,
    /// Of `nats_frames_in`, broadcasts from other routers: one per broadcast and router
    /// that sent it, however many local members it went to.
    pub nats_broadcasts_in: u64,
}

impl Metrics {
    pub(crate) fn session_opened(&self) {
        self.sessions_open.fetch_add(1, Relaxed);
        self.sessions_total.fetch_add(1, Relaxed);
    }
    pub(crate) fn session_closed(&self) {
        self.sessions_open.fetch_sub(1, Relaxed);
        self.closed.notify_waiters();
    }

    /// Waits until no session is open.
    pub(crate) async fn all_closed(&self) {
        loop {
            let notified = self.closed.notified();
            if self.sessions_open.load(Relaxed) == 0 {
                return;
            }
            notified.await;
        }
    }
    pub(crate) fn handshake_failed(&self) {
        self.handshake_failures.fetch_add(1, Relaxed);
    }
    pub(crate) fn messages(&self, n: u64) {
        if n > 0 {
            self.messages.fetch_add(n, Relaxed);
        }
    }
    pub(crate) fn add_in(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Relaxed);
    }
    pub(crate) fn add_out(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Relaxed);
    }
    pub(crate) fn dropped(&self, n: usize) {
        self.dropped.fetch_add(n as u64, Relaxed);
    }
    pub(crate) fn refused_connection(&self) {
        self.refused_connections.fetch_add(1, Relaxed);
    }

    /// Reads every counter.
    /// Federation: whether NATS is connected now (and that the router is federated).
    #[cfg_attr(not(feature = "federation"), allow(dead_code))]
    pub(crate) fn nats(&self, connected: bool) {
        self.federated.store(true, Relaxed);
        self.nats_connected.store(connected, Relaxed);
    }

    /// Federation: how many remote peers the mesh has now.
    #[cfg_attr(not(feature = "federation"), allow(dead_code))]
    pub(crate) fn remote_peers(&self, n: usize) {
        self.remote_peers.store(n as u64, Relaxed);
    }

    /// Federation: frames published to, or received from, other routers.
    #[cfg_attr(not(feature = "federation"), allow(dead_code))]
    pub(crate) fn nats_frames(&self, out: usize, inbound: usize) {
        self.nats_frames_out.fetch_add(out as u64, Relaxed);
        self.nats_frames_in.fetch_add(inbound as u64, Relaxed);
    }

    /// Federation: broadcast frames published to, or received from, other routers.
    #[cfg_attr(not(feature = "federation"), allow(dead_code))]
    pub(crate) fn nats_broadcasts(&self, out: usize, inbound: usize) {
        self.nats_broadcasts_out.fetch_add(out as u64, Relaxed);
        self.nats_broadcasts_in.fetch_add(inbound as u64, Relaxed);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            sessions_open: self.sessions_open.load(Relaxed),
            handshakes_open: 0,
            sessions_total: self.sessions_total.load(Relaxed),
            handshake_failures: self.handshake_failures.load(Relaxed),
            messages: self.messages.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            refused_connections: self.refused_connections.load(Relaxed),
            federated: self.federated.load(Relaxed),
            nats_connected: self.nats_connected.load(Relaxed),
            remote_peers: self.remote_peers.load(Relaxed),
            nats_frames_out: self.nats_frames_out.load(Relaxed),
            nats_frames_in: self.nats_frames_in.load(Relaxed),
            nats_broadcasts_out: self.nats_broadcasts_out.load(Relaxed),
            nats_broadcasts_in: self.nats_broadcasts_in.load(Relaxed),
        }
    }
}

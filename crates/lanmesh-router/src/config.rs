//! Router configuration, with the documented defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use lanmesh_proto::{HandshakeConfig, Identity, Limits};

pub use crate::bindings::BindingRate;

/// Default TCP port of the router.
pub const DEFAULT_PORT: u16 = 7400;
/// Default mesh name (every peer's default too).
pub use lanmesh_core::DEFAULT_MESH;

/// Everything a router needs to start.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// The mesh this router serves; peers asking for another mesh are refused.
    pub mesh: String,
    /// TCP addresses to listen on (several are allowed).
    pub listen: Vec<SocketAddr>,
    /// The router's static key.
    pub identity: Identity,
    /// When set, only holders of this key can join (Noise XXpsk3).
    pub mesh_key: Option<[u8; 32]>,
    /// Accept unencrypted records from peers that ask for them.
    pub allow_plaintext: bool,
    /// Accept Snappy compression.
    pub compression: bool,
    /// Protocol limits.
    pub limits: Limits,
    /// Open connections, handshaking or joined (default 4096). A connection beyond it
    /// runs the handshake in one of `max_refusals` sessions and is then refused with
    /// `Overloaded` and "router full"; beyond those it is closed at once.
    pub max_connections: usize,
    /// Open connections from one source address (default 2048), so that one machine
    /// cannot take every slot.
    pub max_connections_per_ip: usize,
    /// Connections still handshaking (default 256). When full, the oldest handshake is
    /// dropped to make room: real handshakes take milliseconds, silent ones sit.
    pub max_handshakes: usize,
    /// Handshakes under way from one source address (default 32); beyond it new
    /// connections from there are closed at once.
    pub max_handshakes_per_ip: usize,
    /// Sessions at a time that tell peers "router full" (default 32).
    pub max_refusals: usize,
    /// Forwarded records a session may have waiting in its inbox (and actor messages in
    /// its mailbox); a message that finds the inbox full is `Nack(Overloaded)`ed.
    pub mailbox_capacity: usize,
    /// How long the name, and the messages sent to it, are kept for a member whose
    /// connection broke (no `Close`), so that it can resume (default 30 s; zero turns
    /// resuming off). What waits is bounded by `limits.max_pending_bytes`.
    pub grace: Duration,
    /// A peer whose connection has not taken any bytes for this long while some wait is
    /// disconnected (default 30 s): it has stopped reading. Until then, what exceeds
    /// `limits.max_pending_bytes` is refused to its senders with `Nack(Overloaded)`.
    pub write_stall: Duration,
    /// Bytes waiting for a peer's socket beyond which the sessions sending to it stop
    /// reading from their own peers until it catches up (default 1 MiB), so a fast sender
    /// is slowed down rather than refused. A peer whose socket takes nothing for 200 ms is
    /// not waited for; `limits.max_pending_bytes` and `Nack(Overloaded)` apply to it.
    pub backpressure_bytes: usize,
    /// Where name bindings are kept across restarts (`None`: in memory only).
    pub state_dir: Option<PathBuf>,
    /// A file of `name key-hex` lines pinning names to keys up front.
    pub allow_list: Option<PathBuf>,
    /// Names one key may bind (default 16; the allow-list may pin more to it). Bindings
    /// persist, so without a bound one key could squat thousands of names.
    pub max_names_per_key: usize,
    /// New names one key may bind at once, and how fast that comes back (default 8, then
    /// one every 10 s). Joining under a name the key holds is not counted.
    pub new_names_per_key: BindingRate,
    /// New names all keys together may bind (default 64 at once, then one a second):
    /// keys are free to make, so the per-key budgets alone do not stop squatting.
    pub new_names: BindingRate,
    /// Join the other routers of the mesh through a NATS cluster (`None`: this router
    /// alone; see [`crate::federation`]).
    #[cfg(feature = "federation")]
    pub federation: Option<crate::federation::FederationConfig>,
}

impl RouterConfig {
    /// Defaults: mesh `lanmesh`, `0.0.0.0:7400`, a fresh key, encryption required.
    pub fn new(identity: Identity) -> Self {
        Self {
            mesh: DEFAULT_MESH.to_owned(),
            listen: vec![SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT))],
            identity,
            mesh_key: None,
            allow_plaintext: false,
            compression: true,
            limits: Limits::default(),
            max_connections: 4096,
            max_connections_per_ip: 2048,
            max_handshakes: 256,
            max_handshakes_per_ip: 32,
            max_refusals: 32,
            mailbox_capacity: 1024,
            grace: Duration::from_secs(30),
            write_stall: Duration::from_secs(30),
            backpressure_bytes: 1024 * 1024,
            state_dir: None,
            allow_list: None,
            max_names_per_key: 16,
            new_names_per_key: BindingRate {
                burst: 8,
                every: Duration::from_secs(10),
            },
            new_names: BindingRate {
                burst: 64,
                every: Duration::from_secs(1),
            },
            #[cfg(feature = "federation")]
            federation: None,
        }
    }

    pub(crate) fn binding_limits(&self) -> crate::bindings::BindingLimits {
        crate::bindings::BindingLimits {
            max_per_key: self.max_names_per_key,
            per_key: self.new_names_per_key,
            overall: self.new_names,
        }
    }

    pub(crate) fn handshake(&self) -> HandshakeConfig {
        HandshakeConfig {
            identity: self.identity.clone(),
            mesh: self.mesh.clone(),
            mesh_key: self.mesh_key,
            allow_plaintext: self.allow_plaintext,
            // A peer's preference: the router accepts every cipher it supports, in the
            // order the peer offers them.
            cipher: lanmesh_proto::Cipher::ChaCha20Poly1305,
            compression: self.compression,
            limits: self.limits.clone(),
            framing: lanmesh_proto::Framing::LengthPrefixed,
        }
    }

    /// This router's name among the routers of its mesh, when federated: the configured
    /// one, else its key's fingerprint.
    pub(crate) fn router_id(&self) -> Option<String> {
        #[cfg(feature = "federation")]
        if let Some(f) = &self.federation {
            return Some(
                f.router_id.clone().unwrap_or_else(|| {
                    lanmesh_proto::handshake::fingerprint(self.identity.public())
                }),
            );
        }
        None
    }
}

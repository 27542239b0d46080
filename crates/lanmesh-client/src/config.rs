//! Peer configuration, with the documented defaults.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use lanmesh_core::peer::{Config as CoreConfig, FileConfig};
use lanmesh_proto::{Cipher, Framing, HandshakeConfig, Identity, Limits, Name};

/// Everything a peer needs to connect.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The name to join under; `None` connects as an observer that can only list peers.
    pub name: Option<Name>,
    /// The router's address (`host:port`, or `ws://host:port/mesh`); `None` finds one of
    /// the mesh by mDNS.
    pub router: Option<String>,
    /// Discover (and so use) only this network interface.
    pub interface: Option<String>,
    /// How long discovery waits for a router (default 3 s).
    pub discovery_timeout: Duration,
    /// The mesh to join (default `lanmesh`).
    pub mesh: String,
    /// This peer's static key; `None` makes a fresh one when connecting.
    pub identity: Option<Identity>,
    /// The mesh key, when the mesh has one.
    pub mesh_key: Option<[u8; 32]>,
    /// Offer unencrypted records (used only if the router allows them too).
    pub allow_plaintext: bool,
    /// The record cipher to prefer (default `Cipher::ChaCha20Poly1305`, offered alone).
    /// `Cipher::Aes256Gcm` offers `[aes256gcm, chacha20poly1305]`: much faster on CPUs
    /// with AES instructions, and a router without it falls back to ChaCha20-Poly1305.
    pub cipher: Cipher,
    /// Offer Snappy compression (default on).
    pub compression: bool,
    /// Protocol limits.
    pub limits: Limits,
    /// Time allowed for the TCP connection and the handshake (default 5 s).
    pub connect_timeout: Duration,
    /// How long `send_acked` waits for the recipient (default 10 s).
    pub ack_timeout: Duration,
    /// Messages held for the application before reading from the router pauses
    /// (default 65 536).
    pub inbox_capacity: usize,
    /// Dial again, with backoff, when an established connection is lost (default on).
    pub reconnect: bool,
    /// How long an acked message waits for its ack before it is sent again, with every
    /// later one to the same peer (default 1 s; the recipient drops duplicates).
    pub resend_after: Duration,
    /// Router keys pinned per mesh (`None`: any router of the mesh is accepted).
    pub router_pins: Option<crate::RouterPins>,
    /// Where incoming files are saved; `None` (the default) refuses them, and their
    /// senders get a clear error.
    pub save_dir: Option<PathBuf>,
    /// Unacknowledged bytes a file transfer keeps in flight (default 4 MiB; at least one
    /// chunk, at most 64 MiB). As a receiver, the most granted to all incoming files
    /// together (each gets at least one chunk): keep it under the router's per-peer
    /// budget (`Limits::max_pending_bytes`, 8 MiB) so that files never make it refuse.
    pub blob_window: u32,
    /// Incoming files larger than this are refused (default: no limit).
    pub max_file_size: Option<u64>,
    /// Join as an extra session that only sends, beside a process of the same key that
    /// receives under the same name (a script's `lanmesh send --name PC2` while
    /// `lanmesh listen --name PC2` runs): neither evicts the other, messages to the name
    /// go to the receiving one, and answers to this one's messages come back to it
    /// (default off).
    pub send_only: bool,
    /// Direct links (default on): messages to another native peer of the mesh that this
    /// one can reach go over a Noise session of their own instead of through the router,
    /// which introduces the two and vouches for their keys. Off (`--no-direct`), every
    /// message goes through the router. A send-only session never uses links.
    pub direct: bool,
    /// The TCP port to take direct links on (default 0: any free port; the router tells
    /// the others which).
    pub direct_port: u16,
}

impl PeerConfig {
    /// Defaults for a peer called `name` connecting to `router` (or discovering one).
    pub fn new(name: Option<Name>, router: Option<String>, identity: Identity) -> Self {
        Self {
            identity: Some(identity),
            ..Self::defaults(name, router)
        }
    }

    /// The defaults, with a fresh key made when connecting.
    pub(crate) fn defaults(name: Option<Name>, router: Option<String>) -> Self {
        Self {
            name,
            router,
            interface: None,
            discovery_timeout: Duration::from_secs(3),
            mesh: lanmesh_core::DEFAULT_MESH.to_owned(),
            identity: None,
            mesh_key: None,
            allow_plaintext: false,
            cipher: Cipher::ChaCha20Poly1305,
            compression: true,
            limits: Limits::default(),
            connect_timeout: Duration::from_secs(5),
            ack_timeout: Duration::from_secs(10),
            inbox_capacity: 65_536,
            reconnect: true,
            resend_after: Duration::from_secs(1),
            router_pins: None,
            save_dir: None,
            blob_window: lanmesh_proto::blob::DEFAULT_WINDOW,
            max_file_size: None,
            send_only: false,
            direct: true,
            direct_port: 0,
        }
    }

    /// Whether this peer uses direct links: a named, receiving peer with them on.
    pub(crate) fn uses_links(&self) -> bool {
        self.direct && self.name.is_some() && !self.send_only
    }

    /// What the peer core needs, with this peer's key, resume token and (for a send-only
    /// session) id slot.
    pub(crate) fn core(
        &self,
        identity: Identity,
        resume_token: Bytes,
        slot: u32,
        incarnation: u64,
    ) -> CoreConfig {
        let handshake = HandshakeConfig {
            identity,
            mesh: self.mesh.clone(),
            mesh_key: self.mesh_key,
            allow_plaintext: self.allow_plaintext,
            cipher: self.cipher,
            compression: self.compression,
            limits: self.limits.clone(),
            framing: Framing::LengthPrefixed,
        };
        let mut core = CoreConfig::new(self.name.clone(), handshake);
        core.connect_timeout = self.connect_timeout;
        core.ack_timeout = self.ack_timeout;
        core.resend_after = self.resend_after;
        core.reconnect = self.reconnect;
        // A peer that will not reconnect offers no token: the router then lets its name
        // go as soon as the connection breaks.
        core.resume_token = if self.reconnect {
            resume_token
        } else {
            Bytes::new()
        };
        core.verify_router = self.router_pins.is_some();
        core.slot = if self.send_only { slot } else { 0 };
        core.direct = self.uses_links();
        core.incarnation = incarnation;
        core.files = FileConfig {
            accept: self.save_dir.is_some(),
            max_file_size: self.max_file_size,
            window: self.blob_window,
            answer_timeout: self.ack_timeout,
            // Receivers key transfers by (sender, id): start from the clock so that a
            // sender that restarts (a new `lanmesh send` process) does not reuse the ids
            // of its previous run while the receiver may still be cleaning one up.
            first_blob: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            ..core.files
        };
        core
    }
}

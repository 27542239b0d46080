//! Limits that both ends enforce. They are part of the protocol: every violation is an
//! `Error` frame and a closed connection, never a panic and never harm to other sessions.

use core::time::Duration;

/// The largest Noise message, and so the largest record on the wire.
pub const MAX_RECORD: usize = 65_535;
/// The smallest record limit a peer may declare in its offer: room for a frame header,
/// a name and some payload.
pub const MIN_RECORD: usize = 1024;
/// Authentication tag appended to every encrypted record.
pub const TAG_LEN: usize = 16;
/// The largest plaintext that fits in one record.
pub const MAX_RECORD_PLAINTEXT: usize = MAX_RECORD - TAG_LEN;
/// Largest handshake message a valid peer ever sends (keys, tags and a small payload).
pub const MAX_HANDSHAKE_MESSAGE: usize = 1024;
/// Payload bytes carried per chunk of a large message; leaves room for the frame header.
pub const CHUNK_SIZE: usize = 60 * 1024;

/// Configurable limits. `Limits::default()` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest application message after reassembly and decompression (default 64 MiB,
    /// at most 4 GiB).
    pub max_message: u64,
    /// Largest record accepted from the wire (default and maximum: 65 535 bytes).
    pub max_record: usize,
    /// Longest peer or mesh name in bytes (default 64).
    pub max_name_len: usize,
    /// Largest number of chunked messages being reassembled at once per connection.
    pub max_partial_messages: usize,
    /// Time allowed for the whole handshake (default 5 s).
    pub handshake_timeout: Duration,
    /// A connection with no traffic for this long is pinged, then closed (default 30 s).
    pub idle_timeout: Duration,
    /// Bytes a session may have queued towards its peer before the overload policy applies
    /// (default 8 MiB).
    pub max_pending_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message: 64 * 1024 * 1024,
            max_record: MAX_RECORD,
            max_name_len: 64,
            max_partial_messages: 16,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            max_pending_bytes: 8 * 1024 * 1024,
        }
    }
}

//! The one error type of the protocol crate.
//!
//! Every variant is specific enough for a test to assert on and for a peer to turn into a
//! clear message; none of them is ever a panic.

use crate::codes::ErrorCode;
use crate::prelude::*;

/// Everything that can go wrong while handshaking, decoding or sealing.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtoError {
    /// A record's declared length is larger than the limit allows.
    #[error("record of {len} bytes exceeds the limit of {max}")]
    RecordTooLarge { len: usize, max: usize },
    /// A handshake message is larger than any valid one can be.
    #[error("handshake message of {len} bytes exceeds the limit of {max}")]
    HandshakeTooLarge { len: usize, max: usize },
    /// A frame does not fit in one record; large messages must be chunked.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge { len: usize, max: usize },
    /// A message (after reassembly or decompression) exceeds the message limit.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    MessageTooLarge { len: u64, max: u64 },
    /// A frame's bytes do not parse.
    #[error("malformed {what}")]
    Malformed { what: &'static str },
    /// A frame type byte that this version does not know.
    #[error("unknown frame type {kind:#04x}")]
    UnknownFrame { kind: u8 },
    /// A peer or mesh name breaks the naming rules.
    #[error("invalid name: {reason}")]
    InvalidName { reason: &'static str },
    /// The other side speaks a protocol version we do not.
    #[error("protocol version {theirs} is not supported (this side speaks {ours})")]
    Version { ours: u8, theirs: u8 },
    /// The two sides are configured for different meshes.
    #[error("mesh mismatch: this side is in mesh {ours:?}, the other in {theirs:?}")]
    MeshMismatch { ours: String, theirs: String },
    /// No cipher or compression acceptable to both sides.
    #[error("no common {what}: offered {offered}")]
    NoCommonAlgorithm { what: &'static str, offered: String },
    /// The responder chose something the initiator did not offer, or the confirmation
    /// does not repeat the choice.
    #[error("negotiation violated: {what}")]
    Negotiation { what: &'static str },
    /// Decryption failed: a tampered or replayed record, a tampered handshake, or a
    /// different mesh key on the other side.
    #[error(
        "decryption failed ({during}): tampered data, a replayed record or a different mesh key"
    )]
    Decrypt { during: &'static str },
    /// A direction of the connection has used every record nonce Noise allows
    /// (2^64 - 1 records); the connection must be established anew.
    #[error("record counter exhausted: reconnect to get fresh keys")]
    NonceExhausted,
    /// A declared decompressed length is invalid or the data is corrupt.
    #[error("invalid compressed payload: {reason}")]
    Decompress { reason: String },
    /// A chunk does not continue the message it claims to belong to.
    #[error("chunk out of order for message {id}: expected offset {expected}, got {offset}")]
    ChunkOrder { id: u64, expected: u64, offset: u64 },
    /// Too many partly received messages at once.
    #[error("too many messages being reassembled at once (limit {max})")]
    TooManyPartial { max: usize },
    /// A blob transfer broke its protocol (offsets, window, sizes); that transfer ends.
    #[error("file transfer {blob:#x} broken: {reason}")]
    Blob { blob: u64, reason: String },
    /// The other side reported an error and is closing.
    #[error("remote error {code:?}: {text}")]
    Remote { code: ErrorCode, text: String },
    /// The transport failed underneath the protocol.
    #[error("i/o: {0}")]
    Io(String),
    /// A build without `std` was given no [`RandomSource`](crate::RandomSource): there is
    /// nothing to draw handshake keys from.
    #[error("no random source: a build without std needs RandomSource::from_fn")]
    NoRandomness,
    /// The Noise library refused an operation that the state machine should never ask for.
    #[error("noise: {0}")]
    Noise(String),
}

impl ProtoError {
    /// The code to put in an `Error` frame when this error closes a connection.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::RecordTooLarge { .. }
            | Self::HandshakeTooLarge { .. }
            | Self::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            Self::MessageTooLarge { .. } | Self::Decompress { .. } => ErrorCode::MessageTooLarge,
            Self::InvalidName { .. } => ErrorCode::NameInvalid,
            Self::Version { .. } => ErrorCode::Version,
            Self::MeshMismatch { .. } => ErrorCode::MeshMismatch,
            Self::NoCommonAlgorithm { .. } | Self::Negotiation { .. } => ErrorCode::Negotiation,
            Self::Remote { code, .. } => *code,
            _ => ErrorCode::Protocol,
        }
    }
}

impl From<snow::Error> for ProtoError {
    fn from(e: snow::Error) -> Self {
        match e {
            snow::Error::Decrypt => Self::Decrypt { during: "noise" },
            other => Self::Noise(other.to_string()),
        }
    }
}

#[cfg(feature = "std")]
impl From<std::io::Error> for ProtoError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.to_string())
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = ProtoError> = core::result::Result<T, E>;

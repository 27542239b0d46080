//! The one error type of every peer, native, browser or board. Display texts are what
//! people read (the CLI prints them, browsers reject promises with them), so they say
//! what happened in one line: `unknown peer "x"`, not a debug dump. None of them repeats
//! its cause: a cause is part of the text, never a `source` printed again after it.

use alloc::string::{String, ToString};
use core::time::Duration;

use lanmesh_proto::{ErrorCode, NackReason, ProtoError};

/// Everything a peer operation can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The router's address could not be reached.
    #[error("cannot connect to router at {addr}: {detail}")]
    Connect {
        /// The address tried.
        addr: String,
        /// What the transport said.
        detail: String,
    },
    /// Connecting or handshaking took longer than allowed.
    #[error("router at {addr} did not complete the handshake within {after:?}")]
    HandshakeTimeout {
        /// The address tried.
        addr: String,
        /// The deadline.
        after: Duration,
    },
    /// The handshake failed on our side (tampering, a wrong mesh key, bad input).
    #[error("handshake failed: {0}")]
    Handshake(ProtoError),
    /// The router closed the connection before welcoming us.
    #[error(
        "the router closed the connection during the handshake (wrong or missing mesh key? try --mesh-key-file)"
    )]
    ClosedDuringHandshake,
    /// The router refused us or closed the connection with an error.
    #[error("router refused: {text}")]
    Refused {
        /// The router's reason.
        code: ErrorCode,
        /// The router's explanation.
        text: String,
    },
    /// The router sent something that breaks the protocol.
    #[error("protocol error: {0}")]
    Protocol(ProtoError),
    /// No peer of that name is in the mesh.
    #[error("unknown peer {name:?}")]
    UnknownPeer {
        /// The name that nobody holds.
        name: String,
    },
    /// The recipient is not keeping up; the message was refused.
    #[error("peer {name:?} is overloaded; message {id} was not delivered")]
    Overloaded {
        /// The slow recipient.
        name: String,
        /// The refused message.
        id: u64,
    },
    /// The recipient (or the router, for it) refused a message larger than it accepts.
    #[error("peer {name:?} takes no message that large; message {id} was not delivered")]
    RefusedTooLarge {
        /// The recipient.
        name: String,
        /// The refused message.
        id: u64,
    },
    /// The recipient could not read the message and dropped it (see
    /// [`NackReason::Unreadable`]).
    #[error(
        "peer {name:?} could not read message {id} (corrupt or contradictory payload); it was not delivered"
    )]
    Unreadable {
        /// The recipient.
        name: String,
        /// The message's id.
        id: u64,
    },
    /// The answer to a request could not be read (see [`NackReason::Unreadable`]).
    #[error("the reply from {name:?} could not be read: {detail}")]
    UnreadableReply {
        /// The peer that answered.
        name: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The peer answers no requests (it has no request handler).
    #[error("peer {name:?} answers no requests")]
    NoResponder {
        /// The peer asked.
        name: String,
    },
    /// No reply arrived in time.
    #[error("no reply from {name:?} within {after:?}")]
    RequestTimeout {
        /// The peer asked.
        name: String,
        /// The deadline.
        after: Duration,
    },
    /// A payload is not the JSON the application expected, or could not be encoded.
    #[error("JSON: {0}")]
    Json(String),
    /// The message is larger than the limit.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Its size (0 when the router reported it without one).
        len: u64,
        /// The limit.
        max: u64,
    },
    /// No acknowledgement arrived in time.
    #[error("no acknowledgement from {name:?} for message {id} within {after:?}")]
    AckTimeout {
        /// The recipient.
        name: String,
        /// The message.
        id: u64,
        /// The deadline.
        after: Duration,
    },
    /// A file to send could not be read.
    #[error("cannot read {path}: {detail}")]
    File {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// The recipient refused a file (no save directory, too large, too many at once).
    #[error("peer {name:?} refused the file: {text}")]
    FileRefused {
        /// The recipient.
        name: String,
        /// Its reason.
        text: String,
    },
    /// A file transfer broke off.
    #[error("file transfer to {name:?} failed: {text}")]
    FileFailed {
        /// The recipient.
        name: String,
        /// What happened.
        text: String,
    },
    /// No router could be found on the LAN.
    #[error("{0}")]
    Discovery(String),
    /// The connection is gone.
    #[error("disconnected: {reason}")]
    Disconnected {
        /// Why.
        reason: String,
    },
    /// A name or argument is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The router's key is not one pinned for its mesh.
    #[error(
        "the router of mesh {mesh:?} has key {got}, but {file} pins {known}; \
         if the router was replaced on purpose, run again with --trust-router"
    )]
    RouterKeyChanged {
        /// The mesh.
        mesh: String,
        /// Fingerprints of the pinned keys.
        known: String,
        /// Fingerprint of the key the router presented.
        got: String,
        /// The pins file.
        file: String,
    },
    /// A local state file (such as the pinned router keys) could not be used.
    #[error("{0}")]
    StateFile(String),
}

impl ClientError {
    /// A [`ClientError::Disconnected`] saying why.
    pub fn disconnected(reason: impl Into<String>) -> Self {
        Self::Disconnected {
            reason: reason.into(),
        }
    }

    /// A [`ClientError::Invalid`] from a protocol error (a bad name, say).
    pub fn invalid(e: &ProtoError) -> Self {
        Self::Invalid(e.to_string())
    }

    /// What a `Nack` for message `id` to `peer` means to whoever sent it.
    pub fn from_nack(peer: &str, id: u64, reason: NackReason) -> Self {
        let name = peer.to_string();
        match reason {
            NackReason::UnknownPeer => Self::UnknownPeer { name },
            NackReason::TooLarge => Self::RefusedTooLarge { name, id },
            NackReason::NoResponder => Self::NoResponder { name },
            NackReason::Unreadable => Self::Unreadable { name, id },
            _ => Self::Overloaded { name, id },
        }
    }
}

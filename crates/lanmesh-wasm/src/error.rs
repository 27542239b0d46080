//! The browser client's error type. Display texts become the `message` of the JavaScript
//! `Error`s that promises reject with, so they are written for people:
//! `unknown peer "laptop"`, not a debug dump.

use std::time::Duration;

use lanmesh_proto::{ErrorCode, ProtoError};

/// Everything a browser peer operation can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The WebSocket could not be opened.
    #[error("cannot connect to {url}: {detail}")]
    Connect {
        /// The address tried.
        url: String,
        /// What the browser said.
        detail: String,
    },
    /// Connecting, handshaking and joining took longer than allowed.
    #[error("the router did not complete the handshake within {after:?}")]
    HandshakeTimeout {
        /// The deadline.
        after: Duration,
    },
    /// The handshake failed on our side (tampering, bad input).
    #[error("handshake failed: {0}")]
    Handshake(ProtoError),
    /// The router closed the connection before welcoming us.
    #[error(
        "the router closed the connection during the handshake (wrong or missing mesh key?): {detail}"
    )]
    ClosedDuringHandshake {
        /// How the connection ended.
        detail: String,
    },
    /// The router refused us (for example: the name is taken).
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
    /// The message is larger than we or the recipient accept.
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
    /// The application closed the peer.
    #[error("closed by the application")]
    Closed,
    /// The connection is gone, or not there yet.
    #[error("disconnected: {reason}")]
    Disconnected {
        /// Why.
        reason: String,
    },
    /// An argument is invalid (a name, a mesh key, the data to send).
    #[error("{0}")]
    Invalid(String),
}

impl ClientError {
    pub(crate) fn disconnected(reason: impl Into<String>) -> Self {
        Self::Disconnected {
            reason: reason.into(),
        }
    }
}

//! The codes that travel in frames: why a message was not delivered ([`NackReason`]) and
//! why a connection is being closed ([`ErrorCode`]). A leaf module: the frame codec and
//! the error type both speak them.

/// Why a message was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NackReason {
    /// No peer of that name is in the mesh.
    UnknownPeer,
    /// The recipient is not keeping up and its queue is full.
    Overloaded,
    /// The message is larger than the recipient accepts.
    TooLarge,
    /// A request reached a peer that answers no requests.
    NoResponder,
    /// The recipient could not read the message (a payload flagged compressed that does
    /// not decompress, chunks that contradict each other): it dropped that message alone.
    Unreadable,
    /// A reason this version does not know.
    Other(u8),
}

impl NackReason {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Self::UnknownPeer => 1,
            Self::Overloaded => 2,
            Self::TooLarge => 3,
            Self::NoResponder => 4,
            Self::Unreadable => 5,
            Self::Other(b) => b,
        }
    }
    pub(crate) fn from_u8(b: u8) -> Self {
        match b {
            1 => Self::UnknownPeer,
            2 => Self::Overloaded,
            3 => Self::TooLarge,
            4 => Self::NoResponder,
            5 => Self::Unreadable,
            other => Self::Other(other),
        }
    }
}

/// Why a connection is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Bytes that do not follow the protocol.
    Protocol,
    /// A record or frame over the limit.
    FrameTooLarge,
    /// A message over the limit.
    MessageTooLarge,
    /// The name is held by another peer.
    NameTaken,
    /// The name breaks the naming rules.
    NameInvalid,
    /// The peer asked for another mesh.
    MeshMismatch,
    /// Unsupported protocol version.
    Version,
    /// No acceptable cipher or compression.
    Negotiation,
    /// A member-only frame from a connection that did not join with a name.
    NotJoined,
    /// The handshake did not finish in time.
    HandshakeTimeout,
    /// No traffic, not even a pong, within the idle deadline.
    IdleTimeout,
    /// The peer fell too far behind; the overload policy disconnected it.
    Overloaded,
    /// The router is shutting down.
    Shutdown,
    /// The peer is not allowed in.
    Unauthorized,
    /// A code this version does not know.
    Other(u16),
}

impl ErrorCode {
    /// The code on the wire.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::Protocol => 1,
            Self::FrameTooLarge => 2,
            Self::MessageTooLarge => 3,
            Self::NameTaken => 4,
            Self::NameInvalid => 5,
            Self::MeshMismatch => 6,
            Self::Version => 7,
            Self::Negotiation => 8,
            Self::NotJoined => 9,
            Self::HandshakeTimeout => 10,
            Self::IdleTimeout => 11,
            Self::Overloaded => 12,
            Self::Shutdown => 13,
            Self::Unauthorized => 14,
            Self::Other(c) => c,
        }
    }

    /// Parses a wire code; unknown codes are kept.
    pub fn from_u16(c: u16) -> Self {
        match c {
            1 => Self::Protocol,
            2 => Self::FrameTooLarge,
            3 => Self::MessageTooLarge,
            4 => Self::NameTaken,
            5 => Self::NameInvalid,
            6 => Self::MeshMismatch,
            7 => Self::Version,
            8 => Self::Negotiation,
            9 => Self::NotJoined,
            10 => Self::HandshakeTimeout,
            11 => Self::IdleTimeout,
            12 => Self::Overloaded,
            13 => Self::Shutdown,
            14 => Self::Unauthorized,
            other => Self::Other(other),
        }
    }
}

//! What a peer hands its application: messages, its status, membership changes, and the
//! report of a close.

use alloc::string::String;
use alloc::vec::Vec;

use bytes::Bytes;
use lanmesh_proto::frame::flags;
use lanmesh_proto::{NackReason, Name, PeerInfo};

/// A message received from another peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sender (as the router saw it: a peer cannot claim another's name).
    pub from: Name,
    /// The sender's serial number for it.
    pub id: u64,
    /// The payload.
    pub data: Bytes,
    /// Protocol flags (text, broadcast, request, blob).
    pub flags: u8,
}

impl Message {
    /// The payload as text, if the sender sent text.
    pub fn text(&self) -> Option<&str> {
        if self.flags & flags::TEXT != 0 {
            core::str::from_utf8(&self.data).ok()
        } else {
            None
        }
    }

    /// Whether it was sent to everyone.
    pub fn is_broadcast(&self) -> bool {
        self.flags & flags::BROADCAST != 0
    }

    /// Whether it is a request waiting for a reply (only seen by applications that answer
    /// requests themselves).
    pub fn is_request(&self) -> bool {
        self.flags & flags::REQUEST != 0
    }
}

#[cfg(feature = "std")]
impl Message {
    /// The payload decoded from JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::ClientError> {
        serde_json::from_slice(&self.data).map_err(|e| crate::ClientError::Json(e.to_string()))
    }

    /// The file this message announces, when it is the notice of a completed incoming
    /// file (its `data` is then JSON `{"file","bytes","path"}`).
    pub fn file(&self) -> Option<ReceivedFile> {
        if self.flags & flags::BLOB == 0 {
            return None;
        }
        serde_json::from_slice(&self.data).ok()
    }
}

/// A file received into the save directory (see [`Message::file`]).
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReceivedFile {
    /// The name it was saved under (inside the save directory).
    pub file: String,
    /// Its length.
    pub bytes: u64,
    /// Where it is.
    pub path: std::path::PathBuf,
}

/// Where the connection to the router stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// The first connection is being made.
    Connecting,
    /// In the mesh, through the router at this address.
    Connected {
        /// The router's address.
        router: String,
    },
    /// The connection was lost; dialling again (attempt counts from 1).
    Reconnecting {
        /// Which attempt is under way.
        attempt: u32,
        /// Why the last connection or attempt ended.
        reason: String,
    },
    /// Closed for good.
    Closed {
        /// Why.
        reason: String,
    },
}

/// A change in the mesh's membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// A peer joined (or, after a reconnect, is found in the mesh).
    Joined(PeerInfo),
    /// A peer left.
    Left(Name),
}

/// A message sent without waiting for an ack, which the router could not deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undelivered {
    /// The intended recipient.
    pub to: Name,
    /// The message id.
    pub id: u64,
    /// Why.
    pub reason: NackReason,
}

/// What closing a peer reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloseReport {
    /// Messages sent with `send` that the router refused (unknown peer, overloaded, …).
    pub undelivered: Vec<Undelivered>,
}

//! The one error type of the embedded driver.

use alloc::string::String;

/// What can go wrong under the peer core: the byte stream.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EmbeddedError {
    /// The stream failed; the core has been told and will ask to dial again.
    #[error("stream: {0}")]
    Stream(String),
    /// The stream ended (the router closed the connection).
    #[error("stream closed by the router")]
    Closed,
}

//! The one error type of the bench crate.

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A server process could not be started or did not say where it listens.
    #[error("{what}: {text}")]
    Server {
        /// Which server.
        what: &'static str,
        /// What went wrong.
        text: String,
    },
    /// A client of the system under test failed.
    #[error("{system} client: {text}")]
    Client {
        /// The system under test.
        system: &'static str,
        /// What went wrong.
        text: String,
    },
    /// A socket or process failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A worker thread of the bench ended without a result (it panicked).
    #[error("a bench thread ended without a result")]
    Thread,
    /// Writing the results failed.
    #[error("cannot write results: {0}")]
    Results(String),
}

impl BenchError {
    pub(crate) fn client(system: &'static str, e: impl std::fmt::Display) -> Self {
        Self::Client {
            system,
            text: e.to_string(),
        }
    }
}

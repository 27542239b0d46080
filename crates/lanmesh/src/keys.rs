//! Mesh keys: 32 random bytes, stored as 64 hex digits in a text file.

use std::path::Path;

/// Reading or making a mesh key failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The file could not be read.
    #[error("cannot read mesh key file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not hold 64 hex digits.
    #[error("mesh key file {path} must hold 64 hex digits (made by `lanmesh keygen`)")]
    Format {
        /// The file.
        path: String,
    },
    /// The system's random source failed.
    #[error("no randomness available: {0}")]
    Random(String),
}

/// A new random mesh key.
pub fn generate_mesh_key() -> Result<[u8; 32], KeyError> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(key)
}

/// The text form of a key (what `lanmesh keygen` prints).
pub fn mesh_key_to_text(key: &[u8; 32]) -> String {
    hex::encode(key)
}

/// Reads a key file written by `lanmesh keygen` (surrounding white space is ignored).
pub fn mesh_key_from_file(path: impl AsRef<Path>) -> Result<[u8; 32], KeyError> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: shown.clone(),
        source,
    })?;
    lanmesh_proto::handshake::key_from_hex(&text).ok_or(KeyError::Format { path: shown })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_text_files() {
        let key = generate_mesh_key().unwrap();
        assert_ne!(key, generate_mesh_key().unwrap());
        let dir = std::env::temp_dir().join(format!("lanmesh-key-{}", std::process::id()));
        std::fs::write(&dir, format!("{}\n", mesh_key_to_text(&key))).unwrap();
        assert_eq!(mesh_key_from_file(&dir).unwrap(), key);
        std::fs::write(&dir, "not hex").unwrap();
        assert!(matches!(
            mesh_key_from_file(&dir),
            Err(KeyError::Format { .. })
        ));
        std::fs::remove_file(&dir).unwrap();
    }
}

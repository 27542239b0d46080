//! Router keys pinned per mesh, trusted on first use (like SSH's `known_hosts`).
//!
//! The file holds `mesh key-hex` lines. The first router met for a mesh is written down;
//! from then on a router of that mesh with another key is refused — it may be an
//! impostor on the LAN — unless the peer is told to trust it, which adds it. A mesh
//! served by several routers (a primary and standbys) therefore lists several keys.

use std::io::Write as _;
use std::path::PathBuf;

use lanmesh_proto::handshake::fingerprint;
use tracing::warn;

use lanmesh_core::ClientError;

/// Where pinned router keys are kept, and whether a new one is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterPins {
    /// The `known_routers` file.
    pub path: PathBuf,
    /// Trust (and add) a router key that differs from the pinned ones.
    pub trust_new: bool,
}

impl RouterPins {
    /// Pins kept in `path`.
    pub fn new(path: impl Into<PathBuf>, trust_new: bool) -> Self {
        Self {
            path: path.into(),
            trust_new,
        }
    }

    /// Accepts `key` for `mesh` if it is pinned, or pins it if the mesh has no key yet
    /// (or if told to trust new keys); refuses it otherwise.
    pub(crate) fn check(&self, mesh: &str, key: &[u8; 32]) -> Result<(), ClientError> {
        let text = self.read()?;
        let wanted = hex::encode(key);
        let known = known_keys(&text, mesh);
        if known.contains(&wanted.as_str()) {
            return Ok(());
        }
        if !known.is_empty() && !self.trust_new {
            let known = known
                .iter()
                .filter_map(|k| hex::decode(k).ok())
                .filter_map(|k| <[u8; 32]>::try_from(k).ok())
                .map(|k| fingerprint(&k))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ClientError::RouterKeyChanged {
                mesh: mesh.to_owned(),
                known,
                got: fingerprint(key),
                file: self.path.display().to_string(),
            });
        }
        if !known.is_empty() {
            warn!(mesh, key = %fingerprint(key), "trusting a new router key as asked");
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.io_error(e))?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| writeln!(f, "{mesh} {wanted}"))
            .map_err(|e| self.io_error(e))
    }

    /// Whether `key` is pinned for `mesh` already; never pins anything, whatever
    /// `trust_new` says (for a router remembered at an address, which must prove it is
    /// the one met before).
    pub(crate) fn is_pinned(&self, mesh: &str, key: &[u8; 32]) -> bool {
        let wanted = hex::encode(key);
        self.read()
            .is_ok_and(|text| known_keys(&text, mesh).contains(&wanted.as_str()))
    }

    fn read(&self) -> Result<String, ClientError> {
        match std::fs::read_to_string(&self.path) {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(self.io_error(e)),
        }
    }

    fn io_error(&self, e: std::io::Error) -> ClientError {
        ClientError::StateFile(format!("{}: {e}", self.path.display()))
    }
}

/// The keys pinned for `mesh` in the text of the file, as hex.
fn known_keys<'t>(text: &'t str, mesh: &str) -> Vec<&'t str> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            (parts.next() == Some(mesh)).then(|| parts.next()).flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_key_is_pinned_and_a_changed_key_refused_unless_trusted() {
        let dir = std::env::temp_dir().join(format!("lanmesh-pins-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pins = RouterPins::new(dir.join("known_routers"), false);
        pins.check("home", &[1; 32]).unwrap();
        pins.check("home", &[1; 32]).unwrap();
        pins.check("office", &[2; 32]).unwrap();
        let err = pins.check("home", &[3; 32]).unwrap_err();
        assert!(matches!(err, ClientError::RouterKeyChanged { .. }), "{err}");
        assert!(err.to_string().contains("--trust-router"), "{err}");
        RouterPins::new(dir.join("known_routers"), true)
            .check("home", &[3; 32])
            .unwrap();
        pins.check("home", &[3; 32]).unwrap();
        pins.check("home", &[1; 32]).unwrap();
        assert!(pins.is_pinned("home", &[3; 32]) && pins.is_pinned("office", &[2; 32]));
        // Asking never pins, even when told to trust new keys.
        let trusting = RouterPins::new(dir.join("known_routers"), true);
        assert!(!trusting.is_pinned("home", &[4; 32]));
        assert!(!trusting.is_pinned("home", &[4; 32]));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

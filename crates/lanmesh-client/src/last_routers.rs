//! The last router that worked for each mesh, kept beside the pinned router keys, so that
//! the next join of the mesh tries it first and needs no discovery at all.
//!
//! The file (`last_routers`, next to `known_routers`) holds `mesh addr key-hex` lines.
//! Trust never comes from it: a remembered router is used only when the key it proves in
//! the handshake is the one remembered *and* is pinned for the mesh (see
//! `crate::pins`). When nothing answers at the address any more, or another router holds
//! it, the peer discovers the mesh's router as if nothing was remembered, and the entry
//! is forgotten or replaced.
//!
//! The file is replaced whole — written to a temporary file in the same directory, then
//! renamed over the old one — so a reader never sees half of it. Processes of one user
//! writing at once each leave a whole file; the last rename wins, which only costs the
//! others one discovery next time.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use lanmesh_core::ClientError;

use crate::RouterPins;

/// A router remembered for a mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Remembered {
    pub(crate) addr: SocketAddr,
    pub(crate) key: [u8; 32],
}

/// The `last_routers` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LastRouters {
    path: PathBuf,
}

impl LastRouters {
    /// The file beside the pinned keys of `pins`.
    pub(crate) fn beside(pins: &RouterPins) -> Self {
        Self {
            path: pins.path.with_file_name("last_routers"),
        }
    }

    /// The router remembered for `mesh`, if any (an unreadable file remembers nothing).
    pub(crate) fn get(&self, mesh: &str) -> Option<Remembered> {
        self.entries()
            .into_iter()
            .find_map(|(m, r)| (m == mesh).then_some(r))
    }

    /// Remembers `router` for `mesh`, replacing what was remembered; no write when it is
    /// already the one remembered.
    pub(crate) fn remember(&self, mesh: &str, router: Remembered) -> Result<(), ClientError> {
        let mut entries = self.entries();
        if entries.iter().any(|(m, r)| m == mesh && *r == router) {
            return Ok(());
        }
        entries.retain(|(m, _)| m != mesh);
        entries.push((mesh.to_owned(), router));
        self.write(&entries)
    }

    /// Forgets the router remembered for `mesh`.
    pub(crate) fn forget(&self, mesh: &str) -> Result<(), ClientError> {
        let mut entries = self.entries();
        let before = entries.len();
        entries.retain(|(m, _)| m != mesh);
        if entries.len() == before {
            return Ok(());
        }
        self.write(&entries)
    }

    /// Every well-formed line; others are skipped (and dropped at the next write).
    fn entries(&self) -> Vec<(String, Remembered)> {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|l| {
                let mut parts = l.split_whitespace();
                let mesh = parts.next()?;
                let addr = parts.next()?.parse().ok()?;
                let key = hex::decode(parts.next()?).ok()?.try_into().ok()?;
                Some((mesh.to_owned(), Remembered { addr, key }))
            })
            .collect()
    }

    fn write(&self, entries: &[(String, Remembered)]) -> Result<(), ClientError> {
        let io_error =
            |e: std::io::Error| ClientError::StateFile(format!("{}: {e}", self.path.display()));
        let dir = self
            .path
            .parent()
            .ok_or_else(|| io_error(std::io::Error::other("no parent directory")))?;
        std::fs::create_dir_all(dir).map_err(io_error)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tmp = dir.join(format!(".last_routers.{}.{nanos}", std::process::id()));
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            for (mesh, r) in entries {
                writeln!(f, "{mesh} {} {}", r.addr, hex::encode(r.key))?;
            }
            f.sync_all()
        });
        let renamed = written.and_then(|()| std::fs::rename(&tmp, &self.path));
        if renamed.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        renamed.map_err(io_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_router_per_mesh_is_remembered_replaced_and_forgotten() {
        let dir = std::env::temp_dir().join(format!("lanmesh-last-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let last = LastRouters::beside(&RouterPins::new(dir.join("known_routers"), false));
        assert_eq!(last.get("home"), None);
        let a = Remembered {
            addr: "10.77.0.1:7400".parse().unwrap(),
            key: [1; 32],
        };
        let b = Remembered {
            addr: "10.77.0.4:7400".parse().unwrap(),
            key: [2; 32],
        };
        last.remember("home", a).unwrap();
        last.remember("office", b).unwrap();
        assert_eq!((last.get("home"), last.get("office")), (Some(a), Some(b)));
        last.remember("home", b).unwrap();
        assert_eq!(last.get("home"), Some(b));
        last.forget("home").unwrap();
        assert_eq!((last.get("home"), last.get("office")), (None, Some(b)));
        // Nothing but the file itself is left in the directory.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["last_routers"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let dir = std::env::temp_dir().join(format!("lanmesh-last-bad-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = hex::encode([3u8; 32]);
        std::fs::write(
            dir.join("last_routers"),
            format!(
                "home\nhome not-an-addr {key}\nhome 10.0.0.1:1 abcd\nhome 10.0.0.2:7400 {key}\n"
            ),
        )
        .unwrap();
        let last = LastRouters::beside(&RouterPins::new(dir.join("known_routers"), false));
        assert_eq!(
            last.get("home"),
            Some(Remembered {
                addr: "10.0.0.2:7400".parse().unwrap(),
                key: [3; 32]
            })
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

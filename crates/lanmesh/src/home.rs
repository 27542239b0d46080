//! The per-user state directory of the command line: static keys, pinned router keys and
//! the router's name bindings.
//!
//! ```text
//! $LANMESH_HOME, else $XDG_CONFIG_HOME/lanmesh, else ~/.config/lanmesh
//! ├── identity          this user's peer key pair (hex private, hex public; mode 0600)
//! ├── known_routers     `mesh key-hex` lines: router keys trusted on first use
//! ├── last_routers      `mesh addr key-hex` lines: the last router joined by discovery,
//! │                     tried first next time (only with the key it had and pinned)
//! └── router/
//!     ├── identity      the router's key, so peers can pin it across restarts
//!     └── names         name bindings (see lanmesh-router)
//! ```
//!
//! The library keeps nothing on disk unless told to: these paths are used by the CLI.

use std::path::{Path, PathBuf};

use lanmesh_proto::Identity;

/// Reading or writing the state directory failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HomeError {
    /// No directory could be chosen.
    #[error("no home for lanmesh state: set LANMESH_HOME")]
    NoHome,
    /// A file could not be read or written.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct Home {
    dir: PathBuf,
}

impl Home {
    /// `$LANMESH_HOME`, else `$XDG_CONFIG_HOME/lanmesh`, else `~/.config/lanmesh`.
    pub fn locate() -> Result<Self, HomeError> {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let dir = var("LANMESH_HOME")
            .or_else(|| var("XDG_CONFIG_HOME").map(|d| d.join("lanmesh")))
            .or_else(|| var("HOME").map(|d| d.join(".config").join("lanmesh")))
            .ok_or(HomeError::NoHome)?;
        Ok(Self { dir })
    }

    /// A state directory at `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// This user's peer key, made on first use.
    pub fn peer_identity(&self) -> Result<Identity, HomeError> {
        load_or_create_identity(&self.dir.join("identity"))
    }

    /// The router's key, made on first use.
    pub fn router_identity(&self) -> Result<Identity, HomeError> {
        load_or_create_identity(&self.router_dir().join("identity"))
    }

    /// Where the router keeps its name bindings.
    pub fn router_dir(&self) -> PathBuf {
        self.dir.join("router")
    }

    /// The file of router keys trusted per mesh.
    pub fn known_routers(&self) -> PathBuf {
        self.dir.join("known_routers")
    }
}

fn file_error(path: &Path, e: impl ToString) -> HomeError {
    HomeError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Reads a key file, or makes a new key pair and writes it readable by the owner only.
pub fn load_or_create_identity(path: &Path) -> Result<Identity, HomeError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_identity(&text).ok_or_else(|| {
            file_error(
                path,
                "expected a private and a public key, 64 hex digits each",
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let identity = Identity::generate().map_err(|e| file_error(path, e))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
            }
            let text = format!(
                "{} {}\n",
                hex::encode(identity.secret()),
                hex::encode(identity.public())
            );
            if write_private_once(path, &text)? {
                Ok(identity)
            } else {
                // Another process made one first: use that one.
                load_or_create_identity(path)
            }
        }
        Err(e) => Err(file_error(path, e)),
    }
}

fn parse_identity(text: &str) -> Option<Identity> {
    let mut parts = text.split_whitespace();
    let secret = hex::decode(parts.next()?).ok()?;
    let public = hex::decode(parts.next()?).ok()?;
    if parts.next().is_some() {
        return None;
    }
    Identity::from_parts(&secret, &public).ok()
}

/// Writes `text` to `path` (mode 0600 on Unix) unless `path` exists; returns whether it
/// wrote. The file appears whole or not at all: it is written aside, then linked in.
fn write_private_once(path: &Path, text: &str) -> Result<bool, HomeError> {
    use std::io::Write as _;
    let aside = path.with_extension(format!("new-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options
        .open(&aside)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| file_error(&aside, e))?;
    let linked = std::fs::hard_link(&aside, path);
    let _ = std::fs::remove_file(&aside);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(file_error(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("lanmesh-home-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let home = Home::at(&dir);
        let first = home.peer_identity().unwrap();
        let again = home.peer_identity().unwrap();
        assert_eq!(first.public(), again.public());
        assert_ne!(home.router_identity().unwrap().public(), first.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join("identity"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.join("identity"), "junk").unwrap();
        assert!(home.peer_identity().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

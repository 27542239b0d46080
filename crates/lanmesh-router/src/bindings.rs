//! Name bindings: each name belongs to the first static key that joined with it.
//!
//! A name is bound the first time a key joins under it, and from then on only that key
//! may use it — there is no silent takeover. An allow-list file pins names up front;
//! pinned names are never rebound. With a state directory the bindings survive
//! restarts (`names`, one `name key-hex` line each; a new binding is one appended line,
//! since a binding never changes).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use lanmesh_proto::Name;

use crate::RouterError;

/// The file name of the bindings inside the state directory.
pub const BINDINGS_FILE: &str = "names";

/// Name → key, with where to keep it.
#[derive(Debug, Default)]
pub(crate) struct Bindings {
    keys: HashMap<Name, [u8; 32]>,
    /// Names from the allow-list: fixed.
    pinned: HashMap<Name, [u8; 32]>,
    file: Option<PathBuf>,
    /// New names one key may bind (names pinned to it by the allow-list aside).
    max_per_key: usize,
}

/// Why a key may not use a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Another key holds it.
    Owned { owner: [u8; 32] },
    /// The key holds `max` names already.
    TooMany { max: usize },
}

impl Bindings {
    /// Bindings kept in `state_dir` (created if missing) and pinned by `allow_list`.
    pub(crate) fn load(
        state_dir: Option<&Path>,
        allow_list: Option<&Path>,
        max_per_key: usize,
    ) -> Result<Self, RouterError> {
        let mut b = Bindings {
            max_per_key,
            ..Bindings::default()
        };
        if let Some(dir) = state_dir {
            std::fs::create_dir_all(dir).map_err(|e| RouterError::State {
                path: dir.display().to_string(),
                reason: e.to_string(),
            })?;
            let file = dir.join(BINDINGS_FILE);
            if file.exists() {
                b.keys = read_list(&file)?;
            }
            b.file = Some(file);
        }
        if let Some(path) = allow_list {
            b.pinned = read_list(path)?;
        }
        Ok(b)
    }

    /// Whether `key` may join as `name`; binds the name when it is free.
    pub(crate) fn claim(&mut self, name: &Name, key: &[u8; 32]) -> Result<(), Refusal> {
        if let Some(owner) = self.pinned.get(name).or_else(|| self.keys.get(name)) {
            return if owner == key {
                Ok(())
            } else {
                Err(Refusal::Owned { owner: *owner })
            };
        }
        if self.keys.values().filter(|k| *k == key).count() >= self.max_per_key {
            return Err(Refusal::TooMany {
                max: self.max_per_key,
            });
        }
        self.keys.insert(name.clone(), *key);
        self.append(name, key);
        Ok(())
    }

    /// Appends one binding. A line cut short by a crash fails to parse on the next start,
    /// which then says so clearly (rather than binding a name to half a key).
    fn append(&self, name: &Name, key: &[u8; 32]) {
        use std::io::Write as _;
        let Some(file) = &self.file else {
            return;
        };
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .and_then(|mut f| writeln!(f, "{} {}", name.as_str(), hex::encode(key)));
        if let Err(e) = written {
            tracing::warn!(file = %file.display(), error = %e, "cannot save a name binding");
        }
    }
}

/// Reads `name key-hex` lines; `#` starts a comment.
fn read_list(path: &Path) -> Result<HashMap<Name, [u8; 32]>, RouterError> {
    let bad = |line: usize, why: &str| RouterError::State {
        path: path.display().to_string(),
        reason: format!("line {line}: {why}"),
    };
    let text = std::fs::read_to_string(path).map_err(|e| RouterError::State {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(name), Some(key), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad(i + 1, "expected `name key-hex`"));
        };
        let name = Name::new(name).map_err(|e| bad(i + 1, &e.to_string()))?;
        let key = hex::decode(key)
            .ok()
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or_else(|| bad(i + 1, "the key must be 64 hex digits"))?;
        out.insert(name, key);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("lanmesh-bindings-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_first_key_keeps_the_name_across_restarts() {
        let dir = temp_dir("restart");
        let mut b = Bindings::load(Some(&dir), None, 8).unwrap();
        assert_eq!(b.claim(&name("A"), &[1; 32]), Ok(()));
        assert_eq!(b.claim(&name("A"), &[1; 32]), Ok(()));
        assert_eq!(
            b.claim(&name("A"), &[2; 32]),
            Err(Refusal::Owned { owner: [1; 32] })
        );
        let mut again = Bindings::load(Some(&dir), None, 8).unwrap();
        assert_eq!(
            again.claim(&name("A"), &[2; 32]),
            Err(Refusal::Owned { owner: [1; 32] })
        );
        assert_eq!(again.claim(&name("B"), &[2; 32]), Ok(()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn one_key_binds_a_bounded_number_of_names() {
        let mut b = Bindings::load(None, None, 3).unwrap();
        for n in ["a", "b", "c"] {
            assert_eq!(b.claim(&name(n), &[1; 32]), Ok(()));
        }
        assert_eq!(
            b.claim(&name("d"), &[1; 32]),
            Err(Refusal::TooMany { max: 3 })
        );
        assert_eq!(
            b.claim(&name("a"), &[1; 32]),
            Ok(()),
            "its own names still work"
        );
        assert_eq!(
            b.claim(&name("d"), &[2; 32]),
            Ok(()),
            "other keys are not held back"
        );
    }

    #[test]
    fn the_allow_list_pins_names() {
        let dir = temp_dir("allow");
        std::fs::create_dir_all(&dir).unwrap();
        let list = dir.join("allow");
        std::fs::write(&list, format!("# pinned\nsensor {}\n", "ab".repeat(32))).unwrap();
        let mut b = Bindings::load(None, Some(&list), 8).unwrap();
        assert!(b.claim(&name("sensor"), &[1; 32]).is_err());
        assert_eq!(b.claim(&name("sensor"), &[0xab; 32]), Ok(()));
        std::fs::write(&list, "sensor nothex\n").unwrap();
        let err = Bindings::load(None, Some(&list), 8).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Name bindings: each name belongs to the first static key that joined with it.
//!
//! A name is bound the first time a key joins under it, and from then on only that key
//! may use it — there is no silent takeover. An allow-list file pins names up front;
//! pinned names are never rebound. Two budgets stop squatting: a key binds at most
//! `max_names_per_key` names, and new bindings are rate-limited per key and for the whole
//! router (token buckets, [`BindingRate`]); joining under a name already bound costs
//! nothing.
//!
//! With a state directory the bindings survive restarts in one append-only file
//! (`names`): a binding is a `name key-hex` line, a release (`lanmesh names release`) a
//! `-name` line, and the last line about a name wins. The router reads what others
//! appended before each new claim, so a release takes effect while it runs:
//!
//! 1. the operator appends `-name` (one `write` of a short line, atomic with `O_APPEND`);
//! 2. the next join under any name reads the file from where it last stopped and forgets
//!    the binding;
//! 3. the next key to join under that name binds it (a line of its own).

use std::collections::HashMap;
use std::io::{Read as _, Seek as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lanmesh_proto::Name;

use crate::RouterError;

/// The file name of the bindings inside the state directory.
pub const BINDINGS_FILE: &str = "names";

/// A token bucket for new bindings: `burst` at once, then one per `every` (zero: no
/// limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingRate {
    /// New names that may be bound at once.
    pub burst: u32,
    /// Time that gives back one of them.
    pub every: Duration,
}

impl BindingRate {
    /// No limit.
    pub const UNLIMITED: BindingRate = BindingRate {
        burst: u32::MAX,
        every: Duration::ZERO,
    };
}

impl std::fmt::Display for BindingRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at once, then one every {}",
            self.burst,
            seconds(self.every)
        )
    }
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 && d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{s:.1} s")
    }
}

/// A bucket as the time at which it is empty again (GCRA): one `Instant`, no floats.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// When every token taken so far has been given back.
    refilled_at: Instant,
}

impl Bucket {
    fn new(now: Instant) -> Self {
        Self { refilled_at: now }
    }

    /// `Ok` when a token is free (not taken yet), else how long until one is.
    fn check(&self, rate: BindingRate, now: Instant) -> Result<(), Duration> {
        if rate.every.is_zero() {
            return Ok(());
        }
        let after = self.refilled_at.max(now) + rate.every;
        let window = rate.every.saturating_mul(rate.burst);
        let wait = after.saturating_duration_since(now);
        if wait > window {
            Err(wait - window)
        } else {
            Ok(())
        }
    }

    fn take(&mut self, rate: BindingRate, now: Instant) {
        self.refilled_at = self.refilled_at.max(now) + rate.every;
    }

    fn is_full(&self, now: Instant) -> bool {
        self.refilled_at <= now
    }
}

/// The limits on binding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BindingLimits {
    /// New names one key may bind (names pinned to it by the allow-list aside).
    pub(crate) max_per_key: usize,
    pub(crate) per_key: BindingRate,
    pub(crate) overall: BindingRate,
}

impl Default for BindingLimits {
    fn default() -> Self {
        Self {
            max_per_key: usize::MAX,
            per_key: BindingRate::UNLIMITED,
            overall: BindingRate::UNLIMITED,
        }
    }
}

/// Name → key, with where to keep it.
#[derive(Debug)]
pub(crate) struct Bindings {
    keys: HashMap<Name, [u8; 32]>,
    /// Names from the allow-list: fixed.
    pinned: HashMap<Name, [u8; 32]>,
    file: Option<PathBuf>,
    /// How far the file has been read (lines appended by others come after it).
    read_to: u64,
    limits: BindingLimits,
    per_key: HashMap<[u8; 32], Bucket>,
    overall: Option<Bucket>,
}

/// Why a key may not use a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Another key holds it.
    Owned { owner: [u8; 32] },
    /// The key holds `max` names already.
    TooMany { max: usize },
    /// The key binds new names faster than `rate`; one is free again after `retry`.
    KeyTooFast { rate: BindingRate, retry: Duration },
    /// The router binds new names faster than `rate` (keys are free to make).
    RouterTooFast { rate: BindingRate, retry: Duration },
}

impl Refusal {
    /// The text a refused peer reads.
    pub(crate) fn text(&self, name: &Name, key: &[u8; 32]) -> String {
        use lanmesh_proto::handshake::fingerprint;
        // Whole seconds, rounded up, once it is a second or more.
        let retry = |d: &Duration| match d.as_millis() {
            ms if ms >= 1000 => format!("{} s", ms.div_ceil(1000)),
            ms => format!("{:.1} s", (ms.max(100) as f64) / 1000.0),
        };
        match self {
            Refusal::Owned { owner } => format!(
                "name {:?} belongs to another key ({}); this peer's key is {}",
                name.as_str(),
                fingerprint(owner),
                fingerprint(key),
            ),
            Refusal::TooMany { max } => format!(
                "key {} already holds {max} names, the most one key may bind here; \
                 use one of them",
                fingerprint(key),
            ),
            Refusal::KeyTooFast { rate, retry: r } => format!(
                "key {} binds new names too fast (this router allows {rate}); \
                 try {:?} again in {}",
                fingerprint(key),
                name.as_str(),
                retry(r),
            ),
            Refusal::RouterTooFast { rate, retry: r } => format!(
                "this router is binding new names too fast (it allows {rate} over all \
                 keys); try {:?} again in {}",
                name.as_str(),
                retry(r),
            ),
        }
    }
}

impl Bindings {
    /// Bindings kept in `state_dir` (created if missing) and pinned by `allow_list`.
    pub(crate) fn load(
        state_dir: Option<&Path>,
        allow_list: Option<&Path>,
        limits: BindingLimits,
    ) -> Result<Self, RouterError> {
        let mut b = Bindings {
            keys: HashMap::new(),
            pinned: HashMap::new(),
            file: None,
            read_to: 0,
            limits,
            per_key: HashMap::new(),
            overall: None,
        };
        if let Some(dir) = state_dir {
            std::fs::create_dir_all(dir).map_err(|e| RouterError::State {
                path: dir.display().to_string(),
                reason: e.to_string(),
            })?;
            let file = dir.join(BINDINGS_FILE);
            if file.exists() {
                let text = read_text(&file)?;
                apply(&mut b.keys, &text, &file)?;
                b.read_to = text.len() as u64;
            }
            b.file = Some(file);
        }
        if let Some(path) = allow_list {
            let mut pinned = HashMap::new();
            apply(&mut pinned, &read_text(path)?, path)?;
            b.pinned = pinned;
        }
        Ok(b)
    }

    /// Whether `key` may join as `name` at `now`; binds the name when it is free.
    pub(crate) fn claim(
        &mut self,
        name: &Name,
        key: &[u8; 32],
        now: Instant,
    ) -> Result<(), Refusal> {
        // What the operator appended (releases) counts from the next join on.
        self.read_appended();
        if let Some(owner) = self.pinned.get(name).or_else(|| self.keys.get(name)) {
            return if owner == key {
                Ok(())
            } else {
                Err(Refusal::Owned { owner: *owner })
            };
        }
        let limits = self.limits;
        if self.keys.values().filter(|k| *k == key).count() >= limits.max_per_key {
            return Err(Refusal::TooMany {
                max: limits.max_per_key,
            });
        }
        let mut mine = self
            .per_key
            .get(key)
            .copied()
            .unwrap_or_else(|| Bucket::new(now));
        let mut all = self.overall.unwrap_or_else(|| Bucket::new(now));
        mine.check(limits.per_key, now)
            .map_err(|retry| Refusal::KeyTooFast {
                rate: limits.per_key,
                retry,
            })?;
        all.check(limits.overall, now)
            .map_err(|retry| Refusal::RouterTooFast {
                rate: limits.overall,
                retry,
            })?;
        mine.take(limits.per_key, now);
        all.take(limits.overall, now);
        self.overall = Some(all);
        // A full bucket is the same as none: forget those, so the map holds only keys
        // that bound a name lately.
        if self.per_key.len() >= 1024 {
            self.per_key.retain(|_, b| !b.is_full(now));
        }
        self.per_key.insert(*key, mine);
        self.keys.insert(name.clone(), *key);
        self.append(name, key);
        Ok(())
    }

    /// The key `name` is bound to here (pinned or bound), if any.
    pub(crate) fn owner(&self, name: &Name) -> Option<[u8; 32]> {
        self.pinned
            .get(name)
            .or_else(|| self.keys.get(name))
            .copied()
    }

    /// Undoes the binding a [`Bindings::claim`] just made (the mesh refused it: another
    /// router holds the name for another key). Pinned names are not touched.
    #[cfg_attr(not(feature = "federation"), allow(dead_code))]
    pub(crate) fn forget(&mut self, name: &Name) {
        if self.pinned.contains_key(name) || self.keys.remove(name).is_none() {
            return;
        }
        if let Some(file) = &self.file {
            if let Err(e) = append_line(file, &format!("-{}", name.as_str())) {
                tracing::warn!(file = %file.display(), error = %e, "cannot undo a name binding");
            }
        }
    }

    /// Applies the lines appended to the file since it was last read (releases by the
    /// operator, and this router's own bindings, which change nothing). Only whole lines:
    /// one being written is read next time.
    fn read_appended(&mut self) {
        let Some(file) = &self.file else {
            return;
        };
        let mut text = String::new();
        let read = std::fs::File::open(file).and_then(|mut f| {
            f.seek(std::io::SeekFrom::Start(self.read_to))?;
            f.read_to_string(&mut text)
        });
        match read {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "cannot read the name bindings");
                return;
            }
        }
        let complete = text.rfind('\n').map_or(0, |i| i + 1);
        if complete == 0 {
            return;
        }
        if let Err(e) = apply(&mut self.keys, &text[..complete], file) {
            tracing::warn!(error = %e, "ignoring a bad line appended to the name bindings");
        }
        self.read_to += complete as u64;
    }

    /// Appends one binding. A line cut short by a crash fails to parse on the next start,
    /// which then says so clearly (rather than binding a name to half a key).
    fn append(&self, name: &Name, key: &[u8; 32]) {
        let Some(file) = &self.file else {
            return;
        };
        if let Err(e) = append_line(file, &format!("{} {}", name.as_str(), hex::encode(key))) {
            tracing::warn!(file = %file.display(), error = %e, "cannot save a name binding");
        }
    }
}

/// Appends `line` and a newline in one write, so that concurrent writers (the router
/// and `lanmesh names release`) never interleave inside a line.
fn append_line(file: &Path, line: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    f.write_all(format!("{line}\n").as_bytes())
}

fn read_text(path: &Path) -> Result<String, RouterError> {
    std::fs::read_to_string(path).map_err(|e| RouterError::State {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Applies `name key-hex` and `-name` lines in order; `#` starts a comment.
fn apply(out: &mut HashMap<Name, [u8; 32]>, text: &str, path: &Path) -> Result<(), RouterError> {
    let bad = |line: usize, why: &str| RouterError::State {
        path: path.display().to_string(),
        reason: format!("line {line}: {why}"),
    };
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(released) = line.strip_prefix('-') {
            let name = Name::new(released.trim()).map_err(|e| bad(n, &e.to_string()))?;
            out.remove(&name);
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(name), Some(key), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad(n, "expected `name key-hex` or `-name`"));
        };
        let name = Name::new(name).map_err(|e| bad(n, &e.to_string()))?;
        let key = hex::decode(key)
            .ok()
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or_else(|| bad(n, "the key must be 64 hex digits"))?;
        out.insert(name, key);
    }
    Ok(())
}

/// The names bound in a router's state directory, sorted, as the router would load them.
/// For `lanmesh names list`; works while the router runs.
pub fn list_bindings(state_dir: &Path) -> Result<Vec<(Name, [u8; 32])>, RouterError> {
    let file = state_dir.join(BINDINGS_FILE);
    if !file.exists() {
        return Ok(Vec::new());
    }
    let mut keys = HashMap::new();
    let text = read_text(&file)?;
    let complete = text.rfind('\n').map_or(0, |i| i + 1);
    apply(&mut keys, &text[..complete], &file)?;
    let mut list: Vec<_> = keys.into_iter().collect();
    list.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(list)
}

/// Releases `name` in a router's state directory (appends `-name`): the next key to join
/// under it binds it. Works while the router runs; the router notices at the next join.
/// Returns the key that held it, `None` when it was not bound (nothing is written).
/// Names pinned by an allow-list stay pinned: edit that file.
pub fn release_binding(state_dir: &Path, name: &Name) -> Result<Option<[u8; 32]>, RouterError> {
    let held = list_bindings(state_dir)?
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, k)| k);
    if held.is_some() {
        let file = state_dir.join(BINDINGS_FILE);
        append_line(&file, &format!("-{}", name.as_str())).map_err(|e| RouterError::State {
            path: file.display().to_string(),
            reason: e.to_string(),
        })?;
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn max(n: usize) -> BindingLimits {
        BindingLimits {
            max_per_key: n,
            ..BindingLimits::default()
        }
    }

    fn rate(burst: u32, every_secs: u64) -> BindingRate {
        BindingRate {
            burst,
            every: Duration::from_secs(every_secs),
        }
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
        let mut b = Bindings::load(Some(&dir), None, max(8)).unwrap();
        assert_eq!(b.claim(&name("A"), &[1; 32], Instant::now()), Ok(()));
        assert_eq!(b.claim(&name("A"), &[1; 32], Instant::now()), Ok(()));
        assert_eq!(
            b.claim(&name("A"), &[2; 32], Instant::now()),
            Err(Refusal::Owned { owner: [1; 32] })
        );
        let mut again = Bindings::load(Some(&dir), None, max(8)).unwrap();
        assert_eq!(
            again.claim(&name("A"), &[2; 32], Instant::now()),
            Err(Refusal::Owned { owner: [1; 32] })
        );
        assert_eq!(again.claim(&name("B"), &[2; 32], Instant::now()), Ok(()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn one_key_binds_a_bounded_number_of_names() {
        let mut b = Bindings::load(None, None, max(3)).unwrap();
        for n in ["a", "b", "c"] {
            assert_eq!(b.claim(&name(n), &[1; 32], Instant::now()), Ok(()));
        }
        assert_eq!(
            b.claim(&name("d"), &[1; 32], Instant::now()),
            Err(Refusal::TooMany { max: 3 })
        );
        assert_eq!(
            b.claim(&name("a"), &[1; 32], Instant::now()),
            Ok(()),
            "its own names still work"
        );
        assert_eq!(
            b.claim(&name("d"), &[2; 32], Instant::now()),
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
        let mut b = Bindings::load(None, Some(&list), max(8)).unwrap();
        assert!(b.claim(&name("sensor"), &[1; 32], Instant::now()).is_err());
        assert_eq!(
            b.claim(&name("sensor"), &[0xab; 32], Instant::now()),
            Ok(())
        );
        std::fs::write(&list, "sensor nothex\n").unwrap();
        let err = Bindings::load(None, Some(&list), max(8)).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn new_bindings_are_rate_limited_per_key_and_overall() {
        let limits = BindingLimits {
            max_per_key: 16,
            per_key: rate(2, 10),
            overall: rate(3, 1),
        };
        let mut b = Bindings::load(None, None, limits).unwrap();
        let t0 = Instant::now();
        assert_eq!(b.claim(&name("a"), &[1; 32], t0), Ok(()));
        assert_eq!(b.claim(&name("b"), &[1; 32], t0), Ok(()));
        let Err(Refusal::KeyTooFast { retry, .. }) = b.claim(&name("c"), &[1; 32], t0) else {
            panic!("the third name at once");
        };
        assert_eq!(retry, Duration::from_secs(10));
        assert_eq!(
            b.claim(&name("a"), &[1; 32], t0),
            Ok(()),
            "rejoining is free"
        );
        // Another key has a bucket of its own, but the router's is nearly spent.
        assert_eq!(b.claim(&name("x"), &[2; 32], t0), Ok(()));
        let refusal = b.claim(&name("y"), &[3; 32], t0).unwrap_err();
        assert!(
            matches!(refusal, Refusal::RouterTooFast { .. }),
            "{refusal:?}"
        );
        let text = refusal.text(&name("y"), &[3; 32]);
        assert!(
            text.contains("too fast") && text.contains("again in 1 s"),
            "{text}"
        );
        // Time gives tokens back.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(b.claim(&name("c"), &[1; 32], later), Ok(()));
        assert_eq!(b.claim(&name("y"), &[3; 32], later), Ok(()));
    }

    #[test]
    fn a_release_appended_while_the_router_runs_frees_the_name() {
        let dir = temp_dir("release");
        let mut b = Bindings::load(Some(&dir), None, max(8)).unwrap();
        let now = Instant::now();
        assert_eq!(b.claim(&name("A"), &[1; 32], now), Ok(()));
        assert_eq!(b.claim(&name("B"), &[1; 32], now), Ok(()));
        assert_eq!(list_bindings(&dir).unwrap().len(), 2);
        assert_eq!(release_binding(&dir, &name("A")).unwrap(), Some([1; 32]));
        assert_eq!(
            release_binding(&dir, &name("A")).unwrap(),
            None,
            "already free"
        );
        assert_eq!(
            list_bindings(&dir).unwrap(),
            vec![(name("B"), [1; 32])],
            "the list shows the release"
        );
        assert_eq!(
            b.claim(&name("A"), &[2; 32], now),
            Ok(()),
            "another key takes it"
        );
        assert_eq!(
            b.claim(&name("A"), &[1; 32], now),
            Err(Refusal::Owned { owner: [2; 32] })
        );
        // The file says the same after a restart.
        let mut again = Bindings::load(Some(&dir), None, max(8)).unwrap();
        assert_eq!(
            again.claim(&name("A"), &[1; 32], now),
            Err(Refusal::Owned { owner: [2; 32] })
        );
        assert_eq!(again.claim(&name("B"), &[1; 32], now), Ok(()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

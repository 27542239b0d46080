//! The rest of the mesh as one router sees it: the names other routers serve, from the
//! presence bucket's watch, with the time each was last refreshed. No client, time
//! passed in.
//!
//! 1. A put from another router ([`MeshView::on_put`]) adds the name, or refreshes it;
//!    a change (a new name, another router, another address) is reported once.
//! 2. A delete or purge ([`MeshView::on_delete`]) removes it.
//! 3. A name not refreshed within the TTL and a grace ([`MeshView::expire`]) is gone:
//!    JetStream drops an expired entry without telling watchers, and a router that lost
//!    NATS stops refreshing, so the watchers must notice on their own.
//!
//! This router's own entries are ignored: its members are local.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lanmesh_proto::Name;

use super::wire::Presence;

/// What changed in the remote part of the mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// A remote name appeared, moved to another router, or changed its details.
    Seen(Presence),
    /// A remote name is gone.
    Gone(Name),
}

#[derive(Debug)]
struct Entry {
    presence: Presence,
    refreshed: Instant,
}

/// The remote names, with the time each was last refreshed.
#[derive(Debug)]
pub(crate) struct MeshView {
    me: String,
    /// How long an entry lives without a refresh.
    lifetime: Duration,
    remote: HashMap<Name, Entry>,
}

impl MeshView {
    /// The view of router `me`, whose entries live `ttl` in the bucket; an entry not
    /// refreshed for `ttl` and half again is gone.
    pub(crate) fn new(me: impl Into<String>, ttl: Duration) -> Self {
        Self {
            me: me.into(),
            lifetime: ttl + ttl / 2,
            remote: HashMap::new(),
        }
    }

    /// A presence entry was put at `now`.
    pub(crate) fn on_put(&mut self, presence: Presence, now: Instant) -> Option<Change> {
        let name = presence.info.name.clone();
        if presence.router == self.me {
            // Ours (a local member), or the name moved here: no longer remote.
            return self.remote.remove(&name).map(|_| Change::Gone(name));
        }
        match self.remote.get_mut(&name) {
            Some(e) if same(&e.presence, &presence) => {
                e.refreshed = now;
                None
            }
            _ => {
                self.remote.insert(
                    name,
                    Entry {
                        presence: presence.clone(),
                        refreshed: now,
                    },
                );
                Some(Change::Seen(presence))
            }
        }
    }

    /// A presence entry was deleted or purged.
    pub(crate) fn on_delete(&mut self, name: &Name) -> Option<Change> {
        self.remote.remove(name).map(|_| Change::Gone(name.clone()))
    }

    /// Removes what was not refreshed in time.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<Change> {
        let lifetime = self.lifetime;
        let mut gone = Vec::new();
        self.remote.retain(|name, e| {
            let alive = now.saturating_duration_since(e.refreshed) <= lifetime;
            if !alive {
                gone.push(Change::Gone(name.clone()));
            }
            alive
        });
        gone
    }

    /// The remote names.
    #[cfg(test)]
    pub(crate) fn names(&self) -> impl Iterator<Item = &Name> {
        self.remote.keys()
    }

    /// The router holding `name`, when remote.
    #[cfg(test)]
    pub(crate) fn router_of(&self, name: &Name) -> Option<&str> {
        self.remote.get(name).map(|e| e.presence.router.as_str())
    }
}

/// The same entry, refreshed: only what others see of it counts.
fn same(a: &Presence, b: &Presence) -> bool {
    a.router == b.router && a.info == b.info
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanmesh_proto::{Cipher, Compression, PeerInfo, Transport};

    fn presence(name: &str, router: &str) -> Presence {
        Presence {
            router: router.into(),
            info: PeerInfo {
                name: Name::new(name).unwrap(),
                transport: Transport::Tcp,
                cipher: Cipher::ChaCha20Poly1305,
                compression: Compression::None,
                key: [1; 32],
                addr: "127.0.0.1:1".into(),
                joined_ms: 0,
                direct: String::new(),
                incarnation: 0,
            },
        }
    }

    #[test]
    fn a_remote_name_is_seen_once_and_refreshed_quietly() {
        let t0 = Instant::now();
        let mut v = MeshView::new("me", Duration::from_secs(10));
        let p = presence("a", "other");
        assert_eq!(v.on_put(p.clone(), t0), Some(Change::Seen(p.clone())));
        assert_eq!(v.on_put(p.clone(), t0 + Duration::from_secs(5)), None);
        assert_eq!(v.router_of(&p.info.name), Some("other"));
        let moved = presence("a", "third");
        assert_eq!(v.on_put(moved.clone(), t0), Some(Change::Seen(moved)));
    }

    #[test]
    fn own_entries_are_not_remote() {
        let t0 = Instant::now();
        let mut v = MeshView::new("me", Duration::from_secs(10));
        assert_eq!(v.on_put(presence("a", "me"), t0), None);
        v.on_put(presence("b", "other"), t0);
        // "b" moved here: it is local now.
        let name = Name::new("b").unwrap();
        assert_eq!(
            v.on_put(presence("b", "me"), t0),
            Some(Change::Gone(name.clone()))
        );
        assert_eq!(v.names().count(), 0);
    }

    #[test]
    fn deleted_and_stale_names_are_gone() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let mut v = MeshView::new("me", ttl);
        v.on_put(presence("a", "r1"), t0);
        v.on_put(presence("b", "r1"), t0);
        let a = Name::new("a").unwrap();
        let b = Name::new("b").unwrap();
        assert_eq!(v.on_delete(&a), Some(Change::Gone(a.clone())));
        assert_eq!(v.on_delete(&a), None);
        assert!(
            v.expire(t0 + ttl).is_empty(),
            "within the TTL and its grace"
        );
        assert_eq!(v.expire(t0 + ttl * 2), vec![Change::Gone(b)]);
    }
}

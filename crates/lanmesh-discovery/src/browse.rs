//! The peer's side: find the routers of a mesh.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mdns_sd::{ServiceDaemon, ServiceEvent};

use crate::one_shot::OneShot;
use crate::{DiscoveryError, MulticastInterface, SERVICE_TYPE};

/// A router found on the LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The mDNS instance name (the mesh name, possibly made unique by mDNS).
    pub instance: String,
    /// The mesh it serves (`mesh` TXT record).
    pub mesh: String,
    /// Where it listens (IPv4).
    pub addrs: Vec<SocketAddr>,
    /// Fingerprint of its static key (`key` TXT record).
    pub key: String,
    /// The gateway's HTTP port (`ws` TXT record), when it has one.
    pub ws_port: Option<u16>,
    /// Another router of the mesh takes precedence (`standby=1`).
    pub standby: bool,
}

/// What a [`Watcher`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A router appeared or changed.
    Resolved(Found),
    /// A router withdrew (by its full service name).
    Removed(String),
}

/// A running browse for lanmesh routers of any mesh.
pub struct Watcher {
    daemon: ServiceDaemon,
    events: mdns_sd::Receiver<ServiceEvent>,
    interfaces: Vec<MulticastInterface>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("interfaces", &self.interfaces)
            .finish_non_exhaustive()
    }
}

impl Watcher {
    /// Starts browsing on the usable interfaces (or only `interface`).
    pub fn start(interface: Option<&str>) -> Result<Self, DiscoveryError> {
        let (daemon, interfaces) = crate::daemon(interface)?;
        let events = daemon.browse(SERVICE_TYPE)?;
        Ok(Self {
            daemon,
            events,
            interfaces,
        })
    }

    /// The interfaces being searched.
    pub fn interfaces(&self) -> &[MulticastInterface] {
        &self.interfaces
    }

    /// The next event, waiting at most `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.events.recv_timeout(left).ok()? {
                ServiceEvent::ServiceResolved(s) => {
                    if let Some(found) = to_found(&s) {
                        return Some(Event::Resolved(found));
                    }
                }
                ServiceEvent::ServiceRemoved(_, fullname) => return Some(Event::Removed(fullname)),
                _ => {}
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.daemon.stop_browse(SERVICE_TYPE);
        let _ = self.daemon.shutdown();
    }
}

fn to_found(s: &mdns_sd::ResolvedService) -> Option<Found> {
    let addrs = s
        .get_addresses_v4()
        .into_iter()
        .map(|a| SocketAddr::new(IpAddr::V4(a), s.get_port()))
        .collect();
    Found::from_parts(s.get_fullname(), |k| s.get_property_val_str(k), addrs)
}

impl Found {
    /// A router from its full service name, a TXT lookup and its addresses; `None` when
    /// it has no `mesh` record or no IPv4 address.
    pub(crate) fn from_parts<'a>(
        fullname: &str,
        txt: impl Fn(&str) -> Option<&'a str>,
        mut addrs: Vec<SocketAddr>,
    ) -> Option<Found> {
        let mesh = txt("mesh")?.to_owned();
        // The first answer may carry only IPv6 link-local addresses; wait for IPv4 ones.
        if addrs.is_empty() {
            return None;
        }
        addrs.sort();
        addrs.dedup();
        let instance = fullname
            .strip_suffix(&format!(".{SERVICE_TYPE}"))
            .unwrap_or(fullname)
            .to_owned();
        Some(Found {
            instance,
            mesh,
            addrs,
            key: txt("key").unwrap_or_default().to_owned(),
            ws_port: txt("ws").and_then(|w| w.parse().ok()),
            standby: txt("standby") == Some("1"),
        })
    }
}

/// How long a peer that has heard only routers on standby waits for the primary one.
const STANDBY_GRACE: Duration = Duration::from_millis(1200);
/// How long the one-shot query waits for a first unicast answer before the full browse
/// takes over. Responders answer it at once: a few milliseconds on a LAN.
const UNICAST_WAIT: Duration = Duration::from_millis(150);
/// Unicast answers are not deferred, so the other routers' answers follow the first one
/// within milliseconds: the settling time after it need not be longer than this.
const UNICAST_SETTLE: Duration = Duration::from_millis(20);

/// Finds the routers of `mesh`, blocking for up to `timeout`. Returns as soon as a router
/// that is not on standby has answered and `settle` more has passed (to collect others);
/// routers on standby alone are waited on a little longer for the primary. The order is
/// deterministic: not on standby first, then by key, then by instance.
///
/// It asks first with a one-shot query (see `one_shot`), which every responder answers at
/// once and by unicast, so that peers asking one after another never wait out the mDNS
/// rate limit; only when no router of the mesh answers that within 150 ms does it browse
/// with the mDNS daemon.
pub fn find(
    mesh: &str,
    interface: Option<&str>,
    timeout: Duration,
    settle: Duration,
) -> Result<Vec<Found>, DiscoveryError> {
    let start = Instant::now();
    let usable = crate::multicast_interfaces(interface);
    if usable.is_empty() {
        return Err(DiscoveryError::NoMulticastInterface {
            interface: interface.map(str::to_owned),
        });
    }
    let mut gathered = Gathered {
        mesh,
        found: BTreeMap::new(),
        primary_seen: false,
        deadline: start + timeout,
    };
    match OneShot::send(&usable) {
        Ok(mut asked) => {
            let settle = settle.min(UNICAST_SETTLE);
            let until = start + UNICAST_WAIT;
            while let Some(routers) = asked.next(until.min(gathered.deadline)) {
                for f in routers {
                    gathered.add(f, settle);
                }
            }
        }
        Err(e) => tracing::debug!(error = %e, "no one-shot query; browsing"),
    }
    if !gathered.primary_seen && Instant::now() < gathered.deadline {
        let watcher = Watcher::start(interface)?;
        while let Some(left) = gathered.deadline.checked_duration_since(Instant::now()) {
            match watcher.next(left) {
                Some(Event::Resolved(f)) => gathered.add(f, settle),
                Some(Event::Removed(_)) => {}
                None => break,
            }
        }
    }
    if gathered.found.is_empty() {
        let mut interfaces: Vec<String> = usable.into_iter().map(|i| i.name).collect();
        interfaces.dedup();
        return Err(DiscoveryError::NotFound {
            mesh: mesh.to_owned(),
            interfaces,
            timeout,
        });
    }
    tracing::debug!(
        took_ms = start.elapsed().as_millis() as u64,
        routers = gathered.found.len(),
        "discovery done"
    );
    Ok(gathered.found.into_values().collect())
}

/// The routers of one mesh heard so far, and until when to keep listening.
struct Gathered<'m> {
    mesh: &'m str,
    found: BTreeMap<(bool, String, String), Found>,
    primary_seen: bool,
    deadline: Instant,
}

impl Gathered<'_> {
    fn add(&mut self, f: Found, settle: Duration) {
        if f.mesh != self.mesh {
            return;
        }
        self.found.retain(|_, old| old.instance != f.instance);
        if !f.standby && !self.primary_seen {
            self.primary_seen = true;
            self.deadline = self.deadline.min(Instant::now() + settle);
        } else if f.standby && self.found.is_empty() && !self.primary_seen {
            self.deadline = self.deadline.min(Instant::now() + STANDBY_GRACE);
        }
        self.found
            .insert((f.standby, f.key.clone(), f.instance.clone()), f);
    }
}

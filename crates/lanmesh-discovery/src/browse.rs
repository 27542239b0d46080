//! The peer's side: find the routers of a mesh.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mdns_sd::{ServiceDaemon, ServiceEvent};

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
    let mesh = s.get_property_val_str("mesh")?.to_owned();
    let mut addrs: Vec<SocketAddr> = s
        .get_addresses_v4()
        .into_iter()
        .map(|a| SocketAddr::new(IpAddr::V4(a), s.get_port()))
        .collect();
    // The first answer may carry only IPv6 link-local addresses; wait for IPv4 ones.
    if addrs.is_empty() {
        return None;
    }
    addrs.sort();
    let instance = s
        .get_fullname()
        .strip_suffix(&format!(".{SERVICE_TYPE}"))
        .unwrap_or(s.get_fullname())
        .to_owned();
    Some(Found {
        instance,
        mesh,
        addrs,
        key: s.get_property_val_str("key").unwrap_or_default().to_owned(),
        ws_port: s.get_property_val_str("ws").and_then(|w| w.parse().ok()),
        standby: s.get_property_val_str("standby") == Some("1"),
    })
}

/// How long a peer that has heard only routers on standby waits for the primary one.
const STANDBY_GRACE: Duration = Duration::from_millis(1200);

/// Finds the routers of `mesh`, blocking for up to `timeout`. Returns as soon as a router
/// that is not on standby has answered and `settle` more has passed (to collect others);
/// routers on standby alone are waited on a little longer for the primary. The order is
/// deterministic: not on standby first, then by key, then by instance.
pub fn find(
    mesh: &str,
    interface: Option<&str>,
    timeout: Duration,
    settle: Duration,
) -> Result<Vec<Found>, DiscoveryError> {
    let watcher = Watcher::start(interface)?;
    let start = Instant::now();
    let mut found: BTreeMap<(bool, String, String), Found> = BTreeMap::new();
    let mut deadline = start + timeout;
    let mut primary_seen = false;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match watcher.next(left) {
            Some(Event::Resolved(f)) if f.mesh == mesh => {
                found.retain(|_, old| old.instance != f.instance);
                if !f.standby && !primary_seen {
                    primary_seen = true;
                    deadline = deadline.min(Instant::now() + settle);
                } else if f.standby && found.is_empty() && !primary_seen {
                    deadline = deadline.min(Instant::now() + STANDBY_GRACE);
                }
                found.insert((f.standby, f.key.clone(), f.instance.clone()), f);
            }
            Some(_) => {}
            None => break,
        }
    }
    if found.is_empty() {
        let mut interfaces: Vec<String> = watcher
            .interfaces()
            .iter()
            .map(|i| i.name.clone())
            .collect();
        interfaces.dedup();
        return Err(DiscoveryError::NotFound {
            mesh: mesh.to_owned(),
            interfaces,
            timeout,
        });
    }
    Ok(found.into_values().collect())
}

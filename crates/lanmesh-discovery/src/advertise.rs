//! The router's side: advertise, withdraw, and stand by for a better router.
//!
//! Several routers may serve one mesh. Peers must all pick the same one, or they could
//! not reach each other; but a peer cannot wait to hear every router without slowing every
//! join (mDNS answers a repeated question at most once a second). So the routers settle it
//! among themselves: each browses for the others of its mesh, and every router but the one
//! with the smallest key advertises `standby=1`. A peer joins the first router that is not
//! on standby as soon as it answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};
use tracing::{debug, info, warn};

use crate::{DiscoveryError, MulticastInterface, SERVICE_TYPE, TXT_VERSION};

/// What a router announces.
#[derive(Debug, Clone)]
pub struct Advertisement {
    /// The mesh name: the instance name and the `mesh` TXT record.
    pub mesh: String,
    /// The router's TCP port.
    pub port: u16,
    /// The gateway's HTTP port, when there is a gateway.
    pub ws_port: Option<u16>,
    /// Fingerprint of the router's static key (hex).
    pub key: String,
    /// Advertise on this interface only.
    pub interface: Option<String>,
}

/// A running advertisement; [`Advertiser::stop`] withdraws it.
pub struct Advertiser {
    daemon: ServiceDaemon,
    fullname: String,
    interfaces: Vec<MulticastInterface>,
    standby: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    watcher: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Advertiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Advertiser")
            .field("fullname", &self.fullname)
            .finish_non_exhaustive()
    }
}

impl Advertiser {
    /// Starts advertising. Fails at once when no interface can carry multicast.
    pub fn start(ad: &Advertisement) -> Result<Self, DiscoveryError> {
        let (daemon, interfaces) = crate::daemon(ad.interface.as_deref())?;
        let info = service_info(ad, false)?;
        let fullname = info.get_fullname().to_owned();
        daemon.register(info)?;
        let names: Vec<&str> = interfaces.iter().map(|i| i.name.as_str()).collect();
        info!(service = %fullname, interfaces = ?names, "advertising on mDNS");
        let standby = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let events = daemon.browse(SERVICE_TYPE)?;
        let watcher = {
            let (daemon, ad, standby, stop) =
                (daemon.clone(), ad.clone(), standby.clone(), stop.clone());
            std::thread::Builder::new()
                .name("lanmesh-mdns-peers".into())
                .spawn(move || watch_rivals(&daemon, &ad, &events, &standby, &stop))
                .map_err(|e| DiscoveryError::Mdns(e.to_string()))?
        };
        Ok(Self {
            daemon,
            fullname,
            interfaces,
            standby,
            stop,
            watcher: Some(watcher),
        })
    }

    /// Whether another router of the mesh with a smaller key is advertising, so that this
    /// one stands by.
    pub fn is_standby(&self) -> bool {
        self.standby.load(Ordering::Relaxed)
    }

    /// The full service name (`<mesh>._lanmesh._tcp.local.`).
    pub fn fullname(&self) -> &str {
        &self.fullname
    }

    /// The interfaces advertised on.
    pub fn interfaces(&self) -> &[MulticastInterface] {
        &self.interfaces
    }

    /// Withdraws the advertisement (an mDNS goodbye, so browsers drop it at once) and
    /// stops the daemon.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
        let _ = self.daemon.stop_browse(SERVICE_TYPE);
        let wait = Duration::from_millis(500);
        if let Ok(rx) = self.daemon.unregister(&self.fullname) {
            let _ = rx.recv_timeout(wait);
        }
        if let Ok(rx) = self.daemon.shutdown() {
            let _ = rx.recv_timeout(wait);
        }
        debug!(service = %self.fullname, "advertisement withdrawn");
    }
}

fn service_info(ad: &Advertisement, standby: bool) -> Result<ServiceInfo, DiscoveryError> {
    // Host names must be unique on the link; hosts may share a name (containers,
    // network namespaces), so derive it from the router's key.
    let host = format!("lanmesh-{}.local.", &ad.key[..ad.key.len().min(12)]);
    let mut txt = vec![
        ("v".to_owned(), TXT_VERSION.to_owned()),
        ("mesh".to_owned(), ad.mesh.clone()),
        ("key".to_owned(), ad.key.clone()),
        (
            "standby".to_owned(),
            if standby { "1" } else { "0" }.to_owned(),
        ),
    ];
    if let Some(ws) = ad.ws_port {
        txt.push(("ws".to_owned(), ws.to_string()));
    }
    Ok(ServiceInfo::new(SERVICE_TYPE, &ad.mesh, &host, "", ad.port, &txt[..])?.enable_addr_auto())
}

/// Follows the other routers of the mesh and re-advertises with `standby` set while one
/// with a smaller key is present.
fn watch_rivals(
    daemon: &ServiceDaemon,
    ad: &Advertisement,
    events: &mdns_sd::Receiver<ServiceEvent>,
    standby: &AtomicBool,
    stop: &AtomicBool,
) {
    let mut rivals: std::collections::BTreeMap<String, String> = Default::default();
    while !stop.load(Ordering::Relaxed) {
        let Ok(event) = events.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        match event {
            ServiceEvent::ServiceResolved(s) => {
                let same_mesh = s.get_property_val_str("mesh") == Some(ad.mesh.as_str());
                let key = s.get_property_val_str("key").unwrap_or_default().to_owned();
                if same_mesh && !key.is_empty() && key != ad.key {
                    rivals.insert(s.get_fullname().to_owned(), key);
                }
            }
            ServiceEvent::ServiceRemoved(_, fullname) => {
                rivals.remove(&fullname);
            }
            _ => continue,
        }
        let should = rivals.values().any(|k| *k < ad.key);
        if should != standby.load(Ordering::Relaxed) {
            standby.store(should, Ordering::Relaxed);
            info!(
                standby = should,
                "another router of the mesh {}",
                if should { "has precedence" } else { "is gone" }
            );
            match service_info(ad, should) {
                Ok(info) => {
                    if let Err(e) = daemon.register(info) {
                        warn!(error = %e, "cannot update the mDNS advertisement");
                    }
                }
                Err(e) => warn!(error = %e, "cannot update the mDNS advertisement"),
            }
        }
    }
}

//! Zero-configuration discovery of lanmesh routers on the LAN, over mDNS (`mdns-sd`).
//!
//! * A router advertises the service type [`SERVICE_TYPE`] with the mesh name as instance
//!   name and TXT records `v` (protocol version), `mesh`, `ws` (gateway port, when there is
//!   one) and `key` (fingerprint of the router's static key). It withdraws the
//!   advertisement (mDNS goodbye) on shutdown, and the daemon re-announces when the host's
//!   addresses change.
//! * A peer browses, keeps the routers of its own mesh only, and gets them in a
//!   deterministic order (by key, then instance) so that two routers of one mesh are
//!   both found and every peer picks the same one. It asks first with a one-shot query
//!   that responders answer at once by unicast (`one_shot`), so peers started one after
//!   another never wait out the mDNS once-a-second answer limit; the daemon's browse is
//!   the fallback.
//! * Interfaces: all multicast-capable IPv4 interfaces by default, or exactly the one
//!   named with `--interface`. A host without any says so in one clear error.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod advertise;
mod browse;
mod interfaces;
mod one_shot;

pub use advertise::{Advertisement, Advertiser};
pub use browse::{Event, Found, Watcher, find};
pub use interfaces::{MulticastInterface, multicast_interfaces};

use std::time::Duration;

/// The mDNS service type of lanmesh routers.
pub const SERVICE_TYPE: &str = "_lanmesh._tcp.local.";
/// Version written in the `v` TXT record.
pub const TXT_VERSION: &str = "1";

/// Errors of discovery.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// No interface (or not the one asked for) can carry multicast.
    #[error("{}", no_multicast_text(interface.as_deref()))]
    NoMulticastInterface {
        /// The interface asked for, if any.
        interface: Option<String>,
    },
    /// Nothing answered for this mesh in time.
    #[error("no router for mesh {mesh:?} found on {} within {} s; try --router ADDR", interfaces.join(", "), timeout.as_secs_f32())]
    NotFound {
        /// The mesh looked for.
        mesh: String,
        /// The interfaces searched.
        interfaces: Vec<String>,
        /// How long we looked.
        timeout: Duration,
    },
    /// The mDNS daemon failed.
    #[error("mDNS: {0}")]
    Mdns(String),
}

fn no_multicast_text(interface: Option<&str>) -> String {
    match interface {
        Some(i) => format!(
            "interface {i} is not up with multicast; cannot discover routers; try --router ADDR"
        ),
        None => {
            "no network interface with multicast is up; cannot discover routers; try --router ADDR"
                .to_owned()
        }
    }
}

impl From<mdns_sd::Error> for DiscoveryError {
    fn from(e: mdns_sd::Error) -> Self {
        Self::Mdns(e.to_string())
    }
}

/// Starts an mDNS daemon limited to the usable interfaces (IPv4 only: IPv6 link-local
/// addresses of other interfaces would be advertised where they cannot be reached).
fn daemon(
    interface: Option<&str>,
) -> Result<(mdns_sd::ServiceDaemon, Vec<MulticastInterface>), DiscoveryError> {
    let usable = multicast_interfaces(interface);
    if usable.is_empty() {
        return Err(DiscoveryError::NoMulticastInterface {
            interface: interface.map(str::to_owned),
        });
    }
    let d = mdns_sd::ServiceDaemon::new()?;
    d.disable_interface(mdns_sd::IfKind::All)?;
    for i in &usable {
        d.enable_interface(mdns_sd::IfKind::Addr(std::net::IpAddr::V4(i.addr)))?;
    }
    Ok((d, usable))
}

//! Which interfaces can carry mDNS: up, not loopback, not point-to-point, IPv4, and with
//! the multicast flag (read from `/sys/class/net/<name>/flags` on Linux, since `if-addrs`
//! does not expose it).

use std::net::Ipv4Addr;

/// An interface address usable for mDNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MulticastInterface {
    /// Interface name, e.g. `eth0`.
    pub name: String,
    /// Its IPv4 address.
    pub addr: Ipv4Addr,
}

const IFF_MULTICAST: u32 = 0x1000;

fn has_multicast_flag(name: &str) -> bool {
    let path = format!("/sys/class/net/{name}/flags");
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let hex = text.trim().trim_start_matches("0x");
            u32::from_str_radix(hex, 16).is_ok_and(|f| f & IFF_MULTICAST != 0)
        }
        // Not Linux, or no sysfs: assume the usual (multicast on).
        Err(_) => true,
    }
}

/// The usable interfaces, all of them or only `only` (by name).
pub fn multicast_interfaces(only: Option<&str>) -> Vec<MulticastInterface> {
    let Ok(all) = if_addrs::get_if_addrs() else {
        return Vec::new();
    };
    let mut out: Vec<MulticastInterface> = all
        .into_iter()
        .filter(|i| only.is_none_or(|o| o == i.name))
        .filter(|i| !i.is_loopback() && i.is_oper_up() && !i.is_p2p())
        .filter_map(|i| match i.ip() {
            std::net::IpAddr::V4(addr) => Some(MulticastInterface { name: i.name, addr }),
            std::net::IpAddr::V6(_) => None,
        })
        .filter(|i| has_multicast_flag(&i.name))
        .collect();
    out.sort_by(|a, b| (&a.name, a.addr).cmp(&(&b.name, b.addr)));
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_never_usable() {
        assert!(multicast_interfaces(Some("lo")).is_empty());
        assert!(
            multicast_interfaces(None)
                .iter()
                .all(|i| !i.addr.is_loopback())
        );
    }

    #[test]
    fn an_unknown_interface_gives_nothing() {
        assert!(multicast_interfaces(Some("no-such-if0")).is_empty());
    }
}

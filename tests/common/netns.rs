//! A LAN made of network namespaces, for tests of discovery.
//!
//! One "switch" namespace holds the bridges; each host is a namespace with one veth
//! interface per bridge it is plugged into, addressed `10.<77+bridge>.0.<host>/24`.
//! Everything is created by the test and deleted when the [`Lan`] is dropped: multicast
//! from these hosts never reaches the machine's real interfaces.
//!
//! Creating namespaces needs root. Where that fails the test is skipped with a message,
//! unless `LANMESH_REQUIRE_NETNS=1` (set in CI), where it fails.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::proc::{BIN, Proc};

static NEXT_LAN: AtomicU32 = AtomicU32::new(0);

/// Runs `ip ARGS`; its stderr is the error.
pub(crate) fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A set of namespaces forming one or more LAN segments.
pub(crate) struct Lan {
    prefix: String,
    switch: String,
    namespaces: Vec<String>,
    bridges: usize,
    hosts: usize,
}

/// One host of the LAN.
pub(crate) struct Host {
    pub(crate) ns: String,
    pub(crate) addrs: Vec<Ipv4Addr>,
}

impl Lan {
    /// A LAN with `bridges` segments and no hosts yet; `None` if namespaces cannot be
    /// made here and they are not required.
    pub(crate) fn new(bridges: usize) -> Option<Lan> {
        let n = NEXT_LAN.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("lm{}x{n}", std::process::id());
        let switch = format!("{prefix}-sw");
        let mut lan = Lan {
            prefix,
            switch: switch.clone(),
            namespaces: Vec::new(),
            bridges: 0,
            hosts: 0,
        };
        let made = ip(&["netns", "add", &switch]).and_then(|_| {
            lan.namespaces.push(switch.clone());
            ip(&["-n", &switch, "link", "set", "lo", "up"])?;
            for _ in 0..bridges {
                lan.add_bridge()?;
            }
            Ok(())
        });
        match made {
            Ok(()) => Some(lan),
            Err(e) if std::env::var("LANMESH_REQUIRE_NETNS").as_deref() == Ok("1") => {
                panic!("network namespaces are required (LANMESH_REQUIRE_NETNS=1) but: {e}")
            }
            Err(e) => {
                eprintln!(
                    "skipping: cannot create network namespaces ({e}); run as root, or set LANMESH_REQUIRE_NETNS=1 to fail instead"
                );
                None
            }
        }
    }

    fn add_bridge(&mut self) -> Result<(), String> {
        let br = format!("br{}", self.bridges);
        ip(&["-n", &self.switch, "link", "add", &br, "type", "bridge"])?;
        ip(&["-n", &self.switch, "link", "set", &br, "up"])?;
        self.bridges += 1;
        Ok(())
    }

    /// A new host plugged into the given bridges (interfaces `eth0`, `eth1`, … in order).
    pub(crate) fn host(&mut self, bridges: &[usize]) -> Host {
        self.host_with(bridges, true)
    }

    /// A host whose interfaces have multicast switched off.
    pub(crate) fn host_without_multicast(&mut self, bridge: usize) -> Host {
        self.host_with(&[bridge], false)
    }

    fn host_with(&mut self, bridges: &[usize], multicast: bool) -> Host {
        self.hosts += 1;
        let h = self.hosts;
        let ns = format!("{}-h{h}", self.prefix);
        ip(&["netns", "add", &ns]).unwrap();
        self.namespaces.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"]).unwrap();
        let mut addrs = Vec::new();
        for (k, &b) in bridges.iter().enumerate() {
            assert!(b < self.bridges, "no bridge {b}");
            let inner = format!("eth{k}");
            let outer = format!("h{h}e{k}");
            ip(&[
                "link",
                "add",
                &inner,
                "netns",
                &ns,
                "type",
                "veth",
                "peer",
                "name",
                &outer,
                "netns",
                &self.switch,
            ])
            .unwrap();
            ip(&[
                "-n",
                &self.switch,
                "link",
                "set",
                &outer,
                "master",
                &format!("br{b}"),
            ])
            .unwrap();
            ip(&["-n", &self.switch, "link", "set", &outer, "up"]).unwrap();
            let addr = Ipv4Addr::new(10, 77 + b as u8, 0, h as u8);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                &inner,
            ])
            .unwrap();
            if !multicast {
                ip(&["-n", &ns, "link", "set", &inner, "multicast", "off"]).unwrap();
            }
            ip(&["-n", &ns, "link", "set", &inner, "up"]).unwrap();
            addrs.push(addr);
        }
        Host { ns, addrs }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

impl Host {
    /// Starts `lanmesh ARGS` inside this host.
    pub(crate) fn spawn(&self, args: &[&str]) -> Proc {
        Proc::spawn_command(&mut self.command(args))
    }

    /// Runs `lanmesh ARGS` inside this host to completion.
    pub(crate) fn run(&self, args: &[&str]) -> std::process::Output {
        self.command(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    /// Starts `lanmesh ARGS` inside this host with the state directory `home` (another
    /// host's, to move a router with its key to this one).
    pub(crate) fn spawn_with_home(&self, home: &std::path::Path, args: &[&str]) -> Proc {
        let mut cmd = self.command(args);
        cmd.env("LANMESH_HOME", home);
        Proc::spawn_command(&mut cmd)
    }

    /// Starts `lanmesh ARGS` inside this host with a pipe to its stdin.
    pub(crate) fn spawn_with_stdin(&self, args: &[&str]) -> (Proc, std::process::ChildStdin) {
        Proc::spawn_with_stdin(&mut self.command(args))
    }

    /// This host's state directory (keys, pinned and remembered routers).
    pub(crate) fn home(&self) -> std::path::PathBuf {
        super::proc::test_home().join(&self.ns)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, BIN]).args(args);
        // Each host is its own machine: its own keys and router state.
        cmd.env("LANMESH_HOME", self.home());
        cmd
    }
}

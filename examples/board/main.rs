//! A sensor for a Raspberry Pi (or any Linux board): every few seconds it reads the
//! board's own temperature and any DS18B20 1-Wire thermometers from sysfs, and sends the
//! reading as one JSON message to a collector, which acknowledges it. Requests of
//! `latest?` get the last reading back. It uses only the public lanmesh API, through the
//! blocking peer: a sensor loop needs no async code.
//!
//! ```text
//! lanmesh router                                       # on the laptop
//! lanmesh listen --name laptop --json                  # the collector, also on the laptop
//! board --router 192.168.1.10:7400 --name greenhouse --to laptop --every 10   # on the Pi
//! ```
//!
//! Build it for the Pi on an x86 machine with `just cross aarch64` (64-bit Raspberry Pi
//! OS) or `just cross armv7` (32-bit): the binary is
//! `target/<triple>/release/examples/board`; copy it over and run it. Without `--router`
//! it finds the router of `--mesh` by mDNS.
//!
//! What it reads (each part is left out of the reading when the board lacks it):
//! * `<sysfs>/class/thermal/thermal_zone0/temp`: the SoC temperature in millidegrees;
//! * `<sysfs>/bus/w1/devices/28-*/w1_slave`: DS18B20 probes (enable 1-Wire with
//!   `dtoverlay=w1-gpio`), whose first line ends in `YES` when the CRC is good and whose
//!   second holds `t=` in millidegrees.
//!
//! A reading that cannot be delivered (collector away, router restarting) is reported on
//! stderr and the next one is tried on time; the peer reconnects by itself.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;

/// Command-line options.
#[derive(Parser, Debug)]
#[command(
    name = "board",
    about = "Publish a Linux board's temperatures on a lanmesh mesh"
)]
pub(crate) struct Options {
    /// The router's address; without it the router of --mesh is found by mDNS.
    #[arg(long)]
    pub(crate) router: Option<String>,
    /// The mesh to look for by mDNS.
    #[arg(long, default_value = "lanmesh")]
    pub(crate) mesh: String,
    /// This sensor's name on the mesh (default: the host name).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Who collects the readings (acknowledged); without it they are broadcast to every
    /// member, unacknowledged.
    #[arg(long)]
    pub(crate) to: Option<String>,
    /// Seconds between readings.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) every: f64,
    /// Stop after this many readings (default: run until killed).
    #[arg(long)]
    pub(crate) count: Option<u64>,
    /// Where sysfs is mounted (another directory to replay recorded files).
    #[arg(long, default_value = "/sys")]
    pub(crate) sysfs: PathBuf,
}

/// One reading, as it travels (JSON).
#[derive(serde::Serialize, Clone, Debug, Default)]
struct Reading {
    sensor: String,
    seq: u64,
    /// Milliseconds since the Unix epoch, by the board's clock.
    unix_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    soc_celsius: Option<f64>,
    /// DS18B20 probes by their 1-Wire id (`28-…`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    probes: BTreeMap<String, f64>,
}

#[allow(dead_code)] // tests/board.rs calls `run`
fn main() -> anyhow::Result<()> {
    run(Options::parse())
}

/// Connects and publishes readings until `--count` is reached (or forever).
pub(crate) fn run(opts: Options) -> anyhow::Result<()> {
    let name = match opts.name {
        Some(n) => n,
        None => host_name()?,
    };
    anyhow::ensure!(
        opts.every.is_finite() && opts.every > 0.0,
        "--every must be a positive number of seconds"
    );
    let every = Duration::from_secs_f64(opts.every);
    let mut builder = lanmesh::Peer::builder(name.clone()).mesh(opts.mesh);
    if let Some(addr) = opts.router {
        builder = builder.router(addr);
    }
    let peer = lanmesh::blocking::Peer::connect_with(builder)?;

    let latest = Arc::new(Mutex::new(None::<String>));
    let answer = latest.clone();
    peer.respond(move |req| match &req.data[..] {
        b"latest?" => {
            let last = answer.lock().ok().and_then(|l| l.clone());
            Bytes::from(last.unwrap_or_else(|| "null".to_owned()))
        }
        _ => Bytes::from_static(b"ask: latest?"),
    })?;
    eprintln!("{name}: publishing every {every:?}");

    let mut next = Instant::now();
    let mut seq = 0;
    while opts.count.is_none_or(|c| seq < c) {
        seq += 1;
        let reading = read(&opts.sysfs, &name, seq);
        let text = serde_json::to_string(&reading)?;
        if let Ok(mut l) = latest.lock() {
            *l = Some(text.clone());
        }
        let sent = match &opts.to {
            Some(to) => peer.send_acked(to, Bytes::from(text.clone())),
            None => peer.broadcast(Bytes::from(text.clone())),
        };
        match sent {
            Ok(_) => println!("{text}"),
            Err(e) => eprintln!("{name}: reading {seq} not delivered: {e}"),
        }
        next += every;
        wait_until(&peer, next)?;
    }
    peer.close();
    Ok(())
}

/// Waits for the next reading's time while the peer runs (the blocking peer's connection
/// only makes progress inside its calls). Messages sent to the sensor are shown, not
/// kept.
fn wait_until(peer: &lanmesh::blocking::Peer, at: Instant) -> anyhow::Result<()> {
    loop {
        let left = at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        if let Some(msg) = peer.recv_timeout(left)? {
            eprintln!("{} says: {}", msg.from, String::from_utf8_lossy(&msg.data));
        }
    }
}

fn read(sysfs: &Path, name: &str, seq: u64) -> Reading {
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let soc_celsius = std::fs::read_to_string(sysfs.join("class/thermal/thermal_zone0/temp"))
        .ok()
        .and_then(|t| millidegrees(t.trim()));
    let mut probes = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir(sysfs.join("bus/w1/devices")) {
        for entry in dir.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            // Family 0x28 is the DS18B20.
            if !id.starts_with("28-") {
                continue;
            }
            if let Some(c) = std::fs::read_to_string(entry.path().join("w1_slave"))
                .ok()
                .and_then(|t| ds18b20(&t))
            {
                probes.insert(id, c);
            }
        }
    }
    Reading {
        sensor: name.to_owned(),
        seq,
        unix_ms,
        soc_celsius,
        probes,
    }
}

/// Degrees from a sysfs figure in millidegrees (`47236` → 47.236).
fn millidegrees(text: &str) -> Option<f64> {
    text.parse::<i64>().ok().map(|m| m as f64 / 1000.0)
}

/// A DS18B20's `w1_slave` file: the first line ends in `YES` when the CRC matched, the
/// second ends in `t=<millidegrees>`.
fn ds18b20(text: &str) -> Option<f64> {
    let mut lines = text.lines();
    if !lines.next()?.trim_end().ends_with("YES") {
        return None;
    }
    let (_, t) = lines.next()?.rsplit_once("t=")?;
    millidegrees(t.trim())
}

fn host_name() -> anyhow::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")?;
    Ok(name.trim().to_owned())
}

//! What one measurement is: a system, a test, and the numbers that apply to it.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// A system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum System {
    /// lanmesh with Noise encryption and Snappy compression, every message through the
    /// router (peers with `direct(false)`).
    #[serde(rename = "lanmesh")]
    Lanmesh,
    /// lanmesh with the two peers on a direct link (the router introduced them; measured
    /// once the link carries their messages), ChaCha20-Poly1305.
    #[serde(rename = "lanmesh-direct")]
    LanmeshDirect,
    /// `lanmesh-direct` with AES-256-GCM records.
    #[serde(rename = "lanmesh-direct-aes")]
    LanmeshDirectAes,
    /// lanmesh with peers preferring AES-256-GCM records (opt-in), compression on.
    #[serde(rename = "lanmesh-aes")]
    LanmeshAes,
    /// lanmesh with plaintext records (router and peers both configured for it).
    #[serde(rename = "lanmesh-plain")]
    LanmeshPlain,
    /// lanmesh across two routers federated through one nats-server with JetStream: the
    /// sending side on one router, the receiving side on the other (encrypted like
    /// `lanmesh`). Measured in the throughput and round-trip tests only.
    #[serde(rename = "lanmesh-federated")]
    LanmeshFederated,
    /// nats-server, through the async-nats client.
    #[serde(rename = "nats")]
    Nats,
    /// A one-hop tokio TCP relay of length-prefixed messages: the ceiling.
    #[serde(rename = "relay")]
    Relay,
    /// mosquitto (MQTT 3.1.1, QoS 0), through rumqttc in the `lanmesh-bench-peers`
    /// binary (bench/peers, outside the workspace build).
    #[serde(rename = "mosquitto")]
    Mosquitto,
    /// zenoh 1.x, both sides sessions in client mode through a zenoh router (a process
    /// of `lanmesh-bench-peers` in router mode), TCP on loopback.
    #[serde(rename = "zenoh")]
    Zenoh,
    /// zenoh 1.x, both sides sessions in peer mode on one direct TCP link (scouting off,
    /// explicit loopback endpoints), no router: the plaintext peer-to-peer baseline.
    #[serde(rename = "zenoh-p2p")]
    ZenohP2p,
}

impl System {
    /// Every system, in the order of the report.
    pub const ALL: [System; 11] = [
        Self::Lanmesh,
        Self::LanmeshDirect,
        Self::LanmeshDirectAes,
        Self::LanmeshAes,
        Self::LanmeshPlain,
        Self::LanmeshFederated,
        Self::Nats,
        Self::Mosquitto,
        Self::Zenoh,
        Self::ZenohP2p,
        Self::Relay,
    ];

    /// The name used in rows and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lanmesh => "lanmesh",
            Self::LanmeshDirect => "lanmesh-direct",
            Self::LanmeshDirectAes => "lanmesh-direct-aes",
            Self::LanmeshAes => "lanmesh-aes",
            Self::LanmeshPlain => "lanmesh-plain",
            Self::LanmeshFederated => "lanmesh-federated",
            Self::Nats => "nats",
            Self::Relay => "relay",
            Self::Mosquitto => "mosquitto",
            Self::Zenoh => "zenoh",
            Self::ZenohP2p => "zenoh-p2p",
        }
    }

    /// Whether this system's client runs in another process (`lanmesh-bench-peers`).
    pub fn is_external(self) -> bool {
        matches!(self, Self::Mosquitto | Self::Zenoh | Self::ZenohP2p)
    }

    /// Whether this system takes part in `test`: the federated pair is measured where a
    /// sender and a receiver sit on different routers (throughput, round trip); fan-out,
    /// idle peers and handshakes would measure one router again.
    pub fn measures(self, test: Test) -> bool {
        !self.is_pairwise() || matches!(test, Test::Throughput(_) | Test::Rtt64 | Test::Echo64)
    }

    /// Systems whose rows are about one pair of peers (across federated routers, over a
    /// direct link): fan-out, idle peers and handshakes would measure one router again.
    fn is_pairwise(self) -> bool {
        matches!(
            self,
            Self::LanmeshFederated | Self::LanmeshDirect | Self::LanmeshDirectAes
        )
    }

    /// Whether this system's peers talk over a direct link.
    pub fn is_direct(self) -> bool {
        matches!(self, Self::LanmeshDirect | Self::LanmeshDirectAes)
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for System {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        by_name(&Self::ALL, Self::as_str, "system", s)
    }
}

/// The one of `all` called `s`, or an error listing the names.
fn by_name<T: Copy>(
    all: &[T],
    name: fn(T) -> &'static str,
    what: &str,
    s: &str,
) -> Result<T, String> {
    all.iter().copied().find(|x| name(*x) == s).ok_or_else(|| {
        let names: Vec<_> = all.iter().map(|x| name(*x)).collect();
        format!("unknown {what} {s:?} ({})", names.join(", "))
    })
}

/// A test of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Test {
    /// One sender, one receiver, messages of this many bytes.
    Throughput(usize),
    /// 64-byte request and reply, one at a time.
    Rtt64,
    /// A 64-byte message sent, echoed back by the other side with a plain send and
    /// received, one at a time (no request/reply).
    Echo64,
    /// One 64-byte broadcast reaching 100 peers.
    Fanout100,
    /// 1,000 connected peers doing nothing: server memory per peer.
    Idle1000,
    /// Connections set up (and dropped) per second.
    Handshakes,
}

impl Test {
    /// Every test, in the order of the report.
    pub const ALL: [Test; 10] = [
        Self::Throughput(16),
        Self::Throughput(64),
        Self::Throughput(1024),
        Self::Throughput(64 * 1024),
        Self::Throughput(1024 * 1024),
        Self::Rtt64,
        Self::Echo64,
        Self::Fanout100,
        Self::Idle1000,
        Self::Handshakes,
    ];

    /// The name used in rows and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Throughput(16) => "thr-16",
            Self::Throughput(64) => "thr-64",
            Self::Throughput(1024) => "thr-1k",
            Self::Throughput(65_536) => "thr-64k",
            Self::Throughput(1_048_576) => "thr-1m",
            Self::Throughput(_) => "thr",
            Self::Rtt64 => "rtt-64",
            Self::Echo64 => "echo-64",
            Self::Fanout100 => "fanout-100",
            Self::Idle1000 => "idle-1000",
            Self::Handshakes => "handshakes",
        }
    }
}

impl fmt::Display for Test {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Test {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        by_name(&Self::ALL, Self::as_str, "test", s)
    }
}

/// One line of results. Fields that do not apply to a test are `None` and left out of
/// the JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The system measured.
    pub system: System,
    /// The test's name (`thr-64`, `rtt-64`, ...).
    pub test: &'static str,
    /// Messages (or requests, connections) attempted.
    pub sent: u64,
    /// Messages received by their receivers (replies, connections completed).
    pub delivered: u64,
    /// Delivered per second of the test.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msgs_per_s: Option<f64>,
    /// Delivered payload megabytes (10^6 bytes) per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mb_per_s: Option<f64>,
    /// Median latency in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_us: Option<f64>,
    /// 99th percentile latency in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_us: Option<f64>,
    /// Server resident memory per connected peer, KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_per_peer_kib: Option<f64>,
    /// Payload size of each message, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_bytes: Option<usize>,
    /// How long the measured part took, seconds.
    pub seconds: f64,
}

impl Row {
    /// A row with the counts only; the caller fills in what applies.
    pub fn new(system: System, test: Test, sent: u64, delivered: u64, seconds: f64) -> Self {
        Self {
            system,
            test: test.as_str(),
            sent,
            delivered,
            msgs_per_s: None,
            mb_per_s: None,
            p50_us: None,
            p99_us: None,
            rss_per_peer_kib: None,
            payload_bytes: None,
            seconds,
        }
    }
}

/// Percentile `p` (0–100) of sorted samples, nearest rank.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in Test::ALL {
            assert_eq!(t.as_str().parse::<Test>().unwrap(), t);
        }
        for s in System::ALL {
            assert_eq!(s.as_str().parse::<System>().unwrap(), s);
        }
        assert!("thr-2".parse::<Test>().is_err());
        let err = "lanmesh-des".parse::<System>().unwrap_err();
        assert!(err.contains("lanmesh-aes, lanmesh-plain"), "{err}");
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn rows_leave_out_what_does_not_apply() {
        let mut r = Row::new(System::LanmeshPlain, Test::Rtt64, 10, 10, 1.0);
        r.p50_us = Some(12.5);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["system"], "lanmesh-plain");
        assert_eq!(v["test"], "rtt-64");
        assert_eq!(v["p50_us"], 12.5);
        assert!(v.get("mb_per_s").is_none());
    }
}

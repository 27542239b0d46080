//! One test of one system that `lanmesh bench` compares with, whose client stays out of
//! the workspace build: mosquitto (MQTT 3.1.1, QoS 0) through rumqttc, and zenoh 1.x,
//! through a zenoh router (`zenoh`) or peer to peer (`zenoh-p2p`).
//!
//! ```text
//! lanmesh-bench-peers SYSTEM ADDR thr SIZE MILLIS   # one sender, one receiver
//! lanmesh-bench-peers SYSTEM ADDR rtt SIZE MILLIS   # publish, echo, reply, one at a time
//! lanmesh-bench-peers zenoh-router ADDR             # a zenoh router, until ended
//! ```
//!
//! SYSTEM is `mosquitto` (ADDR: the broker), `zenoh` (ADDR: the zenoh router) or
//! `zenoh-p2p` (ADDR: where the receiving peer listens, a free port when it is 0).
//!
//! Prints one JSON object: `sent`, `delivered`, `seconds` and, for `rtt`, `p50_us` and
//! `p99_us` — the same measurements as the bench's own scenarios: a throughput rate is
//! delivered ÷ (last delivery − first send), payloads are pseudo-random bytes. Every loop
//! is bounded by the time given and every wait by a timeout.

mod mosquitto;
mod zen;

use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;

/// The receiver stops this long after the last delivery once the sender is done.
pub(crate) const QUIET: Duration = Duration::from_millis(500);
/// Round trips before the measured ones, as in the bench's own round-trip test:
/// connections, routes and caches warm up.
pub(crate) const WARM_UP: u32 = 100;

/// Pseudo-random bytes (the bench's generator): nothing compresses them.
pub(crate) fn payload(size: usize) -> Bytes {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect::<Vec<u8>>()
        .into()
}

/// What one test measured.
pub(crate) struct Outcome {
    pub(crate) sent: u64,
    pub(crate) delivered: u64,
    pub(crate) seconds: f64,
    pub(crate) latencies_us: Vec<f64>,
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn json_number(v: Option<f64>) -> String {
    v.map_or_else(|| "null".to_owned(), |v| format!("{v:.3}"))
}

const USAGE: &str = "usage: lanmesh-bench-peers mosquitto|zenoh|zenoh-p2p ADDR thr|rtt SIZE MILLIS\n       lanmesh-bench-peers zenoh-router ADDR";

async fn run(args: &[String]) -> Result<String, String> {
    if let [command, addr] = args
        && command == "zenoh-router"
    {
        zen::router(socket_addr(addr)?).await?;
        return Ok(String::new());
    }
    let [system, addr, test, size, millis] = args else {
        return Err(USAGE.into());
    };
    let size: usize = size.parse().map_err(|e| format!("bad size: {e}"))?;
    let time = Duration::from_millis(millis.parse().map_err(|e| format!("bad millis: {e}"))?);
    let zenoh_mode = match system.as_str() {
        "mosquitto" => None,
        "zenoh" => Some(zen::Mode::Router(socket_addr(addr)?)),
        "zenoh-p2p" => Some(zen::Mode::Direct(socket_addr(addr)?)),
        other => {
            return Err(format!(
                "unknown system {other:?} (mosquitto, zenoh, zenoh-p2p)"
            ));
        }
    };
    let mut outcome = match (zenoh_mode, test.as_str()) {
        (None, "thr") => mosquitto::throughput(addr, size, time).await?,
        (None, "rtt") => mosquitto::round_trips(addr, size, time).await?,
        (Some(mode), "thr") => zen::throughput(mode, size, time).await?,
        (Some(mode), "rtt") => zen::round_trips(mode, size, time).await?,
        (_, other) => return Err(format!("unknown test {other:?} (thr, rtt)")),
    };
    outcome.latencies_us.sort_by(f64::total_cmp);
    Ok(format!(
        "{{\"sent\":{},\"delivered\":{},\"seconds\":{:.6},\"p50_us\":{},\"p99_us\":{}}}",
        outcome.sent,
        outcome.delivered,
        outcome.seconds,
        json_number(percentile(&outcome.latencies_us, 50.0)),
        json_number(percentile(&outcome.latencies_us, 99.0)),
    ))
}

fn socket_addr(addr: &str) -> Result<std::net::SocketAddr, String> {
    addr.parse()
        .map_err(|e| format!("bad address {addr:?} (IP:PORT): {e}"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lanmesh-bench-peers: {e}");
            ExitCode::FAILURE
        }
    }
}

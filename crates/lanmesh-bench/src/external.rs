//! Systems whose client runs in another process: `lanmesh-bench-peers` (bench/peers, a
//! crate outside the workspace, so its MQTT and zenoh clients never enter the workspace
//! build). The bench starts the server (mosquitto; the zenoh router, a process of that
//! same binary; none for zenoh peer to peer), runs that binary once per test and reads
//! one JSON row from its stdout; without the binary the system is skipped with a note.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use crate::error::BenchError;
use crate::row::{Row, System, Test};
use crate::scenarios::Budget;

/// What `lanmesh-bench-peers` prints.
#[derive(Debug, Deserialize)]
struct Reported {
    sent: u64,
    delivered: u64,
    seconds: f64,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
}

/// Where `lanmesh-bench-peers` is: `$LANMESH_BENCH_PEERS`, else where `just bench` builds
/// it (`target/bench-peers/release/`, beside the `lanmesh` binary's `target/release/`).
pub fn find_peers_binary(exe: &Path) -> Option<PathBuf> {
    let candidates = std::env::var_os("LANMESH_BENCH_PEERS")
        .map(PathBuf::from)
        .into_iter()
        .chain(exe.parent().and_then(Path::parent).map(|target| {
            target
                .join("bench-peers")
                .join("release")
                .join("lanmesh-bench-peers")
        }));
    candidates.into_iter().find(|p| p.is_file())
}

/// Runs `test` of `system` against the server at `addr`.
pub(crate) fn run(
    peers: &Path,
    system: System,
    addr: std::net::SocketAddr,
    test: Test,
    budget: &Budget,
) -> Result<Row, BenchError> {
    let (kind, size, time) = match test {
        Test::Throughput(size) => ("thr", size, budget.thr_time),
        Test::Rtt64 => ("rtt", 64, budget.rtt_time),
        other => {
            return Err(BenchError::client(
                system.as_str(),
                format!("{other} is not measured for {system}"),
            ));
        }
    };
    let out = Command::new(peers)
        .args([
            system.as_str(),
            &addr.to_string(),
            kind,
            &size.to_string(),
            &time.as_millis().to_string(),
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| BenchError::client(system.as_str(), format!("{}: {e}", peers.display())))?;
    if !out.status.success() {
        return Err(BenchError::client(
            system.as_str(),
            format!("{} exited with {}", peers.display(), out.status),
        ));
    }
    row(system, test, size, &String::from_utf8_lossy(&out.stdout))
}

/// The row for the JSON object `lanmesh-bench-peers` printed for `test`.
fn row(system: System, test: Test, size: usize, text: &str) -> Result<Row, BenchError> {
    let reported: Reported = serde_json::from_str(text.trim())
        .map_err(|e| BenchError::client(system.as_str(), format!("bad row {text:?}: {e}")))?;
    let secs = reported.seconds;
    let mut row = Row::new(system, test, reported.sent, reported.delivered, secs);
    row.payload_bytes = Some(size);
    if secs > 0.0 {
        let rate = reported.delivered as f64 / secs;
        row.msgs_per_s = Some(rate);
        if matches!(test, Test::Throughput(_)) {
            row.mb_per_s = Some(rate * size as f64 / 1e6);
        }
    }
    row.p50_us = reported.p50_us;
    row.p99_us = reported.p99_us;
    Ok(row)
}

/// The tests an external system is measured in.
pub(crate) fn measures(test: Test) -> bool {
    matches!(test, Test::Throughput(_) | Test::Rtt64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reported_throughput_becomes_a_row_with_rates() {
        let text = r#"{"sent":10,"delivered":8,"seconds":2.000000,"p50_us":null,"p99_us":null}"#;
        let r = row(System::Mosquitto, Test::Throughput(1 << 20), 1 << 20, text).unwrap();
        assert_eq!((r.sent, r.delivered), (10, 8));
        assert_eq!(r.msgs_per_s, Some(4.0));
        assert_eq!(r.mb_per_s, Some(4.0 * 1_048_576.0 / 1e6));
        assert_eq!(r.p50_us, None);
    }

    #[test]
    fn a_reported_round_trip_keeps_its_percentiles_and_no_bandwidth() {
        let text = r#"{"sent":5,"delivered":5,"seconds":1.0,"p50_us":70.5,"p99_us":120.0}"#;
        let r = row(System::Mosquitto, Test::Rtt64, 64, text).unwrap();
        assert_eq!((r.p50_us, r.p99_us), (Some(70.5), Some(120.0)));
        assert_eq!(r.mb_per_s, None);
    }

    #[test]
    fn garbage_is_an_error_naming_the_system() {
        let e = row(System::Mosquitto, Test::Rtt64, 64, "oops").unwrap_err();
        assert!(e.to_string().contains("mosquitto"), "{e}");
    }
}

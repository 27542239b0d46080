//! The results of a run, as Markdown (the table, the ratios to the baselines and the
//! targets of the suite) and as JSON.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::error::BenchError;
use crate::machine::Machine;
use crate::row::{Row, System, Test};

/// A target's verdict: met, and the measured value as shown (`None`: not measured).
type Check = Option<(bool, String)>;

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where and when.
    pub machine: Machine,
    /// Whether this was the short `--quick` run.
    pub quick: bool,
    /// One row per system and test.
    pub rows: Vec<Row>,
    /// Skipped systems and failed tests, one line each.
    pub notes: Vec<String>,
    /// How many tests failed (each has a note).
    pub failures: usize,
}

/// How a test's rows are compared.
#[derive(Clone, Copy)]
enum Metric {
    MsgsPerS,
    MbPerS,
    P50,
    RssPerPeer,
}

impl Metric {
    fn of(test: &str) -> Self {
        match test {
            "thr-64k" | "thr-1m" => Self::MbPerS,
            "rtt-64" | "echo-64" => Self::P50,
            "idle-1000" => Self::RssPerPeer,
            _ => Self::MsgsPerS,
        }
    }

    fn value(self, row: &Row) -> Option<f64> {
        match self {
            Self::MsgsPerS => row.msgs_per_s,
            Self::MbPerS => row.mb_per_s,
            Self::P50 => row.p50_us,
            Self::RssPerPeer => row.rss_per_peer_kib,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::MsgsPerS => "msg/s (higher is better)",
            Self::MbPerS => "MB/s (higher is better)",
            Self::P50 => "p50 µs (lower is better)",
            Self::RssPerPeer => "RSS KiB/peer (lower is better)",
        }
    }
}

impl Report {
    /// The row of `system` for `test`, if measured.
    pub fn row(&self, system: System, test: Test) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.system == system && r.test == test.as_str())
    }

    fn ratio(&self, test: Test, system: System, baseline: System) -> Option<f64> {
        let metric = Metric::of(test.as_str());
        let ours = metric.value(self.row(system, test)?)?;
        let theirs = metric.value(self.row(baseline, test)?)?;
        (theirs > 0.0).then(|| ours / theirs)
    }

    /// The results table.
    pub fn table(&self) -> String {
        let mut s = String::from(
            "| test | system | sent | delivered | msg/s | MB/s | p50 µs | p99 µs | RSS/peer KiB |\n\
             |---|---|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.test,
                r.system,
                r.sent,
                r.delivered,
                num(r.msgs_per_s),
                num(r.mb_per_s),
                num(r.p50_us),
                num(r.p99_us),
                num(r.rss_per_peer_kib),
            );
        }
        s
    }

    /// lanmesh (encrypted with ChaCha20-Poly1305, with AES-256-GCM, and plaintext) divided
    /// by each baseline, test by test; the default lanmesh also by mosquitto and zenoh
    /// (through its router and peer to peer).
    pub fn ratios(&self) -> String {
        let mut s = String::from(
            "| test | compared on | lanmesh ÷ nats | lanmesh ÷ relay | aes ÷ nats | aes ÷ relay | plain ÷ nats | plain ÷ relay | lanmesh ÷ mosquitto | lanmesh ÷ zenoh | lanmesh ÷ zenoh-p2p |\n\
             |---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        let ours = [System::Lanmesh, System::LanmeshAes, System::LanmeshPlain];
        for test in Test::ALL {
            if ours.iter().all(|&sys| self.row(sys, test).is_none()) {
                continue;
            }
            let mut line = format!("| {test} | {} |", Metric::of(test.as_str()).label());
            for sys in ours {
                for base in [System::Nats, System::Relay] {
                    let _ = write!(line, " {} |", ratio_text(self.ratio(test, sys, base)));
                }
            }
            for base in [System::Mosquitto, System::Zenoh, System::ZenohP2p] {
                let r = self.ratio(test, System::Lanmesh, base);
                let _ = write!(line, " {} |", ratio_text(r));
            }
            let _ = writeln!(s, "{line}");
        }
        s
    }

    /// The federated pair (sender and receiver on two routers joined through NATS)
    /// divided by the same pair on one router, in the same run.
    pub fn federation(&self) -> String {
        let mut s = String::from(
            "| test | compared on | federated ÷ one router |\n\
             |---|---|--:|\n",
        );
        for test in Test::ALL {
            if self.row(System::LanmeshFederated, test).is_none() {
                continue;
            }
            let _ = writeln!(
                s,
                "| {test} | {} | {} |",
                Metric::of(test.as_str()).label(),
                ratio_text(self.ratio(test, System::LanmeshFederated, System::Lanmesh))
            );
        }
        s
    }

    /// The pair on a direct link against the same pair through the router, nats-server and
    /// zenoh peer to peer, in the same run.
    pub fn direct(&self) -> String {
        let mut s = String::from(
            "| test | compared on | direct ÷ via router | direct ÷ nats | direct ÷ zenoh-p2p | direct-aes ÷ zenoh-p2p |\n\
             |---|---|--:|--:|--:|--:|\n",
        );
        for test in Test::ALL {
            if self.row(System::LanmeshDirect, test).is_none() {
                continue;
            }
            let d = System::LanmeshDirect;
            let _ = writeln!(
                s,
                "| {test} | {} | {} | {} | {} | {} |",
                Metric::of(test.as_str()).label(),
                ratio_text(self.ratio(test, d, System::Lanmesh)),
                ratio_text(self.ratio(test, d, System::Nats)),
                ratio_text(self.ratio(test, d, System::ZenohP2p)),
                ratio_text(self.ratio(test, System::LanmeshDirectAes, System::ZenohP2p)),
            );
        }
        s
    }

    /// A ratio of `a` to `b` in `test` checked against `bound` (`at_least`: ≥, else ≤),
    /// with zero loss asked of `a` in throughput tests.
    fn bounded(&self, test: Test, a: System, b: System, bound: f64, at_least: bool) -> Check {
        let lossless = match test {
            Test::Throughput(_) => self.row(a, test).map(|r| r.delivered == r.sent),
            _ => Some(true),
        };
        self.ratio(test, a, b).zip(lossless).map(|(r, ok)| {
            let met = ok && if at_least { r >= bound } else { r <= bound };
            let loss = if ok { "" } else { " (LOSS)" };
            (met, format!("{}{loss}", ratio_text(Some(r))))
        })
    }

    /// 64-byte throughput of `system` against nats, and whether it lost nothing.
    fn small_throughput(&self, system: System) -> Option<(bool, String)> {
        let thr64 = Test::Throughput(64);
        let lossless = self.row(system, thr64).map(|r| r.delivered == r.sent);
        self.ratio(thr64, system, System::Nats)
            .zip(lossless)
            .map(|(r, ok)| {
                (
                    r >= 1.5 && ok,
                    format!(
                        "{} ({})",
                        ratio_text(Some(r)),
                        if ok { "no loss" } else { "LOSS" }
                    ),
                )
            })
    }

    /// 64-byte throughput across federated routers against one router, and whether it
    /// lost nothing.
    fn cross_router_throughput(&self) -> Option<(bool, String)> {
        let thr64 = Test::Throughput(64);
        let lossless = self
            .row(System::LanmeshFederated, thr64)
            .map(|r| r.delivered == r.sent);
        self.ratio(thr64, System::LanmeshFederated, System::Lanmesh)
            .zip(lossless)
            .map(|(r, ok)| {
                (
                    r >= 0.5 && ok,
                    format!(
                        "{} ({})",
                        ratio_text(Some(r)),
                        if ok { "no loss" } else { "LOSS" }
                    ),
                )
            })
    }

    /// The targets of the suite, each met or missed (or not measured). The encrypted
    /// targets are checked for the default cipher and, on their own lines, for
    /// AES-256-GCM (`lanmesh-aes`).
    pub fn targets(&self) -> String {
        let mut s = String::new();
        let big_test = Test::Throughput(1 << 20);
        let big = |system| {
            self.ratio(Test::Throughput(1 << 20), system, System::Nats)
                .map(|r| (r >= 0.8, ratio_text(Some(r))))
        };
        let checks = [
            (
                "64 B encrypted throughput ≥ 1.5× nats delivered msg/s, zero loss",
                self.small_throughput(System::Lanmesh),
            ),
            (
                "64 B AES-256-GCM throughput ≥ 1.5× nats delivered msg/s, zero loss",
                self.small_throughput(System::LanmeshAes),
            ),
            (
                "64 B round trip p50 ≤ 0.8× nats request/reply",
                self.ratio(Test::Rtt64, System::Lanmesh, System::Nats)
                    .map(|r| (r <= 0.8, ratio_text(Some(r)))),
            ),
            (
                "64 B round trip p50 ≤ 1.3× the raw relay",
                self.ratio(Test::Rtt64, System::Lanmesh, System::Relay)
                    .map(|r| (r <= 1.3, ratio_text(Some(r)))),
            ),
            ("1 MiB encrypted MB/s ≥ 0.8× nats", big(System::Lanmesh)),
            (
                "1 MiB AES-256-GCM MB/s ≥ 0.8× nats",
                big(System::LanmeshAes),
            ),
            (
                "cross-router 64 B throughput ≥ 0.5× one router (msg/s), zero loss",
                self.cross_router_throughput(),
            ),
            (
                "cross-router 64 B round trip p50 ≤ 2× one router",
                self.ratio(Test::Rtt64, System::LanmeshFederated, System::Lanmesh)
                    .map(|r| (r <= 2.0, ratio_text(Some(r)))),
            ),
            (
                "64 B send/recv echo p50 via the router ≤ 0.8× nats (echo)",
                self.bounded(Test::Echo64, System::Lanmesh, System::Nats, 0.8, false),
            ),
            (
                "64 B send/recv echo p50 direct ≤ 0.6× nats (echo)",
                self.bounded(
                    Test::Echo64,
                    System::LanmeshDirect,
                    System::Nats,
                    0.6,
                    false,
                ),
            ),
            (
                "1 MiB via the router MB/s ≥ 1.0× nats (issue 17)",
                self.bounded(big_test, System::Lanmesh, System::Nats, 1.0, true),
            ),
            (
                "1 MiB direct MB/s ≥ 1.5× nats",
                self.bounded(big_test, System::LanmeshDirect, System::Nats, 1.5, true),
            ),
            (
                "1 MiB direct MB/s ≥ 0.7× zenoh peer to peer",
                self.bounded(big_test, System::LanmeshDirect, System::ZenohP2p, 0.7, true),
            ),
            (
                "1 MiB direct AES-256-GCM MB/s ≥ 1.0× zenoh peer to peer",
                self.bounded(
                    big_test,
                    System::LanmeshDirectAes,
                    System::ZenohP2p,
                    1.0,
                    true,
                ),
            ),
            (
                "64 B direct msg/s ≥ 1.2× zenoh peer to peer, zero loss",
                self.bounded(
                    Test::Throughput(64),
                    System::LanmeshDirect,
                    System::ZenohP2p,
                    1.2,
                    true,
                ),
            ),
            (
                "64 B round trip p50 direct ≤ 0.9× zenoh peer to peer",
                self.bounded(
                    Test::Rtt64,
                    System::LanmeshDirect,
                    System::ZenohP2p,
                    0.9,
                    false,
                ),
            ),
            (
                "64 B round trip p50 direct ≤ 0.6× nats",
                self.bounded(Test::Rtt64, System::LanmeshDirect, System::Nats, 0.6, false),
            ),
            (
                "1,000 idle peers ≤ 64 KiB router RSS per peer",
                self.row(System::Lanmesh, Test::Idle1000)
                    .and_then(|r| r.rss_per_peer_kib)
                    .map(|k| (k <= 64.0, format!("{k:.1} KiB"))),
            ),
        ];
        for (what, result) in checks {
            let line = match result {
                Some((true, v)) => format!("- met: {what} — {v}"),
                Some((false, v)) => format!("- **missed**: {what} — {v}"),
                None => format!("- not measured: {what}"),
            };
            let _ = writeln!(s, "{line}");
        }
        s
    }

    /// The whole report as Markdown.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut s = format!(
            "# lanmesh bench{}\n\n{} · {} cores · {} · Linux {}\n\n",
            if self.quick { " (quick)" } else { "" },
            m.date,
            m.cores,
            m.cpu,
            m.kernel
        );
        s.push_str(&self.table());
        s.push_str("\n## Ratios to the baselines\n\n");
        s.push_str(&self.ratios());
        if self
            .rows
            .iter()
            .any(|r| r.system == System::LanmeshFederated)
        {
            s.push_str("\n## Across federated routers\n\n");
            s.push_str(&self.federation());
        }
        if self.rows.iter().any(|r| r.system == System::LanmeshDirect) {
            s.push_str("\n## Over a direct link\n\n");
            s.push_str(&self.direct());
        }
        s.push_str("\n## Targets\n\n");
        s.push_str(&self.targets());
        if !self.notes.is_empty() {
            s.push_str("\n## Notes\n\n");
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        s
    }

    /// The rows alone, as a JSON array.
    pub fn rows_json(&self) -> Result<String, BenchError> {
        serde_json::to_string_pretty(&self.rows).map_err(|e| BenchError::Results(e.to_string()))
    }

    /// Writes `bench.md` and `bench.json` (machine, date, rows, notes) into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), BenchError> {
        let fail = |e: std::io::Error| BenchError::Results(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(fail)?;
        let json =
            serde_json::to_string_pretty(self).map_err(|e| BenchError::Results(e.to_string()))?;
        std::fs::write(dir.join("bench.json"), json + "\n").map_err(fail)?;
        std::fs::write(dir.join("bench.md"), self.markdown()).map_err(fail)?;
        Ok(())
    }
}

fn ratio_text(r: Option<f64>) -> String {
    r.map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×"))
}

/// A number for the table: whole with thousands separators when large, else 1 decimal.
fn num(v: Option<f64>) -> String {
    let Some(v) = v else {
        return String::new();
    };
    if v.abs() < 1000.0 {
        return format!("{v:.1}");
    }
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut rows = Vec::new();
        for (system, rate) in [(System::Lanmesh, 3.0e6), (System::Nats, 1.0e6)] {
            let mut r = Row::new(system, Test::Throughput(64), 100, 100, 1.0);
            r.msgs_per_s = Some(rate);
            rows.push(r);
        }
        Report {
            machine: Machine::current(),
            quick: true,
            rows,
            notes: vec![],
            failures: 0,
        }
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(num(Some(1_234_567.4)), "1,234,567");
        assert_eq!(num(Some(999.94)), "999.9");
        assert_eq!(num(None), "");
    }

    #[test]
    fn ratios_and_targets() {
        let r = report();
        assert!(
            r.ratios()
                .contains("| thr-64 | msg/s (higher is better) | 3.00× | – | – | – | – | – |")
        );
        let targets = r.targets();
        assert!(
            targets.contains("- met: 64 B encrypted throughput"),
            "{targets}"
        );
        assert!(
            targets.contains("- not measured: 1,000 idle peers"),
            "{targets}"
        );
        assert!(
            targets.contains("- not measured: 64 B AES-256-GCM throughput"),
            "{targets}"
        );
    }

    #[test]
    fn federated_rows_are_compared_with_one_router() {
        let mut r = report();
        let mut fed = Row::new(
            System::LanmeshFederated,
            Test::Throughput(64),
            100,
            100,
            1.0,
        );
        fed.msgs_per_s = Some(1.2e6);
        r.rows.push(fed);
        for (system, p50) in [(System::Lanmesh, 100.0), (System::LanmeshFederated, 250.0)] {
            let mut rtt = Row::new(system, Test::Rtt64, 10, 10, 1.0);
            rtt.p50_us = Some(p50);
            r.rows.push(rtt);
        }
        let fed = r.federation();
        assert!(
            fed.contains("| thr-64 | msg/s (higher is better) | 0.40× |"),
            "{fed}"
        );
        assert!(
            fed.contains("| rtt-64 | p50 µs (lower is better) | 2.50× |"),
            "{fed}"
        );
        let targets = r.targets();
        assert!(
            targets.contains(
                "- **missed**: cross-router 64 B throughput ≥ 0.5× one router (msg/s), zero loss — 0.40× (no loss)"
            ),
            "{targets}"
        );
        assert!(
            targets
                .contains("- **missed**: cross-router 64 B round trip p50 ≤ 2× one router — 2.50×"),
            "{targets}"
        );
        assert!(r.markdown().contains("## Across federated routers"));
        assert!(!report().markdown().contains("## Across federated routers"));
    }

    #[test]
    fn zenoh_rows_get_their_own_columns() {
        let mut r = report();
        for (system, rate) in [(System::Zenoh, 1.5e6), (System::ZenohP2p, 6.0e6)] {
            let mut row = Row::new(system, Test::Throughput(64), 100, 100, 1.0);
            row.msgs_per_s = Some(rate);
            r.rows.push(row);
        }
        let ratios = r.ratios();
        assert!(
            ratios.contains("| lanmesh ÷ zenoh | lanmesh ÷ zenoh-p2p |"),
            "{ratios}"
        );
        assert!(
            ratios.contains(
                "| thr-64 | msg/s (higher is better) | 3.00× | – | – | – | – | – | – | 2.00× | 0.50× |"
            ),
            "{ratios}"
        );
    }

    #[test]
    fn direct_rows_get_their_section_and_the_issue_17_targets() {
        let mut r = report();
        let rtt = |system, p50| {
            let mut row = Row::new(system, Test::Rtt64, 10, 10, 1.0);
            row.p50_us = Some(p50);
            row
        };
        r.rows.push(rtt(System::Lanmesh, 60.0));
        r.rows.push(rtt(System::LanmeshDirect, 30.0));
        r.rows.push(rtt(System::ZenohP2p, 40.0));
        r.rows.push(rtt(System::Nats, 100.0));
        let mut lossy = Row::new(System::LanmeshDirect, Test::Throughput(64), 100, 99, 1.0);
        lossy.msgs_per_s = Some(9.0e6);
        r.rows.push(lossy);
        let mut zenoh = Row::new(System::ZenohP2p, Test::Throughput(64), 100, 100, 1.0);
        zenoh.msgs_per_s = Some(1.0e6);
        r.rows.push(zenoh);
        let md = r.markdown();
        assert!(md.contains("## Over a direct link"), "{md}");
        assert!(
            md.contains("| rtt-64 | p50 µs (lower is better) | 0.50× | 0.30× | 0.75× | – |"),
            "{md}"
        );
        let targets = r.targets();
        for line in [
            "- met: 64 B round trip p50 direct ≤ 0.9× zenoh peer to peer — 0.75×",
            "- met: 64 B round trip p50 direct ≤ 0.6× nats — 0.30×",
            "- **missed**: 64 B direct msg/s ≥ 1.2× zenoh peer to peer, zero loss — 9.00× (LOSS)",
            "- not measured: 1 MiB direct MB/s ≥ 1.5× nats",
        ] {
            assert!(targets.contains(line), "{line}\n{targets}");
        }
    }

    #[test]
    fn aes_rows_get_their_own_columns_and_targets() {
        let mut r = report();
        let mut aes = Row::new(System::LanmeshAes, Test::Throughput(64), 100, 90, 1.0);
        aes.msgs_per_s = Some(2.0e6);
        r.rows.push(aes);
        let mut big = Row::new(System::LanmeshAes, Test::Throughput(1 << 20), 10, 10, 1.0);
        big.mb_per_s = Some(900.0);
        r.rows.push(big);
        let mut nats = Row::new(System::Nats, Test::Throughput(1 << 20), 10, 10, 1.0);
        nats.mb_per_s = Some(1000.0);
        r.rows.push(nats);
        let ratios = r.ratios();
        assert!(
            ratios
                .contains("| thr-64 | msg/s (higher is better) | 3.00× | – | 2.00× | – | – | – |"),
            "{ratios}"
        );
        assert!(
            ratios.contains("| thr-1m | MB/s (higher is better) | – | – | 0.90× | – | – | – |"),
            "{ratios}"
        );
        let targets = r.targets();
        assert!(
            targets.contains(
                "- **missed**: 64 B AES-256-GCM throughput ≥ 1.5× nats delivered msg/s, zero loss — 2.00× (LOSS)"
            ),
            "{targets}"
        );
        assert!(
            targets.contains("- met: 1 MiB AES-256-GCM MB/s ≥ 0.8× nats — 0.90×"),
            "{targets}"
        );
        assert!(
            targets.contains("- not measured: 1 MiB encrypted MB/s"),
            "{targets}"
        );
    }
}

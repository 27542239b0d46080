//! The lanmesh benchmark suite (`lanmesh bench`).
//!
//! It measures lanmesh (encrypted and compressed, with ChaCha20-Poly1305 or, opted in,
//! AES-256-GCM; and plaintext) next to nats-server, mosquitto, zenoh (through a zenoh
//! router, and peer to peer) and a raw tokio TCP relay, each server a process on a
//! loopback port started by the bench itself, with the clients in this process
//! (mosquitto's and zenoh's in `lanmesh-bench-peers`, see `external`):
//!
//! * [`row`]: what one measurement is; [`report`]: the table, ratios and targets.
//! * `servers`: the server processes (for `lanmesh-federated`, two routers federated
//!   through one nats-server with JetStream); [`relay`]: the relay baseline itself.
//! * `endpoint`: one client interface over the five systems; `scenarios`: the tests,
//!   written once over it; `rtt` and `turns`: the round-trip and throughput tests, in
//!   which the systems take turns; `worker`: the threads the two sides of a test run on.
//!
//! Nothing here touches anything but 127.0.0.1, and every test is bounded in count and
//! time.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod endpoint;
mod error;
mod external;
mod machine;
pub mod relay;
pub mod report;
pub mod row;
mod rtt;
mod scenarios;
mod servers;
mod turns;
mod worker;

use std::path::PathBuf;

pub use error::BenchError;
pub use external::find_peers_binary;
pub use machine::Machine;
pub use relay::RelayServer;
pub use report::Report;
pub use row::{Row, System, Test};
pub use scenarios::Budget;
pub use servers::{find_mosquitto, find_nats_server};

use endpoint::lanmesh::LanmeshEndpoint;
use endpoint::relay::RelayEndpoint;
use endpoint::{Endpoint, Target};
use servers::ServerProcess;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `lanmesh` binary: it runs the router and the relay as child processes.
    pub exe: PathBuf,
    /// Limits per test.
    pub budget: Budget,
    /// Whether the budget is the short one (recorded in the report).
    pub quick: bool,
    /// Tests to run, in this order.
    pub tests: Vec<Test>,
    /// Systems to measure, in this order.
    pub systems: Vec<System>,
    /// nats-server's path, when it is not found by [`find_nats_server`].
    pub nats_server: Option<PathBuf>,
    /// `lanmesh-bench-peers`, when it is not found by [`find_peers_binary`].
    pub peers: Option<PathBuf>,
}

impl Options {
    /// Every test on every system, with the full or the quick budget.
    pub fn new(exe: PathBuf, quick: bool) -> Self {
        Self {
            exe,
            budget: if quick {
                Budget::quick()
            } else {
                Budget::full()
            },
            quick,
            tests: Test::ALL.to_vec(),
            systems: System::ALL.to_vec(),
            nats_server: None,
            peers: None,
        }
    }
}

/// What the bench is doing, for a progress display.
#[derive(Debug)]
pub enum Progress<'a> {
    /// A test starts.
    Start(System, Test),
    /// A test finished.
    Done(&'a Row),
    /// A system is skipped, or a test failed: one line saying why.
    Note(&'a str),
}

/// Runs the suite. A test that fails becomes a note (and no row); the rest go on.
pub fn run(opts: &Options, mut progress: impl FnMut(Progress<'_>)) -> Report {
    let mut report = Report {
        machine: Machine::current(),
        quick: opts.quick,
        rows: Vec::new(),
        notes: Vec::new(),
        failures: 0,
    };
    let nats = nats_binary(opts);
    let peers = peers_binary(opts);
    // The federated routers need nats-server, not the bench's own NATS client.
    let nats_server = find_nats_server(opts.nats_server.as_deref());
    let federated_skip = nats_server.is_none().then(|| {
        "lanmesh-federated: nats-server not found (scripts/ensure-tools.sh nats installs it); skipping the federated rows".to_owned()
    });
    let mosquitto_skip = find_mosquitto().is_none().then(|| {
        "mosquitto: not installed (apt-get install mosquitto); skipping the mosquitto rows"
            .to_owned()
    });
    let mut systems = Vec::new();
    for &system in &opts.systems {
        let missing = match (system, &nats, &peers) {
            (System::Nats, Err(why), _) => Some(why),
            (System::LanmeshFederated, _, _) => federated_skip.as_ref(),
            (system, _, Err(why)) if system.is_external() => Some(why),
            (System::Mosquitto, _, Ok(_)) => mosquitto_skip.as_ref(),
            _ => None,
        };
        match missing {
            Some(why) => {
                progress(Progress::Note(why));
                report.notes.push(why.clone());
            }
            None => systems.push(system),
        }
    }
    let bins = Binaries {
        nats: nats.as_ref().ok(),
        nats_server: nats_server.as_ref(),
        peers: peers.as_ref().ok(),
    };
    for &test in &opts.tests {
        // External systems take part in the tests their client binary measures.
        let systems: Vec<System> = systems
            .iter()
            .copied()
            .filter(|s| !s.is_external() || external::measures(test))
            .filter(|s| s.measures(test))
            .collect();
        if matches!(test, Test::Rtt64 | Test::Echo64 | Test::Throughput(_)) {
            for &system in &systems {
                progress(Progress::Start(system, test));
            }
            let outcomes = if matches!(test, Test::Rtt64 | Test::Echo64) {
                // The round trip runs side by side through an in-process echo pair;
                // an external system's pair lives in its own process, measured after.
                let (inside, outside): (Vec<System>, Vec<System>) =
                    systems.iter().partition(|s| !s.is_external());
                let mut outcomes = rtt::side_by_side(&inside, test, &opts.budget, |system| {
                    rtt_pair(opts, system, &bins, test)
                });
                for system in outside {
                    outcomes.push((system, measure(opts, system, test, &bins)));
                }
                outcomes
            } else {
                let budget = opts.budget.turn(turns::TURNS);
                turns::in_turns(
                    &systems,
                    turns::TURNS,
                    |system| start_server(opts, system, &bins),
                    |system, server| run_test(system, server, test, &budget, &bins),
                    turns::add,
                )
            };
            for (system, outcome) in outcomes {
                record(&mut report, &mut progress, system, test, outcome);
            }
            continue;
        }
        for &system in &systems {
            progress(Progress::Start(system, test));
            let outcome = measure(opts, system, test, &bins);
            record(&mut report, &mut progress, system, test, outcome);
        }
    }
    report
}

/// Adds a row to the report, or a note saying why there is none.
fn record(
    report: &mut Report,
    progress: &mut impl FnMut(Progress<'_>),
    system: System,
    test: Test,
    outcome: Result<Row, BenchError>,
) {
    match outcome {
        Ok(row) => {
            progress(Progress::Done(&row));
            report.rows.push(row);
        }
        Err(e) => {
            let note = format!("{system} {test} failed: {e}");
            progress(Progress::Note(&note));
            report.notes.push(note);
            report.failures += 1;
        }
    }
}

fn nats_binary(opts: &Options) -> Result<PathBuf, String> {
    if !cfg!(feature = "nats") {
        return Err(
            "nats: this build has no nats client (feature \"nats\"); skipping the nats rows".into(),
        );
    }
    find_nats_server(opts.nats_server.as_deref()).ok_or_else(|| {
        "nats: nats-server not found (scripts/ensure-tools.sh nats installs it); skipping the nats rows".into()
    })
}

/// The programs the bench runs besides itself, where found.
struct Binaries<'a> {
    /// nats-server, when the nats rows can run (found, and the client built in).
    nats: Option<&'a PathBuf>,
    /// nats-server, for the federated routers.
    nats_server: Option<&'a PathBuf>,
    peers: Option<&'a PathBuf>,
}

impl Binaries<'_> {
    fn peers(&self) -> Result<&PathBuf, BenchError> {
        self.peers.ok_or(BenchError::Server {
            what: "lanmesh-bench-peers",
            text: "not found".into(),
        })
    }
}

/// `lanmesh-bench-peers`, or the note saying that the systems it runs are skipped.
fn peers_binary(opts: &Options) -> Result<PathBuf, String> {
    let external: Vec<&str> = opts
        .systems
        .iter()
        .filter(|s| s.is_external())
        .map(|s| s.as_str())
        .collect();
    opts.peers
        .clone()
        .or_else(|| find_peers_binary(&opts.exe))
        .ok_or_else(|| {
            format!(
                "{}: lanmesh-bench-peers not built (`just bench-peers` builds bench/peers); skipping their rows",
                external.join(", ")
            )
        })
}

/// Starts a fresh server for one test and runs it.
fn measure(
    opts: &Options,
    system: System,
    test: Test,
    bins: &Binaries<'_>,
) -> Result<Row, BenchError> {
    let server = start_server(opts, system, bins)?;
    run_test(system, &server, test, &opts.budget, bins)
}

/// Runs one test of `system` against its running server.
fn run_test(
    system: System,
    server: &ServerProcess,
    test: Test,
    budget: &Budget,
    bins: &Binaries<'_>,
) -> Result<Row, BenchError> {
    let target = Target {
        system,
        addr: server.addr(),
        far: server.far_addr(),
    };
    match system {
        System::Lanmesh
        | System::LanmeshDirect
        | System::LanmeshDirectAes
        | System::LanmeshAes
        | System::LanmeshPlain
        | System::LanmeshFederated => scenario::<LanmeshEndpoint>(server, target, test, budget),
        System::Relay => scenario::<RelayEndpoint>(server, target, test, budget),
        #[cfg(feature = "nats")]
        System::Nats => scenario::<endpoint::nats::NatsEndpoint>(server, target, test, budget),
        #[cfg(not(feature = "nats"))]
        System::Nats => Err(BenchError::client("nats", "built without the nats feature")),
        System::Mosquitto | System::Zenoh | System::ZenohP2p => {
            let peers = bins.peers()?;
            external::run(peers, system, server.addr(), test, budget)
        }
    }
}

/// Starts a server and connects an echo pair to it, for [`rtt::side_by_side`].
fn rtt_pair(
    opts: &Options,
    system: System,
    bins: &Binaries<'_>,
    test: Test,
) -> Result<(ServerProcess, rtt::RttPair), BenchError> {
    let server = start_server(opts, system, bins)?;
    let target = Target {
        system,
        addr: server.addr(),
        far: server.far_addr(),
    };
    let pair = match system {
        System::Lanmesh
        | System::LanmeshDirect
        | System::LanmeshDirectAes
        | System::LanmeshAes
        | System::LanmeshPlain
        | System::LanmeshFederated => rtt::RttPair::start::<LanmeshEndpoint>(target, test)?,
        System::Relay => rtt::RttPair::start::<RelayEndpoint>(target, test)?,
        #[cfg(feature = "nats")]
        System::Nats => rtt::RttPair::start::<endpoint::nats::NatsEndpoint>(target, test)?,
        #[cfg(not(feature = "nats"))]
        System::Nats => return Err(BenchError::client("nats", "built without the nats feature")),
        System::Mosquitto | System::Zenoh | System::ZenohP2p => {
            return Err(BenchError::client(
                system.as_str(),
                "measured in its own process",
            ));
        }
    };
    Ok((server, pair))
}

/// Starts the server process of `system` on a free loopback port.
fn start_server(
    opts: &Options,
    system: System,
    bins: &Binaries<'_>,
) -> Result<ServerProcess, BenchError> {
    match system {
        System::Lanmesh | System::LanmeshAes | System::LanmeshDirect | System::LanmeshDirectAes => {
            servers::start_lanmesh(&opts.exe, false)
        }
        System::LanmeshPlain => servers::start_lanmesh(&opts.exe, true),
        System::LanmeshFederated => {
            let bin = bins.nats_server.ok_or(BenchError::Server {
                what: "nats-server",
                text: "not found".into(),
            })?;
            servers::start_federated(&opts.exe, bin)
        }
        System::Relay => servers::start_relay(&opts.exe),
        System::Nats => {
            let bin = bins.nats.ok_or(BenchError::Server {
                what: "nats-server",
                text: "not found".into(),
            })?;
            servers::start_nats(bin)
        }
        System::Mosquitto => {
            let bin = find_mosquitto().ok_or(BenchError::Server {
                what: "mosquitto",
                text: "not found".into(),
            })?;
            servers::start_mosquitto(&bin)
        }
        System::Zenoh => servers::start_zenoh_router(bins.peers()?),
        System::ZenohP2p => Ok(ServerProcess::none()),
    }
}

fn scenario<E: Endpoint>(
    server: &ServerProcess,
    target: Target,
    test: Test,
    budget: &Budget,
) -> Result<Row, BenchError> {
    match test {
        Test::Throughput(size) => scenarios::throughput::<E>(target, test, size, budget),
        // All systems take turns in this test: `run` measures it with `rtt::side_by_side`.
        Test::Rtt64 | Test::Echo64 => {
            Err(BenchError::client("bench", "round trips run side by side"))
        }
        Test::Fanout100 => scenarios::fanout::<E>(target, budget),
        Test::Idle1000 => scenarios::idle::<E>(server, target, budget),
        Test::Handshakes => scenarios::handshakes::<E>(target, budget),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    /// A stand-in for `lanmesh-bench-peers` that logs its arguments, runs a "router"
    /// that says where it listens, and prints a fixed row for every test.
    fn fake_peers(dir: &std::path::Path) -> PathBuf {
        let script = dir.join("lanmesh-bench-peers");
        let log = dir.join("args.log");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n\
                 echo \"$*\" >> '{log}'\n\
                 if [ \"$1\" = zenoh-router ]; then echo \"zenoh router $2\"; exec sleep 30; fi\n\
                 if [ \"$3\" = rtt ]; then\n\
                   echo '{{\"sent\":4,\"delivered\":4,\"seconds\":1.0,\"p50_us\":80.0,\"p99_us\":90.0}}'\n\
                 else\n\
                   echo '{{\"sent\":10,\"delivered\":9,\"seconds\":0.5,\"p50_us\":null,\"p99_us\":null}}'\n\
                 fi\n",
                log = log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    #[test]
    fn zenoh_rows_come_from_the_peers_binary_through_a_router_and_without_one() {
        let dir = std::env::temp_dir().join(format!("lanmesh-bench-fake-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut opts = Options::new(dir.join("no-lanmesh"), true);
        opts.peers = Some(fake_peers(&dir));
        opts.systems = vec![System::Zenoh, System::ZenohP2p];
        opts.tests = vec![Test::Throughput(64), Test::Rtt64];
        let report = run(&opts, |_| {});
        let log = std::fs::read_to_string(dir.join("args.log")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(report.failures, 0, "{:?}", report.notes);
        // Three turns of throughput each, then one round trip each.
        let thr = report.row(System::ZenohP2p, Test::Throughput(64)).unwrap();
        assert_eq!((thr.sent, thr.delivered), (30, 27));
        assert_eq!(thr.msgs_per_s, Some(27.0 / 1.5));
        let rtt = report.row(System::Zenoh, Test::Rtt64).unwrap();
        assert_eq!(rtt.p50_us, Some(80.0));
        // The router system's clients are sent to the router the bench started for the
        // test (one for the three throughput turns, one for the round trip), on
        // loopback; peer to peer gets no server and picks its own port.
        let routers: Vec<&str> = log
            .lines()
            .filter_map(|l| l.strip_prefix("zenoh-router "))
            .collect();
        let [thr_router, rtt_router] = routers[..] else {
            panic!("two routers expected: {log}");
        };
        assert!(thr_router.starts_with("127.0.0.1:"), "{log}");
        let thr_turns = format!("zenoh {thr_router} thr 64 ");
        assert_eq!(log.matches(&thr_turns).count(), 3, "{log}");
        assert!(
            log.contains(&format!("zenoh {rtt_router} rtt 64 ")),
            "{log}"
        );
        assert_eq!(
            log.matches("zenoh-p2p 127.0.0.1:0 thr 64 ").count(),
            3,
            "{log}"
        );
        assert!(log.contains("zenoh-p2p 127.0.0.1:0 rtt 64 "), "{log}");
    }

    #[test]
    fn without_the_peers_binary_its_systems_are_skipped_with_a_note() {
        let mut opts = Options::new(PathBuf::from("/nonexistent/bin/lanmesh"), true);
        opts.systems = vec![System::Zenoh, System::ZenohP2p];
        opts.tests = vec![Test::Throughput(64)];
        if find_peers_binary(&opts.exe).is_some() {
            return; // $LANMESH_BENCH_PEERS points at a real one
        }
        let report = run(&opts, |_| {});
        assert!(report.rows.is_empty());
        assert_eq!(report.failures, 0);
        assert!(
            report
                .notes
                .iter()
                .any(|n| n.starts_with("zenoh, zenoh-p2p: lanmesh-bench-peers not built")),
            "{:?}",
            report.notes
        );
    }
}

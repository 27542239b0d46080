//! The lanmesh benchmark suite (`lanmesh bench`).
//!
//! It measures lanmesh (encrypted and compressed, with ChaCha20-Poly1305 or, opted in,
//! AES-256-GCM; and plaintext) next to nats-server and a raw tokio TCP relay, each as a
//! server process on a loopback port started by the bench itself, with the clients in
//! this process:
//!
//! * [`row`]: what one measurement is; [`report`]: the table, ratios and targets.
//! * `servers`: the server processes; [`relay`]: the relay baseline itself.
//! * `endpoint`: one client interface over the five systems; `scenarios`: the tests,
//!   written once over it; `rtt` and `turns`: the round-trip and throughput tests, in
//!   which the systems take turns; `worker`: the threads the two sides of a test run on.
//!
//! Nothing here touches anything but 127.0.0.1, and every test is bounded in count and
//! time.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod endpoint;
mod error;
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
pub use machine::Machine;
pub use relay::RelayServer;
pub use report::Report;
pub use row::{Row, System, Test};
pub use scenarios::Budget;
pub use servers::find_nats_server;

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
    let mut systems = Vec::new();
    for &system in &opts.systems {
        match (system, &nats) {
            (System::Nats, Err(why)) => {
                progress(Progress::Note(why));
                report.notes.push(why.clone());
            }
            _ => systems.push(system),
        }
    }
    for &test in &opts.tests {
        let bin = nats.as_ref().ok();
        if matches!(test, Test::Rtt64 | Test::Throughput(_)) {
            for &system in &systems {
                progress(Progress::Start(system, test));
            }
            let outcomes = if test == Test::Rtt64 {
                rtt::side_by_side(&systems, &opts.budget, |system| rtt_pair(opts, system, bin))
            } else {
                let budget = opts.budget.turn(turns::TURNS);
                turns::in_turns(
                    &systems,
                    turns::TURNS,
                    |system| start_server(opts, system, bin),
                    |system, server| run_test(system, server, test, &budget),
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
            let outcome = measure(opts, system, test, bin);
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

/// Starts a fresh server for one test and runs it.
fn measure(
    opts: &Options,
    system: System,
    test: Test,
    nats: Option<&PathBuf>,
) -> Result<Row, BenchError> {
    let server = start_server(opts, system, nats)?;
    run_test(system, &server, test, &opts.budget)
}

/// Runs one test of `system` against its running server.
fn run_test(
    system: System,
    server: &ServerProcess,
    test: Test,
    budget: &Budget,
) -> Result<Row, BenchError> {
    let target = Target {
        system,
        addr: server.addr(),
    };
    match system {
        System::Lanmesh | System::LanmeshAes | System::LanmeshPlain => {
            scenario::<LanmeshEndpoint>(server, target, test, budget)
        }
        System::Relay => scenario::<RelayEndpoint>(server, target, test, budget),
        #[cfg(feature = "nats")]
        System::Nats => scenario::<endpoint::nats::NatsEndpoint>(server, target, test, budget),
        #[cfg(not(feature = "nats"))]
        System::Nats => Err(BenchError::client("nats", "built without the nats feature")),
    }
}

/// Starts a server and connects an echo pair to it, for [`rtt::side_by_side`].
fn rtt_pair(
    opts: &Options,
    system: System,
    nats: Option<&PathBuf>,
) -> Result<(ServerProcess, rtt::RttPair), BenchError> {
    let server = start_server(opts, system, nats)?;
    let target = Target {
        system,
        addr: server.addr(),
    };
    let pair = match system {
        System::Lanmesh | System::LanmeshAes | System::LanmeshPlain => {
            rtt::RttPair::start::<LanmeshEndpoint>(target)?
        }
        System::Relay => rtt::RttPair::start::<RelayEndpoint>(target)?,
        #[cfg(feature = "nats")]
        System::Nats => rtt::RttPair::start::<endpoint::nats::NatsEndpoint>(target)?,
        #[cfg(not(feature = "nats"))]
        System::Nats => return Err(BenchError::client("nats", "built without the nats feature")),
    };
    Ok((server, pair))
}

/// Starts the server process of `system` on a free loopback port.
fn start_server(
    opts: &Options,
    system: System,
    nats: Option<&PathBuf>,
) -> Result<ServerProcess, BenchError> {
    match system {
        System::Lanmesh | System::LanmeshAes => servers::start_lanmesh(&opts.exe, false),
        System::LanmeshPlain => servers::start_lanmesh(&opts.exe, true),
        System::Relay => servers::start_relay(&opts.exe),
        System::Nats => {
            let bin = nats.ok_or(BenchError::Server {
                what: "nats-server",
                text: "not found".into(),
            })?;
            servers::start_nats(bin)
        }
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
        Test::Rtt64 => Err(BenchError::client("bench", "rtt-64 runs side by side")),
        Test::Fanout100 => scenarios::fanout::<E>(target, budget),
        Test::Idle1000 => scenarios::idle::<E>(server, target, budget),
        Test::Handshakes => scenarios::handshakes::<E>(target, budget),
    }
}

//! `lanmesh bench`: the benchmark suite (see the `lanmesh-bench` crate), and the raw
//! relay baseline it runs as a child process (`--relay-server`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use lanmesh_bench::{Options, Progress, System, Test};

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// A short run (well under 40 s); writes no files unless --out is given.
    #[arg(long)]
    quick: bool,
    /// Print only the rows, as one JSON array, on stdout.
    #[arg(long)]
    json: bool,
    /// Run only these tests (thr-16, thr-64, thr-1k, thr-64k, thr-1m, rtt-64, echo-64,
    /// fanout-100, idle-1000, handshakes).
    #[arg(long, value_name = "TESTS", value_delimiter = ',')]
    only: Vec<Test>,
    /// Measure only these systems (lanmesh, lanmesh-direct, lanmesh-direct-aes, lanmesh-aes,
    /// lanmesh-plain, lanmesh-federated, nats, mosquitto, zenoh, zenoh-p2p, relay).
    #[arg(long, value_name = "SYSTEMS", value_delimiter = ',')]
    systems: Vec<System>,
    /// Write bench.md and bench.json here. Default for a full run of everything:
    /// bench/results.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The nats-server binary (default: $NATS_SERVER, python3's scripts dir, $PATH).
    #[arg(long, value_name = "PATH")]
    nats_server: Option<PathBuf>,
    /// Run the relay baseline on a free loopback port and print `relay ADDR`.
    #[arg(long, hide = true)]
    relay_server: bool,
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if args.relay_server {
        return relay_server().await;
    }
    let exe = std::env::current_exe().context("finding the lanmesh binary")?;
    let mut opts = Options::new(exe, args.quick);
    let filtered = !args.only.is_empty() || !args.systems.is_empty();
    if !args.only.is_empty() {
        opts.tests = args.only.clone();
    }
    if !args.systems.is_empty() {
        opts.systems = args.systems.clone();
    }
    opts.nats_server = args.nats_server.clone();
    let report = tokio::task::spawn_blocking(move || {
        lanmesh_bench::run(&opts, |p| match p {
            Progress::Start(system, test) => eprintln!("bench: {test} · {system} …"),
            Progress::Done(row) => eprintln!(
                "bench: {} · {}: {} of {} delivered",
                row.test, row.system, row.delivered, row.sent
            ),
            Progress::Note(note) => eprintln!("bench: {note}"),
        })
    })
    .await
    .context("the bench stopped")?;
    let out = match (&args.out, args.quick || filtered) {
        (Some(dir), _) => Some(dir.clone()),
        (None, false) => Some(PathBuf::from("bench/results")),
        (None, true) => None,
    };
    if let Some(dir) = &out {
        report.write(dir)?;
        eprintln!("bench: results in {}", dir.display());
    }
    if args.json {
        println!("{}", report.rows_json()?);
    } else {
        print!("{}", report.markdown());
    }
    Ok(if report.failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn relay_server() -> anyhow::Result<ExitCode> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let server = lanmesh_bench::RelayServer::bind(addr)
        .await
        .context("binding the relay")?;
    println!("relay {}", server.local_addr()?);
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    server.run().await.context("relay")?;
    Ok(ExitCode::SUCCESS)
}

//! The round-trip test, measured side by side.
//!
//! Every system's server and echo pair is set up first. Then short slices of round
//! trips are taken from each system in turn, [`SLICES`] times over. These machines are
//! shared: a change in load during the run falls on every system alike, instead of on
//! whichever one happened to be running, so the ratios between systems hold up better
//! than the absolute numbers.
//!
//! Each slice is one request at a time, 64 bytes, to a client that echoes it (on the
//! second router of the federated pair).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc as async_mpsc;

use crate::endpoint::{Endpoint, Target};
use crate::error::BenchError;
use crate::row::{Row, System, Test, percentile};
use crate::scenarios::{AbortOnDrop, Budget, keep, payload};
use crate::servers::ServerProcess;
use crate::turns;
use crate::worker::{Ready, Worker};

/// How many turns each system gets.
pub(crate) const SLICES: u32 = 10;
/// Round trips before measuring: connections and caches warm up.
const WARM_UP: usize = 100;
/// How often the first round trip is tried before the pair counts as failed.
const FIRST_TRIES: usize = 3;
/// How much longer than its duration a slice may take to report before it counts as
/// failed (a request that hangs; every request has its own timeout too).
const SLICE_GRACE: Duration = Duration::from_secs(10);

/// One slice: how long, and at most how many round trips.
type Slice = (Duration, u64);
/// What a slice measured: round trips in µs, and the time they took.
type Measured = Result<(Vec<f64>, Duration), BenchError>;

/// One system's echo pair, taking slices on demand.
pub(crate) struct RttPair {
    /// One slice at a time: the next is asked for after the last one reported. Dropped
    /// first (fields drop in order), which ends the requester's loop so that its worker
    /// can finish.
    slices: async_mpsc::Sender<Slice>,
    results: mpsc::Receiver<Measured>,
    // The requester goes before the responder it talks to.
    _requester: Worker<()>,
    _responder: Worker<()>,
}

impl RttPair {
    /// Connects a responder that echoes, then a requester that waits for slices.
    /// `test`: [`Test::Rtt64`] asks with requests, [`Test::Echo64`] with plain sends that
    /// the other side sends back.
    pub(crate) fn start<E: Endpoint>(target: Target, test: Test) -> Result<Self, BenchError> {
        let echo = test == Test::Echo64;
        let (ready_tx, ready) = Ready::new();
        let responder = Worker::spawn("bench-echo", move || async move {
            let ep = E::connect(target.far_side(), "echo").await?;
            let serving = actix_rt::spawn(async move {
                if echo {
                    ep.echo_messages("ping").await
                } else {
                    ep.serve_echo().await
                }
            });
            let _ = ready_tx.send(());
            Ok(((), keep(AbortOnDrop(serving))))
        })?;
        ready.wait(&responder)?;
        let (slices, mut slice_rx) = async_mpsc::channel::<Slice>(1);
        let (result_tx, results) = mpsc::channel::<Measured>();
        let (ready_tx, ready) = Ready::new();
        let requester = Worker::spawn("bench-ping", move || async move {
            let mut ep = E::connect(target, "ping").await?;
            ep.wait_for("echo").await?;
            let data = payload(64);
            // Across federated routers the echo's router may learn of "ping" a moment
            // after this one learnt of "echo": until then a reply has no way back.
            let mut first = round(&mut ep, &data, echo).await;
            for _ in 1..FIRST_TRIES {
                if first.is_ok() {
                    break;
                }
                first = round(&mut ep, &data, echo).await;
            }
            first?;
            for _ in 1..WARM_UP {
                round(&mut ep, &data, echo).await?;
            }
            let _ = ready_tx.send(());
            while let Some((time, count)) = slice_rx.recv().await {
                let measured = ping(&mut ep, &data, echo, time, count).await;
                let failed = measured.is_err();
                if result_tx.send(measured).is_err() || failed {
                    break;
                }
            }
            Ok(((), keep(ep)))
        })?;
        ready.wait(&requester)?;
        Ok(Self {
            slices,
            results,
            _requester: requester,
            _responder: responder,
        })
    }

    /// Takes one slice of round trips.
    fn slice(&self, time: Duration, count: u64) -> Measured {
        self.slices
            .try_send((time, count))
            .map_err(|_| BenchError::Thread)?;
        match self.results.recv_timeout(time + SLICE_GRACE) {
            Ok(measured) => measured,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(BenchError::client(
                "bench",
                format!("a round-trip slice took over {:?}", time + SLICE_GRACE),
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(BenchError::Thread),
        }
    }
}

/// One round trip: a request and its reply, or (`echo`) a plain send and its echo.
async fn round<E: Endpoint>(
    ep: &mut E,
    data: &bytes::Bytes,
    echo: bool,
) -> Result<bytes::Bytes, BenchError> {
    if echo {
        ep.send("echo", data).await?;
        ep.flush().await?;
        ep.recv().await
    } else {
        ep.request("echo", data).await
    }
}

async fn ping<E: Endpoint>(
    ep: &mut E,
    data: &bytes::Bytes,
    echo: bool,
    time: Duration,
    count: u64,
) -> Measured {
    let mut samples = Vec::new();
    let start = Instant::now();
    while (samples.len() as u64) < count && start.elapsed() < time {
        let t = Instant::now();
        let reply = round(ep, data, echo).await?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
        if reply.len() != data.len() {
            return Err(BenchError::client("bench", "echo of the wrong length"));
        }
    }
    Ok((samples, start.elapsed()))
}

/// Measures every system that starts, [`SLICES`] slices each, in turns; returns a row
/// or an error per system, in the order given.
pub(crate) fn side_by_side(
    systems: &[System],
    test: Test,
    budget: &Budget,
    start: impl FnMut(System) -> Result<(ServerProcess, RttPair), BenchError>,
) -> Vec<(System, Result<Row, BenchError>)> {
    let time = budget.rtt_time / SLICES;
    let count = (budget.rtt_count / u64::from(SLICES)).max(1);
    let slice = |_: System, (_, pair): &(ServerProcess, RttPair)| pair.slice(time, count);
    let add = |(mut samples, took): (Vec<f64>, Duration), (more, more_took)| {
        samples.extend(more);
        (samples, took + more_took)
    };
    turns::in_turns(systems, SLICES, start, slice, add)
        .into_iter()
        .map(|(system, outcome)| {
            let row = outcome.map(|(samples, took)| row(system, test, samples, took));
            (system, row)
        })
        .collect()
}

fn row(system: System, test: Test, mut samples: Vec<f64>, took: Duration) -> Row {
    samples.sort_by(f64::total_cmp);
    let n = samples.len() as u64;
    let secs = took.as_secs_f64();
    let mut row = Row::new(system, test, n, n, secs);
    row.p50_us = percentile(&samples, 50.0);
    row.p99_us = percentile(&samples, 99.0);
    row.msgs_per_s = Some(n as f64 / secs.max(f64::EPSILON));
    row.payload_bytes = Some(64);
    row
}

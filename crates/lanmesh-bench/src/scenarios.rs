//! The tests, written once over [`Endpoint`]. Every loop is bounded by a count and a
//! duration, and every wait by a timeout, so a run always ends.
//!
//! * throughput (in turns across systems, see [`crate::turns`]): a receiver joins (on the
//!   second router of the federated pair); a sender sends fixed-size messages as fast as
//!   the client API takes them, then reports how many. The receiver counts what arrives until
//!   it has them all or nothing came for [`QUIET`]. Rate = delivered / (last delivery -
//!   first send).
//! * rtt: see [`crate::rtt`] (measured side by side across systems).
//! * fan-out: 100 receivers; one client broadcasts, waits until all 100 have it, repeats.
//! * idle: N clients connect and stay; the server's RSS is read before and after.
//! * handshakes: clients connect and leave, a few at a time.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::sync::{oneshot, watch};

use crate::endpoint::{Endpoint, Target};
use crate::error::BenchError;
use crate::row::{Row, Test, percentile};
use crate::servers::ServerProcess;
use crate::worker::{Keep, Ready, ReadyTx, Worker};

/// A throughput receiver stops after this long without a message once the sender is done.
const QUIET: Duration = Duration::from_millis(500);
/// Fan-out receivers.
const FANOUT: u64 = 100;
/// How long one fan-out round may take before the bench moves on.
const FANOUT_ROUND_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections set up at once in the idle and handshake tests.
const CONNECT_CONCURRENCY: usize = 8;

/// How much work each test does.
#[derive(Debug, Clone)]
pub struct Budget {
    /// Sending time of a throughput test.
    pub thr_time: Duration,
    /// Most bytes a throughput sender sends.
    pub thr_bytes: u64,
    /// Most messages a throughput sender sends.
    pub thr_count: u64,
    /// Measuring time of the round-trip test.
    pub rtt_time: Duration,
    /// Most round trips.
    pub rtt_count: u64,
    /// Broadcasts in the fan-out test.
    pub fanout_rounds: u64,
    /// Peers in the idle test.
    pub idle_peers: u64,
    /// Time of the handshake test.
    pub hs_time: Duration,
    /// Most handshakes.
    pub hs_count: u64,
}

impl Budget {
    /// The full run: a few seconds per test.
    pub fn full() -> Self {
        Self {
            thr_time: Duration::from_secs(3),
            thr_bytes: 8 << 30,
            thr_count: 50_000_000,
            rtt_time: Duration::from_secs(3),
            rtt_count: 50_000,
            fanout_rounds: 300,
            idle_peers: 1000,
            hs_time: Duration::from_secs(3),
            hs_count: 20_000,
        }
    }

    /// The share of a throughput test that one of `turns` turns gets.
    pub(crate) fn turn(&self, turns: u32) -> Self {
        let n = u64::from(turns.max(1));
        Self {
            thr_time: self.thr_time / turns.max(1),
            thr_bytes: (self.thr_bytes / n).max(1),
            thr_count: (self.thr_count / n).max(1),
            ..self.clone()
        }
    }

    /// `--quick`: the whole suite in well under 40 s.
    pub fn quick() -> Self {
        Self {
            thr_time: Duration::from_millis(300),
            thr_bytes: 1 << 30,
            thr_count: 5_000_000,
            rtt_time: Duration::from_millis(300),
            rtt_count: 5_000,
            fanout_rounds: 20,
            idle_peers: 1000,
            hs_time: Duration::from_millis(300),
            hs_count: 2_000,
        }
    }
}

/// Pseudo-random payload bytes: incompressible, so compression is tried and does not
/// help (the honest worst case for lanmesh's Snappy).
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

pub(crate) fn keep<T: 'static>(t: T) -> Keep {
    Box::new(t)
}

/// One sender, one receiver, `size`-byte messages.
pub(crate) fn throughput<E: Endpoint>(
    target: Target,
    test: Test,
    size: usize,
    budget: &Budget,
) -> Result<Row, BenchError> {
    let (ready_tx, ready) = Ready::new();
    let (sent_tx, sent_rx) = oneshot::channel::<u64>();
    let receiver = Worker::spawn("bench-rx", move || receive::<E>(target, ready_tx, sent_rx))?;
    ready.wait(&receiver)?;
    let count = budget
        .thr_count
        .min(budget.thr_bytes / size.max(1) as u64)
        .max(1);
    let time = budget.thr_time;
    let sender = Worker::spawn("bench-tx", move || send_for::<E>(target, size, count, time))?;
    let sent = sender.result();
    let _ = sent_tx.send(sent.as_ref().map_or(0, |(n, _)| *n));
    let (sent, start) = sent?;
    let (delivered, last) = receiver.result()?;
    let secs = last
        .map_or(Duration::ZERO, |l| l.saturating_duration_since(start))
        .as_secs_f64();
    let mut row = Row::new(target.system, test, sent, delivered, secs);
    if secs > 0.0 {
        let rate = delivered as f64 / secs;
        row.msgs_per_s = Some(rate);
        row.mb_per_s = Some(rate * size as f64 / 1e6);
    }
    row.payload_bytes = Some(size);
    Ok(row)
}

async fn send_for<E: Endpoint>(
    target: Target,
    size: usize,
    count: u64,
    time: Duration,
) -> Result<((u64, Instant), Keep), BenchError> {
    let mut ep = E::connect(target, "tx").await?;
    ep.wait_for("rx").await?;
    let data = payload(size);
    let start = Instant::now();
    let mut n = 0;
    while n < count {
        ep.send("rx", &data).await?;
        n += 1;
        if n % 64 == 0 && start.elapsed() >= time {
            break;
        }
    }
    ep.flush().await?;
    Ok(((n, start), keep(ep)))
}

/// Counts deliveries until all `sent` arrived or none came for [`QUIET`].
async fn receive<E: Endpoint>(
    target: Target,
    ready: ReadyTx,
    sent: oneshot::Receiver<u64>,
) -> Result<((u64, Option<Instant>), Keep), BenchError> {
    let mut ep = E::connect(target.far_side(), "rx").await?;
    let _ = ready.send(());
    let delivered = Rc::new(Cell::new(0u64));
    let last = Rc::new(Cell::new(None::<Instant>));
    let (stop_tx, mut stop) = oneshot::channel::<()>();
    let watchdog = {
        let (delivered, last) = (delivered.clone(), last.clone());
        actix_rt::spawn(async move {
            let sent = sent.await.unwrap_or(0);
            let done_at = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let quiet_since = last.get().map_or(done_at, |l: Instant| l.max(done_at));
                if delivered.get() >= sent || quiet_since.elapsed() >= QUIET {
                    let _ = stop_tx.send(());
                    return;
                }
            }
        })
    };
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            msg = ep.recv() => {
                msg?;
                delivered.set(delivered.get() + 1);
                last.set(Some(Instant::now()));
            }
        }
    }
    watchdog.abort();
    Ok(((delivered.get(), last.get()), keep(ep)))
}

/// Aborts a spawned task when dropped.
pub(crate) struct AbortOnDrop<T>(pub(crate) actix_rt::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One 64-byte broadcast to 100 receivers, `fanout_rounds` times.
pub(crate) fn fanout<E: Endpoint>(target: Target, budget: &Budget) -> Result<Row, BenchError> {
    let (count_tx, count_rx) = watch::channel(0u64);
    let (ready_tx, ready) = Ready::new();
    let receivers = Worker::spawn("bench-fan-rx", move || async move {
        let count = Arc::new(count_tx);
        let mut tasks = Vec::new();
        for i in 0..FANOUT {
            let mut ep = E::connect(target, &format!("fan-{i}")).await?;
            let count = count.clone();
            tasks.push(AbortOnDrop(actix_rt::spawn(async move {
                while ep.recv().await.is_ok() {
                    count.send_modify(|c| *c += 1);
                }
            })));
        }
        let _ = ready_tx.send(());
        Ok(((), keep(tasks)))
    })?;
    ready.wait(&receivers)?;
    let rounds = budget.fanout_rounds;
    let sender = Worker::spawn("bench-fan-tx", move || async move {
        let mut ep = E::connect(target, "fan-src").await?;
        let mut count = count_rx;
        let data = payload(64);
        let mut samples = Vec::new();
        let start = Instant::now();
        for _ in 0..rounds {
            let goal = *count.borrow() + FANOUT;
            let t = Instant::now();
            ep.broadcast(&data).await?;
            ep.flush().await?;
            let all = count.wait_for(|c| *c >= goal);
            if tokio::time::timeout(FANOUT_ROUND_TIMEOUT, all)
                .await
                .is_err()
            {
                tracing::warn!("fan-out round incomplete after {FANOUT_ROUND_TIMEOUT:?}");
            }
            samples.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let delivered = *count.borrow();
        Ok(((samples, delivered, start.elapsed()), keep(ep)))
    })?;
    let (mut samples, delivered, took) = sender.result()?;
    samples.sort_by(f64::total_cmp);
    let secs = took.as_secs_f64();
    let mut row = Row::new(
        target.system,
        Test::Fanout100,
        rounds * FANOUT,
        delivered,
        secs,
    );
    row.msgs_per_s = Some(delivered as f64 / secs.max(f64::EPSILON));
    row.p50_us = percentile(&samples, 50.0);
    row.p99_us = percentile(&samples, 99.0);
    row.payload_bytes = Some(64);
    Ok(row)
}

/// `idle_peers` clients connect and stay; the server's memory grows by what they cost.
pub(crate) fn idle<E: Endpoint>(
    server: &ServerProcess,
    target: Target,
    budget: &Budget,
) -> Result<Row, BenchError> {
    let before = server.rss_kib();
    let n = budget.idle_peers;
    let start = Instant::now();
    let clients = Worker::spawn("bench-idle", move || async move {
        let eps: Vec<E> = futures_util::stream::iter(0..n)
            .map(|i| async move { E::connect(target, &format!("idle-{i}")).await })
            .buffer_unordered(CONNECT_CONCURRENCY)
            .filter_map(|r| async move { r.ok() })
            .collect()
            .await;
        Ok((eps.len() as u64, keep(eps)))
    })?;
    let connected = clients.result()?;
    let took = start.elapsed();
    // Let join announcements and buffers settle before reading the server's memory.
    std::thread::sleep(Duration::from_millis(500));
    let after = server.rss_kib();
    let mut row = Row::new(
        target.system,
        Test::Idle1000,
        n,
        connected,
        took.as_secs_f64(),
    );
    if let (Some(b), Some(a)) = (before, after) {
        if connected > 0 {
            row.rss_per_peer_kib = Some(a.saturating_sub(b) as f64 / connected as f64);
        }
    }
    Ok(row)
}

/// Clients connect and leave, [`CONNECT_CONCURRENCY`] at a time.
pub(crate) fn handshakes<E: Endpoint>(target: Target, budget: &Budget) -> Result<Row, BenchError> {
    let (time, count) = (budget.hs_time, budget.hs_count);
    let worker = Worker::spawn("bench-hs", move || async move {
        let start = Instant::now();
        let attempts = futures_util::stream::iter(0..count)
            .take_while(|_| std::future::ready(start.elapsed() < time))
            .map(|i| async move {
                match E::connect(target, &format!("hs-{i}")).await {
                    Ok(ep) => {
                        ep.close().await;
                        true
                    }
                    Err(_) => false,
                }
            })
            .buffer_unordered(CONNECT_CONCURRENCY);
        let results: Vec<bool> = attempts.collect().await;
        let done = results.iter().filter(|ok| **ok).count() as u64;
        Ok(((results.len() as u64, done, start.elapsed()), keep(())))
    })?;
    let (sent, done, took) = worker.result()?;
    let secs = took.as_secs_f64();
    let mut row = Row::new(target.system, Test::Handshakes, sent, done, secs);
    row.msgs_per_s = Some(done as f64 / secs.max(f64::EPSILON));
    Ok(row)
}

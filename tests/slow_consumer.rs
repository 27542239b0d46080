//! Benchmark (ignored; `just bench-slow-consumer`): a peer that never reads must not cost
//! the router unbounded memory nor collapse the throughput of other peers.
//!
//! A router runs as its own process. A pair A→B moves 1,000,000 messages of 64 bytes,
//! once alone and once while a stuck peer (it joined, then stopped reading) is sent
//! 1 KiB messages at 10,000 per second by a fourth peer from another thread. The router's
//! RSS is sampled throughout. Results go to bench/results/slow-consumer.{md,json}.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::proc::Proc;
use lanmesh::Peer;

const MESSAGES: u64 = 1_000_000;
const BUDGET: usize = 8 * 1024 * 1024;

fn rss_kib(pid: u32) -> u64 {
    common::proc::rss_kib(pid).unwrap_or(0)
}

/// Samples the router's RSS every 20 ms until dropped; `peak` keeps the largest.
struct RssProbe {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssProbe {
    fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Self { peak, stop }
    }

    fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for RssProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

async fn join(at: &str, name: &str) -> Peer {
    // Through the router: this is its stuck-peer bench (a direct link would bypass it).
    Peer::builder(name)
        .router(at.to_owned())
        .direct(false)
        .connect()
        .await
        .expect("joins")
}

/// A→B: sends `MESSAGES` and returns (delivered, seconds until the last arrived).
async fn pair_run(at: &str, tag: &str) -> (u64, f64) {
    let a = join(at, &format!("a-{tag}")).await;
    let b = join(at, &format!("b-{tag}")).await;
    let to = format!("b-{tag}");
    let receiver = {
        let b = b.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while n < MESSAGES {
                match b.recv_timeout(Duration::from_secs(3)).await {
                    Ok(Some(_)) => n += 1,
                    _ => break,
                }
                n += b.get_all().len() as u64;
            }
            (n, Instant::now())
        })
    };
    let payload = bytes::Bytes::from(vec![0x42u8; 64]);
    let start = Instant::now();
    for _ in 0..MESSAGES {
        a.send(&to, payload.clone()).await.expect("send");
    }
    let (delivered, last) = receiver.await.unwrap();
    a.close().await;
    b.close().await;
    (delivered, last.duration_since(start).as_secs_f64())
}

/// The stuck peer and its sender, on their own thread and actix system.
/// What the flooder has sent so far, so the measurement can start once the stuck peer's
/// budget (and the socket buffers in front of it) must be full.
type SentSoFar = Arc<std::sync::atomic::AtomicU64>;

fn start_stuck_peer(
    at: String,
    stop: Arc<AtomicBool>,
    sent_so_far: SentSoFar,
) -> std::thread::JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let stuck = Peer::builder("stuck")
                .router(at.clone())
                .direct(false)
                .inbox_capacity(1)
                .connect()
                .await
                .expect("stuck joins");
            stuck.pause();
            let flooder = join(&at, "flooder").await;
            // Incompressible, so the stuck peer's budget really fills.
            let data = bytes::Bytes::from(common::noise(0x9e37_79b9_7f4a_7c15, 1024));
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                for _ in 0..100 {
                    if flooder.send("stuck", data.clone()).await.is_ok() {
                        sent += 1;
                        sent_so_far.store(sent, Ordering::Relaxed);
                    }
                }
            }
            let refused = flooder.close().await.undelivered.len() as u64;
            stuck.terminate();
            (sent, refused)
        })
    })
}

fn machine() -> String {
    let m = lanmesh_bench::Machine::current();
    format!("{} cores, {}", m.cores, m.cpu)
}

#[actix_rt::test]
#[ignore = "benchmark: run with `just bench-slow-consumer`"]
async fn bench_a_stuck_peer_costs_bounded_memory_and_keeps_others_fast() {
    let router = Proc::spawn(&[
        "router",
        "--no-mdns",
        "--no-http",
        "--grace",
        "0",
        "--listen",
        "127.0.0.1:0",
    ]);
    let _header = router.line();
    let tcp = router.line();
    let at = tcp.trim().strip_prefix("tcp").unwrap().trim().to_owned();
    let pid = router.child.id();
    let idle_rss = rss_kib(pid);

    let probe = RssProbe::start(pid);
    let (alone_delivered, alone_secs) = pair_run(&at, "alone").await;
    let alone_peak = probe.peak();
    drop(probe);

    let stop = Arc::new(AtomicBool::new(false));
    let sent_so_far = SentSoFar::default();
    let stuck = start_stuck_peer(at.clone(), stop.clone(), sent_so_far.clone());
    // Let the stuck peer's budget fill before measuring: the budget and the loopback
    // socket buffers in front of it (several MiB each way) take less than 32 MiB.
    common::eventually(
        "the flooder to send 32 MiB to the stuck peer",
        Duration::from_secs(30),
        || sent_so_far.load(Ordering::Relaxed) >= 32 * 1024,
    )
    .await;
    let probe = RssProbe::start(pid);
    let (stuck_delivered, stuck_secs) = pair_run(&at, "stuck").await;
    let stuck_peak = probe.peak();
    drop(probe);
    stop.store(true, Ordering::Relaxed);
    let (flood_sent, flood_refused) = stuck.join().unwrap();

    let rate = |n: u64, s: f64| n as f64 / s;
    let (r0, r1) = (
        rate(alone_delivered, alone_secs),
        rate(stuck_delivered, stuck_secs),
    );
    let ratio = r1 / r0;
    let budget_kib = (BUDGET / 1024) as u64;
    let date = lanmesh_bench::Machine::current().date;
    let md = format!(
        "# A stuck peer: memory and throughput\n\n\
         {date}, {machine}, release build, router in its own process, 64-byte messages,\n\
         encrypted and compressed. The stuck peer joined and stopped reading; a fourth peer\n\
         sent it 1 KiB messages at 10,000/s throughout the second run.\n\n\
         | run | delivered | msg/s | router RSS peak |\n|---|---|---|---|\n\
         | A→B alone | {alone_delivered} of {MESSAGES} | {r0:.0} | {alone_peak} KiB |\n\
         | A→B beside a stuck peer | {stuck_delivered} of {MESSAGES} | {r1:.0} | {stuck_peak} KiB |\n\n\
         * Throughput beside the stuck peer: **{ratio:.2}×** of alone (target ≥ 0.5×).\n\
         * Router RSS: idle {idle_rss} KiB; peak beside the stuck peer {stuck_peak} KiB; \
         the stuck session's budget is {budget_kib} KiB (`max_pending_bytes`).\n\
         * Sent to the stuck peer (incompressible): {flood_sent}; refused with \
         `Nack(Overloaded)` as seen in the sender's close report (which keeps at most \
         1,024): {flood_refused}.\n",
        machine = machine(),
    );
    println!("{md}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/results");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("slow-consumer.md"), &md).unwrap();
    let json = serde_json::json!({
        "date": date, "machine": machine(), "messages": MESSAGES,
        "alone": {"delivered": alone_delivered, "msgs_per_s": r0, "router_rss_peak_kib": alone_peak},
        "stuck": {"delivered": stuck_delivered, "msgs_per_s": r1, "router_rss_peak_kib": stuck_peak},
        "ratio": ratio, "router_rss_idle_kib": idle_rss, "budget_kib": budget_kib,
        "flood_sent": flood_sent, "flood_refused": flood_refused,
    });
    std::fs::write(
        dir.join("slow-consumer.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
    assert_eq!(alone_delivered, MESSAGES);
    assert_eq!(stuck_delivered, MESSAGES);
    assert!(
        stuck_peak < idle_rss + budget_kib + 64 * 1024,
        "router memory beyond its budget"
    );
    assert!(ratio > 0.5, "throughput collapsed beside a stuck peer");
    assert!(flood_refused > 0, "the stuck peer's budget never filled");
}

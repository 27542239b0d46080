//! zenoh 1.x (TCP transport only), two ways:
//!
//! * `zenoh`: both sides are sessions in client mode, connected to a zenoh router (a
//!   session in router mode, run by [`router`] in a process of its own, as the other
//!   systems' servers are) on a loopback port;
//! * `zenoh-p2p`: both sides are sessions in peer mode, one listening on a loopback
//!   port and the other connecting to it: one direct TCP link, no router.
//!
//! Every session has multicast scouting and gossip off and only the endpoints given
//! here: nothing listens beyond 127.0.0.1 and nothing is sent off the machine.
//! Throughput uses `CongestionControl::Block` (a full queue stops the publisher rather
//! than dropping, as lanmesh's `send` waits), and the receiver counts in a callback
//! subscriber; the round trip is a put, an echo subscriber putting the payload back, and
//! a subscriber waiting for it, all publishers `express` (not batched), as zenoh's own
//! ping/pong examples measure latency.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use zenoh::bytes::ZBytes;
use zenoh::pubsub::Publisher;
use zenoh::qos::CongestionControl;
use zenoh::{Config, Session, Wait as _};

use crate::{Outcome, QUIET, WARM_UP, payload};

/// Where the throughput test's messages go.
const KEY_THR: &str = "bench/rx";
/// Where round-trip requests go, and where their echoes come back.
const KEY_ECHO: &str = "bench/echo";
const KEY_REPLY: &str = "bench/reply";
/// How long the two sides may take to see each other's subscriptions.
const MATCH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one echo may take before the round-trip test stops.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// How the two sessions of a test reach each other.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode {
    /// Clients of the zenoh router at this address.
    Router(SocketAddr),
    /// Peers, the first listening here (a free port is picked when the port is 0).
    Direct(SocketAddr),
}

fn err(e: impl std::fmt::Display) -> String {
    format!("zenoh: {e}")
}

/// A configuration in `mode` that scouts nothing and has no endpoints yet.
fn config(
    mode: &str,
    listen: Option<SocketAddr>,
    connect: Option<SocketAddr>,
) -> Result<Config, String> {
    let endpoints = |addr: Option<SocketAddr>| match addr {
        Some(a) => format!("[\"tcp/{a}\"]"),
        None => "[]".to_owned(),
    };
    let mut c = Config::default();
    for (key, value) in [
        ("mode", format!("\"{mode}\"")),
        ("listen/endpoints", endpoints(listen)),
        ("connect/endpoints", endpoints(connect)),
        ("scouting/multicast/enabled", "false".to_owned()),
        ("scouting/gossip/enabled", "false".to_owned()),
    ] {
        c.insert_json5(key, &value)
            .map_err(|e| err(format!("config {key}={value}: {e}")))?;
    }
    Ok(c)
}

/// Runs a zenoh router listening on `addr` (loopback) until the process is ended; says
/// `zenoh router ADDR` on stdout once it listens.
pub(crate) async fn router(addr: SocketAddr) -> Result<(), String> {
    if !addr.ip().is_loopback() {
        return Err(err(format!(
            "the router listens on loopback only, not {addr}"
        )));
    }
    let session = zenoh::open(config("router", Some(addr), None)?)
        .await
        .map_err(err)?;
    println!("zenoh router {addr}");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    // The bench ends this process when its tests are over.
    std::future::pending::<()>().await;
    drop(session);
    Ok(())
}

/// The two sessions of a test: (sending side, receiving side). In peer mode the
/// receiving side listens and the sending side connects to it.
async fn sessions(mode: Mode) -> Result<(Session, Session), String> {
    match mode {
        Mode::Router(addr) => {
            if !addr.ip().is_loopback() {
                return Err(err(format!("the router is on loopback only, not {addr}")));
            }
            let rx = zenoh::open(config("client", None, Some(addr))?)
                .await
                .map_err(err)?;
            let tx = zenoh::open(config("client", None, Some(addr))?)
                .await
                .map_err(err)?;
            Ok((tx, rx))
        }
        Mode::Direct(mut addr) => {
            if !addr.ip().is_loopback() {
                return Err(err(format!("peers listen on loopback only, not {addr}")));
            }
            if addr.port() == 0 {
                addr = std::net::TcpListener::bind(addr)
                    .and_then(|l| l.local_addr())
                    .map_err(|e| err(format!("no free port: {e}")))?;
            }
            let rx = zenoh::open(config("peer", Some(addr), None)?)
                .await
                .map_err(err)?;
            let tx = zenoh::open(config("peer", None, Some(addr))?)
                .await
                .map_err(err)?;
            Ok((tx, rx))
        }
    }
}

/// Waits until `publisher` has a matching subscriber (set-up, not measured).
async fn matched(publisher: &Publisher<'_>) -> Result<(), String> {
    let deadline = Instant::now() + MATCH_TIMEOUT;
    loop {
        if publisher.matching_status().await.map_err(err)?.matching() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(err(format!(
                "no subscriber for {} within {MATCH_TIMEOUT:?}",
                publisher.key_expr()
            )));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn close(sessions: [Session; 2]) {
    for s in sessions {
        let _ = s.close().await;
    }
}

/// One publisher, one subscriber, `size`-byte puts for `time`.
pub(crate) async fn throughput(mode: Mode, size: usize, time: Duration) -> Result<Outcome, String> {
    let (tx, rx) = sessions(mode).await?;
    let epoch = Instant::now();
    let delivered = Arc::new(AtomicU64::new(0));
    // Nanoseconds from `epoch` to the latest delivery (0: none yet).
    let last = Arc::new(AtomicU64::new(0));
    let subscriber = {
        let (delivered, last) = (delivered.clone(), last.clone());
        rx.declare_subscriber(KEY_THR)
            .callback(move |_sample| {
                delivered.fetch_add(1, Ordering::Relaxed);
                let at = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
                last.store(at.max(1), Ordering::Relaxed);
            })
            .await
            .map_err(err)?
    };
    let publisher = tx
        .declare_publisher(KEY_THR)
        .congestion_control(CongestionControl::Block)
        .await
        .map_err(err)?;
    matched(&publisher).await?;
    let data = ZBytes::from(payload(size));
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < time {
        publisher.put(data.clone()).await.map_err(err)?;
        sent += 1;
    }
    // Everything arrives, or nothing more for QUIET.
    let done_at = Instant::now();
    let last_delivery = || {
        let ns = last.load(Ordering::Relaxed);
        (ns > 0).then(|| epoch + Duration::from_nanos(ns))
    };
    while delivered.load(Ordering::Relaxed) < sent {
        let quiet_since = last_delivery().map_or(done_at, |l| l.max(done_at));
        if quiet_since.elapsed() >= QUIET {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let delivered_n = delivered.load(Ordering::Relaxed);
    let seconds = last_delivery().map_or(0.0, |l| l.saturating_duration_since(start).as_secs_f64());
    drop(publisher);
    let _ = subscriber.undeclare().await;
    close([tx, rx]).await;
    Ok(Outcome {
        sent,
        delivered: delivered_n,
        seconds,
        latencies_us: Vec::new(),
    })
}

/// A put, echoed back by the other side's subscriber, one at a time, for `time`.
pub(crate) async fn round_trips(
    mode: Mode,
    size: usize,
    time: Duration,
) -> Result<Outcome, String> {
    let (req, echo) = sessions(mode).await?;
    let echo_pub = echo
        .declare_publisher(KEY_REPLY)
        .express(true)
        .await
        .map_err(err)?;
    let replies = req.declare_subscriber(KEY_REPLY).await.map_err(err)?;
    matched(&echo_pub).await?;
    let echoer = echo
        .declare_subscriber(KEY_ECHO)
        .callback(move |sample| {
            // A put that is not blocked by congestion returns at once.
            let _ = echo_pub.put(sample.payload().clone()).wait();
        })
        .await
        .map_err(err)?;
    let req_pub = req
        .declare_publisher(KEY_ECHO)
        .express(true)
        .await
        .map_err(err)?;
    matched(&req_pub).await?;
    let data = ZBytes::from(payload(size));
    let mut latencies_us = Vec::new();
    let mut warming = WARM_UP;
    let mut start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < time {
        let t = Instant::now();
        req_pub.put(data.clone()).await.map_err(err)?;
        match tokio::time::timeout(REPLY_TIMEOUT, replies.recv_async()).await {
            Ok(Ok(_)) if warming > 0 => {
                warming -= 1;
                if warming == 0 {
                    start = Instant::now();
                }
                continue;
            }
            Ok(Ok(_)) => latencies_us.push(t.elapsed().as_secs_f64() * 1e6),
            Ok(Err(e)) => return Err(err(e)),
            Err(_) => {
                sent += u64::from(warming == 0);
                break;
            }
        }
        sent += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    drop(req_pub);
    let _ = echoer.undeclare().await;
    let _ = replies.undeclare().await;
    close([req, echo]).await;
    Ok(Outcome {
        sent,
        delivered: latencies_us.len() as u64,
        seconds,
        latencies_us,
    })
}

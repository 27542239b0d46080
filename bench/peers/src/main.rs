//! One test of one system that `lanmesh bench` compares with, whose client stays out of
//! the workspace build: mosquitto (MQTT 3.1.1, QoS 0) through rumqttc.
//!
//! ```text
//! lanmesh-bench-peers mosquitto ADDR thr SIZE MILLIS   # one sender, one receiver
//! lanmesh-bench-peers mosquitto ADDR rtt SIZE MILLIS   # publish, echo, reply, one at a time
//! ```
//!
//! Prints one JSON object: `sent`, `delivered`, `seconds` and, for `rtt`, `p50_us` and
//! `p99_us` — the same measurements as the bench's own scenarios: a throughput rate is
//! delivered ÷ (last delivery − first send), payloads are pseudo-random bytes. Every loop
//! is bounded by the time given and every wait by a timeout.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};

/// The receiver stops this long after the last delivery once the sender is done.
const QUIET: Duration = Duration::from_millis(500);
/// Requests the client may queue ahead of its event loop.
const CLIENT_QUEUE: usize = 1024;

/// Pseudo-random bytes (the bench's generator): nothing compresses them.
fn payload(size: usize) -> Bytes {
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

fn client(addr: &str, id: &str) -> Result<(AsyncClient, EventLoop), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("bad address {addr:?}"))?;
    let port: u16 = port.parse().map_err(|e| format!("bad port: {e}"))?;
    let mut opts = MqttOptions::new(id, host, port);
    opts.set_max_packet_size(4 << 20, 4 << 20);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_inflight(u16::MAX);
    Ok(AsyncClient::new(opts, CLIENT_QUEUE))
}

/// Polls `events` until the broker acknowledged the subscription.
async fn subscribed(events: &mut EventLoop) -> Result<(), String> {
    let wait = async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(format!("mqtt: {e}")),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .map_err(|_| "mqtt: no SUBACK within 5 s".to_owned())?
}

/// Polls `events` until it is connected.
async fn connected(events: &mut EventLoop) -> Result<(), String> {
    let wait = async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(format!("mqtt: {e}")),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .map_err(|_| "mqtt: no CONNACK within 5 s".to_owned())?
}

struct Outcome {
    sent: u64,
    delivered: u64,
    seconds: f64,
    latencies_us: Vec<f64>,
}

async fn throughput(addr: &str, size: usize, time: Duration) -> Result<Outcome, String> {
    let (rx, mut rx_events) = client(addr, "bench-rx")?;
    rx.subscribe("bench/rx", QoS::AtMostOnce)
        .await
        .map_err(|e| e.to_string())?;
    subscribed(&mut rx_events).await?;
    let (done_tx, mut done) = tokio::sync::watch::channel(None::<u64>);
    let receiver = tokio::spawn(async move {
        let mut delivered = 0u64;
        let mut last = None;
        loop {
            let sent = *done.borrow();
            if sent.is_some_and(|s| delivered >= s) {
                break;
            }
            let quiet = if sent.is_some() {
                QUIET
            } else {
                Duration::from_secs(30)
            };
            tokio::select! {
                polled = tokio::time::timeout(quiet, rx_events.poll()) => match polled {
                    Ok(Ok(Event::Incoming(Packet::Publish(_)))) => {
                        delivered += 1;
                        last = Some(Instant::now());
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) | Err(_) => break,
                },
                _ = done.changed() => {}
            }
        }
        drop(rx);
        (delivered, last)
    });
    let (tx, mut tx_events) = client(addr, "bench-tx")?;
    connected(&mut tx_events).await?;
    // The event loop writes what the client queues.
    let writer = tokio::spawn(async move { while tx_events.poll().await.is_ok() {} });
    let data = payload(size);
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < time {
        tx.publish_bytes("bench/rx", QoS::AtMostOnce, false, data.clone())
            .await
            .map_err(|e| e.to_string())?;
        sent += 1;
    }
    let _ = done_tx.send(Some(sent));
    let (delivered, last) = receiver.await.map_err(|e| e.to_string())?;
    writer.abort();
    let seconds = last.map_or(0.0, |l| l.duration_since(start).as_secs_f64());
    Ok(Outcome {
        sent,
        delivered,
        seconds,
        latencies_us: Vec::new(),
    })
}

async fn round_trips(addr: &str, size: usize, time: Duration) -> Result<Outcome, String> {
    let (echo, mut echo_events) = client(addr, "bench-echo")?;
    echo.subscribe("bench/echo", QoS::AtMostOnce)
        .await
        .map_err(|e| e.to_string())?;
    subscribed(&mut echo_events).await?;
    let echoer = tokio::spawn(async move {
        while let Ok(event) = echo_events.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event {
                if echo
                    .try_publish("bench/reply", QoS::AtMostOnce, false, p.payload)
                    .is_err()
                {
                    break;
                }
            }
        }
    });
    let (req, mut req_events) = client(addr, "bench-req")?;
    req.subscribe("bench/reply", QoS::AtMostOnce)
        .await
        .map_err(|e| e.to_string())?;
    subscribed(&mut req_events).await?;
    let data = payload(size);
    let mut latencies_us = Vec::new();
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < time {
        let t = Instant::now();
        req.try_publish("bench/echo", QoS::AtMostOnce, false, data.clone())
            .map_err(|e| e.to_string())?;
        sent += 1;
        let reply = async {
            loop {
                match req_events.poll().await {
                    Ok(Event::Incoming(Packet::Publish(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        };
        match tokio::time::timeout(Duration::from_secs(2), reply).await {
            Ok(Ok(())) => latencies_us.push(t.elapsed().as_secs_f64() * 1e6),
            Ok(Err(e)) => return Err(e),
            Err(_) => break,
        }
    }
    echoer.abort();
    Ok(Outcome {
        sent,
        delivered: latencies_us.len() as u64,
        seconds: start.elapsed().as_secs_f64(),
        latencies_us,
    })
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

async fn run(args: &[String]) -> Result<String, String> {
    let [system, addr, test, size, millis] = args else {
        return Err("usage: lanmesh-bench-peers mosquitto ADDR thr|rtt SIZE MILLIS".into());
    };
    if system != "mosquitto" {
        return Err(format!("unknown system {system:?} (mosquitto)"));
    }
    let size: usize = size.parse().map_err(|e| format!("bad size: {e}"))?;
    let time = Duration::from_millis(millis.parse().map_err(|e| format!("bad millis: {e}"))?);
    let mut outcome = match test.as_str() {
        "thr" => throughput(addr, size, time).await?,
        "rtt" => round_trips(addr, size, time).await?,
        other => return Err(format!("unknown test {other:?} (thr, rtt)")),
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

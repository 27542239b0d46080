//! mosquitto (MQTT 3.1.1, QoS 0) through rumqttc: one sender and one receiver, or a
//! requester and an echo, each a client of the broker at `addr`.

use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};

use crate::{Outcome, QUIET, WARM_UP, payload};

/// Requests the client may queue ahead of its event loop.
const CLIENT_QUEUE: usize = 1024;

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
pub(crate) async fn throughput(addr: &str, size: usize, time: Duration) -> Result<Outcome, String> {
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

pub(crate) async fn round_trips(
    addr: &str,
    size: usize,
    time: Duration,
) -> Result<Outcome, String> {
    let (echo, mut echo_events) = client(addr, "bench-echo")?;
    echo.subscribe("bench/echo", QoS::AtMostOnce)
        .await
        .map_err(|e| e.to_string())?;
    subscribed(&mut echo_events).await?;
    let echoer = tokio::spawn(async move {
        while let Ok(event) = echo_events.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event
                && echo
                    .try_publish("bench/reply", QoS::AtMostOnce, false, p.payload)
                    .is_err()
            {
                break;
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
    let mut warming = WARM_UP;
    let mut start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < time {
        let t = Instant::now();
        req.try_publish("bench/echo", QoS::AtMostOnce, false, data.clone())
            .map_err(|e| e.to_string())?;
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
            Ok(Ok(())) if warming > 0 => {
                warming -= 1;
                if warming == 0 {
                    start = Instant::now();
                }
                continue;
            }
            Ok(Ok(())) => latencies_us.push(t.elapsed().as_secs_f64() * 1e6),
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                sent += u64::from(warming == 0);
                break;
            }
        }
        sent += 1;
    }
    echoer.abort();
    Ok(Outcome {
        sent,
        delivered: latencies_us.len() as u64,
        seconds: start.elapsed().as_secs_f64(),
        latencies_us,
    })
}

//! Large messages through the public `Peer` API, as an application outside the bench
//! would use it: a plain multi-threaded tokio runtime (so each peer's actor gets a
//! thread of its own), one sender and one receiver, incompressible payloads.
//!
//! ```text
//! lanmesh router --no-mdns --no-http --listen 127.0.0.1:7499 --mesh bench &
//! cargo run --release -p lanmesh-bench --example send_path -- 127.0.0.1:7499 [SIZE] [SECONDS] [aes|plain]
//! ```
//!
//! Prints MB/s delivered (last delivery − first send), and how long `send` calls waited.
// A command-line probe: its output is the point.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use lanmesh_client::Peer;
use lanmesh_proto::Cipher;

/// Pseudo-random bytes: what Snappy cannot shrink.
fn noise(len: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect::<Vec<u8>>()
        .into()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let router = args.next().unwrap_or_else(|| "127.0.0.1:7499".into());
    let size: usize = args.next().map_or(Ok(1 << 20), |s| s.parse())?;
    let secs: f64 = args.next().map_or(Ok(3.0), |s| s.parse())?;
    let mode = args.next().unwrap_or_default();
    let connect = |name: &str| {
        Peer::builder(name)
            .router(router.clone())
            .mesh("bench")
            .plaintext(mode == "plain")
            .cipher(if mode == "aes" {
                Cipher::Aes256Gcm
            } else {
                Cipher::ChaCha20Poly1305
            })
            .reconnect(false)
            .connect()
    };
    let rx = connect("rx").await?;
    let tx = connect("tx").await?;
    let payloads: Vec<Bytes> = (0..8).map(|i| noise(size, 0x9e37_79b9 + i)).collect();
    let receiver = tokio::spawn(async move {
        let mut n = 0u64;
        let mut last = Instant::now();
        while let Ok(Some(_)) = rx.recv_timeout(Duration::from_millis(500)).await {
            n += 1;
            last = Instant::now();
        }
        (n, last)
    });
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut sent = 0u64;
    let mut waited = Duration::ZERO;
    while Instant::now() < deadline {
        let t = Instant::now();
        tx.send("rx", payloads[sent as usize % payloads.len()].clone())
            .await?;
        waited += t.elapsed();
        sent += 1;
    }
    let (delivered, last) = receiver.await?;
    let took = last.saturating_duration_since(start).as_secs_f64();
    println!(
        "{size} B × {delivered}/{sent} in {took:.2} s: {:.1} MB/s, {:.0} msg/s; send waited {:.2} s",
        delivered as f64 * size as f64 / took / 1e6,
        delivered as f64 / took,
        waited.as_secs_f64(),
    );
    tx.terminate();
    Ok(())
}

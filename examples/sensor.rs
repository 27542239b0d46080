//! A board-style peer: publishes a reading every second to everyone, as JSON, and answers
//! `latest?` requests with the last reading.
//!
//! ```text
//! cargo run --example sensor -- 192.168.1.10:7400 kitchen      # run until Ctrl-C
//! cargo run --example sensor -- 192.168.1.10:7400 kitchen 5    # stop after 5 readings
//! lanmesh listen --name display --json                         # elsewhere: watch them
//! ```
#![allow(clippy::print_stdout)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

#[derive(serde::Serialize, Clone, Default)]
struct Reading {
    sensor: String,
    seq: u64,
    celsius: f32,
}

#[actix_rt::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let router = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: sensor ROUTER_ADDR [NAME] [COUNT]"))?;
    let name = args.next().unwrap_or_else(|| "sensor".to_owned());
    let count: Option<u64> = args.next().map(|c| c.parse()).transpose()?;

    let peer = lanmesh::Peer::builder(name.clone())
        .router(router)
        .connect()
        .await?;
    let latest = Arc::new(Mutex::new(Reading {
        sensor: name.clone(),
        ..Reading::default()
    }));
    let answer = latest.clone();
    peer.respond(move |req| match &req.data[..] {
        b"latest?" => {
            let r = answer.lock().map(|r| r.clone()).unwrap_or_default();
            Bytes::from(serde_json::to_vec(&r).unwrap_or_default())
        }
        _ => Bytes::from_static(b"ask: latest?"),
    })
    .await?;
    println!("{name} publishing every second");

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut seq = 0u64;
    while count.is_none_or(|c| seq < c) {
        tick.tick().await;
        seq += 1;
        // A made-up, slowly drifting temperature.
        let reading = Reading {
            sensor: name.clone(),
            seq,
            celsius: 20.0 + (seq % 20) as f32 * 0.1,
        };
        if let Ok(mut l) = latest.lock() {
            *l = reading.clone();
        }
        let text = serde_json::to_string(&reading)?;
        peer.broadcast_text(&text).await?;
        println!("{text}");
    }
    peer.close().await;
    Ok(())
}

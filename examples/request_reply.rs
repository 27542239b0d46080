//! Request/reply: a sensor answers questions, a laptop asks them.
//!
//! ```text
//! cargo run --example request_reply                               # a router of its own, on loopback
//! LANMESH_ROUTER=192.168.1.10:7400 cargo run --example request_reply  # an existing router
//! ```
#![allow(clippy::print_stdout)]

use std::time::Duration;

use bytes::Bytes;

#[actix_rt::main]
pub(crate) async fn main() -> anyhow::Result<()> {
    // Loopback only unless a router address is given: this example never touches the LAN.
    let own;
    let at = match std::env::var("LANMESH_ROUTER").ok() {
        Some(addr) => addr,
        None => {
            own = lanmesh::Router::builder()
                .listen("127.0.0.1:0")
                .mdns(false)
                .start()
                .await?;
            own.local_addrs()[0].to_string()
        }
    };

    let sensor = lanmesh::Peer::builder("sensor")
        .router(at.clone())
        .connect()
        .await?;
    sensor
        .respond(|req| match &req.data[..] {
            b"temperature?" => Bytes::from_static(b"21.5 C"),
            b"humidity?" => Bytes::from_static(b"48 %"),
            _ => Bytes::from_static(b"I only know temperature? and humidity?"),
        })
        .await?;

    let laptop = lanmesh::Peer::builder("laptop")
        .router(at)
        .connect()
        .await?;
    for question in ["temperature?", "humidity?", "pressure?"] {
        let reply = laptop
            .request(
                "sensor",
                question.as_bytes().to_vec(),
                Duration::from_secs(2),
            )
            .await?;
        println!("{question:<14} -> {}", String::from_utf8_lossy(&reply.data));
    }
    // Asking a peer that answers nothing is a clear error, not a hang.
    match sensor
        .request("laptop", &b"anyone?"[..], Duration::from_secs(2))
        .await
    {
        Err(e) => println!("asking laptop  -> error: {e}"),
        Ok(m) => println!("asking laptop  -> {m:?}"),
    }
    laptop.close().await;
    sensor.close().await;
    Ok(())
}

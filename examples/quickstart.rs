//! The library quick start: a router that is also a peer, and a second peer talking to it.
//!
//! ```text
//! cargo run --example quickstart
//! ```
#![allow(clippy::print_stdout)]

use std::time::Duration;

#[actix_rt::main]
pub(crate) async fn main() -> anyhow::Result<()> {
    // Loopback only: this example never touches the LAN.
    let router = lanmesh::Router::builder()
        .listen("127.0.0.1:0")
        .mdns(false)
        .name("hub")
        .start()
        .await?;
    let at = router.local_addrs()[0].to_string();
    let hub = router
        .local_peer()
        .expect("the router was given a name")
        .clone();

    let laptop = lanmesh::Peer::builder("laptop")
        .router(at)
        .connect()
        .await?;
    laptop
        .send_text_acked("hub", "hello from the laptop")
        .await?;

    let msg = hub.recv().await?;
    println!(
        "hub got {:?} from {}",
        msg.text().unwrap_or("<binary>"),
        msg.from
    );
    hub.send_text("laptop", "welcome").await?;
    let reply = laptop.recv_timeout(Duration::from_secs(5)).await?;
    println!("laptop got {:?}", reply.as_ref().and_then(|m| m.text()));

    for p in laptop.peers() {
        println!(
            "peer {:<8} {} {} {}",
            p.name, p.transport, p.cipher, p.compression
        );
    }
    laptop.close().await;
    router.shutdown().await;
    Ok(())
}

//! Interactive chat: run it in two terminals (or on two machines) with different names.
//!
//! ```text
//! lanmesh router                                  # somewhere on the LAN (or: --name hub)
//! cargo run --example chat -- alice               # terminal 1: finds the router by mDNS
//! LANMESH_ROUTER=127.0.0.1:7400 cargo run --example chat -- bob   # terminal 2: by address
//! ```
//!
//! Each line typed is sent: `@bob hi` to bob only (acknowledged, so a typo in the name
//! is reported), anything else to everyone. `/peers` lists the members, `/quit` or end of
//! input leaves. Incoming messages and joins/leaves are printed as they happen, by a
//! [`lanmesh::Hooks`] handler running beside the input loop.
#![allow(clippy::print_stdout)]

use std::io::BufRead;

use lanmesh::proto::{Name, PeerInfo};
use lanmesh::{Hooks, Message, Peer};

#[actix_rt::main]
#[allow(dead_code)] // the tests call `chat` instead
pub(crate) async fn main() -> anyhow::Result<()> {
    let name = std::env::args().nth(1).ok_or_else(|| {
        anyhow::anyhow!("usage: chat NAME   (LANMESH_ROUTER=host:port to skip discovery)")
    })?;
    chat(&name).await
}

/// Prints what arrives.
struct Printer;

impl Hooks for Printer {
    async fn on_message(&mut self, _: &Peer, msg: Message) {
        let text = msg.text().map_or_else(
            || format!("<{} bytes of binary>", msg.data.len()),
            str::to_owned,
        );
        if msg.is_broadcast() {
            println!("{} (to all): {text}", msg.from);
        } else {
            println!("{}: {text}", msg.from);
        }
    }

    async fn on_peer_joined(&mut self, _: &Peer, info: PeerInfo) {
        println!("* {} joined", info.name);
    }

    async fn on_peer_left(&mut self, _: &Peer, name: Name) {
        println!("* {name} left");
    }

    async fn on_leave(&mut self, _: &Peer, reason: &str) {
        println!("* left the mesh ({reason})");
    }
}

/// Joins as `name` and chats over standard input and output until `/quit` or the end of
/// input.
pub(crate) async fn chat(name: &str) -> anyhow::Result<()> {
    let mut builder = Peer::builder(name);
    if let Ok(addr) = std::env::var("LANMESH_ROUTER") {
        builder = builder.router(addr);
    }
    let peer = builder.connect().await?;
    let others: Vec<String> = peer
        .peers()
        .into_iter()
        .map(|p| p.name.to_string())
        .filter(|n| n != name)
        .collect();
    println!("joined as {name}; here: {}", others.join(", "));
    let printer = actix_rt::spawn({
        let peer = peer.clone();
        async move { peer.run(Printer).await }
    });

    // Standard input blocks, so a thread reads it and hands lines over (bounded).
    let (tx, mut lines) = tokio::sync::mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = lines.recv().await {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "/quit" {
            break;
        }
        if line == "/peers" {
            let names: Vec<String> = peer.peers().iter().map(|p| p.name.to_string()).collect();
            println!("* peers: {}", names.join(", "));
            continue;
        }
        let sent = match line.strip_prefix('@').and_then(|l| l.split_once(' ')) {
            Some((to, text)) => peer.send_text_acked(to, text).await.map(drop),
            None => peer.broadcast_text(line).await.map(drop),
        };
        if let Err(e) = sent {
            println!("* not sent: {e}");
        }
    }
    peer.close().await;
    printer.await?;
    Ok(())
}

//! `lanmesh peers`.

use std::process::ExitCode;

use clap::Args;
use lanmesh::proto::handshake::fingerprint;

use super::Connect;

#[derive(Debug, Args)]
pub(crate) struct PeersArgs {
    #[command(flatten)]
    connect: Connect,
    /// A JSON array of {"name","transport","cipher","compression","key","addr","joined_ms",
    /// "path","direct"}: "path" is "direct" when the router introduced the peer for direct
    /// links (at the address in "direct"), "router" otherwise; and "router" (the router
    /// each peer is on) when the router is federated. Without it, a federated router's
    /// state comes first: its name and whether it is connected to NATS.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: PeersArgs) -> anyhow::Result<ExitCode> {
    let peer = args.connect.connect(args.connect.builder(None)?).await?;
    let peers = peer.peers();
    let status = peer.router_status();
    peer.close().await;
    // Said before the list: it explains a list without the other routers' peers. With
    // `--json` stdout stays the array; a router cut off from NATS is said on stderr.
    if let Some(status) = &status {
        if let Some(line) = status_line(status) {
            if !args.json {
                println!("{line}");
            } else if !status.connected {
                eprintln!("{line}");
            }
        }
    }
    if args.json {
        let list: Vec<serde_json::Value> = peers.iter().map(lanmesh_gateway::peer_json).collect();
        println!("{}", serde_json::Value::Array(list));
    } else if peers.is_empty() {
        println!("no peers in {}", args.connect.describe());
    } else {
        println!(
            "{:<20} {:<5} {:<17} {:<11} {:<16} ADDR",
            "NAME", "VIA", "CIPHER", "COMPRESSION", "KEY"
        );
        for p in &peers {
            println!(
                "{:<20} {:<5} {:<17} {:<11} {:<16} {}",
                p.name.as_str(),
                p.transport.as_str(),
                p.cipher.as_str(),
                p.compression.as_str(),
                fingerprint(&p.key),
                p.addr
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The line `peers` prints about a federated router, or `None` when it is not federated.
fn status_line(status: &lanmesh::proto::RouterStatus) -> Option<String> {
    let router = status.router.as_deref()?;
    Some(if status.connected {
        format!("router {router}: federated, connected to NATS")
    } else {
        format!(
            "router {router}: federated, NATS unreachable: only this router's own peers are reachable"
        )
    })
}

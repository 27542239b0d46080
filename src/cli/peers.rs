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
    /// each peer is on) when the router is federated.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: PeersArgs) -> anyhow::Result<ExitCode> {
    let peer = args.connect.connect(args.connect.builder(None)?).await?;
    let peers = peer.peers();
    peer.close().await;
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

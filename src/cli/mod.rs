//! Subcommands. Each prints results on stdout and one clear line per failure on stderr.

mod listen;
mod peers;
mod router;
mod send;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

/// Named, encrypted messaging between the devices of one LAN.
#[derive(Debug, Parser)]
#[command(name = "lanmesh", version, about)]
pub(crate) struct Cli {
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a router: the meeting point of the mesh.
    Router(router::RouterArgs),
    /// Send one message to a peer.
    Send(send::SendArgs),
    /// Join under a name and print what arrives.
    Listen(listen::ListenArgs),
    /// List the peers in the mesh.
    Peers(peers::PeersArgs),
    /// Print a new random mesh key (save it to a file for --mesh-key-file).
    Keygen,
}

/// How a client command finds its router.
#[derive(Debug, Clone, Args)]
pub(crate) struct Connect {
    /// The router's address, host:port.
    #[arg(long, value_name = "ADDR")]
    router: Option<String>,
    /// The mesh to join.
    #[arg(long, value_name = "NAME", default_value = lanmesh_router::DEFAULT_MESH)]
    mesh: String,
    /// File holding the mesh key (from `lanmesh keygen`).
    #[arg(long, value_name = "F")]
    mesh_key_file: Option<PathBuf>,
    /// Offer unencrypted records (the router must allow them too).
    #[arg(long, hide = true)]
    plaintext: bool,
}

impl Connect {
    /// A peer builder for this router, mesh and key.
    pub(crate) fn builder(&self, name: Option<&str>) -> anyhow::Result<lanmesh::PeerBuilder> {
        let Some(router) = &self.router else {
            anyhow::bail!(
                "no router address: discovery of routers on the LAN (mDNS) is not available yet; pass --router ADDR"
            );
        };
        let mut b = match name {
            Some(n) => lanmesh::Peer::builder(n),
            None => lanmesh::Peer::observer(),
        };
        b = b
            .router(router.clone())
            .mesh(self.mesh.clone())
            .plaintext(self.plaintext);
        if let Some(path) = &self.mesh_key_file {
            b = b.mesh_key(lanmesh::mesh_key_from_file(path)?);
        }
        Ok(b)
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "mesh {:?} via {}",
            self.mesh,
            self.router.as_deref().unwrap_or("?")
        )
    }
}

pub(crate) fn init_logging(cli: &Cli) {
    let default = match (cli.verbose, &cli.command) {
        (0, Command::Router(_)) => "info",
        (0, _) => "warn",
        (1, _) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

pub(crate) async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Router(a) => router::run(a).await,
        Command::Send(a) => send::run(a).await,
        Command::Listen(a) => listen::run(a).await,
        Command::Peers(a) => peers::run(a).await,
        Command::Keygen => {
            let key = lanmesh::generate_mesh_key().context("making a key")?;
            println!("{}", lanmesh::mesh_key_to_text(&key));
            Ok(ExitCode::SUCCESS)
        }
    }
}

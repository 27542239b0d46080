//! Subcommands. Each prints results on stdout and one clear line per failure on stderr.

mod bench;
mod discover;
mod listen;
mod names;
mod peers;
mod progress;
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
    /// Send one message, or a file, to a peer.
    Send(send::SendArgs),
    /// Join under a name and print what arrives.
    Listen(listen::ListenArgs),
    /// List the peers in the mesh.
    Peers(peers::PeersArgs),
    /// Print a new random mesh key (save it to a file for --mesh-key-file).
    Keygen,
    /// List the routers advertised on the LAN (mDNS), or watch them come and go.
    Discover(discover::DiscoverArgs),
    /// List or release the router's name bindings (works while it runs).
    Names(names::NamesArgs),
    /// Measure lanmesh next to nats-server and a raw TCP relay on loopback.
    Bench(bench::BenchArgs),
}

/// How a client command finds its router.
#[derive(Debug, Clone, Args)]
pub(crate) struct Connect {
    /// The router's address, host:port. Without it, a router of the mesh is found on the
    /// LAN by mDNS.
    #[arg(long, value_name = "ADDR")]
    router: Option<String>,
    /// The mesh to join.
    #[arg(long, value_name = "NAME", default_value = lanmesh_router::DEFAULT_MESH)]
    mesh: String,
    /// Discover routers on this network interface only.
    #[arg(long, value_name = "IF")]
    interface: Option<String>,
    /// Seconds to wait for a router to answer discovery.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    discover_timeout: f64,
    /// File holding the mesh key (from `lanmesh keygen`).
    #[arg(long, value_name = "F")]
    mesh_key_file: Option<PathBuf>,
    /// Offer unencrypted records (the router must allow them too).
    #[arg(long, hide = true)]
    plaintext: bool,
    /// Record cipher to prefer. aes256gcm is much faster on CPUs with AES instructions;
    /// a router without it falls back to chacha20poly1305.
    #[arg(long, value_name = "CIPHER", default_value = "chacha20poly1305", value_parser = cipher_parser())]
    cipher: lanmesh::proto::Cipher,
    /// Accept a router whose key differs from the one pinned for the mesh, and pin it too.
    #[arg(long)]
    trust_router: bool,
}

impl Connect {
    /// A peer builder for this router (or discovery), mesh and key.
    pub(crate) fn builder(&self, name: Option<&str>) -> anyhow::Result<lanmesh::PeerBuilder> {
        let mut b = match name {
            Some(n) => lanmesh::Peer::builder(n),
            None => lanmesh::Peer::observer(),
        };
        // One key per user, kept in the state directory: the router binds names to it,
        // and the router keys met are pinned there.
        let home = lanmesh::Home::locate()?;
        b = b
            .mesh(self.mesh.clone())
            .plaintext(self.plaintext)
            .identity(home.peer_identity()?)
            .router_pins(lanmesh::RouterPins::new(
                home.known_routers(),
                self.trust_router,
            ));
        if let Some(router) = &self.router {
            b = b.router(router.clone());
        }
        if let Some(interface) = &self.interface {
            b = b.interface(interface.clone());
        }
        let timeout =
            std::time::Duration::try_from_secs_f64(self.discover_timeout).map_err(|_| {
                anyhow::anyhow!("--discover-timeout must be a positive number of seconds")
            })?;
        b = b.discovery_timeout(timeout);
        if let Some(path) = &self.mesh_key_file {
            b = b.mesh_key(lanmesh::mesh_key_from_file(path)?);
        }
        Ok(b)
    }

    /// Connects with what `builder` describes and the cipher chosen here.
    pub(crate) async fn connect(
        &self,
        builder: lanmesh::PeerBuilder,
    ) -> anyhow::Result<lanmesh::Peer> {
        Ok(builder.cipher(self.cipher).connect().await?)
    }

    pub(crate) fn describe(&self) -> String {
        match &self.router {
            Some(r) => format!("mesh {:?} via {r}", self.mesh),
            None => format!("mesh {:?} (found by mDNS)", self.mesh),
        }
    }
}

/// The ciphers a peer may prefer, by their wire names (plaintext has its own flag).
fn cipher_parser() -> impl clap::builder::TypedValueParser<Value = lanmesh::proto::Cipher> {
    use clap::builder::TypedValueParser as _;
    use lanmesh::proto::Cipher;
    const CHOICES: [Cipher; 2] = [Cipher::ChaCha20Poly1305, Cipher::Aes256Gcm];
    clap::builder::PossibleValuesParser::new(CHOICES.map(Cipher::as_str)).map(|name| {
        CHOICES
            .into_iter()
            .find(|c| c.as_str() == name)
            .unwrap_or(Cipher::ChaCha20Poly1305)
    })
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
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: logs in files and pipes stay plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

pub(crate) async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Router(a) => router::run(a).await,
        Command::Send(a) => send::run(a).await,
        Command::Listen(a) => listen::run(a).await,
        Command::Peers(a) => peers::run(a).await,
        Command::Discover(a) => discover::run(a).await,
        Command::Bench(a) => bench::run(a).await,
        Command::Names(a) => names::run(a),
        Command::Keygen => {
            let key = lanmesh::generate_mesh_key().context("making a key")?;
            println!("{}", lanmesh::mesh_key_to_text(&key));
            Ok(ExitCode::SUCCESS)
        }
    }
}

//! Subcommands. Each prints results on stdout and one clear line per failure on stderr.

mod bench;
mod broadcast;
mod discover;
mod jsonl;
mod listen;
mod names;
#[cfg(feature = "federation")]
mod nats;
mod peer;
mod peers;
mod progress;
mod request;
mod respond;
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

// Parsed once per process: the router's many options make its variant the largest.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run a router: the meeting point of the mesh.
    Router(router::RouterArgs),
    /// Send one message, or a file, to a peer.
    Send(send::SendArgs),
    /// Join under a name and print what arrives.
    Listen(listen::ListenArgs),
    /// Be one long-lived named peer driven through a pipe: JSON actions on stdin (send,
    /// acked send, broadcast, request, reply), JSON events on stdout.
    Peer(peer::PeerArgs),
    /// Send one message to every other peer.
    Broadcast(broadcast::BroadcastArgs),
    /// Ask a peer and print its reply.
    Request(request::RequestArgs),
    /// Answer every request to a name by running a command.
    Respond(respond::RespondArgs),
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
    /// The router's address: host:port (the port defaults to 7400), or
    /// ws://host:7401/mesh for its WebSocket gateway. Without it, a router of the mesh is
    /// found on the LAN by mDNS.
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
    /// Send everything through the router: no direct links to other peers (by default a
    /// named peer links directly to the native peers it can reach).
    #[arg(long)]
    no_direct: bool,
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
            .direct(!self.no_direct)
            .router_pins(lanmesh::RouterPins::new(
                home.known_routers(),
                self.trust_router,
            ));
        if let Some(n) = name {
            check_name("--name", n)?;
        }
        if let Some(router) = &self.router {
            b = b.router(with_default_port(router));
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
        match builder.cipher(self.cipher).connect().await {
            Ok(peer) => Ok(peer),
            Err(e) => Err(self.explain(e).await),
        }
    }

    /// Turns a failure to join into what the user should do about it, where the error
    /// alone would mislead.
    async fn explain(&self, e: lanmesh::ClientError) -> anyhow::Error {
        use lanmesh::ClientError;
        use lanmesh::proto::ProtoError;
        let at = self
            .router
            .as_deref()
            .map_or_else(|| "the router".to_owned(), with_default_port);
        match &e {
            // A handshake reply's first two bytes are its length: "HT" is an HTTP server
            // answering (HTTP/1.1 400), the gateway's port rather than the router's.
            ClientError::Handshake(ProtoError::RecordTooLarge { len, .. })
                if u16::try_from(*len).is_ok_and(|l| l.to_be_bytes() == *b"HT") =>
            {
                anyhow::anyhow!(
                    "{at} answered in HTTP: this is the router's HTTP port; the router listens \
                     for peers on its TCP port ({} unless --listen says otherwise, printed as \
                     \"tcp\" when it starts), or use ws://{at}/mesh",
                    lanmesh_router::DEFAULT_PORT
                )
            }
            // With our key the router hung up: find out whether it has a key at all by
            // asking it, as an observer, without one.
            ClientError::ClosedDuringHandshake if self.mesh_key_file.is_some() => {
                let keyless = Connect {
                    mesh_key_file: None,
                    ..self.clone()
                };
                let probe = match keyless.builder(None) {
                    Ok(b) => b.cipher(self.cipher).connect().await,
                    Err(e) => return e,
                };
                match probe {
                    Ok(observer) => {
                        observer.close().await;
                        anyhow::anyhow!(
                            "{at} has no mesh key, so peers with --mesh-key-file cannot join it; \
                             leave the option out, or start the router with the same key"
                        )
                    }
                    // Anything else (a changed router key, say) is news of its own.
                    Err(other) if !matches!(other, ClientError::ClosedDuringHandshake) => {
                        other.into()
                    }
                    Err(_) => anyhow::anyhow!(
                        "{at} refused our mesh key: its key is not the one in {}",
                        self.mesh_key_file
                            .as_deref()
                            .map_or_else(String::new, |p| p.display().to_string())
                    ),
                }
            }
            ClientError::ClosedDuringHandshake => anyhow::anyhow!(
                "{at} closed the connection during the handshake: it needs a mesh key \
                 (pass --mesh-key-file with the router's key)"
            ),
            _ => e.into(),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match &self.router {
            Some(r) => format!("mesh {:?} via {r}", self.mesh),
            None => format!("mesh {:?} (found by mDNS)", self.mesh),
        }
    }
}

/// The message given as an argument, or standard input read whole; and whether it is text.
pub(crate) fn message_or_stdin(arg: Option<&str>) -> anyhow::Result<(bytes::Bytes, bool)> {
    use std::io::Read as _;
    match arg {
        Some(m) => Ok((bytes::Bytes::copy_from_slice(m.as_bytes()), true)),
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading standard input")?;
            let text = std::str::from_utf8(&buf).is_ok();
            Ok((bytes::Bytes::from(buf), text))
        }
    }
}

/// The name a command joins under when it is given none: `cli-` and the first 8 hex
/// digits of this user's key — the same on every run, so the router binds one name to the
/// key, not one per run.
pub(crate) fn default_name() -> anyhow::Result<String> {
    let home = lanmesh::Home::locate()?;
    let key = home.peer_identity()?;
    let fp = lanmesh::proto::handshake::fingerprint(key.public());
    Ok(format!("cli-{}", &fp[..fp.len().min(8)]))
}

/// Checks a peer name given as `arg` before joining, so that a bad one is reported with
/// the argument it came from and the real limit.
pub(crate) fn check_name(arg: &str, name: &str) -> anyhow::Result<()> {
    let max = lanmesh::proto::Limits::default().max_name_len;
    if name.len() > max {
        anyhow::bail!(
            "{arg}: the name is {} bytes long; names are at most {max} bytes",
            name.len()
        );
    }
    if let Err(e) = lanmesh::proto::Name::new(name) {
        anyhow::bail!("{arg}: {e}");
    }
    Ok(())
}

/// Why a receiving session ended for good, in the user's terms: being replaced means a
/// second receiving process of this user took the name.
pub(crate) fn session_ended(name: &str, e: &lanmesh::ClientError) -> String {
    let text = e.to_string();
    if text.contains("replaced by a newer connection") {
        format!(
            "another process of this user joined as {name:?} to receive its messages (a second \
             listen, peer or respond --name {name}), so this one stops; send, broadcast and \
             request run beside it under the same name"
        )
    } else {
        text
    }
}

/// What a Nack for a message to `to` means, in the words `send` uses.
pub(crate) fn nack_text(reason: lanmesh::proto::NackReason, to: &str) -> String {
    use lanmesh::proto::NackReason;
    match reason {
        NackReason::UnknownPeer => format!("unknown peer {to:?}"),
        NackReason::Overloaded => {
            format!("peer {to:?} is overloaded; the message was not delivered")
        }
        NackReason::TooLarge => format!("the message is larger than {to:?} accepts"),
        NackReason::NoResponder => format!("peer {to:?} answers no requests"),
        other => format!("message to {to:?} not delivered: {other:?}"),
    }
}

/// Says once on stderr when the router goes away and once when the peer is back in the
/// mesh, rather than nothing (or a line per attempt).
#[derive(Debug, Default)]
pub(crate) struct RouterWatch {
    away: bool,
}

impl RouterWatch {
    /// Takes a new status; returns the JSON event for `lanmesh peer` when it is news.
    pub(crate) fn update(
        &mut self,
        status: &lanmesh::Status,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        match status {
            lanmesh::Status::Reconnecting { reason, .. } if !self.away => {
                self.away = true;
                eprintln!("lanmesh: lost the router ({reason}); reconnecting");
                let mut ev = jsonl::event("disconnected");
                ev.insert("reason".into(), reason.clone().into());
                Some(ev)
            }
            lanmesh::Status::Connected { router } if self.away => {
                self.away = false;
                eprintln!("lanmesh: back in the mesh via {router}");
                let mut ev = jsonl::event("reconnected");
                ev.insert("router".into(), router.clone().into());
                Some(ev)
            }
            _ => None,
        }
    }

    /// Watches `peer`'s status on a task of its own, for commands that only print.
    pub(crate) fn spawn(peer: &lanmesh::Peer) {
        let mut status = peer.watch_status();
        actix_rt::spawn(async move {
            let mut watch = RouterWatch::default();
            while status.changed().await.is_ok() {
                let now = status.borrow_and_update().clone();
                watch.update(&now);
            }
        });
    }
}

/// `ADDR` with the router's default port when it names none: `127.0.0.1` is
/// `127.0.0.1:7400`, `pi.local` is `pi.local:7400`; WebSocket URLs are left as they are.
pub(crate) fn with_default_port(addr: &str) -> String {
    use std::net::{IpAddr, SocketAddr};
    let port = lanmesh_router::DEFAULT_PORT;
    if addr.contains("://") || addr.parse::<SocketAddr>().is_ok() {
        return addr.to_owned();
    }
    if let Ok(ip) = addr.trim_matches(['[', ']']).parse::<IpAddr>() {
        return SocketAddr::new(ip, port).to_string();
    }
    match addr.rsplit_once(':') {
        Some((_, p)) if p.parse::<u16>().is_ok() => addr.to_owned(),
        _ => format!("{addr}:{port}"),
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
    // Warnings only by default, the router too: what it has to say on start is printed
    // on stdout, and a line per joining peer belongs to -v.
    let default = match cli.verbose {
        0 => "warn",
        1 => "info",
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
        Command::Peer(a) => peer::run(a).await,
        Command::Broadcast(a) => broadcast::run(a).await,
        Command::Request(a) => request::run(a).await,
        Command::Respond(a) => respond::run(a).await,
        Command::Peers(a) => peers::run(a).await,
        Command::Discover(a) => discover::run(a).await,
        Command::Bench(a) => bench::run(a).await,
        Command::Names(a) => names::run(a).await,
        Command::Keygen => {
            let key = lanmesh::generate_mesh_key().context("making a key")?;
            println!("{}", lanmesh::mesh_key_to_text(&key));
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_without_a_port_gets_the_default_one() {
        assert_eq!(with_default_port("127.0.0.1"), "127.0.0.1:7400");
        assert_eq!(with_default_port("127.0.0.1:9"), "127.0.0.1:9");
        assert_eq!(with_default_port("::1"), "[::1]:7400");
        assert_eq!(with_default_port("[::1]:9"), "[::1]:9");
        assert_eq!(with_default_port("pi.local"), "pi.local:7400");
        assert_eq!(with_default_port("pi.local:9"), "pi.local:9");
        assert_eq!(with_default_port("ws://pi:7401/mesh"), "ws://pi:7401/mesh");
    }

    #[test]
    fn names_are_checked_against_the_real_limit() {
        assert!(check_name("--name", &"a".repeat(64)).is_ok());
        let e = check_name("--name", &"a".repeat(65))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--name: the name is 65 bytes long; names are at most 64 bytes"
        );
    }
}

//! `lanmesh router`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::listen::print_message;

#[derive(Debug, Args)]
pub(crate) struct RouterArgs {
    /// The mesh to serve.
    #[arg(long, value_name = "NAME", default_value = lanmesh_router::DEFAULT_MESH)]
    mesh: String,
    /// TCP address to listen on; repeat for several.
    #[arg(long, value_name = "ADDR")]
    listen: Vec<String>,
    /// HTTP address of the gateway: browser peers (WebSocket /mesh), the dashboard,
    /// /api/peers and /metrics.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:7401")]
    http: String,
    /// Do not serve the gateway.
    #[arg(long, conflicts_with = "http")]
    no_http: bool,
    /// Do not advertise on mDNS: peers then need --router ADDR.
    #[arg(long)]
    no_mdns: bool,
    /// Advertise on this network interface only.
    #[arg(long, value_name = "IF")]
    interface: Option<String>,
    /// File holding the mesh key; without the key nobody joins.
    #[arg(long, value_name = "F")]
    mesh_key_file: Option<PathBuf>,
    /// Join the mesh from the router process under this name and print what it receives.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Seconds a peer whose connection broke keeps its name and its waiting messages
    /// (0: it leaves at once).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    grace: u64,
    /// Where name bindings are kept across restarts (default: router/ in the state
    /// directory, see LANMESH_HOME).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// File of `name key-hex` lines pinning names to peer keys.
    #[arg(long, value_name = "FILE")]
    allow: Option<PathBuf>,
    /// Allow unencrypted records for peers that ask for them explicitly (benchmarks).
    #[arg(long, hide = true)]
    plaintext: bool,
}

pub(crate) async fn run(args: RouterArgs) -> anyhow::Result<ExitCode> {
    let home = lanmesh::Home::locate()?;
    let state_dir = args.state_dir.clone().unwrap_or_else(|| home.router_dir());
    // The router's key lives with its state, so that peers can pin it across restarts.
    let identity = lanmesh::load_or_create_identity(&state_dir.join("identity"))?;
    let mut b = lanmesh::Router::builder()
        .identity(identity)
        .state_dir(state_dir)
        .mesh(args.mesh.clone())
        .plaintext(args.plaintext)
        .grace(std::time::Duration::from_secs(args.grace))
        .mdns(!args.no_mdns);
    if let Some(i) = &args.interface {
        b = b.interface(i.clone());
    }
    if !args.no_http {
        b = b.http(args.http.clone());
    }
    let listen = if args.listen.is_empty() {
        vec![format!("0.0.0.0:{}", lanmesh_router::DEFAULT_PORT)]
    } else {
        args.listen.clone()
    };
    for l in &listen {
        b = b.listen(l.clone());
    }
    if let Some(path) = &args.mesh_key_file {
        b = b.mesh_key(lanmesh::mesh_key_from_file(path)?);
    }
    if let Some(name) = &args.name {
        b = b.name(name.clone());
    }
    if let Some(allow) = &args.allow {
        b = b.allow_list(allow.clone());
    }
    let router = b.start().await?;
    let key = lanmesh::proto::handshake::fingerprint(router.handle().config().identity.public());
    println!("lanmesh router · mesh {:?} · key {key}", args.mesh);
    for addr in router.local_addrs() {
        println!("  tcp  {addr}");
    }
    for addr in router.http_addrs() {
        println!("  http http://{addr}/");
    }
    if let Some(service) = router.advertised_as() {
        println!("  mdns {service}");
    }
    if let Some(name) = &args.name {
        println!("  joined as {name:?}");
    }
    use std::io::Write as _;
    let _ = std::io::stdout().flush();

    let local = router.local_peer().cloned();
    let printing = async move {
        match local {
            Some(peer) => {
                while let Ok(m) = peer.recv().await {
                    print_message(&m, false);
                }
            }
            None => std::future::pending::<()>().await,
        }
    };
    // The signals are awaited on a task of their own: this future is polled again
    // whenever any task of the runtime wakes, and a signal future is costly to poll.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    actix_rt::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(());
    });
    tokio::select! {
        _ = stop_rx => {}
        _ = printing => {}
    }
    tracing::info!("shutting down");
    router.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

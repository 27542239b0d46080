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
    /// Do not serve /api/peers and /metrics (404); the dashboard then shows no peer table
    /// or counters.
    #[arg(long)]
    no_api: bool,
    /// With a mesh key, /api/peers and /metrics need the bearer token even from this
    /// machine (by default loopback is trusted).
    #[arg(long)]
    api_require_token: bool,
    /// Print the bearer token of /api/peers and /metrics for the mesh key of
    /// --mesh-key-file, then exit (send it as `Authorization: Bearer TOKEN`).
    #[arg(long, requires = "mesh_key_file")]
    print_http_token: bool,
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
    /// Open connections, handshaking or joined (default 4096).
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Open connections from one source address (default 2048).
    #[arg(long, value_name = "N")]
    max_connections_per_ip: Option<usize>,
    /// Connections still handshaking; when full the oldest is dropped (default 256).
    #[arg(long, value_name = "N")]
    max_handshakes: Option<usize>,
    /// Handshakes under way from one source address (default 32).
    #[arg(long, value_name = "N")]
    max_handshakes_per_ip: Option<usize>,
    /// Names one key may bind (default 16).
    #[arg(long, value_name = "N")]
    max_names_per_key: Option<usize>,
    /// New names one key may bind: BURST/SECS, BURST at once then one every SECS seconds,
    /// or `off` (default 8/10).
    #[arg(long, value_name = "BURST/SECS", value_parser = parse_rate)]
    new_names_per_key: Option<lanmesh::BindingRate>,
    /// New names all keys together may bind: BURST/SECS or `off` (default 64/1).
    #[arg(long, value_name = "BURST/SECS", value_parser = parse_rate)]
    new_names: Option<lanmesh::BindingRate>,
    /// Join the other routers of this mesh through a NATS cluster: NATS URLs, comma
    /// separated (nats://HOST:PORT[,...]). Remote peers show in `peers`, names stay bound
    /// to one key mesh-wide, messages cross routers.
    #[cfg(feature = "federation")]
    #[arg(long, value_name = "nats://HOST:PORT[,...]", value_delimiter = ',')]
    federate: Vec<String>,
    /// This router's name among the federated routers (default: its key fingerprint).
    #[cfg(feature = "federation")]
    #[arg(long, value_name = "ID", requires = "federate")]
    router_id: Option<String>,
    /// Seconds a federated router's presence entries live without a refresh (default 10).
    #[cfg(feature = "federation")]
    #[arg(long, value_name = "SECS", requires = "federate")]
    presence_ttl: Option<u64>,
    /// Copies the NATS cluster keeps of the mesh's buckets (default 1).
    #[cfg(feature = "federation")]
    #[arg(long, value_name = "N", requires = "federate")]
    replicas: Option<usize>,
    #[cfg(feature = "federation")]
    #[command(flatten)]
    nats: super::nats::NatsArgs,

    /// Allow unencrypted records for peers that ask for them explicitly (benchmarks).
    #[arg(long, hide = true)]
    plaintext: bool,
}

pub(crate) async fn run(args: RouterArgs) -> anyhow::Result<ExitCode> {
    let mesh_key = match &args.mesh_key_file {
        Some(path) => Some(lanmesh::mesh_key_from_file(path)?),
        None => None,
    };
    if args.print_http_token {
        if let Some(key) = &mesh_key {
            println!("{}", lanmesh::http_token(key));
        }
        return Ok(ExitCode::SUCCESS);
    }
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
        let mut gateway = lanmesh::GatewayConfig::default();
        gateway.api = !args.no_api;
        gateway.trust_loopback = !args.api_require_token;
        b = b.http(args.http.clone()).gateway(gateway);
    }
    let listen = if args.listen.is_empty() {
        vec![format!("0.0.0.0:{}", lanmesh_router::DEFAULT_PORT)]
    } else {
        args.listen.clone()
    };
    for l in &listen {
        b = b.listen(l.clone());
    }
    if let Some(key) = mesh_key {
        b = b.mesh_key(key);
    }
    if let Some(name) = &args.name {
        b = b.name(name.clone());
    }
    if let Some(allow) = &args.allow {
        b = b.allow_list(allow.clone());
    }
    #[cfg(feature = "federation")]
    if !args.federate.is_empty() {
        let mut f = lanmesh_router::FederationConfig::new(args.federate.clone());
        f.router_id = args.router_id.clone();
        if let Some(secs) = args.presence_ttl {
            f.ttl = std::time::Duration::from_secs(secs.max(1));
        }
        if let Some(n) = args.replicas {
            f.replicas = n.max(1);
        }
        args.nats.apply(&mut f);
        b = b.federation(f);
    }
    let budgets = Budgets::from(&args);
    b = b.configure(move |c| budgets.apply(c));
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
    #[cfg(feature = "federation")]
    if !args.federate.is_empty() {
        println!("  nats {}", args.federate.join(","));
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

/// The budgets given on the command line; the others keep `RouterConfig`'s defaults.
#[derive(Debug, Clone, Copy)]
struct Budgets {
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    max_handshakes: Option<usize>,
    max_handshakes_per_ip: Option<usize>,
    max_names_per_key: Option<usize>,
    new_names_per_key: Option<lanmesh::BindingRate>,
    new_names: Option<lanmesh::BindingRate>,
}

impl From<&RouterArgs> for Budgets {
    fn from(a: &RouterArgs) -> Self {
        Self {
            max_connections: a.max_connections,
            max_connections_per_ip: a.max_connections_per_ip,
            max_handshakes: a.max_handshakes,
            max_handshakes_per_ip: a.max_handshakes_per_ip,
            max_names_per_key: a.max_names_per_key,
            new_names_per_key: a.new_names_per_key,
            new_names: a.new_names,
        }
    }
}

impl Budgets {
    fn apply(&self, c: &mut lanmesh::RouterConfig) {
        fn set<T: Copy>(field: &mut T, value: Option<T>) {
            if let Some(v) = value {
                *field = v;
            }
        }
        set(&mut c.max_connections, self.max_connections);
        set(&mut c.max_connections_per_ip, self.max_connections_per_ip);
        set(&mut c.max_handshakes, self.max_handshakes);
        set(&mut c.max_handshakes_per_ip, self.max_handshakes_per_ip);
        set(&mut c.max_names_per_key, self.max_names_per_key);
        set(&mut c.new_names_per_key, self.new_names_per_key);
        set(&mut c.new_names, self.new_names);
    }
}

/// `BURST/SECS` (SECS may have a fraction) or `off`.
fn parse_rate(text: &str) -> Result<lanmesh::BindingRate, String> {
    if text == "off" {
        return Ok(lanmesh::BindingRate::UNLIMITED);
    }
    let bad = || format!("{text:?}: expected BURST/SECS (for example 8/10) or off");
    let (burst, secs) = text.split_once('/').ok_or_else(bad)?;
    let burst: u32 = burst.trim().parse().map_err(|_| bad())?;
    let every = secs
        .trim()
        .parse::<f64>()
        .ok()
        .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok())
        .ok_or_else(bad)?;
    if burst == 0 || every.is_zero() {
        return Err(format!(
            "{text:?}: BURST and SECS must be above zero (or say off)"
        ));
    }
    Ok(lanmesh::BindingRate { burst, every })
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

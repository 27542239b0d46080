//! Starting a router, optionally joined by an in-process peer (the router is "just
//! another client" too).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use lanmesh_client::{ClientError, Peer};
use lanmesh_discovery::{Advertisement, Advertiser, DiscoveryError};
use lanmesh_gateway::{Gateway, GatewayConfig, GatewayError};
use lanmesh_proto::Identity;
use lanmesh_router::{RouterConfig, RouterError, RouterHandle, RouterHooks};

/// Starting a router failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A listen address does not parse or resolve.
    #[error("invalid listen address {0:?}")]
    Address(String),
    /// Keys could not be made.
    #[error("{0}")]
    Key(lanmesh_proto::ProtoError),
    /// The router could not start.
    #[error("{0}")]
    Router(#[from] RouterError),
    /// The HTTP gateway could not start.
    #[error("{0}")]
    Gateway(#[from] GatewayError),
    /// The in-process peer could not join.
    #[error("the router's own peer could not join: {0}")]
    LocalPeer(#[from] ClientError),
}

/// Entry point: `Router::builder()`.
#[derive(Debug)]
pub struct Router;

impl Router {
    /// A builder with the defaults: mesh `lanmesh`, TCP `0.0.0.0:7400`.
    pub fn builder() -> RouterBuilder {
        RouterBuilder::default()
    }
}

/// Configures and starts a router.
#[derive(Debug, Clone, Default)]
pub struct RouterBuilder {
    mesh: Option<String>,
    listen: Vec<String>,
    name: Option<String>,
    mesh_key: Option<[u8; 32]>,
    identity: Option<Identity>,
    plaintext: bool,
    limits: Option<lanmesh_proto::Limits>,
    no_mdns: bool,
    interface: Option<String>,
    http: Option<String>,
    grace: Option<std::time::Duration>,
    write_stall: Option<std::time::Duration>,
    backpressure: Option<usize>,
    state_dir: Option<std::path::PathBuf>,
    allow_list: Option<std::path::PathBuf>,
    hooks: Option<std::sync::Arc<dyn RouterHooks>>,
    #[cfg(feature = "federation")]
    federation: Option<lanmesh_router::FederationConfig>,
    gateway: GatewayConfig,
    adjust: Vec<Adjust>,
}

/// A change to the [`RouterConfig`] a builder makes, applied last.
#[derive(Clone)]
struct Adjust(std::sync::Arc<dyn Fn(&mut RouterConfig) + Send + Sync>);

impl std::fmt::Debug for Adjust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Adjust(..)")
    }
}

impl RouterBuilder {
    /// The mesh to serve (default `lanmesh`).
    pub fn mesh(mut self, mesh: impl Into<String>) -> Self {
        self.mesh = Some(mesh.into());
        self
    }

    /// Adds a TCP listen address; may be called several times (default `0.0.0.0:7400`).
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.listen.push(addr.into());
        self
    }

    /// Joins the mesh from inside the router process under `name`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Requires this mesh key from every peer.
    pub fn mesh_key(mut self, key: [u8; 32]) -> Self {
        self.mesh_key = Some(key);
        self
    }

    /// Uses this static key instead of a fresh one.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Allows unencrypted records for peers that ask for them explicitly.
    pub fn plaintext(mut self, allow: bool) -> Self {
        self.plaintext = allow;
        self
    }

    /// Protocol limits (default: [`lanmesh_proto::Limits::default`]).
    pub fn limits(mut self, limits: lanmesh_proto::Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Serves the gateway (WebSocket `/mesh`, dashboard, `/api`, `/metrics`) on this HTTP
    /// address (the CLI's default is `0.0.0.0:7401`; the library serves none unless asked).
    pub fn http(mut self, addr: impl Into<String>) -> Self {
        self.http = Some(addr.into());
        self
    }

    /// Who may read the gateway's `/api/peers` and `/metrics` (default: everyone on a mesh
    /// without a key; loopback and the [`lanmesh_gateway::http_token`] on a keyed one).
    pub fn gateway(mut self, config: GatewayConfig) -> Self {
        self.gateway = config;
        self
    }

    /// Changes the [`RouterConfig`] this builder makes, after everything else: for the
    /// budgets and limits that have no method of their own (`max_connections`,
    /// `max_names_per_key`, the binding rates, ...).
    pub fn configure(mut self, f: impl Fn(&mut RouterConfig) + Send + Sync + 'static) -> Self {
        self.adjust.push(Adjust(std::sync::Arc::new(f)));
        self
    }

    /// Advertise on mDNS (default on; skipped anyway when listening on loopback only).
    pub fn mdns(mut self, on: bool) -> Self {
        self.no_mdns = !on;
        self
    }

    /// How long a peer whose connection broke keeps its name and its waiting messages
    /// (default 30 s; zero: a broken connection leaves at once).
    pub fn grace(mut self, grace: std::time::Duration) -> Self {
        self.grace = Some(grace);
        self
    }

    /// Disconnects a peer whose connection took no bytes for this long while some were
    /// waiting (default 30 s): the slow-consumer deadline.
    pub fn write_stall(mut self, after: std::time::Duration) -> Self {
        self.write_stall = Some(after);
        self
    }

    /// Bytes waiting for a peer beyond which the router stops reading from the peers
    /// sending to it until it catches up (default 1 MiB): fast senders are slowed down
    /// instead of refused. A peer that takes nothing for 200 ms is not waited for.
    pub fn backpressure(mut self, bytes: usize) -> Self {
        self.backpressure = Some(bytes);
        self
    }

    /// Keeps name bindings in `dir` across restarts (default: in memory only).
    pub fn state_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Pins names to keys from a file of `name key-hex` lines.
    pub fn allow_list(mut self, file: impl Into<std::path::PathBuf>) -> Self {
        self.allow_list = Some(file.into());
        self
    }

    /// Advertise on this network interface only.
    pub fn interface(mut self, name: impl Into<String>) -> Self {
        self.interface = Some(name.into());
        self
    }

    /// Calls `hooks` when the router starts, peers join and leave, and it shuts down
    /// (see [`RouterHooks`]).
    pub fn hooks(mut self, hooks: impl RouterHooks) -> Self {
        self.hooks = Some(std::sync::Arc::new(hooks));
        self
    }

    /// Joins the other routers of this mesh through a NATS cluster: `servers` are NATS
    /// URLs (`nats://host:port`), any of the cluster's. Remote peers appear in `peers`,
    /// names stay bound to one key mesh-wide, and messages, acks and replies cross
    /// routers (see [`lanmesh_router::federation`]).
    #[cfg(feature = "federation")]
    pub fn federate(mut self, servers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.federation = Some(lanmesh_router::FederationConfig::new(servers));
        self
    }

    /// [`RouterBuilder::federate`] with every setting (router id, TTL, replicas).
    #[cfg(feature = "federation")]
    pub fn federation(mut self, config: lanmesh_router::FederationConfig) -> Self {
        self.federation = Some(config);
        self
    }

    /// The router configuration this builder describes.
    pub fn config(&self) -> Result<RouterConfig, StartError> {
        let identity = match &self.identity {
            Some(id) => id.clone(),
            None => Identity::generate().map_err(StartError::Key)?,
        };
        let mut config = RouterConfig::new(identity);
        if let Some(mesh) = &self.mesh {
            config.mesh = mesh.clone();
        }
        if !self.listen.is_empty() {
            config.listen = self
                .listen
                .iter()
                .map(|a| {
                    a.to_socket_addrs()
                        .ok()
                        .and_then(|mut it| it.next())
                        .ok_or_else(|| StartError::Address(a.clone()))
                })
                .collect::<Result<_, _>>()?;
        }
        config.mesh_key = self.mesh_key;
        config.allow_plaintext = self.plaintext;
        if let Some(limits) = &self.limits {
            config.limits = limits.clone();
        }
        if let Some(grace) = self.grace {
            config.grace = grace;
        }
        if let Some(bytes) = self.backpressure {
            config.backpressure_bytes = bytes;
        }
        if let Some(after) = self.write_stall {
            config.write_stall = after;
        }
        config.state_dir = self.state_dir.clone();
        config.allow_list = self.allow_list.clone();
        #[cfg(feature = "federation")]
        {
            config.federation = self.federation.clone();
        }
        for adjust in &self.adjust {
            (adjust.0)(&mut config);
        }
        Ok(config)
    }

    /// Starts the router (inside an actix system), then its own peer if named.
    pub async fn start(self) -> Result<RunningRouter, StartError> {
        let config = self.config()?;
        let handle = match self.hooks.clone() {
            Some(hooks) => RouterHandle::start_with_hooks(config, hooks).await?,
            None => RouterHandle::start(config).await?,
        };
        let gateway = match &self.http {
            Some(a) => {
                let addr = resolve(a)?;
                Some(Gateway::start_with(handle.clone(), addr, self.gateway)?)
            }
            None => None,
        };
        let ws_port = gateway
            .as_ref()
            .and_then(|g| g.local_addrs().first())
            .map(|a| a.port());
        let advertiser = if self.no_mdns {
            None
        } else {
            advertise(&handle, self.interface.clone(), ws_port)
        };
        let local_peer = match &self.name {
            None => None,
            Some(name) => {
                let addr = loopback_of(handle.local_addrs()[0]);
                // The router's own peer uses the router's key, so its name stays bound
                // to it across restarts.
                let mut b = Peer::builder(name.clone())
                    .router(addr.to_string())
                    .mesh(handle.config().mesh.clone())
                    .identity(handle.config().identity.clone())
                    .plaintext(self.plaintext);
                if let Some(k) = self.mesh_key {
                    b = b.mesh_key(k);
                }
                Some(b.connect().await?)
            }
        };
        Ok(RunningRouter {
            handle,
            local_peer,
            gateway,
            advertiser: std::sync::Mutex::new(advertiser),
        })
    }
}

/// Starts the mDNS advertisement. A router that cannot advertise still serves peers that
/// know its address, so failures are one warning line, not an error.
fn resolve(addr: &str) -> Result<SocketAddr, StartError> {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| StartError::Address(addr.to_owned()))
}

fn advertise(
    handle: &RouterHandle,
    interface: Option<String>,
    ws_port: Option<u16>,
) -> Option<Advertiser> {
    let Some(addr) = handle.local_addrs().iter().find(|a| !a.ip().is_loopback()) else {
        tracing::info!("listening on loopback only: not advertising on mDNS");
        return None;
    };
    let config = handle.config();
    let ad = Advertisement {
        mesh: config.mesh.clone(),
        port: addr.port(),
        ws_port,
        key: hex_key(config.identity.public()),
        interface,
    };
    match Advertiser::start(&ad) {
        Ok(a) => Some(a),
        Err(e @ DiscoveryError::NoMulticastInterface { .. }) => {
            tracing::warn!("not advertising: {e}; peers must use --router {addr}");
            None
        }
        Err(e) => {
            tracing::warn!("not advertising: {e}");
            None
        }
    }
}

fn hex_key(key: &[u8; 32]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a local client reaches a listener: a wildcard address becomes loopback.
fn loopback_of(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        other => other,
    }
}

/// A started router.
#[derive(Debug)]
pub struct RunningRouter {
    handle: RouterHandle,
    local_peer: Option<Peer>,
    gateway: Option<Gateway>,
    advertiser: std::sync::Mutex<Option<Advertiser>>,
}

impl RunningRouter {
    /// The router itself.
    pub fn handle(&self) -> &RouterHandle {
        &self.handle
    }

    /// The bound TCP addresses.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        self.handle.local_addrs()
    }

    /// The in-process peer, when the router was given a name.
    pub fn local_peer(&self) -> Option<&Peer> {
        self.local_peer.as_ref()
    }

    /// The gateway's bound HTTP addresses (empty without a gateway).
    pub fn http_addrs(&self) -> &[SocketAddr] {
        self.gateway.as_ref().map_or(&[], |g| g.local_addrs())
    }

    /// The mDNS service name advertised, if advertising.
    pub fn advertised_as(&self) -> Option<String> {
        let guard = self.advertiser.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().map(|a| a.fullname().to_owned())
    }

    /// Withdraws the advertisement, leaves with the local peer, then closes every session
    /// and stops accepting.
    pub async fn shutdown(&self) {
        let advertiser = self
            .advertiser
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(a) = advertiser {
            let _ = tokio::task::spawn_blocking(move || a.stop()).await;
        }
        if let Some(p) = &self.local_peer {
            p.close().await;
        }
        self.handle.shutdown(Duration::from_secs(3)).await;
        if let Some(g) = &self.gateway {
            g.stop().await;
        }
    }
}

//! The NATS side of federation: one task per router (presence, the watch, publishing what
//! local sessions forward to remote names) and one per local member (its subscription,
//! delivering what other routers send it). See the module above for the flow.
//!
//! Nothing here blocks the router: KV writes run in tasks of their own with a timeout,
//! and a driver that has not reached NATS yet (or lost it) only makes remote names
//! unreachable (`Nack`s), never local ones.

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use actix::Addr;
use async_nats::jetstream::{self, kv};
use futures_util::{FutureExt as _, StreamExt};
use lanmesh_proto::handshake::slot_of;
use lanmesh_proto::{Frame, NackReason, Name, PeerInfo};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::credit::{self, Window};
use super::mesh::{Change, MeshView};
use super::wire::{self, Presence};
use super::{BoundElsewhere, Claims, FederationConfig, LocalView, Remote, RemoteChanged};
use crate::inbox::{Inbox, Refused};
use crate::metrics::Metrics;
use crate::router::Router;
use crate::shutdown::Shutdown;
use crate::table::{Forward, Route};

/// How long one KV write may take before it is given up (the next refresh tries again).
const KV_TIMEOUT: Duration = Duration::from_secs(2);

/// How long to wait between attempts at the buckets while NATS is not reachable.
const RETRY: Duration = Duration::from_millis(500);

/// How often unconfirmed batches are looked at (see `credit`).
const SWEEP: Duration = Duration::from_millis(250);

/// How long a receiving router holds a batch for a congested session at most before it
/// hands it over anyway (and the session's budget may refuse it). Below
/// [`credit::CONFIRM_WAIT`], so the sending router is still holding back meanwhile.
const ROOM_WAIT: Duration = Duration::from_secs(2);

impl super::Link {
    /// The link of router `router_id`, before its driver starts; `capacity`: forwards a
    /// remote route's inbox holds.
    pub(crate) fn new(router_id: String, capacity: usize) -> Self {
        let (view, _) = watch::channel(Arc::new(LocalView::default()));
        Self {
            router_id,
            broadcast: super::broadcast::route(capacity),
            view,
            claims: Arc::new(Claims::default()),
        }
    }
}

/// What the driver needs besides the link.
pub(crate) struct Start {
    pub(crate) config: FederationConfig,
    /// How to reach NATS (`client_options` of `config`, checked before the start).
    pub(crate) options: async_nats::ConnectOptions,
    pub(crate) mesh: String,
    pub(crate) router: Addr<Router>,
    pub(crate) shutdown: Shutdown,
    /// Forwards a remote name's inbox holds before senders are refused.
    pub(crate) capacity: usize,
    /// The router's backpressure threshold (see `Pressure`).
    pub(crate) threshold: usize,
    pub(crate) metrics: Arc<Metrics>,
}

/// Starts the driver of `link` on the current actix arbiter.
pub(crate) fn start(link: &super::Link, start: Start) {
    let view = link.view.subscribe();
    let claims = link.claims.clone();
    let me = link.router_id.clone();
    let broadcast = link.broadcast.clone();
    actix_rt::spawn(async move {
        if let Err(e) = run(me, view, claims, broadcast, start).await {
            warn!(error = %e, "federation stopped; this router serves its own peers only");
        }
    });
}

/// What the bindings bucket said of a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Claimed {
    /// Bound to this key (now, or before).
    Bound,
    /// Bound to another key.
    Elsewhere(BoundElsewhere),
    /// No answer that says (the bucket not reachable, or not ready): try again later.
    Unsure(String),
}

/// Binds `name` to `key` in the bindings bucket (see `Link::claim`).
pub(crate) async fn claim(store: &kv::Store, name: &Name, key: &[u8; 32]) -> Claimed {
    let k = wire::escape(name.as_str());
    match store.create(&k, wire::encode_binding(key)).await {
        Ok(_) => {
            debug!(peer = %name, "name bound in the mesh");
            Claimed::Bound
        }
        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => match store.get(k).await {
            Ok(Some(v)) => match wire::decode_binding(&v) {
                Some(owner) if owner == *key => Claimed::Bound,
                Some(owner) => Claimed::Elsewhere(BoundElsewhere { owner }),
                None => Claimed::Unsure("unreadable binding".into()),
            },
            Ok(None) => Claimed::Unsure("binding vanished".into()),
            Err(e) => Claimed::Unsure(e.to_string()),
        },
        Err(e) => Claimed::Unsure(e.to_string()),
    }
}

/// One local member: its subject is read, and once its name is bound mesh-wide its
/// presence is kept.
struct Local {
    info: PeerInfo,
    reader: JoinHandle<()>,
    /// Binds the name, then puts its presence the first time (retrying while NATS does
    /// not answer).
    announcer: JoinHandle<()>,
    /// The name is bound to this member's key mesh-wide and its presence was put.
    announced: Arc<AtomicBool>,
}

/// One remote name: where local sessions put what they send it.
struct Outbound {
    route: Arc<Route>,
    /// Its inbox holds the driver's waker.
    registered: bool,
    /// What was published to it and not yet confirmed (counted in `route.pressure`).
    window: Window,
}

/// What woke the driver.
enum Wake {
    Shutdown,
    Local,
    Watch(Option<Result<kv::Entry, kv::WatcherError>>),
    Tick,
    Forwards(Vec<(Name, Vec<Forward>)>),
    Broadcasts(Vec<Forward>),
    Confirmed(Option<async_nats::Message>),
    Sweep,
}

struct Driver {
    me: String,
    mesh_name: String,
    client: async_nats::Client,
    presence: kv::Store,
    bindings: kv::Store,
    router: Addr<Router>,
    view: watch::Receiver<Arc<LocalView>>,
    capacity: usize,
    threshold: usize,
    metrics: Arc<Metrics>,
    mesh: MeshView,
    local: HashMap<Name, Local>,
    outbound: HashMap<Name, Outbound>,
    /// Local members' broadcasts for the other routers.
    broadcast: Outbound,
    /// Where the other routers confirm this one's batches (see `credit`).
    confirm_prefix: String,
    /// Their confirmations; `None` if the subscription failed (then nothing is counted
    /// past publishing, as without backpressure).
    confirms: Option<async_nats::Subscriber>,
    /// The client's connection count at the last sweep: batches sent on a connection
    /// that was lost will not be confirmed.
    connects: u64,
}

async fn run(
    me: String,
    view: watch::Receiver<Arc<LocalView>>,
    claims: Arc<Claims>,
    broadcast: Arc<Route>,
    start: Start,
) -> Result<(), async_nats::Error> {
    let Start {
        config,
        options,
        mesh,
        router,
        shutdown,
        capacity,
        threshold,
        metrics,
    } = start;
    let events = metrics.clone();
    let servers = config.servers.join(",");
    let client = options
        .name(format!("lanmesh router {me}"))
        .retry_on_initial_connect()
        .event_callback(move |event| {
            let metrics = events.clone();
            async move {
                match event {
                    async_nats::Event::Disconnected => {
                        metrics.nats(false);
                        warn!("lost NATS; serving this router's own peers until it is back");
                    }
                    async_nats::Event::Connected => {
                        metrics.nats(true);
                        info!("connected to NATS");
                    }
                    other => debug!(event = %other, "NATS event"),
                }
            }
        })
        .connect(servers.as_str())
        .await?;
    let js = jetstream::new(client.clone());
    // Said once at warning level, then quietly: a NATS without JetStream (`-js`), or a
    // cluster still electing its leader, is worth one clear line, not one a second.
    let started = Instant::now();
    let mut warned = false;
    let (presence, bindings) = loop {
        let why = tokio::select! {
            () = shutdown.begun() => return Ok(()),
            // JetStream may take a while to answer while its cluster elects a leader: each
            // attempt is short, and tried again.
            opened = tokio::time::timeout(KV_TIMEOUT, open_buckets(&js, &mesh, &config)) => match opened {
                Ok(Ok(stores)) => break stores,
                Ok(Err(e)) => {
                    tokio::time::sleep(RETRY).await;
                    e.to_string()
                }
                Err(_) => "no answer from JetStream".to_owned(),
            },
        };
        if !warned && started.elapsed() >= Duration::from_secs(10) {
            warned = true;
            warn!(error = %why, "no JetStream key-value buckets yet (is JetStream on, -js?); remote peers stay out of reach until there are");
        } else {
            debug!(error = %why, "buckets not ready yet");
        }
    };
    claims.set(client.clone(), bindings.clone());
    let releases = actix_rt::spawn(super::release::watch(bindings.clone(), router.clone()));
    info!(mesh = %mesh, router = %me, "federated through NATS");
    let confirm_prefix = credit::confirm_prefix(&mesh, &me);
    let confirms = match client.subscribe(format!("{confirm_prefix}.>")).await {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(error = %e, "no confirmations from other routers: senders to remote peers are not slowed down");
            None
        }
    };
    let connects = client.statistics().connects.load(Ordering::Relaxed);
    let mut driver = Driver {
        mesh: MeshView::new(me.clone(), config.ttl),
        confirm_prefix,
        confirms,
        connects,
        me,
        mesh_name: mesh,
        client,
        presence,
        bindings,
        router,
        view,
        capacity,
        threshold,
        metrics,
        local: HashMap::new(),
        outbound: HashMap::new(),
        // Broadcasts are not confirmed (see `credit`): their window stays empty.
        broadcast: Outbound {
            route: broadcast,
            registered: false,
            window: Window::default(),
        },
    };
    driver.run(&shutdown, config.ttl).await;
    releases.abort();
    Ok(())
}

async fn open_buckets(
    js: &jetstream::Context,
    mesh: &str,
    config: &FederationConfig,
) -> Result<(kv::Store, kv::Store), async_nats::Error> {
    let presence = open(
        js,
        kv::Config {
            bucket: wire::presence_bucket(mesh),
            description: format!("lanmesh mesh {mesh:?}: the names each router serves"),
            history: 1,
            max_age: config.ttl,
            num_replicas: config.replicas,
            ..Default::default()
        },
    )
    .await?;
    let bindings = open(
        js,
        kv::Config {
            bucket: wire::bindings_bucket(mesh),
            description: format!("lanmesh mesh {mesh:?}: the key each name is bound to"),
            history: 1,
            num_replicas: config.replicas,
            ..Default::default()
        },
    )
    .await?;
    Ok((presence, bindings))
}

/// The bucket, made if missing (another router may have made it already, maybe with
/// other settings: then it is used as it is).
async fn open(js: &jetstream::Context, config: kv::Config) -> Result<kv::Store, async_nats::Error> {
    let bucket = config.bucket.clone();
    match js.create_key_value(config).await {
        Ok(store) => Ok(store),
        Err(created) => match js.get_key_value(bucket).await {
            Ok(store) => Ok(store),
            Err(_) => Err(created.into()),
        },
    }
}

impl Driver {
    async fn run(&mut self, shutdown: &Shutdown, ttl: Duration) {
        let mut watch = self.watch().await;
        let broadcasts = self.read_broadcasts().await;
        let own_broadcasts = wire::broadcast_subject(&self.mesh_name, &self.me);
        let mut tick = tokio::time::interval((ttl / 3).max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sweep = tokio::time::interval(SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.sync_local().await;
        loop {
            let wake = {
                let outbound = &mut self.outbound;
                let broadcast = &mut self.broadcast;
                let view = &mut self.view;
                let confirms = &mut self.confirms;
                tokio::select! {
                    () = shutdown.begun() => Wake::Shutdown,
                    changed = view.changed() => match changed {
                        Ok(()) => Wake::Local,
                        Err(_) => Wake::Shutdown,
                    },
                    entry = next_entry(&mut watch) => Wake::Watch(entry),
                    _ = tick.tick() => Wake::Tick,
                    taken = take_forwards(outbound) => Wake::Forwards(taken),
                    taken = take_broadcasts(broadcast) => Wake::Broadcasts(taken),
                    msg = next_confirmation(confirms) => Wake::Confirmed(msg),
                    _ = sweep.tick() => Wake::Sweep,
                }
            };
            match wake {
                Wake::Shutdown => break,
                Wake::Local => self.sync_local().await,
                Wake::Watch(Some(Ok(entry))) => self.on_entry(entry),
                Wake::Watch(other) => {
                    if let Some(Err(e)) = other {
                        debug!(error = %e, "presence watch failed; watching again");
                    }
                    tokio::time::sleep(RETRY).await;
                    watch = self.watch().await;
                }
                Wake::Tick => {
                    self.refresh();
                    let gone = self.mesh.expire(Instant::now());
                    self.apply(gone);
                }
                Wake::Forwards(taken) => {
                    for (dest, forwards) in taken {
                        self.publish(&dest, forwards).await;
                    }
                }
                Wake::Broadcasts(taken) => {
                    super::broadcast::publish(
                        &self.client,
                        &own_broadcasts,
                        &self.broadcast.route,
                        taken,
                        self.threshold,
                        &self.metrics,
                    )
                    .await;
                }
                Wake::Confirmed(Some(msg)) => self.on_confirmed(msg.subject.as_str()),
                Wake::Confirmed(None) => {
                    warn!(
                        "confirmations from other routers ended: senders to remote peers are not slowed down any more"
                    );
                    self.confirms = None;
                    self.release_all();
                }
                Wake::Sweep => self.sweep(),
            }
        }
        if let Some(reader) = broadcasts {
            reader.abort();
        }
        drop(self.broadcast.route.inbox.close());
        self.leave_all().await;
    }

    /// Starts reading the other routers' broadcasts (the client subscribes again by
    /// itself after a reconnect).
    async fn read_broadcasts(&self) -> Option<JoinHandle<()>> {
        let subject = wire::broadcasts_of(&self.mesh_name);
        match self.client.subscribe(subject).await {
            Ok(sub) => Some(actix_rt::spawn(super::broadcast::read(
                sub,
                wire::broadcast_subject(&self.mesh_name, &self.me),
                self.view.clone(),
                self.threshold,
                self.metrics.clone(),
            ))),
            Err(e) => {
                warn!(error = %e, "cannot subscribe to the other routers' broadcasts");
                None
            }
        }
    }

    /// Watches the presence bucket for changes from now on (not its current entries: see
    /// "router restart" in the module docs for why a restarted router learns the mesh
    /// from the others' next refresh).
    async fn watch(&self) -> Option<kv::Watch> {
        match self.presence.watch_all().await {
            Ok(w) => Some(w),
            Err(e) => {
                debug!(error = %e, "cannot watch the presence bucket yet");
                None
            }
        }
    }

    /// A presence entry was put, deleted or purged.
    fn on_entry(&mut self, entry: kv::Entry) {
        let now = Instant::now();
        let change = match entry.operation {
            kv::Operation::Put => match Presence::decode(&entry.key, &entry.value) {
                Ok(p) => self.mesh.on_put(p, now),
                Err(e) => {
                    debug!(key = %entry.key, error = %e, "presence entry ignored");
                    None
                }
            },
            kv::Operation::Delete | kv::Operation::Purge => wire::unescape(&entry.key)
                .and_then(|n| Name::new(&n).ok())
                .and_then(|n| self.mesh.on_delete(&n)),
        };
        self.apply(change.into_iter().collect());
    }

    /// Tells the router what came and went, with a route for each new remote name.
    fn apply(&mut self, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let mut remote = Vec::with_capacity(changes.len());
        for change in changes {
            match change {
                Change::Seen(p) => {
                    let capacity = self.capacity;
                    let route = self
                        .outbound
                        .entry(p.info.name.clone())
                        .or_insert_with(|| Outbound {
                            route: Arc::new(Route {
                                replaced: None,
                                remote: true,
                                pressure: Arc::default(),
                                inbox: Arc::new(Inbox::new(capacity)),
                            }),
                            registered: false,
                            window: Window::default(),
                        })
                        .route
                        .clone();
                    info!(peer = %p.info.name, router = %p.router, "remote peer");
                    remote.push(Remote::Seen {
                        info: p.info,
                        router: p.router,
                        route,
                    });
                }
                Change::Gone(name) => {
                    if let Some(mut ob) = self.outbound.remove(&name) {
                        // Nobody holds back for batches that will not be confirmed.
                        let unconfirmed = ob.window.release_all();
                        ob.route.pressure.taken(unconfirmed, self.threshold);
                        // Senders that still hold the route are refused from now on.
                        let left = ob.route.inbox.close();
                        let view = self.view.borrow().clone();
                        for fwd in left {
                            ob.route.pressure.taken(fwd.bytes, self.threshold);
                            nack_locally(&view, &name, &fwd.frames, NackReason::UnknownPeer);
                        }
                    }
                    info!(peer = %name, "remote peer gone");
                    remote.push(Remote::Gone(name));
                }
            }
        }
        self.metrics.remote_peers(self.outbound.len());
        self.router.do_send(RemoteChanged(remote));
    }

    /// Publishes what local sessions forwarded to remote name `dest`, in batches whose
    /// bytes stay counted in its route's `Pressure` until the holding router confirms
    /// them (see `credit`).
    async fn publish(&mut self, dest: &Name, forwards: Vec<Forward>) {
        let threshold = self.threshold;
        let Some(ob) = self.outbound.get_mut(dest) else {
            return;
        };
        let mut bytes = 0;
        let mut frames = Vec::new();
        for fwd in forwards {
            bytes += fwd.bytes;
            frames.extend(fwd.frames);
        }
        let connected = self.client.connection_state() == async_nats::connection::State::Connected;
        if frames.is_empty() || !connected {
            ob.route.pressure.taken(bytes, threshold);
            if !frames.is_empty() {
                let view = self.view.borrow().clone();
                refuse(&view, dest, frames, "NATS unreachable");
            }
            return;
        }
        self.metrics.nats_frames(frames.len(), 0);
        let subject = wire::subject_for(&self.mesh_name, dest.as_str());
        let batches = wire::encode_batch(&frames, wire::MAX_BATCH);
        let (mut left, last) = (bytes, batches.len().saturating_sub(1));
        let now = Instant::now();
        for (i, batch) in batches.into_iter().enumerate() {
            // Each batch counts for its own bytes, the last for what remains.
            let counted = if i == last {
                left
            } else {
                batch.len().min(left)
            };
            left -= counted;
            let published = if self.confirms.is_some() {
                let n = ob.window.sent(counted, now);
                let reply = credit::reply_subject(&self.confirm_prefix, dest.as_str(), n);
                self.client
                    .publish_with_reply(subject.clone(), reply, batch)
                    .await
            } else {
                ob.route.pressure.taken(counted, threshold);
                self.client.publish(subject.clone(), batch).await
            };
            if let Err(e) = published {
                warn!(peer = %dest, error = %e, "cannot publish to NATS");
                let unconfirmed = ob.window.release_all();
                ob.route.pressure.taken(unconfirmed + left, threshold);
                let view = self.view.borrow().clone();
                refuse(&view, dest, frames, "NATS refused the publish");
                return;
            }
        }
    }

    /// Another router handed batches up to one to its session.
    fn on_confirmed(&mut self, subject: &str) {
        let Some((dest, n)) = credit::parse_reply(&self.confirm_prefix, subject) else {
            debug!(subject, "confirmation not understood");
            return;
        };
        let Some(ob) = Name::new(&dest)
            .ok()
            .and_then(|d| self.outbound.get_mut(&d))
        else {
            return;
        };
        let bytes = ob.window.confirmed(n);
        ob.route.pressure.taken(bytes, self.threshold);
    }

    /// Stops counting batches that will not be confirmed: sent on a connection that was
    /// lost, or waiting longer than [`credit::CONFIRM_WAIT`].
    fn sweep(&mut self) {
        let connects = self.client.statistics().connects.load(Ordering::Relaxed);
        let connected = self.client.connection_state() == async_nats::connection::State::Connected;
        if connects != self.connects || !connected {
            self.connects = connects;
            self.release_all();
            return;
        }
        let now = Instant::now();
        for ob in self.outbound.values_mut() {
            if ob.window.is_waiting() {
                let bytes = ob.window.expire(now);
                ob.route.pressure.taken(bytes, self.threshold);
            }
        }
    }

    fn release_all(&mut self) {
        for ob in self.outbound.values_mut() {
            let bytes = ob.window.release_all();
            ob.route.pressure.taken(bytes, self.threshold);
        }
    }

    /// Starts serving new local members in the mesh, stops serving those that left.
    async fn sync_local(&mut self) {
        let view = self.view.borrow_and_update().clone();
        let now: HashMap<&Name, &PeerInfo> = view.members.iter().map(|p| (&p.name, p)).collect();
        let left: Vec<Name> = self
            .local
            .keys()
            .filter(|n| !now.contains_key(n))
            .cloned()
            .collect();
        for name in left {
            if let Some(l) = self.local.remove(&name) {
                l.reader.abort();
                l.announcer.abort();
                self.forget_presence(&name);
            }
        }
        for (name, info) in now {
            if let Some(l) = self.local.get_mut(name) {
                if l.info != *info {
                    l.info = info.clone();
                    if l.announced.load(Ordering::Acquire) {
                        let info = info.clone();
                        self.put_presence(info);
                    }
                }
                continue;
            }
            let subject = wire::subject_for(&self.mesh_name, name.as_str());
            let sub = match self.client.subscribe(subject).await {
                Ok(s) => s,
                Err(e) => {
                    warn!(peer = %name, error = %e, "cannot subscribe for the peer; the next change tries again");
                    continue;
                }
            };
            let reader = actix_rt::spawn(read_subject(
                sub,
                name.clone(),
                self.view.clone(),
                self.client.clone(),
                self.mesh_name.clone(),
                self.threshold,
                self.metrics.clone(),
            ));
            let announced = Arc::new(AtomicBool::new(false));
            let announcer = actix_rt::spawn(announce(
                self.bindings.clone(),
                self.presence.clone(),
                Presence {
                    router: self.me.clone(),
                    info: info.clone(),
                },
                announced.clone(),
            ));
            self.local.insert(
                name.clone(),
                Local {
                    info: info.clone(),
                    reader,
                    announcer,
                    announced,
                },
            );
        }
    }

    fn put_presence(&self, info: PeerInfo) {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return;
        }
        let store = self.presence.clone();
        let key = wire::escape(info.name.as_str());
        let value = Presence {
            router: self.me.clone(),
            info,
        }
        .encode();
        actix_rt::spawn(async move {
            match tokio::time::timeout(KV_TIMEOUT, store.put(&key, value)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => debug!(key = %key, error = %e, "presence not refreshed"),
                Err(_) => debug!(key = %key, "presence not refreshed in time"),
            }
        });
    }

    /// Removes a leaving member's presence, unless another router holds the name now.
    fn forget_presence(&self, name: &Name) {
        let store = self.presence.clone();
        let key = wire::escape(name.as_str());
        let me = self.me.clone();
        actix_rt::spawn(async move {
            let _ = tokio::time::timeout(KV_TIMEOUT, delete_if_mine(&store, &key, &me)).await;
        });
    }

    /// Refreshes every local member's presence.
    fn refresh(&self) {
        for l in self.local.values() {
            if l.announced.load(Ordering::Acquire) {
                self.put_presence(l.info.clone());
            }
        }
    }

    /// Shutting down: the others drop this router's members now rather than at expiry.
    async fn leave_all(&mut self) {
        let deletes = self.local.drain().map(|(name, l)| {
            l.reader.abort();
            l.announcer.abort();
            let key = wire::escape(name.as_str());
            let (store, me) = (self.presence.clone(), self.me.clone());
            async move { delete_if_mine(&store, &key, &me).await }
        });
        let _ = tokio::time::timeout(KV_TIMEOUT, futures_util::future::join_all(deletes)).await;
        for ob in self.outbound.values() {
            drop(ob.route.inbox.close());
        }
        let _ = self.client.flush().await;
    }
}

/// Binds a new local member's name mesh-wide (it may have been admitted while NATS was
/// out of reach), then puts its presence; retries each while NATS gives no answer that
/// says. A name bound to another key is not announced: the mesh keeps its owner.
async fn announce(
    bindings: kv::Store,
    presence: kv::Store,
    entry: Presence,
    announced: Arc<AtomicBool>,
) {
    let name = entry.info.name.clone();
    loop {
        match tokio::time::timeout(KV_TIMEOUT, claim(&bindings, &name, &entry.info.key)).await {
            Ok(Claimed::Bound) => break,
            Ok(Claimed::Elsewhere(BoundElsewhere { owner })) => {
                let owner = lanmesh_proto::handshake::fingerprint(&owner);
                warn!(peer = %name, %owner, "this name is bound to another key elsewhere in the mesh: not announced");
                return;
            }
            Ok(Claimed::Unsure(why)) => {
                debug!(peer = %name, %why, "name not bound yet; trying again")
            }
            Err(_) => debug!(peer = %name, "no answer from the bindings bucket; trying again"),
        }
        tokio::time::sleep(RETRY).await;
    }
    let key = wire::escape(name.as_str());
    let value = entry.encode();
    loop {
        match tokio::time::timeout(KV_TIMEOUT, presence.put(&key, value.clone())).await {
            Ok(Ok(_)) => break,
            Ok(Err(e)) => debug!(peer = %name, error = %e, "presence not put yet; trying again"),
            Err(_) => debug!(peer = %name, "presence not put in time; trying again"),
        }
        tokio::time::sleep(RETRY).await;
    }
    // A mesh-wide release (see `release`) may have removed the binding between the claim
    // and the presence: bound again, or, if another key took the name meanwhile, given up.
    loop {
        match tokio::time::timeout(KV_TIMEOUT, claim(&bindings, &name, &entry.info.key)).await {
            Ok(Claimed::Bound) => break,
            Ok(Claimed::Elsewhere(_)) => {
                warn!(peer = %name, "this name was released and bound to another key elsewhere in the mesh: not announced");
                let _ = tokio::time::timeout(
                    KV_TIMEOUT,
                    delete_if_mine(&presence, &key, &entry.router),
                )
                .await;
                return;
            }
            _ => debug!(peer = %name, "binding not confirmed yet; trying again"),
        }
        tokio::time::sleep(RETRY).await;
    }
    announced.store(true, Ordering::Release);
    debug!(peer = %name, "announced to the mesh");
}

async fn delete_if_mine(store: &kv::Store, key: &str, me: &str) {
    let Ok(Some(entry)) = store.entry(key).await else {
        return;
    };
    if entry.operation != kv::Operation::Put {
        return;
    }
    let mine = Presence::decode(key, &entry.value).is_ok_and(|p| p.router == me);
    if mine {
        if let Err(e) = store
            .delete_expect_revision(key, Some(entry.revision))
            .await
        {
            debug!(key = %key, error = %e, "presence not removed");
        }
    }
}

async fn next_entry(watch: &mut Option<kv::Watch>) -> Option<Result<kv::Entry, kv::WatcherError>> {
    match watch {
        Some(w) => w.next().await,
        None => {
            tokio::time::sleep(RETRY).await;
            None
        }
    }
}

/// Waits until some remote name's inbox holds forwards, and takes them all.
async fn take_forwards(outbound: &mut HashMap<Name, Outbound>) -> Vec<(Name, Vec<Forward>)> {
    poll_fn(|cx| {
        let mut taken = Vec::new();
        for (name, ob) in outbound.iter_mut() {
            let mut got = Vec::new();
            ob.route.inbox.take(&mut got, cx.waker(), ob.registered);
            ob.registered = true;
            if !got.is_empty() {
                taken.push((name.clone(), got));
            }
        }
        if taken.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(taken)
        }
    })
    .await
}

/// Waits until local members broadcast, and takes it all.
async fn take_broadcasts(ob: &mut Outbound) -> Vec<Forward> {
    poll_fn(|cx| {
        let mut got = Vec::new();
        ob.route.inbox.take(&mut got, cx.waker(), ob.registered);
        ob.registered = true;
        if got.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(got)
        }
    })
    .await
}

/// Waits for the next confirmation, for ever without a subscription.
async fn next_confirmation(
    confirms: &mut Option<async_nats::Subscriber>,
) -> Option<async_nats::Message> {
    match confirms {
        Some(c) => c.next().await,
        None => std::future::pending().await,
    }
}

/// Reads local member `dest`'s subject: delivers to its sessions what other routers send,
/// holding back while its session is congested, and confirms what it handed over.
async fn read_subject(
    mut sub: async_nats::Subscriber,
    dest: Name,
    view: watch::Receiver<Arc<LocalView>>,
    client: async_nats::Client,
    mesh: String,
    threshold: usize,
    metrics: Arc<Metrics>,
) {
    let mut frames = Vec::new();
    let mut replies: Vec<async_nats::Subject> = Vec::new();
    let mut ended = false;
    while !ended {
        let Some(first) = sub.next().await else {
            break;
        };
        // Whatever else has arrived goes with it: one hand-over, one confirmation per
        // sending router, rather than one per NATS message.
        let mut got = 0;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            got += msg.payload.len();
            take_batch(msg, &dest, &mut frames, &mut replies);
            if got >= wire::MAX_BATCH {
                break;
            }
            match sub.next().now_or_never() {
                Some(Some(msg)) => next = Some(msg),
                Some(None) => ended = true,
                None => {}
            }
        }
        metrics.nats_frames(0, frames.len());
        room_for(&view, &dest, threshold).await;
        let snapshot = view.borrow().clone();
        let nacks = deliver(&snapshot, &dest, std::mem::take(&mut frames), threshold);
        if !nacks.is_empty() {
            debug!(peer = %dest, nacks = nacks.len(), first = ?nacks[0].1, "refused frames from NATS");
        }
        // Nacks go back like forwards: one NATS message per sender (and batch size).
        let mut by_sender: Vec<(Name, Vec<Frame>)> = Vec::new();
        for (sender, nack) in nacks {
            match by_sender.iter_mut().find(|(s, _)| *s == sender) {
                Some((_, list)) => list.push(nack),
                None => by_sender.push((sender, vec![nack])),
            }
        }
        for (sender, list) in by_sender {
            let subject = wire::subject_for(&mesh, sender.as_str());
            for batch in wire::encode_batch(&list, wire::MAX_BATCH) {
                let _ = client.publish(subject.clone(), batch).await;
            }
        }
        // The last batch from each sending router confirms all before it.
        replies.reverse();
        let mut confirmed: Vec<&str> = Vec::new();
        for reply in &replies {
            let stream = credit::reply_stream(reply.as_str());
            if !confirmed.contains(&stream) {
                confirmed.push(stream);
                let _ = client.publish(reply.clone(), bytes::Bytes::new()).await;
            }
        }
        replies.clear();
    }
}

/// Adds one NATS message's frames and reply subject.
fn take_batch(
    msg: async_nats::Message,
    dest: &Name,
    frames: &mut Vec<Frame>,
    replies: &mut Vec<async_nats::Subject>,
) {
    match wire::decode_batch(msg.payload) {
        Ok(f) => frames.extend(f),
        Err(e) => debug!(peer = %dest, error = %e, "frames from NATS dropped"),
    }
    // Confirmed even when unreadable: its sender stops counting it either way.
    replies.extend(msg.reply);
}

/// Waits while `dest`'s session is congested, as a local sender would (not for a stuck
/// one), or its inbox is full, but not longer than [`ROOM_WAIT`].
async fn room_for(view: &watch::Receiver<Arc<LocalView>>, dest: &Name, threshold: usize) {
    use lanmesh_core::session::Routes as _;
    let route = view
        .borrow()
        .snapshot
        .route(dest.as_str())
        .filter(|r| !r.remote)
        .cloned();
    let Some(route) = route else {
        return;
    };
    let room = async {
        loop {
            if route.pressure.holds_back(threshold) {
                poll_fn(|cx| {
                    if route.pressure.may_continue(threshold, cx.waker()) {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
            } else if route.inbox.is_full() {
                // Nothing wakes a waiter when an inbox has room again: its session empties
                // it whole at its next poll, so look again very soon.
                tokio::time::sleep(Duration::from_millis(1)).await;
            } else {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(ROOM_WAIT, room).await;
}

/// Frames to remote `dest` that cannot cross now: acked-stream messages are left to their
/// senders' resend; the rest is `Nack`ed to its local senders (`UnknownPeer`).
fn refuse(view: &LocalView, dest: &Name, frames: Vec<Frame>, why: &str) {
    let (resent, refused): (Vec<Frame>, Vec<Frame>) =
        frames.into_iter().partition(wire::resent_by_sender);
    debug!(peer = %dest, resent = resent.len(), refused = refused.len(), why, "frames that cannot cross now");
    nack_locally(view, dest, &refused, NackReason::UnknownPeer);
}

/// Hands frames from NATS for local member `dest` to its sessions, grouped per session in
/// the order they came; returns the `Nack`s for senders whose messages found no room or
/// no session.
fn deliver(
    view: &LocalView,
    dest: &Name,
    frames: Vec<Frame>,
    threshold: usize,
) -> Vec<(Name, Frame)> {
    use lanmesh_core::session::Routes as _;
    let mut nacks = Vec::new();
    let mut group: Vec<Frame> = Vec::new();
    let mut group_route: Option<Arc<Route>> = None;
    let flush = |route: Option<Arc<Route>>, group: Vec<Frame>, nacks: &mut Vec<(Name, Frame)>| {
        let Some(route) = route else { return };
        if group.is_empty() {
            return;
        }
        let fwd = Forward::new(group);
        route.pressure.forwarded(fwd.bytes);
        if let Err(refused) = route.inbox.push(fwd) {
            let (reason, fwd) = match refused {
                Refused::Full(f) => (NackReason::Overloaded, f),
                Refused::Closed(f) => (NackReason::UnknownPeer, f),
            };
            route.pressure.taken(fwd.bytes, threshold);
            nacks.extend(
                fwd.frames
                    .iter()
                    .filter_map(|f| wire::nack_for(dest, f, reason)),
            );
        }
    };
    for frame in frames {
        let route = view
            .snapshot
            .route_slot(dest.as_str(), wire::slot_for(&frame))
            .filter(|r| !r.remote)
            .cloned();
        let Some(route) = route else {
            nacks.extend(wire::nack_for(dest, &frame, NackReason::UnknownPeer));
            continue;
        };
        let same = group_route.as_ref().is_some_and(|g| Arc::ptr_eq(g, &route));
        if !same {
            flush(
                group_route.replace(route),
                std::mem::take(&mut group),
                &mut nacks,
            );
        }
        group.push(frame);
    }
    flush(group_route, group, &mut nacks);
    nacks
}

/// Tells local senders their messages to remote `dest` were not delivered.
fn nack_locally(view: &LocalView, dest: &Name, frames: &[Frame], reason: NackReason) {
    use lanmesh_core::session::Routes as _;
    for f in frames {
        let Some((sender, nack)) = wire::nack_for(dest, f, reason) else {
            continue;
        };
        let Frame::Nack { id, .. } = &nack else {
            continue;
        };
        if let Some(route) = view
            .snapshot
            .route_slot(sender.as_str(), slot_of(*id))
            .filter(|r| !r.remote)
        {
            route.inbox.push_always(Forward::untracked(vec![nack]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::RoutingTable;
    use bytes::Bytes;
    use lanmesh_proto::frame::{Message, flags};
    use lanmesh_proto::handshake::SLOT_SHIFT;

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn route(remote: bool, capacity: usize) -> Arc<Route> {
        Arc::new(Route {
            replaced: None,
            remote,
            pressure: Arc::default(),
            inbox: Arc::new(Inbox::new(capacity)),
        })
    }

    fn deliver_from(from: &str, id: u64, flags: u8, prev: Option<u64>) -> Frame {
        Frame::Deliver(Message {
            peer: name(from),
            id,
            flags,
            chunk: None,
            prev,
            payload: Bytes::from_static(b"x"),
        })
    }

    fn frames(r: &Route) -> Vec<Frame> {
        r.inbox.close().into_iter().flat_map(|f| f.frames).collect()
    }

    #[test]
    fn frames_from_nats_reach_the_right_session_or_are_nacked_to_their_sender() {
        let bob = route(false, 8);
        let bob_slot_3 = route(false, 8);
        let carol_remote = route(true, 8);
        let full = route(false, 0);
        let mut table = RoutingTable::default();
        table.routes.insert(name("bob"), bob.clone());
        table.routes.insert(name("carol"), carol_remote);
        table.routes.insert(name("dan"), full.clone());
        table.senders.insert((name("bob"), 3), bob_slot_3.clone());
        let view = LocalView {
            snapshot: Arc::new(table),
            members: Vec::new(),
        };
        let slot_3 = 3u64 << SLOT_SHIFT;
        let sent = vec![
            deliver_from("alice", 1, 0, None),
            // A reply to what bob's extra session (slot 3) asked.
            deliver_from("alice", 2, flags::REPLY, Some(slot_3 + 7)),
            Frame::Ack {
                peer: name("alice"),
                id: slot_3 + 8,
            },
            deliver_from("alice", 3, 0, None),
        ];
        let nacks = deliver(&view, &name("bob"), sent.clone(), 1 << 20);
        assert!(nacks.is_empty(), "{nacks:?}");
        assert_eq!(frames(&bob), vec![sent[0].clone(), sent[3].clone()]);
        assert_eq!(frames(&bob_slot_3), vec![sent[1].clone(), sent[2].clone()]);

        // A name that is not local here (remote, or unknown) is not bounced back out.
        for dest in ["carol", "nobody"] {
            let nacks = deliver(
                &view,
                &name(dest),
                vec![deliver_from("alice", 4, 0, None)],
                1,
            );
            assert_eq!(nacks.len(), 1);
            assert_eq!(nacks[0].0, name("alice"));
            assert!(matches!(
                nacks[0].1,
                Frame::Nack {
                    id: 4,
                    reason: NackReason::UnknownPeer,
                    ..
                }
            ));
        }
        // A full inbox refuses with Overloaded; broadcasts are dropped without a nack.
        let nacks = deliver(
            &view,
            &name("dan"),
            vec![
                deliver_from("alice", 5, 0, None),
                deliver_from("alice", 6, flags::BROADCAST, None),
            ],
            1,
        );
        assert_eq!(nacks.len(), 1);
        assert!(matches!(
            nacks[0].1,
            Frame::Nack {
                id: 5,
                reason: NackReason::Overloaded,
                ..
            }
        ));
    }

    #[test]
    fn undeliverable_sends_to_a_remote_name_are_nacked_to_the_local_sender() {
        let alice = route(false, 8);
        let mut table = RoutingTable::default();
        table.routes.insert(name("alice"), alice.clone());
        let view = LocalView {
            snapshot: Arc::new(table),
            members: Vec::new(),
        };
        nack_locally(
            &view,
            &name("bob"),
            &[
                deliver_from("alice", 9, 0, None),
                deliver_from("alice", 10, flags::BROADCAST, None),
            ],
            NackReason::UnknownPeer,
        );
        let got = frames(&alice);
        assert_eq!(got.len(), 1);
        assert!(
            matches!(&got[0], Frame::Nack { peer, id: 9, reason: NackReason::UnknownPeer } if peer == &name("bob"))
        );
    }
}

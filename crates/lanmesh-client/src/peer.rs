//! The async handle to a peer, its builder, and how it is started.
//!
//! The handle calls the peer core directly, under its lock (see [`crate::endpoint`]); the
//! `PeerActor` driving the socket needs an actix arbiter. Inside one (an actix-rt
//! runtime) it runs there; anywhere else the peer gets a small thread of its own with an
//! actix system, so the handle works from any async runtime and from the blocking facade
//! alike.

use std::future::poll_fn;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use lanmesh_core::{ClientError, CloseReport, Message, Status};
use lanmesh_proto::frame::flags;
use lanmesh_proto::{Destination, Identity, Name, PeerInfo};
use tokio::sync::oneshot;

use crate::config::PeerConfig;
use crate::dial::{Origin, dial};
use crate::driver::PeerActor;
use crate::endpoint::{Endpoint, Locked, RequestHandler, SEND_QUEUE_BYTES};
use crate::files::{FileSent, Progress};
use crate::last_routers::LastRouters;

/// A connected peer. Cloning gives another handle to the same connection.
#[derive(Clone)]
pub struct Peer {
    pub(crate) endpoint: Arc<Endpoint>,
    name: Option<Name>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Peer`]: every setter changes one field of the [`PeerConfig`] it wraps.
#[derive(Debug, Clone)]
pub struct PeerBuilder {
    /// The name as given, validated when the configuration is made.
    name: Option<String>,
    config: PeerConfig,
}

impl PeerBuilder {
    /// The router's address, `host:port` (or `ws://host:port/mesh`). Without it, a router
    /// of the mesh is found on the LAN by mDNS.
    pub fn router(mut self, addr: impl Into<String>) -> Self {
        self.config.router = Some(addr.into());
        self
    }

    /// The mesh to join (default `lanmesh`).
    pub fn mesh(mut self, mesh: impl Into<String>) -> Self {
        self.config.mesh = mesh.into();
        self
    }

    /// The mesh key, when the mesh has one.
    pub fn mesh_key(mut self, key: [u8; 32]) -> Self {
        self.config.mesh_key = Some(key);
        self
    }

    /// Use this static key instead of a fresh one.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.config.identity = Some(identity);
        self
    }

    /// Offer unencrypted records; used only when the router allows them too.
    pub fn plaintext(mut self, allow: bool) -> Self {
        self.config.allow_plaintext = allow;
        self
    }

    /// The record cipher to prefer (default ChaCha20-Poly1305). `Cipher::Aes256Gcm`
    /// offers AES-256-GCM first, with ChaCha20-Poly1305 as the fallback: much faster on
    /// CPUs with AES instructions.
    pub fn cipher(mut self, cipher: lanmesh_proto::Cipher) -> Self {
        self.config.cipher = cipher;
        self
    }

    /// Offer Snappy compression (default on).
    pub fn compression(mut self, on: bool) -> Self {
        self.config.compression = on;
        self
    }

    /// Protocol limits (default: [`lanmesh_proto::Limits::default`]).
    pub fn limits(mut self, limits: lanmesh_proto::Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// How long `send_acked` waits (default 10 s).
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.config.ack_timeout = timeout;
        self
    }

    /// How long an acked message waits for its ack before it is sent again (default 1 s).
    pub fn resend_after(mut self, after: Duration) -> Self {
        self.config.resend_after = after;
        self
    }

    /// Pins router keys per mesh in `pins.path` (trust on first use); a router with
    /// another key is refused unless `pins.trust_new`.
    pub fn router_pins(mut self, pins: crate::RouterPins) -> Self {
        self.config.router_pins = Some(pins);
        self
    }

    /// Discover on this network interface only.
    pub fn interface(mut self, name: impl Into<String>) -> Self {
        self.config.interface = Some(name.into());
        self
    }

    /// How long discovery waits for a router of the mesh (default 3 s).
    pub fn discovery_timeout(mut self, timeout: Duration) -> Self {
        self.config.discovery_timeout = timeout;
        self
    }

    /// Dial again when the connection is lost (default on).
    pub fn reconnect(mut self, on: bool) -> Self {
        self.config.reconnect = on;
        self
    }

    /// Messages held for the application before reading pauses (default 65 536).
    pub fn inbox_capacity(mut self, n: usize) -> Self {
        self.config.inbox_capacity = n;
        self
    }

    /// Save incoming files in `dir` (which must exist). Without it, offers of files are
    /// refused and their senders get an error saying so.
    pub fn save_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.save_dir = Some(dir.into());
        self
    }

    /// Unacknowledged bytes a file transfer keeps in flight (default 4 MiB).
    pub fn blob_window(mut self, bytes: u32) -> Self {
        self.config.blob_window = bytes;
        self
    }

    /// Refuse incoming files larger than `bytes` (default: no limit).
    pub fn max_file_size(mut self, bytes: u64) -> Self {
        self.config.max_file_size = Some(bytes);
        self
    }

    /// Join as an extra session that only sends, beside a process of the same key that
    /// receives under the same name (see [`PeerConfig::send_only`]).
    pub fn send_only(mut self, on: bool) -> Self {
        self.config.send_only = on;
        self
    }

    /// Direct links to the other native peers of the mesh (default on; see
    /// [`PeerConfig::direct`]).
    pub fn direct(mut self, on: bool) -> Self {
        self.config.direct = on;
        self
    }

    /// The TCP port to take direct links on (default 0: any free one).
    pub fn direct_port(mut self, port: u16) -> Self {
        self.config.direct_port = port;
        self
    }

    /// The full configuration this builder describes (the name validated, a key made
    /// unless one was given).
    pub fn config(&self) -> Result<PeerConfig, ClientError> {
        let mut config = self.config.clone();
        config.name = self
            .name
            .as_deref()
            .map(Name::new)
            .transpose()
            .map_err(|e| ClientError::invalid(&e))?;
        if config.identity.is_none() {
            config.identity = Some(Identity::generate().map_err(ClientError::Handshake)?);
        }
        Ok(config)
    }

    /// Connects, handshakes and joins; returns once the router has welcomed us.
    pub async fn connect(self) -> Result<Peer, ClientError> {
        Peer::connect(self.config()?).await
    }
}

impl Peer {
    /// Starts building a peer that joins under `name`.
    pub fn builder(name: impl Into<String>) -> PeerBuilder {
        PeerBuilder {
            name: Some(name.into()),
            config: PeerConfig::defaults(None, None),
        }
    }

    /// Starts building an observer: a connection without a name that can only list peers.
    pub fn observer() -> PeerBuilder {
        PeerBuilder {
            name: None,
            config: PeerConfig::defaults(None, None),
        }
    }

    /// Connects with a full configuration.
    ///
    /// When the first connection went to the router remembered for the mesh and did not
    /// end in a welcome (another router holds the address now, or it refused us), that
    /// router is forgotten and the peer connects once more, by discovery.
    pub async fn connect(config: PeerConfig) -> Result<Peer, ClientError> {
        match Self::connect_once(config.clone()).await {
            Err((e, Some(Origin::Remembered { .. }))) => {
                tracing::debug!(error = %e, "the remembered router did not take us; discovering");
                if let Some(pins) = &config.router_pins {
                    if let Err(e) = LastRouters::beside(pins).forget(&config.mesh) {
                        tracing::debug!(error = %e, "could not forget the remembered router");
                    }
                }
                Self::connect_once(config).await.map_err(|(e, _)| e)
            }
            done => done.map_err(|(e, _)| e),
        }
    }

    /// One attempt; a failure says how its router was found, when it got that far.
    async fn connect_once(config: PeerConfig) -> Result<Peer, (ClientError, Option<Origin>)> {
        let name = config.name.clone();
        let identity = match &config.identity {
            Some(id) => Ok(id.clone()),
            None => Identity::generate().map_err(ClientError::Handshake),
        };
        let identity = identity.map_err(|e| (e, None))?;
        let mut core_config = config.core(
            identity,
            new_resume_token(),
            random_slot(),
            random_incarnation(),
        );
        // The port other peers dial for a direct link; without one this peer still dials.
        let listener = if config.uses_links() {
            match crate::links::listen(config.direct_port) {
                Ok(l) => {
                    core_config.direct_port = l.local_addr().map_or(0, |a| a.port());
                    Some(l)
                }
                Err(e) => {
                    tracing::warn!(port = config.direct_port, error = %e, "cannot take direct links");
                    None
                }
            }
        } else {
            None
        };
        let core = lanmesh_core::peer::PeerCore::new(core_config);
        let endpoint = Arc::new(Endpoint::new(core, config.inbox_capacity));
        let (tx, rx) = oneshot::channel();
        endpoint.lock().on_ready(tx);
        let in_arbiter =
            actix_rt::Arbiter::try_current().is_some() && actix_rt::System::try_current().is_some();
        let config = Arc::new(config);
        let (started_tx, started_rx) = oneshot::channel();
        if in_arbiter {
            actix_rt::spawn(start_actor(
                config,
                endpoint.clone(),
                listener,
                started_tx,
                false,
            ));
        } else {
            let (config, endpoint) = (config.clone(), endpoint.clone());
            std::thread::Builder::new()
                .name("lanmesh-peer".into())
                .spawn(move || {
                    let system = actix_rt::System::new();
                    system.block_on(start_actor(config, endpoint, listener, started_tx, true));
                    let _ = system.run();
                })
                .map_err(|e| {
                    let e = ClientError::Connect {
                        addr: String::new(),
                        detail: format!("cannot start the peer's thread: {e}"),
                    };
                    (e, None)
                })?;
        }
        let origin = started_rx
            .await
            .map_err(|_| (ClientError::disconnected("peer runtime ended"), None))?
            .map_err(|e| (e, None))?;
        rx.await
            .map_err(|_| ClientError::ClosedDuringHandshake)
            .and_then(|r| r)
            .map_err(|e| (e, Some(origin)))?;
        // The core reports the welcome, then the status it brings, in one unlock whose
        // first event already woke us: wait for the second, so that `status()` says
        // `Connected` as soon as `connect` returns.
        let _ = endpoint
            .status()
            .wait_for(|s| !matches!(s, Status::Connecting))
            .await;
        Ok(Peer { endpoint, name })
    }

    /// This peer's name (`None` for an observer).
    pub fn name(&self) -> Option<&Name> {
        self.name.as_ref()
    }

    fn lock(&self) -> Locked<'_> {
        self.endpoint.lock()
    }

    /// Waits for room in the send queue, then runs `f` on the locked core.
    /// Runs `f` once the way to `to` (`None`: the router) has room: a sender waits while
    /// [`SEND_QUEUE_BYTES`] are queued there, on the router connection or on `to`'s direct
    /// link, so a linked peer that stops reading holds up only what goes to it.
    async fn with_room<T>(&self, to: Option<&str>, mut f: impl FnMut(&mut Locked<'_>) -> T) -> T {
        poll_fn(|cx| {
            let mut st = self.lock();
            if !st.core.has_room(to, SEND_QUEUE_BYTES) && !st.core.is_closed() {
                st.park_sender(cx.waker());
                return Poll::Pending;
            }
            Poll::Ready(f(&mut st))
        })
        .await
    }

    async fn send_plain(
        &self,
        to: Option<&str>,
        data: Bytes,
        bits: u8,
    ) -> Result<u64, ClientError> {
        let mut data = Some(data);
        self.with_room(to, |st| {
            let dest = match to {
                Some(to) => Destination::Peer(st.core.name_for(to)?),
                None => Destination::Everyone,
            };
            st.core.send(&dest, data.take().unwrap_or_default(), bits)
        })
        .await
    }

    /// Sends bytes to `to`, at most once. Returns the message id once it is queued; if
    /// the router cannot deliver it, [`Peer::close`] reports it.
    pub async fn send(&self, to: &str, data: impl Into<Bytes>) -> Result<u64, ClientError> {
        self.send_plain(Some(to), data.into(), 0).await
    }

    /// Sends text to `to` (browsers receive it as a string).
    pub async fn send_text(&self, to: &str, text: &str) -> Result<u64, ClientError> {
        let data = Bytes::copy_from_slice(text.as_bytes());
        self.send_plain(Some(to), data, flags::TEXT).await
    }

    /// Sends and waits until the recipient's client has queued the message. Fails with
    /// `UnknownPeer`, `Overloaded` or `AckTimeout`.
    pub async fn send_acked(&self, to: &str, data: impl Into<Bytes>) -> Result<u64, ClientError> {
        self.queue_acked_flags(to, data.into(), 0).await?.await
    }

    /// [`Peer::send_acked`] for text.
    pub async fn send_text_acked(&self, to: &str, text: &str) -> Result<u64, ClientError> {
        let data = Bytes::copy_from_slice(text.as_bytes());
        self.queue_acked_flags(to, data, flags::TEXT).await?.await
    }

    /// Queues an acked message and returns without waiting for the ack: the returned
    /// [`Acked`] resolves when it arrives. Messages queued one after the other reach the
    /// recipient in that order, exactly once, even across reconnects — this is how to
    /// keep many acked messages in flight.
    pub async fn queue_acked(
        &self,
        to: &str,
        data: impl Into<Bytes>,
    ) -> Result<Acked, ClientError> {
        self.queue_acked_flags(to, data.into(), 0).await
    }

    /// [`Peer::queue_acked`] for text (browsers receive it as a string).
    pub async fn queue_text_acked(&self, to: &str, text: &str) -> Result<Acked, ClientError> {
        let data = Bytes::copy_from_slice(text.as_bytes());
        self.queue_acked_flags(to, data, flags::TEXT).await
    }

    async fn queue_acked_flags(
        &self,
        to: &str,
        data: Bytes,
        bits: u8,
    ) -> Result<Acked, ClientError> {
        let mut data = Some(data);
        let now = self.endpoint.now();
        self.with_room(Some(to), |st| {
            let to = st.core.name_for(to)?;
            let id = st
                .core
                .send_acked(&to, data.take().unwrap_or_default(), bits, now)?;
            // Registered before the lock is let go: even the quickest ack finds it.
            let (tx, ack) = oneshot::channel();
            st.wait_ack(id, tx);
            Ok(Acked { id, ack })
        })
        .await
    }

    /// Sends bytes to every other peer.
    pub async fn broadcast(&self, data: impl Into<Bytes>) -> Result<u64, ClientError> {
        self.send_plain(None, data.into(), 0).await
    }

    /// Sends text to every other peer.
    pub async fn broadcast_text(&self, text: &str) -> Result<u64, ClientError> {
        let data = Bytes::copy_from_slice(text.as_bytes());
        self.send_plain(None, data, flags::TEXT).await
    }

    /// Sends `data` to `to` as a request and waits up to `timeout` for the reply (whose
    /// `data` is the answer). Fails with `UnknownPeer`, `NoResponder` (the peer answers no
    /// requests) or `RequestTimeout` — never hangs.
    pub async fn request(
        &self,
        to: &str,
        data: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Message, ClientError> {
        self.request_flags(to, data.into(), 0, timeout).await
    }

    /// [`Peer::request`] with text (the responder's [`Message::text`] gives it back).
    pub async fn request_text(
        &self,
        to: &str,
        text: &str,
        timeout: Duration,
    ) -> Result<Message, ClientError> {
        let data = Bytes::copy_from_slice(text.as_bytes());
        self.request_flags(to, data, flags::TEXT, timeout).await
    }

    async fn request_flags(
        &self,
        to: &str,
        data: Bytes,
        bits: u8,
        timeout: Duration,
    ) -> Result<Message, ClientError> {
        let mut data = Some(data);
        let now = self.endpoint.now();
        let reply = self
            .with_room(Some(to), |st| {
                let to = st.core.name_for(to)?;
                let id =
                    st.core
                        .request(&to, data.take().unwrap_or_default(), bits, timeout, now)?;
                let (tx, rx) = oneshot::channel();
                st.wait_reply(id, tx);
                Ok::<_, ClientError>(rx)
            })
            .await?;
        reply.await.map_err(|_| {
            ClientError::disconnected("connection closed while waiting for the reply")
        })?
    }

    /// Answers every request that reaches this peer with `handler(request)`. The handler
    /// runs on the peer's driver: keep it quick. Without one, requesters get
    /// `NoResponder`.
    pub async fn respond(
        &self,
        handler: impl Fn(&Message) -> Bytes + Send + Sync + 'static,
    ) -> Result<(), ClientError> {
        let handler: RequestHandler = Arc::new(handler);
        let mut st = self.lock();
        st.handler = Some(handler);
        st.core.set_answers_requests(true);
        Ok(())
    }

    /// Hands every request that no [`Peer::respond`] handler answers to the returned
    /// receiver, apart from the inbox's messages, for the application to answer with
    /// [`Peer::reply`] or [`Peer::decline`] from any task or thread. At most `capacity`
    /// requests wait in it; a request beyond that, or after the receiver is dropped, is
    /// declined (`NoResponder`). A later call replaces the receiver; see also
    /// [`Peer::queue_requests`] to have them in the inbox instead.
    pub fn request_queue(&self, capacity: usize) -> tokio::sync::mpsc::Receiver<Message> {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        let mut st = self.lock();
        st.request_queue = Some(tx);
        st.core.set_answers_requests(true);
        rx
    }

    /// Stops answering requests: the [`Peer::respond`] handler and the
    /// [`Peer::request_queue`] are let go (requests queued in the inbox stay on).
    pub async fn stop_responding(&self) -> Result<(), ClientError> {
        let mut st = self.lock();
        st.handler = None;
        st.request_queue = None;
        let answers = st.answers_requests();
        st.core.set_answers_requests(answers);
        Ok(())
    }

    /// With `true`, requests that no [`Peer::respond`] handler answers are put in the
    /// inbox ([`Message::is_request`]) for the application to answer with [`Peer::reply`]
    /// or [`Peer::decline`] — from any task, taking as long as the requester's timeout
    /// allows. With `false` (the default), such requests get `NoResponder` at once.
    pub fn queue_requests(&self, on: bool) {
        let mut st = self.lock();
        st.queue_requests = on;
        let answers = st.answers_requests();
        st.core.set_answers_requests(answers);
    }

    /// Answers `request` (taken from the inbox) with `data`, marked as text when it is
    /// UTF-8 (so `request_text` on the other side reads it). Returns the reply's id.
    pub async fn reply(
        &self,
        request: &Message,
        data: impl Into<Bytes>,
    ) -> Result<u64, ClientError> {
        let data: Bytes = data.into();
        let text = is_text(&data);
        self.reply_as(request, data, text).await
    }

    /// Answers `request` with `data` as bytes, never marked as text even when it is
    /// UTF-8: for a responder whose answers are binary. Returns the reply's id.
    pub async fn reply_bytes(
        &self,
        request: &Message,
        data: impl Into<Bytes>,
    ) -> Result<u64, ClientError> {
        self.reply_as(request, data.into(), false).await
    }

    async fn reply_as(
        &self,
        request: &Message,
        data: Bytes,
        text: bool,
    ) -> Result<u64, ClientError> {
        self.with_room(Some(request.from.as_str()), |st| {
            st.core.reply(&request.from, request.id, &data, text)
        })
        .await
    }

    /// Tells the sender of `request` that this peer has no answer: its `request` call
    /// fails with `NoResponder` at once.
    pub async fn decline(&self, request: &Message) -> Result<(), ClientError> {
        self.lock().core.decline(&request.from, request.id)
    }

    /// Sends any `serde` value as JSON text (the receiver uses [`Message::json`]).
    pub async fn send_json<T: serde::Serialize + ?Sized>(
        &self,
        to: &str,
        value: &T,
    ) -> Result<u64, ClientError> {
        let text = serde_json::to_string(value).map_err(|e| ClientError::Json(e.to_string()))?;
        self.send_text(to, &text).await
    }

    /// Sends the file at `path` to `to`, streaming it from disk, and returns once the
    /// recipient has the whole file on its disk (its `recv` then yields a message whose
    /// [`Message::file`] says where). Fails with `UnknownPeer`, `FileRefused` (the
    /// recipient has no save directory, or the file is too large for it), `FileFailed`
    /// (aborted, stalled, broken) or `Disconnected` — and the recipient then deletes what
    /// it had received. A connection to the router lost and made again (by either end)
    /// only pauses the transfer; a router away past the stall deadline (30 s) ends it.
    /// Files of any size: the message size limit does not apply.
    pub async fn send_file(
        &self,
        to: &str,
        path: impl AsRef<Path>,
    ) -> Result<FileSent, ClientError> {
        self.send_file_with_progress(to, path, |_| {}).await
    }

    /// [`Peer::send_file`], calling `progress` as chunks go out and acknowledgements come
    /// back (often: throttle any drawing).
    pub async fn send_file_with_progress(
        &self,
        to: &str,
        path: impl AsRef<Path>,
        mut progress: impl FnMut(Progress) + Send,
    ) -> Result<FileSent, ClientError> {
        crate::files::send(&self.endpoint, to, path.as_ref(), None, &mut progress).await
    }

    /// [`Peer::send_file_with_progress`], offering the file under `name` instead of its
    /// own file name (the recipient still keeps only a sanitized last path component).
    pub async fn send_file_as(
        &self,
        to: &str,
        path: impl AsRef<Path>,
        name: &str,
        mut progress: impl FnMut(Progress) + Send,
    ) -> Result<FileSent, ClientError> {
        crate::files::send(&self.endpoint, to, path.as_ref(), Some(name), &mut progress).await
    }

    /// The next message, waiting for one. Fails once the connection is gone and every
    /// message that arrived before has been taken.
    pub async fn recv(&self) -> Result<Message, ClientError> {
        self.endpoint
            .inbox
            .next()
            .await
            .map_err(ClientError::disconnected)
    }

    /// Like [`Peer::recv`], giving up after `timeout` with `Ok(None)`.
    pub async fn recv_timeout(&self, timeout: Duration) -> Result<Option<Message>, ClientError> {
        match tokio::time::timeout(timeout, self.recv()).await {
            Ok(r) => r.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Up to `n` waiting messages, oldest first, without waiting (UltraSockets' `get`).
    pub fn get(&self, n: usize) -> Vec<Message> {
        self.endpoint.inbox.take(n)
    }

    /// Every waiting message.
    pub fn get_all(&self) -> Vec<Message> {
        self.endpoint.inbox.take(usize::MAX)
    }

    /// Messages waiting in the inbox.
    pub fn pending(&self) -> usize {
        self.endpoint.inbox.len()
    }

    /// Current members of the mesh (this peer included), by name.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.lock().core.peers().cloned().collect()
    }

    /// Whether messages to `name` go over a direct link now (else through the router).
    pub fn is_direct(&self, name: &str) -> bool {
        self.lock().core.is_direct(name)
    }

    /// How the router stands in a federated mesh (its name among the routers, and whether
    /// it is connected to NATS), as it said at this connection's handshake. Observers
    /// (a peer built without a name, as `lanmesh peers` is) ask; `None` for a named peer,
    /// or a router that predates the question.
    pub fn router_status(&self) -> Option<lanmesh_proto::RouterStatus> {
        self.lock().core.router_status().cloned()
    }

    /// Stops taking messages from the router; they wait there (up to its budget, after
    /// which senders get `Overloaded`). Messages already in the inbox stay readable.
    pub fn pause(&self) {
        self.endpoint.inbox.set_paused(true);
    }

    /// Resumes taking messages after [`Peer::pause`].
    pub fn resume(&self) {
        self.endpoint.inbox.set_paused(false);
    }

    /// Where the connection stands now.
    pub fn status(&self) -> Status {
        self.endpoint.status().borrow().clone()
    }

    /// A receiver that sees every status change (connected, reconnecting, closed).
    pub fn watch_status(&self) -> tokio::sync::watch::Receiver<Status> {
        self.endpoint.status()
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.lock().core.is_closed()
    }

    /// Leaves the mesh gracefully: everything sent before is handled by the router
    /// first, and the report lists messages it could not deliver.
    pub async fn close(&self) -> CloseReport {
        let (tx, rx) = oneshot::channel();
        {
            let now = self.endpoint.now();
            let mut st = self.lock();
            st.on_closed(tx);
            st.core.close(now);
        }
        rx.await.unwrap_or_default()
    }

    /// Drops the connection at once (UltraSockets' `terminate`).
    pub fn terminate(&self) {
        self.lock().core.terminate();
    }
}

async fn start_actor(
    config: Arc<PeerConfig>,
    endpoint: Arc<Endpoint>,
    listener: Option<std::net::TcpListener>,
    started: oneshot::Sender<Result<Origin, ClientError>>,
    owns_system: bool,
) {
    let dialed = match dial(&config).await {
        Ok(d) => d,
        Err(e) => {
            let _ = started.send(Err(e));
            if owns_system {
                actix_rt::System::current().stop();
            }
            return;
        }
    };
    let now = endpoint.now();
    if let Err(e) = endpoint.lock().core.connect(&dialed.addr, now) {
        let _ = started.send(Err(e));
        if owns_system {
            actix_rt::System::current().stop();
        }
        return;
    }
    let origin = dialed.origin;
    let actor = PeerActor::new(endpoint, config, dialed, listener, owns_system);
    lanmesh_actix::same_poll::start(actor);
    let _ = started.send(Ok(origin));
}

/// A random non-zero number naming this process to the others across its reconnects.
fn random_incarnation() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_be_bytes(b).max(1)
}

/// A random non-zero id slot for a send-only session.
fn random_slot() -> u32 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    (u32::from_be_bytes(b) & lanmesh_proto::handshake::MAX_SLOT).max(1)
}

/// A random token naming this peer's session across reconnects.
fn new_resume_token() -> Bytes {
    let mut token = [0u8; 16];
    // Without randomness the router cannot tell a resume from a restart; an empty token
    // makes every reconnect count as a new session, which is safe.
    match getrandom::fill(&mut token) {
        Ok(()) => Bytes::copy_from_slice(&token),
        Err(_) => Bytes::new(),
    }
}

/// An acked message on its way: resolves to its id when the recipient has it.
#[derive(Debug)]
#[must_use = "the ack is only observed by awaiting it"]
pub struct Acked {
    id: u64,
    ack: oneshot::Receiver<Result<(), ClientError>>,
}

impl Acked {
    /// The message id.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl std::future::Future for Acked {
    type Output = Result<u64, ClientError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Self::Output> {
        let id = self.id;
        std::pin::Pin::new(&mut self.ack).poll(cx).map(|r| match r {
            Ok(Ok(())) => Ok(id),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ClientError::disconnected(
                "connection closed while waiting for the ack",
            )),
        })
    }
}

/// A reply from a handler or [`Peer::reply`] is marked as text when it is UTF-8.
pub(crate) fn is_text(data: &[u8]) -> bool {
    std::str::from_utf8(data).is_ok()
}

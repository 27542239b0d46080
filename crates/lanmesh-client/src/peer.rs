//! The async handle to a peer, and how it is started.
//!
//! The `PeerActor` needs an actix arbiter. Inside one (an actix-rt runtime) it runs there;
//! anywhere else the peer gets a small thread of its own with an actix system, so the
//! handle works from any async runtime and from the blocking facade alike.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use bytes::Bytes;
use lanmesh_actix::Pushed;
use lanmesh_proto::frame::flags;
use lanmesh_proto::message::probed_message_frames;
use lanmesh_proto::{Destination, Frame, Identity, Name, PeerInfo};
use tokio::sync::oneshot;

use crate::actor::{
    Close, CloseReport, PeerActor, RequestHandler, SendData, SetHandler, Terminate,
};
use crate::blob::{BlobConfig, Blobs, FileSent, Progress};
use crate::config::PeerConfig;
use crate::dial::dial;
use crate::error::ClientError;
use crate::shared::{Message, Shared, Status};

/// A connected peer. Cloning gives another handle to the same connection.
#[derive(Clone)]
pub struct Peer {
    pub(crate) actor: Addr<PeerActor>,
    pub(crate) shared: Arc<Shared>,
    name: Option<Name>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Peer`].
#[derive(Debug, Clone)]
pub struct PeerBuilder {
    name: Option<String>,
    router: Option<String>,
    mesh: String,
    mesh_key: Option<[u8; 32]>,
    identity: Option<Identity>,
    allow_plaintext: bool,
    cipher: lanmesh_proto::Cipher,
    compression: bool,
    limits: Option<lanmesh_proto::Limits>,
    ack_timeout: Option<Duration>,
    inbox_capacity: Option<usize>,
    reconnect: Option<bool>,
    interface: Option<String>,
    discovery_timeout: Option<Duration>,
    resend_after: Option<Duration>,
    router_pins: Option<crate::RouterPins>,
    save_dir: Option<PathBuf>,
    blob_window: Option<u32>,
    max_file_size: Option<u64>,
}

impl PeerBuilder {
    /// The router's address, `host:port`. Without it, a router of the mesh is found on
    /// the LAN by mDNS.
    pub fn router(mut self, addr: impl Into<String>) -> Self {
        self.router = Some(addr.into());
        self
    }

    /// The mesh to join (default `lanmesh`).
    pub fn mesh(mut self, mesh: impl Into<String>) -> Self {
        self.mesh = mesh.into();
        self
    }

    /// The mesh key, when the mesh has one.
    pub fn mesh_key(mut self, key: [u8; 32]) -> Self {
        self.mesh_key = Some(key);
        self
    }

    /// Use this static key instead of a fresh one.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Offer unencrypted records; used only when the router allows them too.
    pub fn plaintext(mut self, allow: bool) -> Self {
        self.allow_plaintext = allow;
        self
    }

    /// The record cipher to prefer (default ChaCha20-Poly1305). `Cipher::Aes256Gcm`
    /// offers AES-256-GCM first, with ChaCha20-Poly1305 as the fallback: much faster on
    /// CPUs with AES instructions.
    pub fn cipher(mut self, cipher: lanmesh_proto::Cipher) -> Self {
        self.cipher = cipher;
        self
    }

    /// Offer Snappy compression (default on).
    pub fn compression(mut self, on: bool) -> Self {
        self.compression = on;
        self
    }

    /// Protocol limits (default: [`lanmesh_proto::Limits::default`]).
    pub fn limits(mut self, limits: lanmesh_proto::Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// How long `send_acked` waits (default 10 s).
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = Some(timeout);
        self
    }

    /// How long an acked message waits for its ack before it is sent again (default 1 s).
    pub fn resend_after(mut self, after: Duration) -> Self {
        self.resend_after = Some(after);
        self
    }

    /// Pins router keys per mesh in `pins.path` (trust on first use); a router with
    /// another key is refused unless `pins.trust_new`.
    pub fn router_pins(mut self, pins: crate::RouterPins) -> Self {
        self.router_pins = Some(pins);
        self
    }

    /// Discover on this network interface only.
    pub fn interface(mut self, name: impl Into<String>) -> Self {
        self.interface = Some(name.into());
        self
    }

    /// How long discovery waits for a router of the mesh (default 3 s).
    pub fn discovery_timeout(mut self, timeout: Duration) -> Self {
        self.discovery_timeout = Some(timeout);
        self
    }

    /// Dial again when the connection is lost (default on).
    pub fn reconnect(mut self, on: bool) -> Self {
        self.reconnect = Some(on);
        self
    }

    /// Messages held for the application before reading pauses (default 65 536).
    pub fn inbox_capacity(mut self, n: usize) -> Self {
        self.inbox_capacity = Some(n);
        self
    }

    /// Save incoming files in `dir` (which must exist). Without it, offers of files are
    /// refused and their senders get an error saying so.
    pub fn save_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.save_dir = Some(dir.into());
        self
    }

    /// Unacknowledged bytes a file transfer keeps in flight (default 4 MiB).
    pub fn blob_window(mut self, bytes: u32) -> Self {
        self.blob_window = Some(bytes);
        self
    }

    /// Refuse incoming files larger than `bytes` (default: no limit).
    pub fn max_file_size(mut self, bytes: u64) -> Self {
        self.max_file_size = Some(bytes);
        self
    }

    /// The full configuration this builder describes.
    pub fn config(&self) -> Result<PeerConfig, ClientError> {
        let name = self
            .name
            .as_deref()
            .map(Name::new)
            .transpose()
            .map_err(ClientError::Invalid)?;
        let identity = match &self.identity {
            Some(id) => id.clone(),
            None => Identity::generate().map_err(ClientError::Handshake)?,
        };
        let mut config = PeerConfig::new(name, self.router.clone(), identity);
        config.interface = self.interface.clone();
        if let Some(t) = self.discovery_timeout {
            config.discovery_timeout = t;
        }
        config.mesh = self.mesh.clone();
        config.mesh_key = self.mesh_key;
        config.allow_plaintext = self.allow_plaintext;
        config.cipher = self.cipher;
        config.compression = self.compression;
        if let Some(limits) = &self.limits {
            config.limits = limits.clone();
        }
        if let Some(t) = self.ack_timeout {
            config.ack_timeout = t;
        }
        if let Some(n) = self.inbox_capacity {
            config.inbox_capacity = n;
        }
        if let Some(on) = self.reconnect {
            config.reconnect = on;
        }
        if let Some(t) = self.resend_after {
            config.resend_after = t;
        }
        config.router_pins = self.router_pins.clone();
        config.save_dir = self.save_dir.clone();
        if let Some(w) = self.blob_window {
            config.blob_window = w;
        }
        config.max_file_size = self.max_file_size;
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
            router: None,
            mesh: "lanmesh".into(),
            mesh_key: None,
            identity: None,
            allow_plaintext: false,
            cipher: lanmesh_proto::Cipher::ChaCha20Poly1305,
            compression: true,
            limits: None,
            ack_timeout: None,
            inbox_capacity: None,
            reconnect: None,
            interface: None,
            discovery_timeout: None,
            resend_after: None,
            router_pins: None,
            save_dir: None,
            blob_window: None,
            max_file_size: None,
        }
    }

    /// Starts building an observer: a connection without a name that can only list peers.
    pub fn observer() -> PeerBuilder {
        PeerBuilder {
            name: None,
            ..Self::builder("")
        }
    }

    /// Connects with a full configuration.
    pub async fn connect(config: PeerConfig) -> Result<Peer, ClientError> {
        let name = config.name.clone();
        let blobs = Blobs::new(BlobConfig::new(&config));
        let shared = Arc::new(Shared::new(
            config.inbox_capacity,
            blobs,
            config.limits.max_message,
        ));
        let (tx, rx) = oneshot::channel();
        let in_arbiter =
            actix_rt::Arbiter::try_current().is_some() && actix_rt::System::try_current().is_some();
        let config = Arc::new(config);
        if in_arbiter {
            actix_rt::spawn(start_actor(config, shared.clone(), tx, false));
        } else {
            let (config, shared2) = (config.clone(), shared.clone());
            std::thread::Builder::new()
                .name("lanmesh-peer".into())
                .spawn(move || {
                    let system = actix_rt::System::new();
                    system.block_on(start_actor(config, shared2, tx, true));
                    let _ = system.run();
                })
                .map_err(|e| ClientError::Connect {
                    addr: String::new(),
                    source: e,
                })?;
        }
        let actor = rx
            .await
            .map_err(|_| ClientError::disconnected("peer runtime ended"))??;
        Ok(Peer {
            actor,
            shared,
            name,
        })
    }

    /// This peer's name (`None` for an observer).
    pub fn name(&self) -> Option<&Name> {
        self.name.as_ref()
    }

    pub(crate) async fn submit(&self, msg: SendData) -> Result<crate::actor::Sent, ClientError> {
        self.actor
            .send(msg)
            .await
            .map_err(|_| self.shared.disconnected("peer stopped"))?
    }

    pub(crate) fn dest(&self, to: &str) -> Result<Destination, ClientError> {
        Ok(Destination::Peer(self.shared.name(to)?))
    }

    /// Queues a message that needs no answer, through the lane.
    async fn send_plain(
        &self,
        dest: Destination,
        data: Bytes,
        flag_bits: u8,
    ) -> Result<u64, ClientError> {
        let (id, frames) = self.frames_for(&dest, data, flag_bits)?;
        self.push(frames).await?;
        Ok(id)
    }

    /// A message's id and frames, if the peer can send it now.
    fn frames_for(
        &self,
        dest: &Destination,
        data: Bytes,
        flag_bits: u8,
    ) -> Result<(u64, Vec<Frame>), ClientError> {
        self.shared.check_size(data.len())?;
        let Some(compression) = self.shared.lane.compression() else {
            return Err(self.shared.disconnected("not connected"));
        };
        let id = self.shared.next_id();
        let probe = &self.shared.compression;
        let frames = probed_message_frames(dest, id, flag_bits, data, compression, probe);
        Ok((id, frames))
    }

    /// Queues frames through the lane: no trip through the actor's mailbox. Waits while
    /// the lane is full.
    async fn push(&self, mut frames: Vec<Frame>) -> Result<(), ClientError> {
        let lane = &self.shared.lane;
        match std::future::poll_fn(|cx| lane.poll_push(cx, &mut frames)).await {
            Pushed::Queued => Ok(()),
            Pushed::Closed => Err(self.shared.disconnected("not connected")),
        }
    }

    /// Sends bytes to `to`, at most once. Returns the message id once it is queued; if
    /// the router cannot deliver it, [`Peer::close`] reports it.
    pub async fn send(&self, to: &str, data: impl Into<Bytes>) -> Result<u64, ClientError> {
        self.send_plain(self.dest(to)?, data.into(), 0).await
    }

    /// Sends text to `to` (browsers receive it as a string).
    pub async fn send_text(&self, to: &str, text: &str) -> Result<u64, ClientError> {
        let data = Bytes::copy_from_slice(text.as_bytes());
        self.send_plain(self.dest(to)?, data, flags::TEXT).await
    }

    /// Sends and waits until the recipient's client has queued the message. Fails with
    /// `UnknownPeer`, `Overloaded` or `AckTimeout`.
    pub async fn send_acked(&self, to: &str, data: impl Into<Bytes>) -> Result<u64, ClientError> {
        self.send_acked_flags(to, data.into(), 0).await
    }

    /// [`Peer::send_acked`] for text.
    pub async fn send_text_acked(&self, to: &str, text: &str) -> Result<u64, ClientError> {
        self.send_acked_flags(to, Bytes::copy_from_slice(text.as_bytes()), flags::TEXT)
            .await
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
        let sent = self
            .submit(SendData {
                dest: self.dest(to)?,
                data: data.into(),
                flags: 0,
                ack: true,
            })
            .await?;
        let ack = sent
            .ack
            .ok_or_else(|| ClientError::disconnected("no acknowledgement expected"))?;
        Ok(Acked { id: sent.id, ack })
    }

    async fn send_acked_flags(&self, to: &str, data: Bytes, bits: u8) -> Result<u64, ClientError> {
        let sent = self
            .submit(SendData {
                dest: self.dest(to)?,
                data,
                flags: bits,
                ack: true,
            })
            .await?;
        let ack = sent
            .ack
            .ok_or_else(|| ClientError::disconnected("no acknowledgement expected"))?;
        ack.await.map_err(|_| {
            ClientError::disconnected("connection closed while waiting for the ack")
        })??;
        Ok(sent.id)
    }

    /// Sends bytes to every other peer.
    pub async fn broadcast(&self, data: impl Into<Bytes>) -> Result<u64, ClientError> {
        self.send_plain(Destination::Everyone, data.into(), 0).await
    }

    /// Sends text to every other peer.
    pub async fn broadcast_text(&self, text: &str) -> Result<u64, ClientError> {
        let data = Bytes::copy_from_slice(text.as_bytes());
        self.send_plain(Destination::Everyone, data, flags::TEXT)
            .await
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
        let name = self.shared.name(to)?;
        let dest = Destination::Peer(name.clone());
        let (id, frames) = self.frames_for(&dest, data.into(), flags::REQUEST)?;
        // Registered before the request can leave, so even the quickest reply finds it.
        let requests = &self.shared.requests;
        let reply = requests.register(id, name, timeout);
        if let Err(e) = self.push(frames).await {
            requests.forget(id);
            return Err(e);
        }
        reply.await.map_err(|_| {
            ClientError::disconnected("connection closed while waiting for the reply")
        })?
    }

    /// Answers every request that reaches this peer with `handler(request)`. The handler
    /// runs on the peer's actor: keep it quick. Without one, requesters get `NoResponder`.
    pub async fn respond(
        &self,
        handler: impl Fn(&Message) -> Bytes + Send + Sync + 'static,
    ) -> Result<(), ClientError> {
        let handler: RequestHandler = Arc::new(handler);
        self.actor
            .send(SetHandler(Some(handler)))
            .await
            .map_err(|_| ClientError::disconnected("peer stopped"))
    }

    /// Stops answering requests.
    pub async fn stop_responding(&self) -> Result<(), ClientError> {
        self.actor
            .send(SetHandler(None))
            .await
            .map_err(|_| ClientError::disconnected("peer stopped"))
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
    /// it had received. Files of any size: the message size limit does not apply.
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
        let path = path.as_ref();
        crate::blob::send_file(&self.shared, &self.actor, to, path, None, &mut progress).await
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
        let path = path.as_ref();
        crate::blob::send_file(
            &self.shared,
            &self.actor,
            to,
            path,
            Some(name),
            &mut progress,
        )
        .await
    }

    /// The next message, waiting for one. Fails once the connection is gone and every
    /// message that arrived before has been taken.
    pub async fn recv(&self) -> Result<Message, ClientError> {
        self.shared.next().await.map_err(ClientError::disconnected)
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
        self.shared.take(n)
    }

    /// Every waiting message.
    pub fn get_all(&self) -> Vec<Message> {
        self.shared.take(usize::MAX)
    }

    /// Messages waiting in the inbox.
    pub fn pending(&self) -> usize {
        self.shared.len()
    }

    /// Current members of the mesh (this peer included), by name.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.shared.peers()
    }

    /// Stops taking messages from the router; they wait there (up to its budget, after
    /// which senders get `Overloaded`). Messages already in the inbox stay readable.
    pub fn pause(&self) {
        self.shared.set_paused(true);
    }

    /// Resumes taking messages after [`Peer::pause`].
    pub fn resume(&self) {
        self.shared.set_paused(false);
    }

    /// Where the connection stands now.
    pub fn status(&self) -> Status {
        self.shared.status().borrow().clone()
    }

    /// A receiver that sees every status change (connected, reconnecting, closed).
    pub fn watch_status(&self) -> tokio::sync::watch::Receiver<Status> {
        self.shared.status()
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.shared.closed_reason().is_some()
    }

    /// Leaves the mesh gracefully: everything sent before is handled by the router
    /// first, and the report lists messages it could not deliver.
    pub async fn close(&self) -> CloseReport {
        let (tx, rx) = oneshot::channel();
        if self.actor.send(Close(tx)).await.is_err() {
            return CloseReport::default();
        }
        rx.await.unwrap_or_default()
    }

    /// Drops the connection at once (UltraSockets' `terminate`).
    pub fn terminate(&self) {
        let _ = self.actor.try_send(Terminate);
    }
}

async fn start_actor(
    config: Arc<PeerConfig>,
    shared: Arc<Shared>,
    reply: oneshot::Sender<Result<Addr<PeerActor>, ClientError>>,
    owns_system: bool,
) {
    let dialed = match dial(&config).await {
        Ok(d) => d,
        Err(e) => {
            let _ = reply.send(Err(e));
            if owns_system {
                actix_rt::System::current().stop();
            }
            return;
        }
    };
    let (ready_tx, ready_rx) = oneshot::channel();
    let actor = lanmesh_actix::same_poll::start(PeerActor::new(
        config,
        shared,
        dialed,
        ready_tx,
        owns_system,
    ));
    let result = match ready_rx.await {
        Ok(Ok(())) => Ok(actor),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ClientError::ClosedDuringHandshake),
    };
    let _ = reply.send(result);
}

/// An acked message on its way: resolves to its id when the recipient has it.
#[derive(Debug)]
#[must_use = "the ack is only observed by awaiting it"]
pub struct Acked {
    id: u64,
    ack: tokio::sync::oneshot::Receiver<Result<(), ClientError>>,
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
    ) -> std::task::Poll<Self::Output> {
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

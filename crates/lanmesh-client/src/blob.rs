//! File transfers: the sending and receiving ends of the blob protocol
//! ([`lanmesh_proto::blob`] describes the frames and the flow step by step).
//!
//! Neither end holds a file in memory:
//!
//! * **Sending** ([`crate::Peer::send_file`]) is a task on the caller's side of the peer
//!   handle. It reads the file a block (about 1 MiB) at a time on the blocking thread
//!   pool, and hands the actor one chunk message at a time, never more than the window
//!   beyond what the receiver has acknowledged. The actor routes the receiver's answers
//!   (`Accept`, `Ack`, `Done`, `Abort`) and the router's `Nack`s for the transfer's
//!   messages into a `watch` channel that the task waits on.
//! * **Receiving** is a task per incoming file, started by the actor when an `Offer`
//!   arrives. The actor checks each `Data` chunk against the offer and the window
//!   ([`ReceiveWindow`]) and passes it to the task through a bounded channel; the task
//!   writes batches of chunks on the blocking pool, acknowledges what is on disk, and on
//!   the last chunk syncs the file, checks its size, renames it from a hidden temporary
//!   name to a free name in the save directory, puts a file message in the inbox
//!   ([`Message::file`]) and answers `Done`. All incoming files together get at most
//!   the configured window (each at least one chunk), so several senders at once stay
//!   within the router's budget for this peer.
//!
//! A transfer ends with a clear error on both sides — never a hang or a partial file left
//! under its final name — when the other side aborts, leaves the mesh, breaks the
//! protocol, stays silent for longer than the stall deadline, or the connection to the
//! router is lost. A peer without a save directory refuses every offer.

use std::collections::{HashMap, VecDeque};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix::Addr;
use bytes::{Bytes, BytesMut};
use lanmesh_proto::blob::{
    AbortReason, BlobFrame, CHUNK_DATA, DATA_HEADER_LEN, Direction, ReceiveWindow, SendWindow,
    safe_file_name,
};
use lanmesh_proto::frame::flags;
use lanmesh_proto::{Destination, NackReason, Name};
use tokio::sync::{mpsc, watch};
use tracing::debug;

use crate::actor::{PeerActor, SendData};
use crate::config::PeerConfig;
use crate::error::ClientError;
use crate::shared::{Message, Shared, Status};

/// How far a file being sent has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The file's length.
    pub total: u64,
    /// Bytes handed to the connection.
    pub sent: u64,
    /// Bytes the recipient has confirmed writing to disk.
    pub acked: u64,
}

/// A file the recipient has confirmed complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSent {
    /// The name it was offered under.
    pub name: String,
    /// Its length.
    pub bytes: u64,
    /// From the offer to the recipient's confirmation.
    pub elapsed: Duration,
}

/// A file received into the save directory (see [`Message::file`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReceivedFile {
    /// The name it was saved under (inside the save directory).
    pub file: String,
    /// Its length.
    pub bytes: u64,
    /// Where it is.
    pub path: PathBuf,
}

impl Message {
    /// The file this message announces, when it is the notice of a completed incoming
    /// file (its `data` is then JSON `{"file","bytes","path"}`).
    pub fn file(&self) -> Option<ReceivedFile> {
        if self.flags & flags::BLOB == 0 {
            return None;
        }
        serde_json::from_slice(&self.data).ok()
    }
}

/// File bytes read from disk per blocking-pool trip (a whole number of chunks).
const READ_BLOCK_CHUNKS: usize = 16;
/// Chunks written per blocking-pool trip at most (about 4 MiB).
const WRITE_BATCH_BYTES: usize = 4 << 20;
/// Message ids remembered per outgoing transfer, to recognise the router's `Nack`s.
const REMEMBERED_IDS: usize = 4096;

/// Blob settings taken from the peer's configuration.
#[derive(Debug, Clone)]
pub(crate) struct BlobConfig {
    save_dir: Option<PathBuf>,
    window: u32,
    max_file_size: Option<u64>,
    answer_timeout: Duration,
    stall_timeout: Duration,
    max_incoming: usize,
    max_chunk: usize,
}

impl BlobConfig {
    pub(crate) fn new(config: &PeerConfig) -> Self {
        let max_message = usize::try_from(config.limits.max_message).unwrap_or(usize::MAX);
        Self {
            save_dir: config.save_dir.clone(),
            window: config.blob_window,
            max_file_size: config.max_file_size,
            answer_timeout: config.ack_timeout,
            stall_timeout: config.limits.idle_timeout,
            max_incoming: config.limits.max_partial_messages.max(1),
            max_chunk: max_message.saturating_sub(DATA_HEADER_LEN).min(CHUNK_DATA),
        }
    }
}

/// How a transfer ended, as the sending side learns it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    Done(u64),
    Aborted { reason: AbortReason, text: String },
    Undelivered(NackReason),
    Broken(String),
}

/// What the sending task waits on.
#[derive(Debug, Clone, Default)]
struct Remote {
    accepted: Option<u32>,
    written: u64,
    end: Option<End>,
}

struct Outgoing {
    to: Name,
    state: watch::Sender<Remote>,
    ids: VecDeque<u64>,
}

enum Chunk {
    Data { last: bool, data: Bytes },
    Cancel(String),
}

struct Incoming {
    /// Tells this transfer's entry from a later one with the same key.
    seq: u64,
    granted: u32,
    window: ReceiveWindow,
    tx: mpsc::Sender<Chunk>,
}

struct Transfers {
    next_blob: u64,
    outgoing: HashMap<u64, Outgoing>,
    incoming: HashMap<(Name, u64), Incoming>,
}

/// The transfers of one peer, shared by the actor and the handles.
pub(crate) struct Blobs {
    config: BlobConfig,
    transfers: Mutex<Transfers>,
}

impl Blobs {
    pub(crate) fn new(config: BlobConfig) -> Self {
        // Receivers key transfers by (sender, blob): start from the clock so that a sender
        // that restarts (a new `lanmesh send` process) does not reuse the ids of its
        // previous run while the receiver may still be cleaning one up.
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self {
            config,
            transfers: Mutex::new(Transfers {
                next_blob: start,
                outgoing: HashMap::new(),
                incoming: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Transfers> {
        // Each critical section is one map update: a poisoned lock is still consistent.
        self.transfers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn end_outgoing(&self, blob: u64, to: &Name, end: End) {
        if let Some(out) = self.lock().outgoing.get(&blob).filter(|o| &o.to == to) {
            out.state.send_modify(|r| {
                r.end.get_or_insert(end);
            });
        }
    }
}

fn blob_message(to: Name, frame: &BlobFrame) -> SendData {
    SendData {
        dest: Destination::Peer(to),
        data: frame.to_bytes(),
        flags: flags::BLOB,
        ack: false,
    }
}

async fn submit(actor: &Addr<PeerActor>, to: &Name, frame: &BlobFrame) -> Result<u64, ClientError> {
    let sent = actor
        .send(blob_message(to.clone(), frame))
        .await
        .map_err(|_| ClientError::Disconnected {
            reason: "peer stopped".into(),
        })??;
    Ok(sent.id)
}

/// Sends a frame from inside the actor, where waiting is not possible.
fn reply_later(actor: &Addr<PeerActor>, to: Name, frame: BlobFrame) {
    let actor = actor.clone();
    tokio::spawn(async move {
        if let Err(e) = submit(&actor, &to, &frame).await {
            debug!(%to, error = %e, "could not answer a file transfer");
        }
    });
}

// ---------------------------------------------------------------------------------------
// Actor side: routing what arrives.

/// A `BLOB` message arrived (called by the actor).
pub(crate) fn on_message(shared: &Arc<Shared>, actor: &Addr<PeerActor>, msg: Message) {
    let from = msg.from.clone();
    if msg.flags & flags::BROADCAST != 0 {
        debug!(%from, "broadcast file frame ignored");
        return;
    }
    let frame = match BlobFrame::decode(msg.data.clone()) {
        Ok(f) => f,
        Err(e) => {
            debug!(%from, error = %e, "invalid file frame");
            match BlobFrame::peek(&msg.data) {
                Some((Direction::ToReceiver, blob)) => {
                    abort_incoming(shared, actor, &from, blob, AbortReason::Protocol, &e);
                }
                Some((Direction::ToSender, blob)) => {
                    // The sending task then cancels the transfer on its way out.
                    shared
                        .blobs
                        .end_outgoing(blob, &from, End::Broken(e.to_string()));
                }
                None => {}
            }
            return;
        }
    };
    let blob = frame.blob();
    match frame {
        BlobFrame::Offer {
            size, window, name, ..
        } => offer(shared, actor, &msg, blob, size, window, &name),
        BlobFrame::Data {
            offset, last, data, ..
        } => {
            let mut t = shared.blobs.lock();
            let key = (from.clone(), blob);
            let Some(inc) = t.incoming.get_mut(&key) else {
                debug!(%from, blob, "data for no transfer; dropped");
                return;
            };
            let checked = inc.window.on_data(offset, data.len(), last);
            let queued = checked.map_err(|e| e.to_string()).and_then(|()| {
                inc.tx
                    .try_send(Chunk::Data { last, data })
                    .map_err(|_| "too many small chunks in flight".to_owned())
            });
            if let Err(text) = queued {
                // Dropping the channel's sender tells the writing task to clean up.
                t.incoming.remove(&key);
                drop(t);
                debug!(%from, blob, text, "incoming file broken");
                reply_later(
                    actor,
                    from,
                    BlobFrame::abort(blob, AbortReason::Protocol, text),
                );
            }
        }
        BlobFrame::Cancel { text, .. } => {
            if let Some(inc) = shared.blobs.lock().incoming.remove(&(from.clone(), blob)) {
                debug!(%from, blob, text, "sender cancelled the file");
                let _ = inc.tx.try_send(Chunk::Cancel(text));
            }
        }
        to_sender => {
            let mut t = shared.blobs.lock();
            let Some(out) = t.outgoing.get_mut(&blob).filter(|o| o.to == from) else {
                debug!(%from, blob, "answer for no transfer; dropped");
                return;
            };
            out.state.send_modify(|r| match to_sender {
                BlobFrame::Accept { window, .. } => {
                    r.accepted.get_or_insert(window);
                }
                BlobFrame::Ack { written, .. } => r.written = r.written.max(written),
                BlobFrame::Done { size, .. } => {
                    r.end.get_or_insert(End::Done(size));
                }
                BlobFrame::Abort { reason, text, .. } => {
                    r.end.get_or_insert(End::Aborted { reason, text });
                }
                _ => {}
            });
        }
    }
}

/// The router could not deliver message `id` to `peer`; `true` if it was a file's.
pub(crate) fn on_nack(shared: &Shared, peer: &Name, id: u64, reason: NackReason) -> bool {
    let t = shared.blobs.lock();
    let mut ours = false;
    for out in t.outgoing.values().filter(|o| &o.to == peer) {
        // A peer that is gone ends every transfer to it; anything else only the one whose
        // message it was.
        if reason == NackReason::UnknownPeer || out.ids.contains(&id) {
            ours |= out.ids.contains(&id);
            out.state.send_modify(|r| {
                r.end.get_or_insert(End::Undelivered(reason));
            });
        }
    }
    ours
}

/// `peer` left the mesh: its transfers, both ways, are over.
pub(crate) fn on_peer_left(shared: &Shared, peer: &Name) {
    let mut t = shared.blobs.lock();
    t.incoming.retain(|(from, _), inc| {
        if from == peer {
            let _ = inc
                .tx
                .try_send(Chunk::Cancel("the sender left the mesh".into()));
        }
        from != peer
    });
    for out in t.outgoing.values().filter(|o| &o.to == peer) {
        out.state.send_modify(|r| {
            r.end
                .get_or_insert(End::Undelivered(NackReason::UnknownPeer));
        });
    }
}

// ---------------------------------------------------------------------------------------
// Receiving.

fn offer(
    shared: &Arc<Shared>,
    actor: &Addr<PeerActor>,
    msg: &Message,
    blob: u64,
    size: u64,
    window: u32,
    name: &str,
) {
    let from = msg.from.clone();
    let config = &shared.blobs.config;
    let refuse = |reason, text: String| {
        debug!(%from, blob, text, "file refused");
        reply_later(actor, from.clone(), BlobFrame::abort(blob, reason, text));
    };
    let Some(dir) = config.save_dir.clone() else {
        return refuse(
            AbortReason::Refused,
            "it does not accept files (no save directory; start it with `lanmesh listen --save-dir DIR`)".into(),
        );
    };
    if let Some(max) = config.max_file_size.filter(|max| size > *max) {
        return refuse(
            AbortReason::TooLarge,
            format!("the file has {size} bytes; it accepts at most {max}"),
        );
    }
    let mut t = shared.blobs.lock();
    if t.incoming.len() >= config.max_incoming {
        drop(t);
        return refuse(
            AbortReason::Refused,
            format!("it is receiving {} files already", config.max_incoming),
        );
    }
    let key = (from.clone(), blob);
    if t.incoming.contains_key(&key) {
        t.incoming.remove(&key);
        drop(t);
        return refuse(
            AbortReason::Protocol,
            format!("transfer {blob} offered twice"),
        );
    }
    // The windows of all incoming transfers share this peer's window (each gets at least
    // one chunk), so several senders at once cannot push more towards this peer than
    // the router's per-peer budget holds.
    let in_use: u64 = t.incoming.values().map(|i| u64::from(i.granted)).sum();
    let left = u64::from(config.window).saturating_sub(in_use);
    let granted = ReceiveWindow::grant(window, u32::try_from(left).unwrap_or(u32::MAX));
    // A chunk of at least 1 KiB per slot lets a whole window queue up; a sender that
    // splits finer fills the channel and breaks the transfer instead of growing memory.
    let (tx, rx) = mpsc::channel((granted as usize / 1024).max(64));
    let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
    t.incoming.insert(
        key,
        Incoming {
            seq,
            granted,
            window: ReceiveWindow::new(blob, size, granted),
            tx,
        },
    );
    drop(t);
    let job = Receive {
        shared: shared.clone(),
        actor: actor.clone(),
        from,
        id: msg.id,
        seq,
        blob,
        size,
        granted,
        name: safe_file_name(name),
        dir,
    };
    tokio::spawn(job.run(rx));
}

/// Ends an incoming transfer from inside the actor and tells its sender.
fn abort_incoming(
    shared: &Shared,
    actor: &Addr<PeerActor>,
    from: &Name,
    blob: u64,
    reason: AbortReason,
    err: &dyn std::fmt::Display,
) {
    if shared
        .blobs
        .lock()
        .incoming
        .remove(&(from.clone(), blob))
        .is_some()
    {
        reply_later(
            actor,
            from.clone(),
            BlobFrame::abort(blob, reason, err.to_string()),
        );
    }
}

/// Numbers incoming transfers: names their temporary files and tells a transfer's
/// registry entry from a later one under the same key.
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);
/// Choosing a free final name and renaming to it happen under this lock, so two files
/// of the same name arriving at once do not overwrite each other.
static RENAME: Mutex<()> = Mutex::new(());

struct Receive {
    shared: Arc<Shared>,
    actor: Addr<PeerActor>,
    from: Name,
    id: u64,
    seq: u64,
    blob: u64,
    size: u64,
    granted: u32,
    name: String,
    dir: PathBuf,
}

/// How an incoming transfer failed: whether to tell the sender, and what.
struct Failure {
    tell: Option<(AbortReason, String)>,
    log: String,
}

impl Failure {
    fn io(what: &str, e: &dyn std::fmt::Display) -> Self {
        let text = format!("{what}: {e}");
        Self {
            tell: Some((AbortReason::Io, text.clone())),
            log: text,
        }
    }

    fn quiet(log: impl Into<String>) -> Self {
        Self {
            tell: None,
            log: log.into(),
        }
    }
}

impl Receive {
    async fn run(self, rx: mpsc::Receiver<Chunk>) {
        let temp = self
            .dir
            .join(format!(".lanmesh-{:016x}-{}.part", self.blob, self.seq));
        let result = self.receive(&temp, rx).await;
        {
            let key = (self.from.clone(), self.blob);
            let mut t = self.shared.blobs.lock();
            if t.incoming.get(&key).is_some_and(|inc| inc.seq == self.seq) {
                t.incoming.remove(&key);
            }
        }
        let Err(failure) = result else { return };
        debug!(from = %self.from, blob = self.blob, reason = failure.log, "incoming file failed");
        let _ = blocking(move || std::fs::remove_file(&temp)).await;
        if let Some((reason, text)) = failure.tell {
            let frame = BlobFrame::abort(self.blob, reason, text);
            let _ = submit(&self.actor, &self.from, &frame).await;
        }
    }

    async fn receive(&self, temp: &Path, mut rx: mpsc::Receiver<Chunk>) -> Result<(), Failure> {
        let path = temp.to_owned();
        let mut file = blocking(move || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
        })
        .await
        .map_err(|e| {
            Failure::io(
                &format!("cannot create a file in {}", self.dir.display()),
                &e,
            )
        })?;
        self.answer(BlobFrame::Accept {
            blob: self.blob,
            window: self.granted,
        })
        .await?;
        let mut status = self.shared.status();
        let stall = self.shared.blobs.config.stall_timeout;
        let mut written = 0u64;
        loop {
            let first = tokio::select! {
                next = tokio::time::timeout(stall, rx.recv()) => match next {
                    Ok(Some(chunk)) => chunk,
                    // The actor dropped the transfer (and answered the sender if needed).
                    Ok(None) => return Err(Failure::quiet("transfer ended by the peer")),
                    Err(_) => {
                        return Err(Failure {
                            tell: Some((AbortReason::Timeout, format!("no data for {stall:?}"))),
                            log: "stalled".into(),
                        });
                    }
                },
                _ = disconnected(&mut status) => {
                    return Err(Failure::quiet("connection to the router lost"));
                }
            };
            let mut batch = Vec::new();
            let mut batch_len = 0;
            let mut last = false;
            let mut next = Some(first);
            while let Some(chunk) = next.take() {
                match chunk {
                    Chunk::Data { last: l, data } => {
                        batch_len += data.len();
                        batch.push(data);
                        last = l;
                    }
                    Chunk::Cancel(text) => {
                        return Err(Failure::quiet(format!("cancelled: {text}")));
                    }
                }
                if !last && batch_len < WRITE_BATCH_BYTES {
                    next = rx.try_recv().ok();
                }
            }
            let write = blocking(move || {
                for b in &batch {
                    file.write_all(b)?;
                }
                if last {
                    file.sync_all()?;
                }
                Ok(file)
            });
            file = self
                .keep_alive(write, written)
                .await
                .map_err(|e| Failure::io("cannot write the file", &e))?;
            written += batch_len as u64;
            if let Some(inc) = self
                .shared
                .blobs
                .lock()
                .incoming
                .get_mut(&(self.from.clone(), self.blob))
                .filter(|inc| inc.seq == self.seq)
            {
                inc.window.on_written(batch_len as u64);
            }
            if last {
                drop(file);
                return self.finish(temp, written).await;
            }
            self.answer(BlobFrame::Ack {
                blob: self.blob,
                written,
            })
            .await?;
        }
    }

    /// The last chunk is on disk: check, rename, announce, confirm.
    async fn finish(&self, temp: &Path, written: u64) -> Result<(), Failure> {
        let (temp_owned, dir, name, size) = (
            temp.to_owned(),
            self.dir.clone(),
            self.name.clone(),
            self.size,
        );
        let (path, file) = blocking(move || {
            let on_disk = std::fs::metadata(&temp_owned)?.len();
            if on_disk != size || written != size {
                return Err(std::io::Error::other(format!(
                    "{on_disk} bytes on disk, {size} offered"
                )));
            }
            let _guard = RENAME.lock().unwrap_or_else(|p| p.into_inner());
            let (path, file) = free_name(&dir, &name)?;
            std::fs::rename(&temp_owned, &path)?;
            Ok((path, file))
        })
        .await
        .map_err(|e| Failure::io("cannot complete the file", &e))?;
        let notice = ReceivedFile {
            file,
            bytes: self.size,
            path,
        };
        let data = serde_json::to_vec(&notice).unwrap_or_default();
        self.shared.push(Message {
            from: self.from.clone(),
            id: self.id,
            data: Bytes::from(data),
            flags: flags::BLOB,
        });
        debug!(from = %self.from, file = notice.file, bytes = self.size, "file received");
        // The file is complete whatever happens to this answer.
        let _ = self
            .answer(BlobFrame::Done {
                blob: self.blob,
                size: self.size,
            })
            .await;
        Ok(())
    }

    /// Runs `work` (a write, or the final sync that can take long on a slow disk with
    /// much in its cache), repeating the last ack meanwhile so the sender's stall
    /// deadline does not run out while the disk is busy.
    async fn keep_alive<T>(&self, work: impl Future<Output = T>, written: u64) -> T {
        let every = (self.shared.blobs.config.stall_timeout / 3).max(Duration::from_millis(10));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = tick.tick() => {
                    let _ = self.answer(BlobFrame::Ack { blob: self.blob, written }).await;
                }
            }
        }
    }

    async fn answer(&self, frame: BlobFrame) -> Result<(), Failure> {
        submit(&self.actor, &self.from, &frame)
            .await
            .map(|_| ())
            .map_err(|e| Failure::quiet(format!("cannot answer the sender: {e}")))
    }
}

/// `name`, or `stem-1.ext`, `stem-2.ext`, … whichever does not exist yet in `dir`.
fn free_name(dir: &Path, name: &str) -> std::io::Result<(PathBuf, String)> {
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, Some(e)),
        _ => (name, None),
    };
    for n in 0..10_000u32 {
        let candidate = match (n, ext) {
            (0, _) => name.to_owned(),
            (n, Some(e)) => format!("{stem}-{n}.{e}"),
            (n, None) => format!("{stem}-{n}"),
        };
        let path = dir.join(&candidate);
        // `symlink_metadata`: a dangling symlink counts as taken, never followed.
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((path, candidate)),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
    }
    Err(std::io::Error::other(format!(
        "no free name for {name:?} in {}",
        dir.display()
    )))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?
}

/// Completes once the connection to the router is no longer up.
async fn disconnected(status: &mut watch::Receiver<Status>) {
    loop {
        if !matches!(*status.borrow_and_update(), Status::Connected { .. }) {
            return;
        }
        if status.changed().await.is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Sending.

/// Removes an outgoing transfer when the sending task ends, however it ends; if it did
/// not finish, tells the receiver (best effort) so that it deletes its partial file.
struct OutgoingGuard<'a> {
    shared: &'a Shared,
    actor: &'a Addr<PeerActor>,
    to: Name,
    blob: u64,
    finished: bool,
}

impl OutgoingGuard<'_> {
    fn remember(&self, id: u64) {
        if let Some(out) = self.shared.blobs.lock().outgoing.get_mut(&self.blob) {
            if out.ids.len() >= REMEMBERED_IDS {
                out.ids.pop_front();
            }
            out.ids.push_back(id);
        }
    }
}

impl Drop for OutgoingGuard<'_> {
    fn drop(&mut self) {
        self.shared.blobs.lock().outgoing.remove(&self.blob);
        if !self.finished {
            let frame = BlobFrame::cancel(self.blob, AbortReason::Cancelled, "the sender gave up");
            let _ = self.actor.try_send(blob_message(self.to.clone(), &frame));
        }
    }
}

/// Sends the file at `path` to `to`; see [`crate::Peer::send_file_with_progress`].
pub(crate) async fn send_file(
    shared: &Shared,
    actor: &Addr<PeerActor>,
    to: &str,
    path: &Path,
    name: Option<&str>,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<FileSent, ClientError> {
    let to = Name::new(to).map_err(ClientError::Invalid)?;
    let file_err = |e: std::io::Error| ClientError::File {
        path: path.display().to_string(),
        source: e,
    };
    let owned = path.to_owned();
    let (mut file, size) = blocking(move || {
        let file = std::fs::File::open(&owned)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        Ok((file, meta.len()))
    })
    .await
    .map_err(file_err)?;
    let name = match name {
        Some(n) => n.to_owned(),
        None => path
            .file_name()
            .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned()),
    };
    let config = shared.blobs.config.clone();
    if config.max_chunk == 0 {
        return Err(ClientError::FileFailed {
            name: to.to_string(),
            text: "the message size limit is too small for file chunks".into(),
        });
    }
    let (blob, mut state) = {
        let mut t = shared.blobs.lock();
        t.next_blob = t.next_blob.wrapping_add(1);
        let blob = t.next_blob;
        let (tx, rx) = watch::channel(Remote::default());
        t.outgoing.insert(
            blob,
            Outgoing {
                to: to.clone(),
                state: tx,
                ids: VecDeque::new(),
            },
        );
        (blob, rx)
    };
    let mut guard = OutgoingGuard {
        shared,
        actor,
        to: to.clone(),
        blob,
        finished: false,
    };
    let started = Instant::now();
    let offer = BlobFrame::Offer {
        blob,
        size,
        window: config.window,
        name: name.clone(),
    };
    guard.remember(submit(actor, &to, &offer).await?);

    let mut status = shared.status();
    let ended = |end: &End| end_error(&to, end);
    // 1. Wait for the receiver to accept.
    let granted = loop {
        let snapshot = state.borrow_and_update().clone();
        if let Some(end) = &snapshot.end {
            guard.finished = true;
            return Err(ended(end));
        }
        if let Some(w) = snapshot.accepted {
            break w;
        }
        wait(&mut state, &mut status, config.answer_timeout, || {
            ClientError::FileFailed {
                name: to.to_string(),
                text: format!(
                    "no answer to the file offer within {:?} (does it run a lanmesh version that takes files?)",
                    config.answer_timeout
                ),
            }
        })
        .await?;
    };
    let mut window =
        SendWindow::new(blob, size, granted.min(config.window)).with_max_chunk(config.max_chunk);
    progress(Progress {
        total: size,
        sent: 0,
        acked: 0,
    });

    // 2. Stream the file, never more than the window ahead of the receiver's disk.
    let mut block = Bytes::new();
    let block_len = READ_BLOCK_CHUNKS * config.max_chunk;
    loop {
        let snapshot = state.borrow_and_update().clone();
        if let Some(end) = &snapshot.end {
            if !matches!(end, End::Done(_)) {
                guard.finished = matches!(end, End::Aborted { .. });
                return Err(ended(end));
            }
        }
        window
            .on_ack(snapshot.written)
            .map_err(|e| broken(&to, &e))?;
        if let Some(End::Done(done)) = snapshot.end {
            window.on_done(done).map_err(|e| broken(&to, &e))?;
            guard.finished = true;
            progress(Progress {
                total: size,
                sent: size,
                acked: size,
            });
            return Ok(FileSent {
                name,
                bytes: size,
                elapsed: started.elapsed(),
            });
        }
        let Some(len) = window.next_chunk() else {
            wait(&mut state, &mut status, config.stall_timeout, || {
                ClientError::FileFailed {
                    name: to.to_string(),
                    text: format!("no progress for {:?}", config.stall_timeout),
                }
            })
            .await?;
            continue;
        };
        if block.len() < len {
            let want = usize::try_from(size - window.sent())
                .unwrap_or(usize::MAX)
                .min(block_len);
            let (f, bytes) = blocking(move || read_block(file, want))
                .await
                .map_err(file_err)?;
            file = f;
            if bytes.len() < want.min(len) {
                let text = "the file shrank while it was being sent";
                let _ = submit(
                    actor,
                    &to,
                    &BlobFrame::cancel(blob, AbortReason::Cancelled, text),
                )
                .await;
                guard.finished = true;
                return Err(file_err(std::io::Error::other(text)));
            }
            block = bytes;
        }
        let data = block.split_to(len);
        let (offset, last) = window.on_sent(len);
        let chunk = BlobFrame::Data {
            blob,
            offset,
            last,
            data,
        };
        guard.remember(submit(actor, &to, &chunk).await?);
        progress(Progress {
            total: size,
            sent: window.sent(),
            acked: window.acked(),
        });
    }
}

/// Waits for news from the receiver, the connection's loss or the deadline.
async fn wait(
    state: &mut watch::Receiver<Remote>,
    status: &mut watch::Receiver<Status>,
    deadline: Duration,
    timeout: impl FnOnce() -> ClientError,
) -> Result<(), ClientError> {
    tokio::select! {
        changed = tokio::time::timeout(deadline, state.changed()) => match changed {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(ClientError::Disconnected { reason: "peer stopped".into() }),
            Err(_) => Err(timeout()),
        },
        _ = disconnected(status) => Err(ClientError::Disconnected {
            reason: "connection to the router lost during the file transfer".into(),
        }),
    }
}

fn read_block(mut file: std::fs::File, want: usize) -> std::io::Result<(std::fs::File, Bytes)> {
    let mut buf = BytesMut::zeroed(want);
    let mut filled = 0;
    while filled < want {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok((file, buf.freeze()))
}

fn end_error(to: &Name, end: &End) -> ClientError {
    let name = to.to_string();
    match end {
        End::Aborted {
            reason: AbortReason::Refused | AbortReason::TooLarge,
            text,
        } => ClientError::FileRefused {
            name,
            text: text.clone(),
        },
        End::Aborted { text, .. } => ClientError::FileFailed {
            name,
            text: text.clone(),
        },
        End::Undelivered(NackReason::UnknownPeer) => ClientError::UnknownPeer { name },
        End::Undelivered(reason) => ClientError::FileFailed {
            name,
            text: format!("the router could not deliver part of it ({reason:?})"),
        },
        End::Broken(text) => ClientError::FileFailed {
            name,
            text: text.clone(),
        },
        End::Done(_) => ClientError::FileFailed {
            name,
            text: "finished unexpectedly".into(),
        },
    }
}

fn broken(to: &Name, e: &lanmesh_proto::ProtoError) -> ClientError {
    ClientError::FileFailed {
        name: to.to_string(),
        text: e.to_string(),
    }
}

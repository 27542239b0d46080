//! Files to and from disk: the disk half of file transfers. The protocol half (offers,
//! windows, acks, deadlines) is the peer core's ([`lanmesh_core::peer::FileEvent`]).
//!
//! Neither end holds a file in memory:
//!
//! * **Sending** ([`crate::Peer::send_file`]) is a task on the caller's side of the
//!   handle. It reads the file a block (about 1 MiB) at a time on the blocking thread
//!   pool and hands the core one chunk at a time, exactly as much as the window allows,
//!   waiting on the transfer's progress (accepted, acked, delivered, failed) in between.
//!   If the task is dropped before the file is delivered, the receiver is told.
//! * **Receiving** is a task per incoming file, started by the driver when an offer
//!   arrives. It creates a hidden temporary file in the save directory, accepts, writes
//!   batches of chunks on the blocking pool and says how much is written; after the last
//!   chunk it syncs the file, checks its size, renames it to a free name in the save
//!   directory, puts a file message in the inbox ([`Message::file`]) and says the file is
//!   saved. When the transfer fails, whatever the reason, the temporary file is deleted.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use lanmesh_core::{ClientError, Message};
use lanmesh_proto::Name;
use lanmesh_proto::blob::AbortReason;
use lanmesh_proto::frame::flags;
use tokio::sync::mpsc;
use tracing::debug;

use crate::endpoint::{Chunk, Endpoint};

pub use lanmesh_core::ReceivedFile;

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

/// File chunks read from disk per blocking-pool trip.
const READ_BLOCK_CHUNKS: usize = 16;
/// Chunks written per blocking-pool trip at most (about 4 MiB).
const WRITE_BATCH_BYTES: usize = 4 << 20;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?
}

// ---------------------------------------------------------------------------------------
// Sending.

/// Cancels an outgoing transfer when the sending task ends before it finished, however
/// it ends (an error, or the task dropped): the receiver deletes its partial file.
struct Cancel<'a> {
    endpoint: &'a Endpoint,
    blob: u64,
    finished: bool,
}

impl Drop for Cancel<'_> {
    fn drop(&mut self) {
        let mut st = self.endpoint.lock();
        st.forget_sending(self.blob);
        if !self.finished {
            st.core.cancel_file(self.blob, "the sender gave up");
        }
    }
}

/// Sends the file at `path` to `to`; see [`crate::Peer::send_file_with_progress`].
pub(crate) async fn send(
    endpoint: &Endpoint,
    to: &str,
    path: &Path,
    name: Option<&str>,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<FileSent, ClientError> {
    let to = Name::new(to).map_err(|e| ClientError::invalid(&e))?;
    let file_err = |e: std::io::Error| ClientError::File {
        path: path.display().to_string(),
        detail: e.to_string(),
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
    let started = Instant::now();
    let (blob, mut state) = {
        let now = endpoint.now();
        let mut st = endpoint.lock();
        let blob = st.core.offer_file(&to, size, &name, now)?;
        (blob, st.watch_sending(blob))
    };
    let mut guard = Cancel {
        endpoint,
        blob,
        finished: false,
    };
    let mut block = Bytes::new();
    let mut told_start = false;
    loop {
        let snapshot = state.borrow_and_update().clone();
        match snapshot.end {
            Some(Ok(bytes)) => {
                guard.finished = true;
                progress(Progress {
                    total: size,
                    sent: size,
                    acked: size,
                });
                return Ok(FileSent {
                    name,
                    bytes,
                    elapsed: started.elapsed(),
                });
            }
            Some(Err(e)) => {
                guard.finished = true;
                return Err(e);
            }
            None => {}
        }
        if snapshot.accepted.is_some() && !told_start {
            told_start = true;
            progress(Progress {
                total: size,
                sent: 0,
                acked: 0,
            });
        }
        // As many chunks as the window takes now.
        loop {
            let room = endpoint.lock().core.file_room(blob);
            let Some(len) = room else { break };
            if block.len() < len {
                let (sent, _) = endpoint.lock().core.file_progress(blob).unwrap_or((0, 0));
                let want = usize::try_from(size - sent)
                    .unwrap_or(usize::MAX)
                    .min(READ_BLOCK_CHUNKS * len.max(1));
                let (f, bytes) = blocking(move || read_block(file, want))
                    .await
                    .map_err(file_err)?;
                file = f;
                if bytes.len() < len {
                    let text = "the file shrank while it was being sent";
                    return Err(file_err(std::io::Error::other(text)));
                }
                block = bytes;
            }
            let data = block.split_to(len);
            let chunked = endpoint.lock().core.file_chunk(blob, data);
            if let Err(e) = chunked {
                // The transfer ended while the block was read (the receiver went away,
                // a deadline passed): its own outcome comes through the watch, and is
                // the one to report, not "the transfer is over".
                if endpoint.lock().core.file_progress(blob).is_none() {
                    break;
                }
                return Err(e);
            }
            if let Some((sent, acked)) = endpoint.lock().core.file_progress(blob) {
                progress(Progress {
                    total: size,
                    sent,
                    acked,
                });
            }
        }
        // The core ends the transfer on its deadlines (no answer, no progress) and when
        // the connection goes: the watch always changes eventually.
        if state.changed().await.is_err() {
            return Err(ClientError::disconnected("peer stopped"));
        }
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

// ---------------------------------------------------------------------------------------
// Receiving.

/// Numbers incoming transfers: names their temporary files.
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);
/// The temporary files of the transfers in progress in this process, for
/// [`remove_partial_files`].
static PARTIAL: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn partial() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    PARTIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Deletes the temporary files of every incoming transfer still in progress in this
/// process, at once (a process about to exit on a signal has no time for the transfer
/// tasks to do it); returns how many it deleted. Call it after [`crate::Peer::close`],
/// which tells the senders.
pub fn remove_partial_files() -> usize {
    let mut removed = 0;
    for path in partial().drain(..) {
        if std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}
/// Choosing a free final name and renaming to it happen under this lock, so two files
/// of the same name arriving at once do not overwrite each other.
static RENAME: Mutex<()> = Mutex::new(());

/// Starts receiving file `blob` from `from` (after the core offered it) into `dir`.
pub(crate) fn receive(
    endpoint: Arc<Endpoint>,
    dir: Option<PathBuf>,
    from: Name,
    blob: u64,
    id: u64,
    size: u64,
    name: String,
) {
    let Some(dir) = dir else {
        // The core refuses files when there is no save directory; nothing to do.
        return;
    };
    // Each transfer buffers at most its window, in chunks of at least 1 KiB per slot; a
    // sender that splits finer fills the channel and breaks the transfer instead.
    let (tx, rx) = mpsc::channel(4096);
    endpoint.lock().receive_into(from.clone(), blob, tx);
    let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let temp = dir.join(format!(".lanmesh-{blob:016x}-{seq}.part"));
    let job = Receive {
        endpoint,
        from,
        blob,
        id,
        size,
        name,
        dir,
    };
    partial().push(temp.clone());
    tokio::spawn(async move {
        let result = job.receive(&temp, rx).await;
        partial().retain(|p| *p != temp);
        job.endpoint.lock().forget_receiving(&job.from, job.blob);
        if let Err(failure) = result {
            debug!(from = %job.from, blob, reason = failure.log, "incoming file failed");
            let t = temp.clone();
            let _ = blocking(move || std::fs::remove_file(&t)).await;
            if let Some(text) = failure.tell {
                let mut st = job.endpoint.lock();
                st.core.abort_file(&job.from, blob, AbortReason::Io, &text);
            }
        }
    });
}

struct Receive {
    endpoint: Arc<Endpoint>,
    from: Name,
    blob: u64,
    id: u64,
    size: u64,
    name: String,
    dir: PathBuf,
}

/// How an incoming transfer failed: what to tell the sender (an I/O error here), if
/// anything, and what to log.
struct Failure {
    tell: Option<String>,
    log: String,
}

impl Failure {
    fn io(what: &str, e: &dyn std::fmt::Display) -> Self {
        let text = format!("{what}: {e}");
        Self {
            tell: Some(text.clone()),
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
        {
            let now = self.endpoint.now();
            self.endpoint
                .lock()
                .core
                .accept_file(&self.from, self.blob, now);
        }
        let mut written = 0u64;
        loop {
            let Some(first) = rx.recv().await else {
                return Err(Failure::quiet("transfer ended"));
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
                    Chunk::Failed(reason) => return Err(Failure::quiet(reason)),
                }
                if !last && batch_len < WRITE_BATCH_BYTES {
                    next = rx.try_recv().ok();
                }
            }
            file = blocking(move || {
                for b in &batch {
                    file.write_all(b)?;
                }
                if last {
                    file.sync_all()?;
                }
                Ok(file)
            })
            .await
            .map_err(|e| Failure::io("cannot write the file", &e))?;
            written += batch_len as u64;
            if last {
                drop(file);
                return self.finish(temp, written).await;
            }
            let now = self.endpoint.now();
            self.endpoint
                .lock()
                .core
                .file_written(&self.from, self.blob, written, now);
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
        // The sender is told first: an application that closes as soon as it sees the
        // file must not close before the sender learns it arrived.
        self.endpoint.lock().core.file_saved(&self.from, self.blob);
        let data = serde_json::to_vec(&notice).unwrap_or_default();
        self.endpoint.inbox.push(Message {
            from: self.from.clone(),
            id: self.id,
            data: Bytes::from(data),
            flags: flags::BLOB,
        });
        debug!(from = %self.from, file = notice.file, bytes = self.size, "file received");
        Ok(())
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

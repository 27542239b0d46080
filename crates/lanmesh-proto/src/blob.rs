//! Blobs: files of any size (4 GiB and beyond) streamed through the mesh, never held whole
//! in memory by the sender, the router or the receiver.
//!
//! A blob is not one large message. It is a conversation of small, ordinary messages
//! between two clients, each flagged [`flags::BLOB`](crate::frame::flags::BLOB) and
//! carrying one [`BlobFrame`] as its payload. The router forwards them like any other
//! message (it knows nothing of blobs), so per-message limits do not apply to the file,
//! and a blob's chunks interleave record by record with everybody else's small messages.
//!
//! Flow of one transfer (`blob` is a number the sender picks, unique among its own
//! transfers; the receiver keys transfers by `(sender, blob)`):
//!
//! 1. Sender → receiver: `Offer { blob, size, window, name }`: the file's length, the
//!    largest number of unacknowledged bytes the sender would like in flight, and the
//!    file's name (a hint only: the receiver keeps just a sanitized last component, see
//!    [`safe_file_name`]).
//! 2. Receiver → sender: `Accept { blob, window }` once it has created a temporary file,
//!    with the window it grants (never more than offered), or `Abort { blob, reason, text }`
//!    (no save directory, too large, disk error, …): the sender fails with that text.
//! 3. Sender → receiver: `Data { blob, offset, last, data }` chunks in order, each at most
//!    [`CHUNK_DATA`] bytes, never more than `window` bytes beyond the last `Ack`
//!    ([`SendWindow`]). `last` is set on the chunk that ends at `size` (an empty file
//!    sends one empty chunk with `last`). An `Accept` that comes while the chunks
//!    stream asks the sender to send again every chunk not yet acknowledged: the
//!    receiver lost some (its connection to the router broke and was made again), and
//!    drops what comes after the gap until the chunks it lacks arrive.
//! 4. Receiver → sender: `Ack { blob, written }` after writing to disk: `written` bytes of
//!    the file are on disk. Acks are cumulative, so one ack may cover several chunks. A
//!    sender that outruns the window, skips or repeats an offset, or passes `size` breaks
//!    the transfer ([`ReceiveWindow`]).
//! 5. Receiver → sender: `Done { blob, size }` once the last chunk is written, flushed to
//!    disk, the size checked and the temporary file renamed to its final name. Only then
//!    does the sender report success.
//! 6. The receiver may send `Abort { blob, reason, text }` and the sender
//!    `Cancel { blob, reason, text }` at any time: the transfer is over, the receiver
//!    deletes its temporary file. (Two kinds, one per direction, because each side picks
//!    its own blob ids: `Abort` names one of the receiver's incoming transfers from the
//!    sender's point of view, `Cancel` one of the sender's.) A peer leaving the mesh ends
//!    its transfers on the other side too.
//!
//! The window gives end-to-end flow control: the sender never has more than `window`
//! bytes between itself and the receiver's disk, so the router's queue towards the
//! receiver holds at most that much of the blob, stays under its per-session budget and
//! never answers `Overloaded` because of a blob.
//!
//! Every frame is the whole payload of one message, so decoding has no "need more bytes"
//! case: a frame that is too short, too long or has unknown bits is invalid.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{ProtoError, Result};
use crate::limits::CHUNK_SIZE;
use crate::prelude::*;
use crate::wire::{Reader, put_long, put_short, truncate_utf8};

/// Bytes before the file data in a `Data` frame: kind, blob, offset, flags.
pub const DATA_HEADER_LEN: usize = 1 + 8 + 8 + 1;
/// File bytes carried by one `Data` frame, so that the frame fits one message chunk and
/// so one record.
pub const CHUNK_DATA: usize = CHUNK_SIZE - DATA_HEADER_LEN;
/// Longest file name on the wire, in bytes.
pub const MAX_FILE_NAME: usize = 255;
/// Longest `Abort` text, in bytes.
pub const MAX_ABORT_TEXT: usize = crate::frame::MAX_ERROR_TEXT;
/// Default window of unacknowledged bytes (4 MiB): enough to fill a gigabit LAN at a few
/// milliseconds of round trip, and half the router's default per-session budget.
pub const DEFAULT_WINDOW: u32 = 4 * 1024 * 1024;
/// Smallest window: one full chunk.
pub const MIN_WINDOW: u32 = CHUNK_DATA as u32;
/// Largest window a receiver grants (64 MiB).
pub const MAX_WINDOW: u32 = 64 * 1024 * 1024;

mod kind {
    pub(super) const OFFER: u8 = 1;
    pub(super) const ACCEPT: u8 = 2;
    pub(super) const DATA: u8 = 3;
    pub(super) const ACK: u8 = 4;
    pub(super) const DONE: u8 = 5;
    pub(super) const ABORT: u8 = 6;
    pub(super) const CANCEL: u8 = 7;
}

/// The `last` bit of a `Data` frame's flags; the other bits are reserved (zero).
const DATA_LAST: u8 = 0x01;

/// Why a transfer was aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AbortReason {
    /// The receiver does not take files (no save directory) or not this one.
    Refused,
    /// The file is larger than the receiver accepts.
    TooLarge,
    /// Reading or writing the file failed.
    Io,
    /// The other side broke the blob protocol (offsets, window, sizes).
    Protocol,
    /// The side that sent it gave up: a sender that cancelled, or whose file changed
    /// while it was read; a receiver (or sender) that is closing.
    Cancelled,
    /// Nothing happened for too long.
    Timeout,
    /// A reason this version does not know.
    Other(u8),
}

impl AbortReason {
    fn to_u8(self) -> u8 {
        match self {
            Self::Refused => 1,
            Self::TooLarge => 2,
            Self::Io => 3,
            Self::Protocol => 4,
            Self::Cancelled => 5,
            Self::Timeout => 6,
            Self::Other(b) => b,
        }
    }

    fn from_u8(b: u8) -> Self {
        match b {
            1 => Self::Refused,
            2 => Self::TooLarge,
            3 => Self::Io,
            4 => Self::Protocol,
            5 => Self::Cancelled,
            6 => Self::Timeout,
            other => Self::Other(other),
        }
    }
}

/// One step of a blob transfer: the payload of one `BLOB` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobFrame {
    /// Sender → receiver: a file is coming.
    Offer {
        /// The sender's id for this transfer.
        blob: u64,
        /// The file's length in bytes.
        size: u64,
        /// Unacknowledged bytes the sender would like to have in flight.
        window: u32,
        /// The file's name as the sender knows it (at most [`MAX_FILE_NAME`] bytes; only a
        /// hint, see [`safe_file_name`]).
        name: String,
    },
    /// Receiver → sender: send it, with at most `window` bytes unacknowledged.
    Accept {
        /// The transfer.
        blob: u64,
        /// The window granted.
        window: u32,
    },
    /// Sender → receiver: file bytes at `offset`.
    Data {
        /// The transfer.
        blob: u64,
        /// Where `data` starts in the file.
        offset: u64,
        /// This chunk ends the file.
        last: bool,
        /// The bytes (at most [`CHUNK_DATA`]).
        data: Bytes,
    },
    /// Receiver → sender: the first `written` bytes are on disk.
    Ack {
        /// The transfer.
        blob: u64,
        /// Bytes written so far.
        written: u64,
    },
    /// Receiver → sender: the whole file is on disk under its final name.
    Done {
        /// The transfer.
        blob: u64,
        /// Its length, as written.
        size: u64,
    },
    /// Receiver → sender: the transfer is over, unsuccessfully (or never started).
    Abort {
        /// The transfer.
        blob: u64,
        /// Machine-readable reason.
        reason: AbortReason,
        /// What a person should read (at most 1 KiB).
        text: String,
    },
    /// Sender → receiver: the transfer is over, unsuccessfully.
    Cancel {
        /// The transfer.
        blob: u64,
        /// Machine-readable reason.
        reason: AbortReason,
        /// What a person should read (at most 1 KiB).
        text: String,
    },
}

/// Which way a frame travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the file's sender to its receiver: `Offer`, `Data`, `Cancel`.
    ToReceiver,
    /// From the file's receiver to its sender: `Accept`, `Ack`, `Done`, `Abort`.
    ToSender,
}

impl BlobFrame {
    /// An `Abort` frame (receiver → sender), its text cut to 1 KiB.
    pub fn abort(blob: u64, reason: AbortReason, text: impl AsRef<str>) -> Self {
        Self::Abort {
            blob,
            reason,
            text: truncate_utf8(text.as_ref(), MAX_ABORT_TEXT).to_owned(),
        }
    }

    /// A `Cancel` frame (sender → receiver), its text cut to 1 KiB.
    pub fn cancel(blob: u64, reason: AbortReason, text: impl AsRef<str>) -> Self {
        Self::Cancel {
            blob,
            reason,
            text: truncate_utf8(text.as_ref(), MAX_ABORT_TEXT).to_owned(),
        }
    }

    /// Which way this frame travels.
    pub fn direction(&self) -> Direction {
        match self {
            Self::Offer { .. } | Self::Data { .. } | Self::Cancel { .. } => Direction::ToReceiver,
            Self::Accept { .. } | Self::Ack { .. } | Self::Done { .. } | Self::Abort { .. } => {
                Direction::ToSender
            }
        }
    }

    /// The transfer this frame belongs to.
    pub fn blob(&self) -> u64 {
        match self {
            Self::Offer { blob, .. }
            | Self::Accept { blob, .. }
            | Self::Data { blob, .. }
            | Self::Ack { blob, .. }
            | Self::Done { blob, .. }
            | Self::Abort { blob, .. }
            | Self::Cancel { blob, .. } => *blob,
        }
    }

    /// Bytes [`BlobFrame::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        1 + 8
            + match self {
                Self::Offer { name, .. } => 8 + 4 + 1 + truncate_utf8(name, MAX_FILE_NAME).len(),
                Self::Accept { .. } => 4,
                Self::Data { data, .. } => 8 + 1 + data.len(),
                Self::Ack { .. } | Self::Done { .. } => 8,
                Self::Abort { text, .. } | Self::Cancel { text, .. } => {
                    1 + 2 + truncate_utf8(text, MAX_ABORT_TEXT).len()
                }
            }
    }

    /// Appends the frame to `buf`. Names are cut to [`MAX_FILE_NAME`] bytes and texts to
    /// 1 KiB, on a character boundary; nothing else can go wrong.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.reserve(self.encoded_len());
        match self {
            Self::Offer {
                blob,
                size,
                window,
                name,
            } => {
                buf.put_u8(kind::OFFER);
                buf.put_u64(*blob);
                buf.put_u64(*size);
                buf.put_u32(*window);
                put_short(buf, truncate_utf8(name, MAX_FILE_NAME).as_bytes());
            }
            Self::Accept { blob, window } => {
                buf.put_u8(kind::ACCEPT);
                buf.put_u64(*blob);
                buf.put_u32(*window);
            }
            Self::Data {
                blob,
                offset,
                last,
                data,
            } => {
                buf.put_u8(kind::DATA);
                buf.put_u64(*blob);
                buf.put_u64(*offset);
                buf.put_u8(if *last { DATA_LAST } else { 0 });
                buf.put_slice(data);
            }
            Self::Ack { blob, written } => {
                buf.put_u8(kind::ACK);
                buf.put_u64(*blob);
                buf.put_u64(*written);
            }
            Self::Done { blob, size } => {
                buf.put_u8(kind::DONE);
                buf.put_u64(*blob);
                buf.put_u64(*size);
            }
            Self::Abort { blob, reason, text } | Self::Cancel { blob, reason, text } => {
                buf.put_u8(if matches!(self, Self::Abort { .. }) {
                    kind::ABORT
                } else {
                    kind::CANCEL
                });
                buf.put_u64(*blob);
                buf.put_u8(reason.to_u8());
                put_long(buf, truncate_utf8(text, MAX_ABORT_TEXT).as_bytes());
            }
        }
    }

    /// The frame as the payload of one message.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::new();
        self.encode(&mut buf);
        buf.freeze()
    }

    /// Parses a whole message payload. `Data` slices `payload` without copying.
    pub fn decode(payload: Bytes) -> Result<Self> {
        let mut r = Reader::new(payload, "blob frame");
        let kind = r.u8()?;
        let blob = r.u64()?;
        let frame = match kind {
            kind::OFFER => {
                let size = r.u64()?;
                let window = r.u32()?;
                let name = r.short_string()?;
                Self::Offer {
                    blob,
                    size,
                    window,
                    name,
                }
            }
            kind::ACCEPT => Self::Accept {
                blob,
                window: r.u32()?,
            },
            kind::DATA => {
                let offset = r.u64()?;
                let bits = r.u8()?;
                if bits & !DATA_LAST != 0 {
                    return Err(ProtoError::Malformed {
                        what: "blob data flags",
                    });
                }
                let data = r.rest();
                if data.len() > CHUNK_DATA {
                    return Err(ProtoError::Malformed {
                        what: "blob chunk larger than a chunk",
                    });
                }
                Self::Data {
                    blob,
                    offset,
                    last: bits & DATA_LAST != 0,
                    data,
                }
            }
            kind::ACK => Self::Ack {
                blob,
                written: r.u64()?,
            },
            kind::DONE => Self::Done {
                blob,
                size: r.u64()?,
            },
            kind::ABORT | kind::CANCEL => {
                let reason = AbortReason::from_u8(r.u8()?);
                let text = r.long_string()?;
                if text.len() > MAX_ABORT_TEXT {
                    return Err(ProtoError::Malformed {
                        what: "blob abort text over 1 KiB",
                    });
                }
                if kind == kind::ABORT {
                    Self::Abort { blob, reason, text }
                } else {
                    Self::Cancel { blob, reason, text }
                }
            }
            _ => {
                return Err(ProtoError::Malformed {
                    what: "blob frame kind",
                });
            }
        };
        r.finish()?;
        Ok(frame)
    }

    /// The direction and blob id of a payload too broken to decode, when its kind is known
    /// and the id is there: lets a client end the right transfer.
    pub fn peek(payload: &[u8]) -> Option<(Direction, u64)> {
        let direction = match *payload.first()? {
            kind::OFFER | kind::DATA | kind::CANCEL => Direction::ToReceiver,
            kind::ACCEPT | kind::ACK | kind::DONE | kind::ABORT => Direction::ToSender,
            _ => return None,
        };
        let id: [u8; 8] = payload.get(1..9)?.try_into().ok()?;
        Some((direction, u64::from_be_bytes(id)))
    }
}

/// The name a received file is saved under: the last path component of what the sender
/// said, without control characters, leading dots or surrounding spaces, at most 200
/// bytes, and `file` when nothing is left. It never contains `/` or `\`, is never `.`,
/// `..` or absolute, and so always names an entry inside the save directory.
pub fn safe_file_name(wire: &str) -> String {
    const MAX: usize = 200;
    let last = wire.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, ':' | '*' | '?' | '"' | '<' | '>' | '|'))
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    let cut = truncate_utf8(trimmed, MAX).trim_end();
    if cut.is_empty() {
        "file".to_owned()
    } else {
        cut.to_owned()
    }
}

fn broken(blob: u64, reason: String) -> ProtoError {
    ProtoError::Blob { blob, reason }
}

/// The sender's side of the window: how much may go out now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendWindow {
    blob: u64,
    size: u64,
    window: u64,
    sent: u64,
    acked: u64,
    last_sent: bool,
    chunk: u64,
}

impl SendWindow {
    /// A transfer of `size` bytes with `window` bytes allowed in flight (at least one
    /// chunk).
    pub fn new(blob: u64, size: u64, window: u32) -> Self {
        Self {
            blob,
            size,
            window: u64::from(window.max(MIN_WINDOW)),
            sent: 0,
            acked: 0,
            last_sent: false,
            chunk: CHUNK_DATA as u64,
        }
    }

    /// Sends chunks of at most `max` bytes (at least 1, at most [`CHUNK_DATA`]): for
    /// meshes whose message limit is below one full chunk.
    pub fn with_max_chunk(mut self, max: usize) -> Self {
        self.chunk = max.clamp(1, CHUNK_DATA) as u64;
        self
    }

    /// Length of the next chunk to send, or `None` when the window is full (wait for an
    /// ack) or everything has been sent. A zero-length file sends one empty last chunk.
    pub fn next_chunk(&self) -> Option<usize> {
        if self.last_sent {
            return None;
        }
        let len = (self.size - self.sent).min(self.chunk);
        (self.sent - self.acked + len <= self.window).then_some(len as usize)
    }

    /// Records that a chunk of `len` bytes went out; returns its offset and whether it is
    /// the last.
    pub fn on_sent(&mut self, len: usize) -> (u64, bool) {
        let offset = self.sent;
        self.sent += len as u64;
        self.last_sent = self.sent == self.size;
        (offset, self.last_sent)
    }

    /// An `Ack`: `written` bytes are on the receiver's disk. Stale acks are ignored; an
    /// ack for bytes never sent is a protocol violation.
    pub fn on_ack(&mut self, written: u64) -> Result<()> {
        if written > self.sent {
            return Err(broken(
                self.blob,
                format!("ack for {written} bytes, only {} sent", self.sent),
            ));
        }
        self.acked = self.acked.max(written);
        Ok(())
    }

    /// A `Done`: valid only once everything was sent and the sizes agree.
    pub fn on_done(&mut self, size: u64) -> Result<()> {
        if size != self.size || self.sent != self.size {
            return Err(broken(
                self.blob,
                format!(
                    "receiver reports {size} bytes done; {} of {} sent",
                    self.sent, self.size
                ),
            ));
        }
        self.acked = size;
        Ok(())
    }

    /// Bytes handed out so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Bytes the receiver has confirmed.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// The file's length.
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// The receiver's side: checks every chunk against the offer and the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveWindow {
    blob: u64,
    size: u64,
    window: u64,
    received: u64,
    written: u64,
    finished: bool,
}

impl ReceiveWindow {
    /// A transfer of `size` bytes with `window` granted.
    pub fn new(blob: u64, size: u64, window: u32) -> Self {
        Self {
            blob,
            size,
            window: u64::from(window),
            received: 0,
            written: 0,
            finished: false,
        }
    }

    /// The window to grant for an offer: the sender's wish, within this side's bounds.
    pub fn grant(offered: u32, max: u32) -> u32 {
        offered.min(max).clamp(MIN_WINDOW, MAX_WINDOW)
    }

    /// A `Data` chunk arrived: it must continue the file exactly, stay inside the size and
    /// the window, and `last` must be set exactly when it reaches `size`.
    pub fn on_data(&mut self, offset: u64, len: usize, last: bool) -> Result<()> {
        if self.finished {
            return Err(broken(self.blob, "data after the last chunk".into()));
        }
        if offset != self.received {
            return Err(broken(
                self.blob,
                format!("chunk at offset {offset}, expected {}", self.received),
            ));
        }
        let end = offset.saturating_add(len as u64);
        if end > self.size {
            return Err(broken(
                self.blob,
                format!("chunk ends at {end}, past the offered size {}", self.size),
            ));
        }
        if last != (end == self.size) {
            return Err(broken(
                self.blob,
                format!(
                    "last flag {last} on a chunk ending at {end} of {}",
                    self.size
                ),
            ));
        }
        if end - self.written > self.window {
            return Err(broken(
                self.blob,
                format!(
                    "sender outran the window: {} bytes unacknowledged, window {}",
                    end - self.written,
                    self.window
                ),
            ));
        }
        self.received = end;
        self.finished = last;
        Ok(())
    }

    /// `n` more bytes are on disk.
    pub fn on_written(&mut self, n: u64) {
        self.written = (self.written + n).min(self.received);
    }

    /// Bytes on disk.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Bytes received (written or not).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Whether the last chunk has arrived.
    pub fn finished(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(f: BlobFrame) {
        let bytes = f.to_bytes();
        assert_eq!(bytes.len(), f.encoded_len());
        assert_eq!(BlobFrame::decode(bytes.clone()).unwrap(), f);
        assert_eq!(BlobFrame::peek(&bytes), Some((f.direction(), f.blob())));
    }

    #[test]
    fn every_frame_round_trips() {
        round_trip(BlobFrame::Offer {
            blob: 7,
            size: 5 << 30,
            window: DEFAULT_WINDOW,
            name: "photo ✓.jpg".into(),
        });
        round_trip(BlobFrame::Accept {
            blob: 7,
            window: MIN_WINDOW,
        });
        round_trip(BlobFrame::Data {
            blob: 7,
            offset: 1 << 33,
            last: true,
            data: Bytes::from(vec![9; CHUNK_DATA]),
        });
        round_trip(BlobFrame::Ack {
            blob: 7,
            written: 123,
        });
        round_trip(BlobFrame::Done {
            blob: u64::MAX,
            size: 0,
        });
        round_trip(BlobFrame::abort(1, AbortReason::Refused, "no save dir"));
        round_trip(BlobFrame::cancel(2, AbortReason::Other(77), "changed"));
        let long = BlobFrame::abort(3, AbortReason::Io, "ü".repeat(5000));
        assert!(long.encoded_len() <= 1 + 8 + 1 + 2 + MAX_ABORT_TEXT);
        round_trip(long);
    }

    #[test]
    fn wire_bytes_are_stable() {
        let data = BlobFrame::Data {
            blob: 1,
            offset: 2,
            last: true,
            data: Bytes::from_static(b"hi"),
        };
        assert_eq!(
            hex::encode(data.to_bytes()),
            "03000000000000000100000000000000020168 69".replace(' ', "")
        );
        let offer = BlobFrame::Offer {
            blob: 1,
            size: 3,
            window: 4,
            name: "a".into(),
        };
        assert_eq!(
            hex::encode(offer.to_bytes()),
            "01000000000000000100000000000000030000000401 61".replace(' ', "")
        );
    }

    #[test]
    fn a_full_chunk_fits_one_message_chunk() {
        let f = BlobFrame::Data {
            blob: 1,
            offset: 0,
            last: false,
            data: Bytes::from(vec![0; CHUNK_DATA]),
        };
        assert_eq!(f.encoded_len(), CHUNK_SIZE);
    }

    #[test]
    fn invalid_frames_are_errors() {
        for bad in [
            &b""[..],
            &[kind::ACK, 0, 0, 0][..],
            &[99, 0, 0, 0, 0, 0, 0, 0, 1][..],
            // Trailing byte after an ack.
            &[kind::ACK, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0][..],
            // Reserved data flag bits.
            &[
                kind::DATA,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                1,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0x02,
            ][..],
            // Offer whose name length runs past the end.
            &[
                kind::OFFER,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                1,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                1,
                0,
                0,
                0,
                1,
                9,
                b'a',
            ][..],
        ] {
            assert!(
                BlobFrame::decode(Bytes::copy_from_slice(bad)).is_err(),
                "{bad:?}"
            );
        }
        let mut long_text = BytesMut::new();
        long_text.put_u8(kind::ABORT);
        long_text.put_u64(1);
        long_text.put_u8(1);
        long_text.put_u16(MAX_ABORT_TEXT as u16 + 1);
        long_text.put_slice(&[b'x'; MAX_ABORT_TEXT + 1]);
        assert!(BlobFrame::decode(long_text.freeze()).is_err());
        let mut oversized = BytesMut::new();
        BlobFrame::Data {
            blob: 1,
            offset: 0,
            last: false,
            data: Bytes::from(vec![0; CHUNK_DATA + 1]),
        }
        .encode(&mut oversized);
        assert!(BlobFrame::decode(oversized.freeze()).is_err());
    }

    #[test]
    fn hostile_names_stay_inside_the_directory() {
        for (wire, safe) in [
            ("../../etc/x", "x"),
            ("/etc/passwd", "passwd"),
            ("..", "file"),
            (".", "file"),
            ("", "file"),
            ("dir\\..\\evil.exe", "evil.exe"),
            ("C:evil", "Cevil"),
            (".bashrc", "bashrc"),
            ("a\u{0}b\nc", "abc"),
            ("  report.pdf  ", "report.pdf"),
            ("x/", "file"),
        ] {
            assert_eq!(safe_file_name(wire), safe, "{wire:?}");
        }
        let long = "é".repeat(300);
        let cut = safe_file_name(&long);
        assert!(cut.len() <= 200 && cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn the_sender_never_exceeds_the_window() {
        let size = 10 * CHUNK_DATA as u64 + 5;
        let mut w = SendWindow::new(1, size, 3 * CHUNK_DATA as u32);
        let mut chunks = Vec::new();
        while let Some(len) = w.next_chunk() {
            chunks.push(w.on_sent(len));
        }
        assert_eq!(chunks.len(), 3);
        assert!(w.sent() - w.acked() <= 3 * CHUNK_DATA as u64);
        assert!(w.on_ack(w.sent() + 1).is_err());
        w.on_ack(CHUNK_DATA as u64).unwrap();
        w.on_ack(0).unwrap(); // stale: ignored
        assert_eq!(w.acked(), CHUNK_DATA as u64);
        assert_eq!(w.next_chunk(), Some(CHUNK_DATA));
        assert!(w.on_done(size).is_err(), "done before everything was sent");
        let mut last = (0, false);
        loop {
            while let Some(len) = w.next_chunk() {
                last = w.on_sent(len);
            }
            if w.sent() == size {
                break;
            }
            w.on_ack(w.sent()).unwrap();
        }
        assert_eq!(last, (10 * CHUNK_DATA as u64, true));
        w.on_done(size).unwrap();
        assert_eq!(w.acked(), size);
    }

    #[test]
    fn an_empty_file_is_one_empty_last_chunk() {
        let mut w = SendWindow::new(1, 0, DEFAULT_WINDOW);
        assert_eq!(w.next_chunk(), Some(0));
        assert_eq!(w.on_sent(0), (0, true));
        assert_eq!(w.next_chunk(), None);
        w.on_done(0).unwrap();
        let mut r = ReceiveWindow::new(1, 0, DEFAULT_WINDOW);
        r.on_data(0, 0, true).unwrap();
        assert!(r.finished());
    }

    #[test]
    fn the_receiver_refuses_broken_streams() {
        let c = CHUNK_DATA;
        let mut r = ReceiveWindow::new(1, 4 * c as u64, 2 * c as u32);
        r.on_data(0, c, false).unwrap();
        assert!(r.clone().on_data(0, c, false).is_err(), "repeated offset");
        assert!(r.clone().on_data(2 * c as u64, c, false).is_err(), "gap");
        assert!(
            r.clone().on_data(c as u64, 3 * c, true).is_err(),
            "past size"
        );
        r.on_data(c as u64, c, false).unwrap();
        assert!(
            r.clone().on_data(2 * c as u64, c, false).is_err(),
            "outran the window"
        );
        r.on_written(c as u64);
        assert!(
            r.clone().on_data(2 * c as u64, 2 * c, false).is_err(),
            "no last flag at the end"
        );
        r.on_data(2 * c as u64, c, false).unwrap();
        r.on_written(2 * c as u64);
        assert!(r.clone().on_data(3 * c as u64, c, false).is_err());
        r.on_data(3 * c as u64, c, true).unwrap();
        assert!(r.finished());
        assert!(r.on_data(4 * c as u64, 0, true).is_err(), "after the last");
    }

    #[test]
    fn grants_stay_within_bounds() {
        assert_eq!(ReceiveWindow::grant(1, DEFAULT_WINDOW), MIN_WINDOW);
        assert_eq!(ReceiveWindow::grant(u32::MAX, u32::MAX), MAX_WINDOW);
        assert_eq!(
            ReceiveWindow::grant(8 << 20, DEFAULT_WINDOW),
            DEFAULT_WINDOW
        );
    }

    proptest! {
        #[test]
        fn decoding_junk_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = BlobFrame::decode(Bytes::from(bytes));
        }

        #[test]
        fn data_round_trips(blob: u64, offset: u64, last: bool,
                            data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let f = BlobFrame::Data { blob, offset, last, data: Bytes::from(data) };
            prop_assert_eq!(BlobFrame::decode(f.to_bytes()).unwrap(), f);
        }

        #[test]
        fn a_window_driven_stream_is_always_accepted(
            size in 0u64..2_000_000,
            window in MIN_WINDOW..(4 * MIN_WINDOW),
            ack_every in 1usize..5,
        ) {
            let mut s = SendWindow::new(1, size, window);
            let mut r = ReceiveWindow::new(1, size, ReceiveWindow::grant(window, MAX_WINDOW));
            let mut n = 0;
            loop {
                while let Some(len) = s.next_chunk() {
                    let (offset, last) = s.on_sent(len);
                    r.on_data(offset, len, last).unwrap();
                    n += 1;
                    if n % ack_every == 0 {
                        r.on_written(r.received() - r.written());
                        s.on_ack(r.written()).unwrap();
                    }
                }
                if r.finished() {
                    break;
                }
                r.on_written(r.received() - r.written());
                s.on_ack(r.written()).unwrap();
            }
            s.on_done(size).unwrap();
        }
    }
}

//! An established connection: frames in, records out, and back.
//!
//! Frames queued with [`Connection::send`] are packed into the current record until it is
//! full; [`Connection::poll_transmit`] seals what is queued and hands out the bytes to
//! write. Callers call it when the socket is writable and they have nothing more to queue,
//! so a burst of small messages becomes a few large records (that batching is where the
//! speed comes from) without any timer.
//!
//! Records are built where they are sent from: frames are encoded into `pending` after
//! room for the length prefix, sealed there in place, the tag appended, and the record
//! handed on without a copy. Received records are opened in place too
//! ([`Connection::open_owned`]).

use alloc::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use crate::algorithms::{Cipher, Compression};
use crate::cipher::RecordCipher;
use crate::error::{ProtoError, Result};
use crate::frame::{Frame, Frames};
use crate::limits::{MAX_RECORD, MAX_RECORD_PLAINTEXT, MIN_RECORD, TAG_LEN};
use crate::record::PREFIX_LEN;

/// Spare room an emptied output buffer may keep.
const IDLE_BUFFER: usize = 4 * 1024;

/// How records are delimited on the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A two-byte length before each record (TCP).
    LengthPrefixed,
    /// The transport delimits messages itself; one message per record (WebSocket).
    Message,
}

/// The transport phase of a connection, after a successful handshake.
pub struct Connection {
    /// `None` for plaintext records.
    records: Option<RecordCipher>,
    cipher: Cipher,
    compression: Compression,
    framing: Framing,
    /// The record being filled: room for its length prefix (length-prefixed framing),
    /// then plaintext frames not yet sealed. Empty when no record is open.
    pending: BytesMut,
    /// Sealed bytes ready to write (length-prefixed framing), in runs of records that lie
    /// next to each other in one buffer. A record sealed into a new buffer starts a new
    /// run instead of being copied behind the last one.
    stream_out: VecDeque<BytesMut>,
    /// Sealed records ready to send (message framing).
    message_out: VecDeque<Bytes>,
    records_sealed: u64,
    /// Set when a record was sealed because it was full, cleared when the queued bytes
    /// are handed out. While set, a new record reserves a full record's room at once,
    /// so a burst of full records does not grow each one by reallocating (and
    /// copying); otherwise it reserves what its first frame needs, so a thousand quiet
    /// connections do not each take a record's worth for a small notice.
    streaming: bool,
    /// The largest plaintext of a record this side sends: a full record's, or less when
    /// the other side declared a smaller record limit ([`Connection::set_max_record`]).
    max_plaintext: usize,
}

impl core::fmt::Debug for Connection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connection")
            .field("cipher", &self.cipher)
            .field("compression", &self.compression)
            .field("framing", &self.framing)
            .field("queued_bytes", &self.queued_bytes())
            .finish()
    }
}

impl Connection {
    /// `records` must be `Some` exactly when `cipher` is not `Cipher::None`.
    pub(crate) fn new(
        records: Option<RecordCipher>,
        cipher: Cipher,
        compression: Compression,
        framing: Framing,
    ) -> Self {
        Self {
            records,
            cipher,
            compression,
            framing,
            pending: BytesMut::new(),
            stream_out: VecDeque::new(),
            message_out: VecDeque::new(),
            records_sealed: 0,
            streaming: false,
            max_plaintext: MAX_RECORD_PLAINTEXT,
        }
    }

    /// Seals records of at most `max_record` bytes (the record limit the other side
    /// declared; at most [`MAX_RECORD`], at least [`MIN_RECORD`]).
    pub fn set_max_record(&mut self, max_record: usize) {
        self.max_plaintext = max_record.clamp(MIN_RECORD, MAX_RECORD) - TAG_LEN;
    }

    /// The largest frame [`Connection::send`] takes (its encoded length).
    pub fn max_frame_len(&self) -> usize {
        self.max_plaintext
    }

    /// The negotiated record protection.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// The negotiated payload compression.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Bytes in front of the plaintext of a record being filled.
    fn header_len(&self) -> usize {
        match self.framing {
            Framing::LengthPrefixed => PREFIX_LEN,
            Framing::Message => 0,
        }
    }

    /// Plaintext bytes in the record being filled.
    fn pending_plaintext(&self) -> usize {
        self.pending.len().saturating_sub(self.header_len())
    }

    /// Queues a frame. It is packed with others into the current record.
    pub fn send(&mut self, frame: &Frame) -> Result<()> {
        let len = frame.encoded_len();
        let max = self.max_plaintext;
        if len > max {
            return Err(ProtoError::FrameTooLarge { len, max });
        }
        if self.pending_plaintext() + len > max {
            self.seal()?;
            self.streaming = true;
        }
        let opening = self.pending.is_empty();
        if opening {
            // Open a record: room for the prefix (filled in when sealing) and, so that
            // appending the tag does not move the record, for the tag too.
            let header = self.header_len();
            let room = if self.streaming { max } else { len };
            self.pending.reserve(header + room + TAG_LEN);
            self.pending.put_bytes(0, header);
        }
        let encoded = frame.encode(&mut self.pending);
        if encoded.is_err() && opening {
            // `encode` writes nothing when it fails: do not leave an empty record open.
            self.pending.clear();
        }
        encoded
    }

    /// Bytes queued but not yet handed out by `poll_transmit`.
    pub fn queued_bytes(&self) -> usize {
        self.pending.len()
            + self.stream_out.iter().map(BytesMut::len).sum::<usize>()
            + self.message_out.iter().map(Bytes::len).sum::<usize>()
    }

    /// Whether anything is waiting to be written.
    pub fn has_output(&self) -> bool {
        !self.pending.is_empty() || !self.stream_out.is_empty() || !self.message_out.is_empty()
    }

    /// Records sealed so far (for metrics and tests of batching).
    pub fn records_sealed(&self) -> u64 {
        self.records_sealed
    }

    /// Closes the record being filled: fills in its prefix, encrypts it in place, appends
    /// the tag and moves it to the output, all in the buffer the frames were encoded in.
    fn seal(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let header = self.header_len();
        let tag_len = if self.records.is_some() { TAG_LEN } else { 0 };
        let sealed_len = self.pending.len() - header + tag_len;
        if header > 0 {
            let prefix = u16::try_from(sealed_len).map_err(|_| ProtoError::RecordTooLarge {
                len: sealed_len,
                max: MAX_RECORD,
            })?;
            self.pending[..PREFIX_LEN].copy_from_slice(&prefix.to_be_bytes());
        }
        if let Some(records) = &mut self.records {
            let tag = records.seal_in_place(&mut self.pending[header..])?;
            self.pending.put_slice(&tag);
        }
        let record = self.pending.split();
        self.records_sealed += 1;
        match self.framing {
            // Records sealed one after another in the same buffer are adjacent, so this
            // joins them without copying; a record in another buffer (its predecessor
            // was still queued when it reserved room) waits as a run of its own.
            Framing::LengthPrefixed => match self.stream_out.back_mut() {
                Some(run) if run.as_ptr().wrapping_add(run.len()) == record.as_ptr() => {
                    run.unsplit(record);
                }
                _ => self.stream_out.push_back(record),
            },
            Framing::Message => self.message_out.push_back(record.freeze()),
        }
        Ok(())
    }

    /// Seals queued frames and returns the next bytes to write: a run of adjacent records
    /// for length-prefixed framing (the open record is sealed once the runs before it
    /// are out), one record per call for message framing.
    pub fn poll_transmit(&mut self) -> Result<Option<Bytes>> {
        self.streaming = false;
        if self.framing == Framing::Message || self.stream_out.is_empty() {
            self.seal()?;
        }
        let out = match self.framing {
            // Taken whole, leaving no empty tail behind that would share the buffer:
            // once the bytes are written, the next record can then reuse it in place.
            Framing::LengthPrefixed => self.stream_out.pop_front().map(BytesMut::freeze),
            Framing::Message => self.message_out.pop_front(),
        };
        // Emptied buffers keep the spare room of their largest burst (and with it the
        // whole allocation) unless let go: a thousand idle connections would each hold
        // the biggest member list they ever sent.
        if self.pending.is_empty() && self.pending.capacity() > IDLE_BUFFER {
            self.pending = BytesMut::new();
        }
        Ok(out)
    }

    /// Lets go of the emptied output buffer, which otherwise stays for the next record
    /// to reuse (and keeps the allocation of the last record sent alive while it is
    /// written and after). For a board, where a record's worth of RAM counts more than
    /// an allocation per record; nothing queued is dropped.
    pub fn release_idle_buffer(&mut self) {
        if self.pending.is_empty() {
            self.pending = BytesMut::new();
        }
    }

    /// Decrypts one received record in place and returns its frames; the record's buffer
    /// becomes the frames' buffer, with no copy. A tampered, truncated or replayed record
    /// fails here (Noise nonces only move forward).
    pub fn open_owned(&mut self, mut record: BytesMut) -> Result<Frames> {
        if record.len() > MAX_RECORD {
            return Err(ProtoError::RecordTooLarge {
                len: record.len(),
                max: MAX_RECORD,
            });
        }
        if let Some(records) = &mut self.records {
            let len = records.open_in_place(&mut record)?;
            record.truncate(len);
        }
        Ok(Frames::new(record.freeze()))
    }

    /// Like [`Connection::open_owned`], for a record the caller keeps: copies it first.
    pub fn open(&mut self, record: &[u8]) -> Result<Frames> {
        if record.len() > MAX_RECORD {
            return Err(ProtoError::RecordTooLarge {
                len: record.len(),
                max: MAX_RECORD,
            });
        }
        self.open_owned(BytesMut::from(record))
    }
}

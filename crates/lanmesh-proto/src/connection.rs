//! An established connection: frames in, records out, and back.
//!
//! Frames queued with [`Connection::send`] are packed into the current record until it is
//! full; [`Connection::poll_transmit`] seals what is queued and hands out the bytes to
//! write. Callers call it when the socket is writable and they have nothing more to queue,
//! so a burst of small messages becomes a few large records (that batching is where the
//! speed comes from) without any timer.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use crate::algorithms::{Cipher, Compression};
use crate::error::{ProtoError, Result};
use crate::frame::{Frame, Frames};
use crate::limits::{MAX_RECORD, MAX_RECORD_PLAINTEXT, TAG_LEN};
use crate::record::{PREFIX_LEN, put_prefixed};

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
    noise: Option<snow::TransportState>,
    cipher: Cipher,
    compression: Compression,
    framing: Framing,
    /// Plaintext frames not yet sealed into a record.
    pending: BytesMut,
    /// Sealed bytes ready to write (length-prefixed framing).
    stream_out: BytesMut,
    /// Sealed records ready to send (message framing).
    message_out: VecDeque<Bytes>,
    records_sealed: u64,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("cipher", &self.cipher)
            .field("compression", &self.compression)
            .field("framing", &self.framing)
            .field("queued_bytes", &self.queued_bytes())
            .finish()
    }
}

impl Connection {
    pub(crate) fn new(
        noise: snow::TransportState,
        cipher: Cipher,
        compression: Compression,
        framing: Framing,
    ) -> Self {
        Self {
            noise: (cipher == Cipher::ChaCha20Poly1305).then_some(noise),
            cipher,
            compression,
            framing,
            pending: BytesMut::new(),
            stream_out: BytesMut::new(),
            message_out: VecDeque::new(),
            records_sealed: 0,
        }
    }

    /// The negotiated record protection.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// The negotiated payload compression.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Queues a frame. It is packed with others into the current record.
    pub fn send(&mut self, frame: &Frame) -> Result<()> {
        let len = frame.encoded_len();
        if len > MAX_RECORD_PLAINTEXT {
            return Err(ProtoError::FrameTooLarge {
                len,
                max: MAX_RECORD_PLAINTEXT,
            });
        }
        if self.pending.len() + len > MAX_RECORD_PLAINTEXT {
            self.seal()?;
        }
        frame.encode(&mut self.pending)
    }

    /// Bytes queued but not yet handed out by `poll_transmit`.
    pub fn queued_bytes(&self) -> usize {
        self.pending.len()
            + self.stream_out.len()
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

    fn seal(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let plain = self.pending.split();
        self.records_sealed += 1;
        match (&mut self.noise, self.framing) {
            // The common case on TCP: seal straight into the output stream, after the
            // length prefix, with no buffer of its own per record.
            (Some(noise), Framing::LengthPrefixed) => {
                let sealed_len = plain.len() + TAG_LEN;
                let prefix = u16::try_from(sealed_len).map_err(|_| ProtoError::RecordTooLarge {
                    len: sealed_len,
                    max: MAX_RECORD,
                })?;
                let out = &mut self.stream_out;
                out.reserve(PREFIX_LEN + sealed_len);
                out.put_u16(prefix);
                let start = out.len();
                out.resize(start + sealed_len, 0);
                let n = noise.write_message(&plain, &mut out[start..])?;
                out.truncate(start + n);
            }
            (None, Framing::LengthPrefixed) => put_prefixed(&mut self.stream_out, &plain)?,
            (Some(noise), Framing::Message) => {
                let mut sealed = vec![0u8; plain.len() + TAG_LEN];
                let n = noise.write_message(&plain, &mut sealed)?;
                sealed.truncate(n);
                self.message_out.push_back(Bytes::from(sealed));
            }
            (None, Framing::Message) => self.message_out.push_back(plain.freeze()),
        }
        Ok(())
    }

    /// Seals queued frames and returns the next bytes to write: everything at once for
    /// length-prefixed framing, one record per call for message framing.
    pub fn poll_transmit(&mut self) -> Result<Option<Bytes>> {
        self.seal()?;
        let out = match self.framing {
            Framing::LengthPrefixed if !self.stream_out.is_empty() => {
                Some(self.stream_out.split().freeze())
            }
            Framing::LengthPrefixed => None,
            Framing::Message => self.message_out.pop_front(),
        };
        // Emptied buffers keep the spare room of their largest burst (and with it the
        // whole allocation) unless let go: a thousand idle connections would each hold
        // the biggest member list they ever sent.
        for buf in [&mut self.pending, &mut self.stream_out] {
            if buf.is_empty() && buf.capacity() > IDLE_BUFFER {
                *buf = BytesMut::new();
            }
        }
        Ok(out)
    }

    /// Decrypts one received record and returns its frames. A tampered, truncated or
    /// replayed record fails here (Noise nonces only move forward).
    pub fn open(&mut self, record: &[u8]) -> Result<Frames> {
        if record.len() > MAX_RECORD {
            return Err(ProtoError::RecordTooLarge {
                len: record.len(),
                max: MAX_RECORD,
            });
        }
        let plain = match &mut self.noise {
            Some(noise) => {
                if record.len() < TAG_LEN {
                    return Err(ProtoError::Decrypt { during: "record" });
                }
                let mut out = vec![0u8; record.len()];
                let n = noise
                    .read_message(record, &mut out)
                    .map_err(|_| ProtoError::Decrypt { during: "record" })?;
                out.truncate(n);
                Bytes::from(out)
            }
            None => Bytes::copy_from_slice(record),
        };
        Ok(Frames::new(plain))
    }
}

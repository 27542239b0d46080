//! The driver: moves bytes between an `embedded-io` stream and the peer core, runs its
//! deadlines, and never blocks.
//!
//! Each [`Client::poll`]:
//! 1. reads while the stream says it is ready, into one receive buffer, and hands the
//!    buffer to the core, which takes every whole record off its front;
//! 2. runs the core's timeout when it is due;
//! 3. writes what the core has to send while the stream takes it; a write the stream
//!    took only part of keeps its rest for the next poll.
//!
//! End of stream or a stream error is reported to the core (which, with reconnection on,
//! emits [`Event::Dial`] after its backoff) and returned to the caller.

use alloc::format;
use core::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use embedded_io::{Read, ReadReady, Write, WriteReady};
use lanmesh_core::ClientError;
use lanmesh_core::Instant;
use lanmesh_core::peer::{Config, Event, PeerCore};
use lanmesh_proto::Limits;

use crate::error::EmbeddedError;

/// Bytes read from the stream in one call: a TCP segment's worth.
const READ_CHUNK: usize = 536;

/// Limits for a small device: records of at most `max_record` bytes, messages of at most
/// `max_message`, two messages reassembled at once, a small pending budget.
pub fn small_limits(max_record: usize, max_message: u64) -> Limits {
    Limits {
        max_message,
        max_record,
        max_partial_messages: 2,
        max_pending_bytes: 16 * 1024,
        ..Limits::default()
    }
}

/// A lanmesh peer on a board: the core, a receive buffer and what waits to be written.
pub struct Client {
    core: PeerCore,
    rx: BytesMut,
    tx: Bytes,
}

impl core::fmt::Debug for Client {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("core", &self.core)
            .field("buffered_in", &self.rx.len())
            .field("buffered_out", &self.tx.len())
            .finish()
    }
}

impl Client {
    /// A client for `config` (set `config.random` to the board's generator).
    pub fn new(config: Config) -> Self {
        Self {
            core: PeerCore::new(config),
            rx: BytesMut::new(),
            tx: Bytes::new(),
        }
    }

    /// The peer core, for the application's calls (`send_acked`, `request`, `reply`…).
    pub fn core(&mut self) -> &mut PeerCore {
        &mut self.core
    }

    /// Starts the handshake on a freshly opened stream (`router` names it in errors).
    /// Call it first, and again after each [`Event::Dial`] with a new stream.
    pub fn connect(&mut self, router: &str, now: Instant) -> Result<(), ClientError> {
        self.rx.clear();
        self.tx = Bytes::new();
        self.core.connect(router, now)
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.core.poll_event()
    }

    /// When to poll again at the latest (`None`: only when the stream has news).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    /// How long from `now` until [`poll_timeout`](Self::poll_timeout).
    pub fn poll_delay(&self, now: Instant) -> Option<Duration> {
        self.poll_timeout().map(|t| t.saturating_since(now))
    }

    /// One turn: read, deadlines, write. Returns whether any byte moved.
    pub fn poll<S>(&mut self, stream: &mut S, now: Instant) -> Result<bool, EmbeddedError>
    where
        S: Read + Write + ReadReady + WriteReady,
    {
        let mut moved = false;
        if self.core.has_transport() {
            moved |= self.read(stream, now)?;
        }
        if self.core.poll_timeout().is_some_and(|t| t <= now) {
            self.core.handle_timeout(now);
        }
        if self.core.has_transport() {
            moved |= self.write(stream, now)?;
        }
        Ok(moved)
    }

    fn read<S: Read + ReadReady>(
        &mut self,
        stream: &mut S,
        now: Instant,
    ) -> Result<bool, EmbeddedError> {
        let mut moved = false;
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            match stream.read_ready() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(self.failed(&e, now)),
            }
            match stream.read(&mut chunk) {
                Ok(0) => {
                    self.core.transport_closed(None, now);
                    return Err(EmbeddedError::Closed);
                }
                Ok(n) => {
                    self.rx.extend_from_slice(&chunk[..n]);
                    moved = true;
                }
                Err(e) => return Err(self.failed(&e, now)),
            }
        }
        if moved {
            self.core.handle_input(&mut self.rx, now);
        }
        Ok(moved)
    }

    fn write<S: Write + WriteReady>(
        &mut self,
        stream: &mut S,
        now: Instant,
    ) -> Result<bool, EmbeddedError> {
        let mut moved = false;
        loop {
            if self.tx.is_empty() {
                match self.core.poll_transmit() {
                    Some(bytes) => self.tx = bytes,
                    None => break,
                }
            }
            match stream.write_ready() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(self.failed(&e, now)),
            }
            match stream.write(&self.tx) {
                Ok(0) => break,
                Ok(n) => {
                    self.tx.advance(n);
                    moved = true;
                }
                Err(e) => return Err(self.failed(&e, now)),
            }
        }
        if moved {
            stream.flush().map_err(|e| self.failed(&e, now))?;
        }
        Ok(moved)
    }

    fn failed<E: core::fmt::Debug>(&mut self, e: &E, now: Instant) -> EmbeddedError {
        let text = format!("{e:?}");
        self.core.transport_closed(Some(text.clone()), now);
        EmbeddedError::Stream(text)
    }
}

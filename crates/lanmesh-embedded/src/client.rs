//! The driver: moves bytes between an `embedded-io` stream and the peer core, runs its
//! deadlines, and never blocks.
//!
//! Each [`Client::poll`]:
//! 1. reads while the stream says it is ready, one record at a time: its two-byte length
//!    first, which the core checks, then the record itself straight into a buffer of
//!    exactly its size, which goes to the core once it is whole. The stream's own buffer
//!    holds what is not read yet, so the client never holds more than one record; and
//!    the pieces of a record the core keeps (a message's data) keep only that record's
//!    buffer alive, not a buffer of everything read at once;
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

/// The record length in front of every record on a stream (big-endian u16).
const PREFIX_LEN: usize = 2;

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

/// A lanmesh peer on a board: the core, the record being read and what waits to be
/// written.
pub struct Client {
    core: PeerCore,
    /// The record being read, its length prefix included: `rx[..filled]` has arrived.
    rx: BytesMut,
    filled: usize,
    tx: Bytes,
}

impl core::fmt::Debug for Client {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("core", &self.core)
            .field("buffered_in", &self.filled)
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
            filled: 0,
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
        self.rx = BytesMut::new();
        self.filled = 0;
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
        loop {
            match stream.read_ready() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(self.failed(&e, now)),
            }
            let want = self.wanted();
            if self.rx.len() < want {
                self.rx.resize(want, 0);
            }
            match stream.read(&mut self.rx[self.filled..want]) {
                Ok(0) => {
                    self.core.transport_closed(None, now);
                    return Err(EmbeddedError::Closed);
                }
                Ok(n) => {
                    self.filled += n;
                    moved = true;
                }
                Err(e) => return Err(self.failed(&e, now)),
            }
            if self.filled < want {
                continue;
            }
            // With only the length prefix here the core refuses a length over its limit
            // (or zero) before room for the record is allocated, and reserves that room
            // otherwise; with the whole record it takes the record.
            self.core.handle_input(&mut self.rx, now);
            if self.rx.len() < self.filled {
                // Taken (what is left shares the record's allocation, so the next record
                // gets a fresh buffer), or dropped with the connection.
                self.rx = BytesMut::new();
                self.filled = 0;
            }
            if !self.core.has_transport() {
                break;
            }
        }
        Ok(moved)
    }

    /// How many bytes the record being read has in all once it is whole (only its
    /// length prefix while that has not arrived).
    fn wanted(&self) -> usize {
        if self.filled < PREFIX_LEN {
            return PREFIX_LEN;
        }
        PREFIX_LEN + usize::from(u16::from_be_bytes([self.rx[0], self.rx[1]]))
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
                    if self.tx.is_empty() {
                        // An empty view still keeps the record's allocation alive.
                        self.tx = Bytes::new();
                    }
                    moved = true;
                }
                Err(e) => return Err(self.failed(&e, now)),
            }
        }
        if moved {
            stream.flush().map_err(|e| self.failed(&e, now))?;
        }
        if self.tx.is_empty() {
            // All written: the stream holds the bytes now, so the core's output buffer
            // need not keep the last record's allocation for reuse.
            self.core.release_idle_buffers();
        }
        Ok(moved)
    }

    fn failed<E: core::fmt::Debug>(&mut self, e: &E, now: Instant) -> EmbeddedError {
        let text = format!("{e:?}");
        self.core.transport_closed(Some(text.clone()), now);
        EmbeddedError::Stream(text)
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use embedded_io::ErrorType;
    use lanmesh_proto::{HandshakeConfig, Identity, Name, RandomSource};

    use super::*;

    /// A stream holding `input`, handing out at most `per_read` bytes a read.
    struct Stream {
        input: Vec<u8>,
        per_read: usize,
        written: Vec<u8>,
    }

    impl ErrorType for Stream {
        type Error = core::convert::Infallible;
    }

    impl ReadReady for Stream {
        fn read_ready(&mut self) -> Result<bool, Self::Error> {
            Ok(!self.input.is_empty())
        }
    }

    impl Read for Stream {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            let n = buf.len().min(self.per_read).min(self.input.len());
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input.drain(..n);
            Ok(n)
        }
    }

    impl WriteReady for Stream {
        fn write_ready(&mut self) -> Result<bool, Self::Error> {
            Ok(true)
        }
    }

    impl Write for Stream {
        fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    fn counter_fill(buf: &mut [u8]) -> bool {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(73).wrapping_add(11);
        }
        true
    }

    fn connected_client() -> Client {
        let random = RandomSource::from_fn(counter_fill);
        let identity = Identity::generate_from(random).unwrap();
        let mut handshake = HandshakeConfig::new(identity, "lanmesh");
        handshake.limits = small_limits(4096, 16 * 1024);
        let mut config = Config::new(Some(Name::new("board").unwrap()), handshake);
        config.random = random;
        let mut client = Client::new(config);
        client.connect("router", Instant::from_millis(0)).unwrap();
        client
    }

    /// A length over the limit is refused from its two bytes: the client reads no further
    /// and allocates no room for it.
    fn refuses_oversized_length(per_read: usize) {
        let mut client = connected_client();
        let mut input = Vec::from(u16::MAX.to_be_bytes());
        input.extend_from_slice(&[7; 100]);
        let mut stream = Stream {
            input,
            per_read,
            written: Vec::new(),
        };
        assert!(client.core().has_transport());
        assert_eq!(client.poll(&mut stream, Instant::from_millis(0)), Ok(true));
        assert!(!client.core().has_transport(), "the connection is dropped");
        assert_eq!(stream.input.len(), 100, "nothing read past the length");
        assert!(client.rx.capacity() < 64, "no room reserved for the record");
    }

    #[test]
    fn oversized_length_is_refused_before_its_record_is_read() {
        refuses_oversized_length(usize::MAX);
    }

    #[test]
    fn oversized_length_arriving_a_byte_at_a_time_is_refused_too() {
        refuses_oversized_length(1);
    }
}

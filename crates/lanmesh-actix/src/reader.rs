//! The read side of a connection, owned by an actor.
//!
//! Like the writer, the reader is an `ActorFuture` in the owning actor's context. Before
//! each read it asks the actor whether it wants more ([`HasReader::can_read`]): an actor
//! whose inbox is full stops reading, TCP's window closes, and the pressure reaches the
//! router instead of growing a queue here.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use actix::{Actor, ActorFuture, AsyncContext};
use bytes::BytesMut;
use lanmesh_proto::{ProtoError, RecordDecoder};
use tokio::io::AsyncRead;

/// Implemented by actors that own a [`Reader`].
pub trait HasReader: Actor {
    /// The actor's reader.
    fn reader(&mut self) -> &mut Reader;
    /// Whether the actor takes another record now. When it answers `false` it must keep
    /// `waker` and wake it once it can take more (checking and storing under one lock if
    /// another thread decides that).
    fn can_read(&mut self, waker: &Waker) -> bool {
        let _ = waker;
        true
    }
    /// One whole record arrived.
    fn on_record(&mut self, record: BytesMut, ctx: &mut Self::Context);
    /// The stream ended: `None` when the other side closed, else the error.
    fn read_closed(&mut self, error: Option<ProtoError>, ctx: &mut Self::Context);
}

/// Incoming bytes of one connection, split into records.
pub struct Reader {
    generation: u64,
    io: Pin<Box<dyn AsyncRead>>,
    buf: BytesMut,
    /// How much room to make before a read: starts small, so a thousand idle
    /// connections do not each hold a large buffer, and doubles whenever a read fills
    /// all the room it had, up to [`READ_CHUNK`].
    chunk: usize,
    decoder: RecordDecoder,
    stopped: bool,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

/// The largest read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;
/// Record bytes handled per poll before yielding to other tasks.
const MAX_BYTES_PER_POLL: usize = 256 * 1024;
/// The first read buffer.
const FIRST_CHUNK: usize = 2 * 1024;

impl Reader {
    /// A reader of records up to `max_record` bytes from `io`.
    pub fn new(io: impl AsyncRead + 'static, max_record: usize) -> Self {
        Self {
            generation: crate::next_generation(),
            io: Box::pin(io),
            buf: BytesMut::new(),
            chunk: FIRST_CHUNK,
            decoder: RecordDecoder::new(max_record),
            stopped: false,
        }
    }

    /// A reader of nothing, standing in while an actor has no connection. Never started.
    pub fn detached() -> Self {
        Self::new(tokio::io::empty(), 0)
    }

    /// Spawns this reader's future into the actor's context. When the actor replaces the
    /// reader, the future of the old one ends without calling `read_closed`.
    pub fn start<A>(&self, ctx: &mut A::Context)
    where
        A: HasReader,
        A::Context: AsyncContext<A>,
    {
        ctx.spawn(ReadFut {
            generation: self.generation,
        });
    }

    /// Changes the largest record accepted: small during the handshake, so junk with a
    /// large length prefix is refused at once; the full limit afterwards.
    pub fn set_max_record(&mut self, max: usize) {
        self.decoder.set_max(max);
    }

    /// Stops reading for good.
    pub fn stop(&mut self) {
        self.stopped = true;
    }
}

struct ReadFut {
    generation: u64,
}

impl<A> ActorFuture<A> for ReadFut
where
    A: HasReader,
    A::Context: AsyncContext<A>,
{
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut A,
        ctx: &mut A::Context,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        // Bounded work per poll so one busy connection cannot starve the actor's mailbox,
        // nor, through a long stretch of decryption, the other connections on its thread:
        // at most 64 records, and at most about 256 KiB of them (a few large records of a
        // file transfer, against many small ones).
        let mut taken = 0;
        for _ in 0..64 {
            if taken >= MAX_BYTES_PER_POLL {
                break;
            }
            if act.reader().generation != self.generation || act.reader().stopped {
                return Poll::Ready(());
            }
            if !act.can_read(cx.waker()) {
                return Poll::Pending;
            }
            let reader = act.reader();
            match reader.decoder.decode(&mut reader.buf) {
                Ok(Some(record)) => {
                    taken += record.len();
                    act.on_record(record, ctx);
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    reader.stopped = true;
                    act.read_closed(Some(e), ctx);
                    return Poll::Ready(());
                }
            }
            if reader.buf.capacity() - reader.buf.len() < reader.chunk / 4 {
                reader.buf.reserve(reader.chunk);
            }
            let room = reader.buf.capacity() - reader.buf.len();
            match tokio_util::io::poll_read_buf(reader.io.as_mut(), cx, &mut reader.buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    reader.stopped = true;
                    act.read_closed(None, ctx);
                    return Poll::Ready(());
                }
                Poll::Ready(Ok(n)) => {
                    if n >= room {
                        reader.chunk = (reader.chunk * 2).min(READ_CHUNK);
                    }
                }
                Poll::Ready(Err(e)) => {
                    reader.stopped = true;
                    act.read_closed(Some(e.into()), ctx);
                    return Poll::Ready(());
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

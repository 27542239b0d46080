//! The read side of a byte stream, owned by an actor that drives a sans-IO core.
//!
//! The reader is an `ActorFuture` in the owning actor's context, so it reaches the actor
//! without locks. Before each read it asks whether the actor wants more
//! ([`ReadsStream::input_paused`]): an actor whose application is not keeping up stops
//! reading, TCP's window closes, and the pressure reaches the router instead of growing a
//! queue. What it reads goes to [`ReadsStream::on_input`] in the buffer the core takes
//! whole records from; a partial record stays there for the next read.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use actix::{Actor, ActorFuture, AsyncContext};
use bytes::BytesMut;
use tokio::io::AsyncRead;

/// Implemented by actors that own a [`StreamReader`].
pub trait ReadsStream: Actor {
    /// The actor's reader.
    fn reader(&mut self) -> &mut StreamReader;
    /// Whether reading must wait. When it answers `true` it must keep `waker` and wake it
    /// once it can take more (checking and storing under one lock if another thread
    /// decides that).
    fn input_paused(&mut self, waker: &Waker) -> bool {
        let _ = waker;
        false
    }
    /// Bytes arrived: take what is whole from the front of `input`.
    fn on_input(&mut self, input: &mut BytesMut, ctx: &mut Self::Context);
    /// The stream ended: `None` when the other side closed it, else the error.
    fn input_closed(&mut self, error: Option<std::io::Error>, ctx: &mut Self::Context);
}

/// Incoming bytes of one connection.
pub struct StreamReader {
    generation: u64,
    io: Pin<Box<dyn AsyncRead>>,
    buf: BytesMut,
    /// How much room to make before a read: starts small, so a thousand idle
    /// connections do not each hold a large buffer, and doubles whenever a read fills
    /// all the room it had, up to [`READ_CHUNK`].
    chunk: usize,
    stopped: bool,
}

impl std::fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamReader")
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

/// The largest read buffer growth step: a few full records, so a busy stream of large
/// messages takes a quarter of a mebibyte per read call rather than one record.
const READ_CHUNK: usize = 256 * 1024;
/// Bytes read per poll before yielding to other tasks.
const MAX_BYTES_PER_POLL: usize = 512 * 1024;
/// The first read buffer.
const FIRST_CHUNK: usize = 2 * 1024;

impl StreamReader {
    /// A reader of `io`. Call [`StreamReader::start`] to spawn its future.
    pub fn new(io: impl AsyncRead + 'static) -> Self {
        Self {
            generation: crate::next_generation(),
            io: Box::pin(io),
            buf: BytesMut::new(),
            chunk: FIRST_CHUNK,
            stopped: false,
        }
    }

    /// A reader of nothing, standing in while an actor has no connection. Never started.
    pub fn detached() -> Self {
        Self::new(tokio::io::empty())
    }

    /// Spawns this reader's future into the actor's context. When the actor replaces the
    /// reader, the future of the old one ends without calling `input_closed`.
    pub fn start<A>(&self, ctx: &mut A::Context)
    where
        A: ReadsStream,
        A::Context: AsyncContext<A>,
    {
        ctx.spawn(ReadFut {
            generation: self.generation,
        });
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
    A: ReadsStream,
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
        // nor, through a long stretch of decryption, the other connections on its thread.
        let mut taken = 0;
        for _ in 0..64 {
            if taken >= MAX_BYTES_PER_POLL {
                break;
            }
            if act.reader().generation != self.generation || act.reader().stopped {
                return Poll::Ready(());
            }
            if act.input_paused(cx.waker()) {
                return Poll::Pending;
            }
            let reader = act.reader();
            if reader.buf.capacity() - reader.buf.len() < reader.chunk / 4 {
                reader.buf.reserve(reader.chunk);
            }
            let room = reader.buf.capacity() - reader.buf.len();
            match tokio_util::io::poll_read_buf(reader.io.as_mut(), cx, &mut reader.buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    reader.stopped = true;
                    act.input_closed(None, ctx);
                    return Poll::Ready(());
                }
                Poll::Ready(Ok(n)) => {
                    taken += n;
                    if n >= room {
                        reader.chunk = (reader.chunk * 2).min(READ_CHUNK);
                    }
                    // Handed over in place: the core splits whole records off the front
                    // without copying them.
                    let mut input = std::mem::take(&mut reader.buf);
                    act.on_input(&mut input, ctx);
                    let reader = act.reader();
                    if reader.generation == self.generation {
                        reader.buf = input;
                    }
                }
                Poll::Ready(Err(e)) => {
                    reader.stopped = true;
                    act.input_closed(Some(e), ctx);
                    return Poll::Ready(());
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

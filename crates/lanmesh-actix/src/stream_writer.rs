//! The write side of a byte stream, owned by an actor that drives a sans-IO core.
//!
//! The writer is an `ActorFuture` spawned into the owning actor's context. Each time it
//! is polled it finishes the bytes it was writing, then asks the actor for the next
//! bytes ([`WritesStream::poll_output`]: what the core's `poll_transmit` hands out, the
//! frames queued since sealed into as few records as fit), and sleeps when there is
//! nothing left. No timer is involved: while the socket is busy, frames pile up in the
//! core and leave together in large records.
//!
//! Write coalescing. Most batching needs no help: frames queued while the actor or the
//! application is busy (a loop of sends, the forwards one read produces) are all waiting
//! when the writer next runs, and leave in one record. What needs a decision is a frame
//! that finds the writer idle:
//!
//! * If the thread has blocked waiting for events since this writer last wrote, the
//!   frame answers something that arrived (a reply, a forwarded message): nothing else
//!   is coming soon, so it is written at once. A request/reply round trip pays no delay.
//! * Otherwise the thread is in a burst of work, for example an application awaiting
//!   one acknowledged send after another. The writer lets one turn of the scheduler go
//!   by, so the tasks that are ready can queue more, and writes when a turn went by with
//!   nothing new, or when a record's worth ([`COALESCE_BYTES`]) is waiting.
//!
//! "Blocked since" is read from the runtime's park counter (a single-threaded runtime,
//! as actix runs, has one). Elsewhere the writer always takes the turn.
//!
//! A turn is marked by a tiny task spawned behind the ready ones: it runs after them and
//! wakes the writer. (Waking itself would not do: an actor's context polls its futures
//! again within the same poll when anything was spawned, before any other task ran.)

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use actix::{Actor, ActorFuture, AsyncContext};
use bytes::{Buf, Bytes};
use tokio::io::AsyncWrite;
use tokio::runtime::RuntimeMetrics;

/// Queued bytes that are written without waiting for more: about one full record.
pub const COALESCE_BYTES: usize = 48 * 1024;

/// Implemented by actors that own a [`StreamWriter`].
pub trait WritesStream: Actor {
    /// The actor's writer.
    fn writer(&mut self) -> &mut StreamWriter;
    /// Bytes queued in the core, not yet handed out.
    fn queued_output(&mut self) -> usize;
    /// The next bytes to write. `None` when nothing is queued, after arranging for `cx`
    /// to be woken when something is queued from outside the actor (the actor's own
    /// queueing calls [`StreamWriter::wake`]).
    fn poll_output(&mut self, cx: &mut Context<'_>) -> Option<Bytes>;
    /// `n` bytes went into the socket.
    fn wrote(&mut self, n: usize) {
        let _ = n;
    }
    /// Called once when the writer stops: after [`StreamWriter::close`] flushed
    /// everything and shut the socket down (`None`), or when the socket failed.
    fn output_closed(&mut self, error: Option<io::Error>, ctx: &mut Self::Context);
}

/// Outgoing bytes of one connection.
pub struct StreamWriter {
    generation: u64,
    io: Pin<Box<dyn AsyncWrite>>,
    /// Bytes handed to the socket but not yet taken by it.
    writing: Bytes,
    waker: Option<Waker>,
    /// Tasks waiting for the queue to drain below a threshold.
    drain_wakers: Vec<Waker>,
    closing: bool,
    /// Since when the socket has refused bytes, with no progress since: how long a peer
    /// has not been reading. The clock is read only when the socket is full.
    stalled_since: Option<std::time::Instant>,
    /// Bytes that were queued when the writer last yielded to let more be queued;
    /// `None` when it has not yielded for what is queued now.
    yielded_at: Option<usize>,
    /// Set by the task that marks the end of the scheduler turn the writer waits for.
    turn_over: Rc<Cell<bool>>,
    /// How often this thread had blocked for events when the writer last wrote.
    parks_at_write: Option<u64>,
    /// The runtime's counters, looked up on the first write.
    runtime: Option<Option<RuntimeMetrics>>,
}

impl std::fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamWriter")
            .field("writing", &self.writing.len())
            .field("closing", &self.closing)
            .finish_non_exhaustive()
    }
}

impl StreamWriter {
    /// A writer to `io`. Call [`StreamWriter::start`] to spawn its future.
    pub fn new(io: impl AsyncWrite + 'static) -> Self {
        Self {
            generation: crate::next_generation(),
            io: Box::pin(io),
            writing: Bytes::new(),
            waker: None,
            drain_wakers: Vec::new(),
            closing: false,
            stalled_since: None,
            yielded_at: None,
            turn_over: Rc::new(Cell::new(false)),
            parks_at_write: None,
            runtime: None,
        }
    }

    /// A writer to nowhere, standing in while an actor has no connection. Never started.
    pub fn detached() -> Self {
        Self::new(tokio::io::sink())
    }

    /// Spawns this writer's future into the actor's context. When the actor replaces the
    /// writer, the future of the old one ends without calling `output_closed`.
    pub fn start<A>(&self, ctx: &mut A::Context)
    where
        A: WritesStream,
        A::Context: AsyncContext<A>,
    {
        ctx.spawn(WriteFut {
            generation: self.generation,
        });
    }

    /// Bytes handed to the socket and not yet taken by it.
    pub fn writing(&self) -> usize {
        self.writing.len()
    }

    /// Since when the socket has taken nothing while bytes wait (`None`: it is keeping
    /// up). A peer that stopped reading shows here.
    pub fn stalled_since(&self) -> Option<std::time::Instant> {
        self.stalled_since.filter(|_| !self.writing.is_empty())
    }

    /// Flushes what is queued, then shuts the socket's write side down; the actor's
    /// `output_closed` runs when that is done.
    pub fn close(&mut self) {
        self.closing = true;
        self.wake_now();
    }

    /// Whether `close` was called.
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// A future (in the owning actor's context) that completes once no more than
    /// `threshold` bytes wait (queued in the core or being written): how senders wait
    /// instead of queueing without bound. The actor keeps processing other events.
    pub fn drained(threshold: usize) -> Drained {
        Drained { threshold }
    }

    /// Wakes the writer after the actor queued something, unless the actor is in a poll
    /// marked by [`crate::same_poll::start`]: then the writer runs later in that poll,
    /// or the poll's end wakes the actor.
    pub fn wake(&mut self) {
        if crate::same_poll::note_write() {
            self.wake_now();
        }
    }

    fn wake_now(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// How often this thread has blocked waiting for events; `None` when that cannot be
    /// told (no runtime, or one with several worker threads).
    fn parks(&mut self) -> Option<u64> {
        let metrics = self.runtime.get_or_insert_with(|| {
            tokio::runtime::Handle::try_current()
                .ok()
                .map(|h| h.metrics())
                .filter(|m| m.num_workers() == 1)
        });
        metrics.as_ref().map(|m| m.worker_park_count(0))
    }

    /// Whether the thread blocked for events since this writer last wrote.
    fn blocked_since_write(&mut self) -> bool {
        let at_write = self.parks_at_write;
        self.parks().is_some_and(|now| at_write != Some(now))
    }

    /// Whether to take what is queued now, or yield one scheduler turn first so that
    /// more can join it (see the module docs). Wakes the writer when it yields.
    fn should_wait_for_more(&mut self, queued: usize, cx: &mut Context<'_>) -> bool {
        if self.closing || queued == 0 || queued >= COALESCE_BYTES {
            self.yielded_at = None;
            return false;
        }
        if self.yielded_at.is_none() && self.blocked_since_write() {
            return false;
        }
        match self.yielded_at {
            // Polled again before the turn is over: keep waiting for the marker task.
            Some(_) if !self.turn_over.get() => return true,
            // A whole turn brought nothing new: this is all there is for now.
            Some(at) if at == queued => {
                self.yielded_at = None;
                return false;
            }
            _ => {}
        }
        self.yielded_at = Some(queued);
        self.turn_over.set(false);
        let (turn_over, waker) = (self.turn_over.clone(), cx.waker().clone());
        actix::spawn(async move {
            // Deferred until the scheduler has polled everything that was ready,
            // the runtime's main future included.
            tokio::task::yield_now().await;
            turn_over.set(true);
            waker.wake();
        });
        true
    }
}

/// Writes until the socket is full or nothing is queued.
fn poll_write_all<A: WritesStream>(act: &mut A, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    loop {
        if act.writer().writing.is_empty() {
            let queued = act.queued_output();
            if act.writer().should_wait_for_more(queued, cx) {
                return Poll::Pending;
            }
            match act.poll_output(cx) {
                Some(b) => {
                    let w = act.writer();
                    w.writing = b;
                    w.parks_at_write = w.parks();
                }
                None => return Poll::Ready(Ok(())),
            }
        }
        let w = act.writer();
        match w.io.as_mut().poll_write(cx, &w.writing) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => {
                w.writing.advance(n);
                if w.writing.is_empty() {
                    // Let go of the written buffer now: the core's next record then
                    // reuses it in place instead of allocating another.
                    w.writing = Bytes::new();
                }
                w.stalled_since = None;
                for waker in w.drain_wakers.drain(..) {
                    waker.wake();
                }
                act.wrote(n);
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {
                w.stalled_since.get_or_insert_with(std::time::Instant::now);
                return Poll::Pending;
            }
        }
    }
}

struct WriteFut {
    generation: u64,
}

impl<A> ActorFuture<A> for WriteFut
where
    A: WritesStream,
    A::Context: AsyncContext<A>,
{
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut A,
        ctx: &mut A::Context,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        if act.writer().generation != self.generation {
            return Poll::Ready(());
        }
        // Whatever happens below, this writer has seen everything queued so far.
        crate::same_poll::wrote();
        match poll_write_all(act, cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => {
                act.output_closed(Some(e), ctx);
                return Poll::Ready(());
            }
            Poll::Ready(Ok(())) => {}
        }
        let w = act.writer();
        if !w.closing {
            w.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        match w.io.as_mut().poll_shutdown(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                act.output_closed(result.err(), ctx);
                Poll::Ready(())
            }
        }
    }
}

/// See [`StreamWriter::drained`].
#[derive(Debug)]
pub struct Drained {
    threshold: usize,
}

impl<A> ActorFuture<A> for Drained
where
    A: WritesStream,
    A::Context: AsyncContext<A>,
{
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut A,
        _: &mut A::Context,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        let pending = act.queued_output() + act.writer().writing.len();
        let w = act.writer();
        if pending <= self.threshold || w.closing {
            return Poll::Ready(());
        }
        // Every future of one actor shares the context's waker: keep one copy.
        if !w.drain_wakers.iter().any(|x| x.will_wake(cx.waker())) {
            w.drain_wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::pair;
    use actix::{Context as ActorContext, Handler, Message};
    use bytes::BytesMut;
    use lanmesh_proto::frame::Message as Msg;
    use lanmesh_proto::{Connection, Established, Frame, Name, RecordDecoder};
    use tokio::io::AsyncReadExt;

    /// An actor whose "core" is a bare connection: frames in, records out.
    struct Sender {
        writer: StreamWriter,
        conn: Connection,
    }

    impl Actor for Sender {
        type Context = ActorContext<Self>;
        fn started(&mut self, ctx: &mut ActorContext<Self>) {
            self.writer.start::<Self>(ctx);
        }
    }

    impl WritesStream for Sender {
        fn writer(&mut self) -> &mut StreamWriter {
            &mut self.writer
        }
        fn queued_output(&mut self) -> usize {
            self.conn.queued_bytes()
        }
        fn poll_output(&mut self, _: &mut Context<'_>) -> Option<Bytes> {
            self.conn.poll_transmit().unwrap()
        }
        fn output_closed(&mut self, _: Option<io::Error>, _: &mut ActorContext<Self>) {}
    }

    #[derive(Message)]
    #[rtype(result = "()")]
    struct Queue(u64);

    impl Handler<Queue> for Sender {
        type Result = ();
        fn handle(&mut self, Queue(id): Queue, _: &mut ActorContext<Self>) {
            self.conn.send(&small_frame(id)).unwrap();
            self.writer.wake();
        }
    }

    /// A 64-byte message to "b".
    fn small_frame(id: u64) -> Frame {
        Frame::Send(Msg {
            peer: Name::new("b").unwrap(),
            id,
            flags: 0,
            chunk: None,
            prev: None,
            payload: Bytes::from_static(&[7; 64]),
        })
    }

    /// Reads records until `frames` frames arrived; returns how many records carried them.
    async fn records_for(
        read: &mut tokio::io::DuplexStream,
        buf: &mut BytesMut,
        rx: &mut Established,
        frames: usize,
    ) -> usize {
        let (mut seen, mut records) = (0, 0);
        let mut dec = RecordDecoder::new(lanmesh_proto::limits::MAX_RECORD);
        while seen < frames {
            match dec.decode(buf).unwrap() {
                Some(record) => {
                    records += 1;
                    seen += rx.connection.open_owned(record).unwrap().count();
                }
                None => assert!(read.read_buf(buf).await.unwrap() > 0, "stream ended"),
            }
        }
        records
    }

    #[actix_rt::test]
    async fn a_sender_in_a_loop_fills_records_and_a_lone_message_still_leaves() {
        let (tx, mut rx) = pair();
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        let addr = Sender {
            writer: StreamWriter::new(ours),
            conn: tx.connection,
        }
        .start();
        // One actor message at a time, each awaited: what an application's send loop does.
        for id in 0..500 {
            addr.send(Queue(id)).await.unwrap();
        }
        let mut buf = BytesMut::new();
        let records = records_for(&mut theirs, &mut buf, &mut rx, 500).await;
        assert!(records <= 20, "500 sends left in {records} records");
        // Nothing else is coming: a single message is written without waiting for more.
        addr.send(Queue(500)).await.unwrap();
        assert_eq!(records_for(&mut theirs, &mut buf, &mut rx, 1).await, 1);
    }

    #[actix_rt::test]
    async fn a_writer_writes_at_once_only_after_its_thread_blocked_for_events() {
        let (ours, _theirs) = tokio::io::duplex(1024);
        let mut writer = StreamWriter::new(ours);
        // What the writer notes when it writes.
        writer.parks_at_write = writer.parks();
        assert!(
            writer.parks_at_write.is_some(),
            "actix runs one worker thread"
        );
        assert!(
            !writer.blocked_since_write(),
            "no block since the write: a burst"
        );
        // Nothing else is ready, so the thread blocks until the timer fires: exactly the
        // event this test is about, not a wait for some other condition.
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        assert!(
            writer.blocked_since_write(),
            "the thread blocked since the write"
        );
    }

    /// An actor that queues a burst once and reports on its writer.
    struct Stalled {
        writer: StreamWriter,
        conn: Connection,
    }

    impl Actor for Stalled {
        type Context = ActorContext<Self>;
        fn started(&mut self, ctx: &mut ActorContext<Self>) {
            let mut id = 0;
            while self.conn.queued_bytes() < COALESCE_BYTES {
                id += 1;
                self.conn.send(&small_frame(id)).unwrap();
            }
            self.writer.start::<Self>(ctx);
        }
    }

    impl WritesStream for Stalled {
        fn writer(&mut self) -> &mut StreamWriter {
            &mut self.writer
        }
        fn queued_output(&mut self) -> usize {
            self.conn.queued_bytes()
        }
        fn poll_output(&mut self, _: &mut Context<'_>) -> Option<Bytes> {
            self.conn.poll_transmit().unwrap()
        }
        fn output_closed(&mut self, _: Option<io::Error>, _: &mut ActorContext<Self>) {}
    }

    #[derive(Message)]
    #[rtype(result = "(Option<std::time::Instant>, usize)")]
    struct Look;

    impl Handler<Look> for Stalled {
        type Result = actix::MessageResult<Look>;
        fn handle(&mut self, _: Look, _: &mut ActorContext<Self>) -> Self::Result {
            actix::MessageResult((
                self.writer.stalled_since(),
                self.conn.queued_bytes() + self.writer.writing(),
            ))
        }
    }

    #[actix_rt::test]
    async fn the_stall_clock_runs_only_while_the_socket_refuses_bytes() {
        let (tx, _rx) = pair();
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let addr = Stalled {
            writer: StreamWriter::new(ours),
            conn: tx.connection,
        }
        .start();
        // The writer runs once the actor has started; its first write fills the pipe.
        let mut looked = addr.send(Look).await.unwrap();
        for _ in 0..100 {
            if looked.0.is_some() {
                break;
            }
            tokio::task::yield_now().await;
            looked = addr.send(Look).await.unwrap();
        }
        let (since, pending) = looked;
        let since = since.expect("the clock starts when the socket refuses bytes");
        assert!(pending > 0);
        assert_eq!(addr.send(Look).await.unwrap().0, Some(since), "no progress");
        // The other side reads: progress, until nothing is left.
        let mut sink = vec![0; 4096];
        loop {
            let (now, pending) = addr.send(Look).await.unwrap();
            if pending == 0 {
                assert_eq!(now, None, "nothing waits: no stall");
                break;
            }
            assert!(theirs.read(&mut sink).await.unwrap() > 0);
        }
    }
}

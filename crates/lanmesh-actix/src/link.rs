//! The write side of a connection, owned by an actor.
//!
//! The writer is an `ActorFuture` spawned into the owning actor's context, so it reaches
//! the actor's [`Link`] without locks. Each time it is polled it finishes the bytes it
//! was writing, then asks the connection for everything queued since (sealed into as few
//! records as fit), and sleeps when there is nothing left.
//!
//! Write coalescing, without timers. Most batching needs no help: frames queued while
//! the actor or the application is busy (a loop of `send`s through the lane, the
//! forwards one read produces) are all waiting when the writer next runs, and leave in
//! one record. What needs a decision is a frame that finds the link idle:
//!
//! * If the thread has blocked waiting for events since this link last wrote, the frame
//!   answers something that arrived (a reply, a forwarded message): nothing else is
//!   coming soon, so it is written at once. A request/reply round trip pays no delay.
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
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use actix::{Actor, ActorFuture, AsyncContext};
use bytes::{Buf, Bytes, BytesMut};
use lanmesh_proto::record::put_prefixed;
use lanmesh_proto::{Connection, Frame, ProtoError};
use tokio::io::AsyncWrite;
use tokio::runtime::RuntimeMetrics;

use crate::lane::Lane;

/// Queued bytes that are written without waiting for more: about one full record.
pub const COALESCE_BYTES: usize = 48 * 1024;

/// Why the write side stopped.
#[derive(Debug)]
pub enum LinkError {
    /// The socket failed.
    Io(io::Error),
    /// Sealing a record failed (a frame larger than a record, or a Noise failure).
    Proto(ProtoError),
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "write failed: {e}"),
            Self::Proto(e) => write!(f, "{e}"),
        }
    }
}

/// Implemented by actors that own a [`Link`].
pub trait HasLink: Actor {
    /// The actor's link.
    fn link(&mut self) -> &mut Link;
    /// Called once when the writer stops: after a graceful close (`None`) or a failure.
    fn link_closed(&mut self, error: Option<LinkError>, ctx: &mut Self::Context);
}

/// Outgoing bytes of one connection: handshake messages first, then records.
pub struct Link {
    generation: u64,
    io: Pin<Box<dyn AsyncWrite>>,
    /// Handshake messages, already length-prefixed.
    handshake: BytesMut,
    /// The transport phase, once the handshake is done.
    connection: Option<Connection>,
    /// Frames queued by handles without the actor (see [`Lane`]).
    lane: Option<Arc<Lane>>,
    /// Bytes handed to the socket but not yet taken by it.
    writing: Bytes,
    waker: Option<Waker>,
    /// Tasks waiting for the queue to drain below a threshold.
    drain_wakers: Vec<Waker>,
    closing: bool,
    /// Since when the socket has refused bytes, with no progress since: how long a peer
    /// has not been reading. The clock is read only when the socket is full, not on
    /// every write.
    stalled_since: Option<std::time::Instant>,
    /// Bytes that were queued when the writer last yielded to let more be queued;
    /// `None` when it has not yielded for what is queued now.
    yielded_at: Option<usize>,
    /// Set by the task that marks the end of the scheduler turn the writer waits for.
    turn_over: Rc<Cell<bool>>,
    /// How often this thread had blocked for events when the link last wrote.
    parks_at_write: Option<u64>,
    /// The runtime's counters, looked up on the first write.
    runtime: Option<Option<RuntimeMetrics>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("connection", &self.connection)
            .field("pending", &self.pending_bytes())
            .field("closing", &self.closing)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// A link writing to `io`. Call [`Link::start`] to spawn its writer.
    pub fn new(io: impl AsyncWrite + 'static) -> Self {
        Self {
            generation: crate::next_generation(),
            io: Box::pin(io),
            handshake: BytesMut::new(),
            connection: None,
            lane: None,
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

    /// A link that writes nowhere, standing in while an actor has no connection. Its
    /// writer is never started.
    pub fn detached() -> Self {
        Self::new(tokio::io::sink())
    }

    /// Spawns this link's writer into the actor's context. When the actor replaces the
    /// link, the writer of the old one ends without calling `link_closed`.
    pub fn start<A>(&self, ctx: &mut A::Context)
    where
        A: HasLink,
        A::Context: AsyncContext<A>,
    {
        ctx.spawn(Writer {
            generation: self.generation,
        });
    }

    /// Queues a handshake message (length-prefixed on the wire).
    pub fn send_handshake(&mut self, msg: &[u8]) -> Result<(), ProtoError> {
        put_prefixed(&mut self.handshake, msg)?;
        self.wake();
        Ok(())
    }

    /// Installs the transport phase once the handshake is complete.
    pub fn set_connection(&mut self, connection: Connection) {
        self.connection = Some(connection);
    }

    /// Takes frames from `lane` too, before anything queued after them. Set it once the
    /// connection is installed.
    pub fn set_lane(&mut self, lane: Arc<Lane>) {
        self.lane = Some(lane);
        self.wake();
    }

    /// The transport phase, if the handshake is complete.
    pub fn connection(&mut self) -> Option<&mut Connection> {
        self.connection.as_mut()
    }

    /// The transport phase, if the handshake is complete (shared).
    pub fn connection_ref(&self) -> Option<&Connection> {
        self.connection.as_ref()
    }

    /// Queues a frame. Frames sent before the handshake is complete are an error.
    pub fn send(&mut self, frame: &Frame) -> Result<(), ProtoError> {
        let conn = self.connection.as_mut().ok_or(ProtoError::Negotiation {
            what: "frame before the handshake completed",
        })?;
        // What handles queued before this frame goes first.
        if let Some(lane) = &self.lane {
            lane.drain_into(conn, None)?;
        }
        conn.send(frame)?;
        self.wake();
        Ok(())
    }

    /// How long bytes have been waiting without the socket taking any: zero when nothing
    /// is pending. A peer that stopped reading shows here.
    pub fn stalled_for(&self) -> std::time::Duration {
        match self.stalled_since {
            Some(since) if self.pending_bytes() > 0 => since.elapsed(),
            _ => std::time::Duration::ZERO,
        }
    }

    /// Bytes queued or being written: the measure for per-session byte budgets.
    pub fn pending_bytes(&self) -> usize {
        self.handshake.len()
            + self.writing.len()
            + self.connection.as_ref().map_or(0, Connection::queued_bytes)
            + self.lane.as_ref().map_or(0, |l| l.queued_bytes())
    }

    /// Flushes what is queued, then shuts the socket's write side down; the actor's
    /// `link_closed` runs when that is done.
    pub fn close(&mut self) {
        self.closing = true;
        self.wake();
    }

    /// A future (in the owning actor's context) that completes once no more than
    /// `threshold` bytes are pending: how senders wait instead of queueing without bound.
    /// The actor keeps processing other events meanwhile.
    pub fn drained(threshold: usize) -> Drained {
        Drained { threshold }
    }

    /// Whether `close` was called.
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// Wakes the writer after queueing, unless the actor is in a poll marked by
    /// [`crate::same_poll::start`]: then the writer runs later in that poll, or the poll's
    /// end wakes the actor.
    pub fn wake(&mut self) {
        if !crate::same_poll::note_write() {
            return;
        }
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    fn next_bytes(&mut self) -> Result<Option<Bytes>, ProtoError> {
        if !self.handshake.is_empty() {
            return Ok(Some(self.handshake.split().freeze()));
        }
        match &mut self.connection {
            Some(conn) => conn.poll_transmit(),
            None => Ok(None),
        }
    }

    /// Whether to take what is queued now, or yield one scheduler turn first so that
    /// more can join it (see the module docs). Wakes the writer when it yields.
    fn should_wait_for_more(&mut self, cx: &mut Context<'_>) -> bool {
        let queued = self.connection.as_ref().map_or(0, Connection::queued_bytes);
        if !self.handshake.is_empty() || self.closing || queued == 0 || queued >= COALESCE_BYTES {
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

    /// Whether the thread blocked for events since this link last wrote (see the
    /// module docs).
    fn blocked_since_write(&mut self) -> bool {
        let at_write = self.parks_at_write;
        self.parks().is_some_and(|now| at_write != Some(now))
    }

    fn poll_write_all(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), LinkError>> {
        loop {
            if self.writing.is_empty() {
                if let (Some(lane), Some(conn)) = (&self.lane, &mut self.connection) {
                    if let Err(e) = lane.drain_into(conn, Some(cx.waker())) {
                        return Poll::Ready(Err(LinkError::Proto(e)));
                    }
                }
                if self.should_wait_for_more(cx) {
                    return Poll::Pending;
                }
                match self.next_bytes() {
                    Ok(Some(b)) => {
                        self.writing = b;
                        self.parks_at_write = self.parks();
                    }
                    Ok(None) => return Poll::Ready(Ok(())),
                    Err(e) => return Poll::Ready(Err(LinkError::Proto(e))),
                }
            }
            match self.io.as_mut().poll_write(cx, &self.writing) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(LinkError::Io(io::ErrorKind::WriteZero.into())));
                }
                Poll::Ready(Ok(n)) => {
                    self.writing.advance(n);
                    if self.writing.is_empty() {
                        // Let go of the written buffer now: the connection's next record
                        // then reuses it in place instead of allocating another.
                        self.writing = Bytes::new();
                    }
                    self.stalled_since = None;
                    for w in self.drain_wakers.drain(..) {
                        w.wake();
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(LinkError::Io(e))),
                Poll::Pending => {
                    self.stalled_since
                        .get_or_insert_with(std::time::Instant::now);
                    return Poll::Pending;
                }
            }
        }
    }
}

struct Writer {
    generation: u64,
}

impl<A> ActorFuture<A> for Writer
where
    A: HasLink,
    A::Context: AsyncContext<A>,
{
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut A,
        ctx: &mut A::Context,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        let link = act.link();
        if link.generation != self.generation {
            return Poll::Ready(());
        }
        // Whatever happens below, this writer has seen everything queued so far.
        crate::same_poll::wrote();
        match link.poll_write_all(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => {
                act.link_closed(Some(e), ctx);
                return Poll::Ready(());
            }
            Poll::Ready(Ok(())) => {}
        }
        if !link.closing {
            link.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        match link.io.as_mut().poll_shutdown(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                act.link_closed(result.err().map(LinkError::Io), ctx);
                Poll::Ready(())
            }
        }
    }
}

/// See [`Link::drained`].
#[derive(Debug)]
pub struct Drained {
    threshold: usize,
}

impl<A> ActorFuture<A> for Drained
where
    A: HasLink,
    A::Context: AsyncContext<A>,
{
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut A,
        _: &mut A::Context,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        let link = act.link();
        if link.pending_bytes() <= self.threshold || link.closing {
            return Poll::Ready(());
        }
        // Every future of one actor shares the context's waker: keep one copy.
        if !link.drain_wakers.iter().any(|w| w.will_wake(cx.waker())) {
            link.drain_wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::pair;
    use actix::{Context, Handler, Message};
    use bytes::BytesMut;
    use lanmesh_proto::frame::Message as Msg;
    use lanmesh_proto::{Established, Name, RecordDecoder};
    use tokio::io::AsyncReadExt;

    struct Sender {
        link: Link,
    }

    impl Actor for Sender {
        type Context = Context<Self>;
        fn started(&mut self, ctx: &mut Context<Self>) {
            self.link.start::<Self>(ctx);
        }
    }

    impl HasLink for Sender {
        fn link(&mut self) -> &mut Link {
            &mut self.link
        }
        fn link_closed(&mut self, _: Option<LinkError>, _: &mut Context<Self>) {}
    }

    #[derive(Message)]
    #[rtype(result = "()")]
    struct Queue(u64);

    impl Handler<Queue> for Sender {
        type Result = ();
        fn handle(&mut self, Queue(id): Queue, _: &mut Context<Self>) {
            self.link.send(&small_frame(id)).unwrap();
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
        let mut link = Link::new(ours);
        link.set_connection(tx.connection);
        let addr = Sender { link }.start();
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
    async fn a_link_writes_at_once_only_after_its_thread_blocked_for_events() {
        let (ours, _theirs) = tokio::io::duplex(1024);
        let mut link = Link::new(ours);
        // What the writer notes when it writes.
        link.parks_at_write = link.parks();
        assert!(
            link.parks_at_write.is_some(),
            "actix runs one worker thread"
        );
        assert!(
            !link.blocked_since_write(),
            "no block since the write: a burst"
        );
        // Nothing else is ready, so the thread blocks until the timer fires: exactly the
        // event this test is about, not a wait for some other condition.
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        assert!(
            link.blocked_since_write(),
            "the thread blocked since the write"
        );
    }

    #[actix_rt::test]
    async fn the_stall_clock_runs_only_while_the_socket_refuses_bytes() {
        let (tx, _rx) = pair();
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let mut link = Link::new(ours);
        link.set_connection(tx.connection);
        let mut id = 0;
        while link.pending_bytes() < COALESCE_BYTES {
            id += 1;
            link.send(&small_frame(id)).unwrap();
        }
        assert_eq!(link.stalled_for(), std::time::Duration::ZERO);
        // Whether the writer is still waiting for the socket.
        async fn blocked(link: &mut Link) -> bool {
            std::future::poll_fn(|cx| Poll::Ready(link.poll_write_all(cx).is_pending())).await
        }
        assert!(blocked(&mut link).await, "the socket takes 1 KiB at most");
        let since = link
            .stalled_since
            .expect("the clock starts when the socket refuses bytes");
        assert!(blocked(&mut link).await);
        assert_eq!(link.stalled_since, Some(since), "still no progress");
        // The other side reads: progress, until nothing is left.
        let mut sink = vec![0; 4096];
        loop {
            assert!(theirs.read(&mut sink).await.unwrap() > 0);
            if !blocked(&mut link).await {
                break;
            }
        }
        assert_eq!(link.pending_bytes(), 0);
        assert_eq!(link.stalled_since, None);
        assert_eq!(link.stalled_for(), std::time::Duration::ZERO);
    }
}

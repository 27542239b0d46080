//! Message transports (WebSocket) under the same actors as byte streams (TCP).
//!
//! A WebSocket carries one record per binary message. [`bridge`] turns a stream of such
//! messages and a sink for them into the length-prefixed byte stream that
//! [`StreamReader`](crate::StreamReader) and [`StreamWriter`](crate::StreamWriter) move,
//! through an in-memory pipe and two small tasks on the current arbiter. The router's
//! `Session` and the client's `PeerActor` then run unchanged on either transport; the
//! cost is one copy per record.

use bytes::{Bytes, BytesMut};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use lanmesh_proto::RecordDecoder;
use lanmesh_proto::limits::MAX_RECORD;
use lanmesh_proto::record::put_prefixed;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tracing::debug;

/// Room in the in-memory pipe, each way: enough for several full records.
const PIPE: usize = 4 * (MAX_RECORD + 2);

/// Room kept by an idle pump between records; more is dropped once a record has left.
const IDLE_BUF: usize = 16 * 1024;
/// Room offered to each read of the pipe.
const READ_ROOM: usize = 8 * 1024;

/// The byte-stream ends of a bridged message transport.
pub type Bridged = (ReadHalf<DuplexStream>, WriteHalf<DuplexStream>);

/// Bridges `incoming` messages and an `outgoing` sink to a length-prefixed byte stream.
/// An empty or oversized message, or the end of `incoming`, ends the stream (the actor
/// reading it then closes the connection); the end of the stream closes `outgoing` and
/// then runs `on_end` (for a transport whose sink cannot close the connection itself).
pub fn bridge<In, Out, E, End>(mut incoming: In, mut outgoing: Out, on_end: End) -> Bridged
where
    In: Stream<Item = Bytes> + Unpin + 'static,
    Out: Sink<Bytes, Error = E> + Unpin + 'static,
    E: std::fmt::Display,
    End: std::future::Future<Output = ()> + 'static,
{
    let (ours, theirs) = tokio::io::duplex(PIPE);
    let (mut from_actor, mut to_actor) = tokio::io::split(theirs);
    actix::spawn(async move {
        let mut framed = BytesMut::new();
        while let Some(msg) = incoming.next().await {
            if msg.is_empty() || put_prefixed(&mut framed, &msg).is_err() {
                debug!(
                    len = msg.len(),
                    "websocket message is not a valid record; closing"
                );
                break;
            }
            if to_actor.write_all(&framed.split()).await.is_err() {
                break;
            }
        }
        let _ = to_actor.shutdown().await;
    });
    actix::spawn(async move {
        let mut decoder = RecordDecoder::new(MAX_RECORD);
        // Grown as records need it, not up front: a quarter of a megabyte for every
        // connection, most of them idle, is what made silent WebSockets cost the router
        // memory it never gave back (glibc keeps the freed blocks of a worker's arena).
        let mut buf = BytesMut::new();
        'pump: loop {
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(record)) => {
                        if let Err(e) = outgoing.send(record.freeze()).await {
                            debug!(error = %e, "websocket send failed");
                            break 'pump;
                        }
                    }
                    Ok(None) => break,
                    // The actor only writes valid records; this cannot happen.
                    Err(_) => break 'pump,
                }
            }
            if buf.is_empty() && buf.capacity() > IDLE_BUF {
                buf = BytesMut::new();
            }
            if buf.capacity() - buf.len() < READ_ROOM {
                buf.reserve(READ_ROOM);
            }
            match from_actor.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = outgoing.close().await;
        on_end.await;
    });
    tokio::io::split(ours)
}

//! The baseline: a one-hop relay of length-prefixed messages over plain tokio TCP.
//!
//! Wire format: each message is a 4-byte big-endian length and that many bytes. The
//! relay forwards every whole message it reads from one connection to every other
//! connection (with two clients that is one-to-one; with 101 it is a fan-out). It reads
//! in large chunks and forwards all the whole messages of a chunk as one buffer, through
//! a bounded queue per destination, so a slow reader slows its senders down instead of
//! losing messages. No names, no encryption, no acknowledgements: the ceiling of what
//! one hop through a user-space process costs.
//!
//! 1. A client connects; the relay registers it and sends an empty message (length 0)
//!    as a welcome, so the client knows it will receive what others send from then on.
//! 2. Messages flow; an empty message from a client is forwarded like any other.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Length prefix of each message.
const PREFIX: usize = 4;
/// Read size of the relay and its clients.
const READ_CHUNK: usize = 256 * 1024;
/// Buffers queued per destination before its senders wait.
const QUEUE: usize = 64;
/// A client writes once this much is buffered (and on `flush`).
const WRITE_BATCH: usize = 64 * 1024;

type Hub = Arc<Mutex<Vec<(u64, mpsc::Sender<Bytes>)>>>;

/// The relay server.
#[derive(Debug)]
pub struct RelayServer {
    listener: TcpListener,
}

impl RelayServer {
    /// Binds the listening socket.
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(addr).await?,
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts and relays until the process ends.
    pub async fn run(self) -> io::Result<()> {
        let hub: Hub = Arc::default();
        let mut next_id = 0u64;
        loop {
            let (stream, _) = self.listener.accept().await?;
            stream.set_nodelay(true)?;
            next_id += 1;
            let (read, write) = stream.into_split();
            let (tx, rx) = mpsc::channel(QUEUE);
            // The welcome goes first, before anything another client sends.
            if tx.try_send(Bytes::from_static(&[0; PREFIX])).is_err() {
                continue;
            }
            lock(&hub).push((next_id, tx));
            tokio::spawn(write_loop(write, rx));
            tokio::spawn(read_loop(next_id, read, hub.clone()));
        }
    }
}

fn lock(hub: &Hub) -> std::sync::MutexGuard<'_, Vec<(u64, mpsc::Sender<Bytes>)>> {
    // Each critical section is one push, retain or clone: a panic cannot leave it torn.
    hub.lock().unwrap_or_else(|p| p.into_inner())
}

async fn write_loop(mut write: OwnedWriteHalf, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(buf) = rx.recv().await {
        if write.write_all(&buf).await.is_err() {
            break;
        }
    }
}

async fn read_loop(id: u64, mut read: OwnedReadHalf, hub: Hub) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        match read.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let whole = whole_messages(&buf);
        if whole > 0 {
            let chunk = buf.split_to(whole).freeze();
            let others: Vec<_> = lock(&hub)
                .iter()
                .filter(|(other, _)| *other != id)
                .map(|(_, tx)| tx.clone())
                .collect();
            for tx in others {
                // A closed destination is simply gone.
                let _ = tx.send(chunk.clone()).await;
            }
        }
        let need = next_need(&buf);
        if buf.capacity() - buf.len() < need.max(READ_CHUNK / 4) {
            buf.reserve(need.max(READ_CHUNK));
        }
    }
    lock(&hub).retain(|(other, _)| *other != id);
}

/// Bytes at the front of `buf` that are whole messages.
fn whole_messages(buf: &[u8]) -> usize {
    let mut at = 0;
    while let Some(len) = declared(&buf[at..]) {
        if buf.len() - at < PREFIX + len {
            break;
        }
        at += PREFIX + len;
    }
    at
}

/// The length the next message declares, if its prefix is there.
fn declared(buf: &[u8]) -> Option<usize> {
    let prefix: [u8; PREFIX] = buf.get(..PREFIX)?.try_into().ok()?;
    usize::try_from(u32::from_be_bytes(prefix)).ok()
}

/// Bytes still missing for the message at the front of `buf`.
fn next_need(buf: &[u8]) -> usize {
    declared(buf).map_or(PREFIX, |len| (PREFIX + len).saturating_sub(buf.len()))
}

/// A client of the relay.
#[derive(Debug)]
pub(crate) struct RelayClient {
    read: OwnedReadHalf,
    write: OwnedWriteHalf,
    rbuf: BytesMut,
    wbuf: BytesMut,
}

impl RelayClient {
    /// Connects and waits for the relay's welcome.
    pub(crate) async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        let mut client = Self {
            read,
            write,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::new(),
        };
        let welcome = client.recv().await?;
        if !welcome.is_empty() {
            return Err(io::Error::other("the relay did not welcome us"));
        }
        Ok(client)
    }

    /// Buffers one message; writes when enough is buffered.
    pub(crate) async fn send(&mut self, data: &[u8]) -> io::Result<()> {
        let len = u32::try_from(data.len()).map_err(|_| io::Error::other("message too large"))?;
        self.wbuf.reserve(PREFIX + data.len());
        self.wbuf.put_u32(len);
        self.wbuf.put_slice(data);
        if self.wbuf.len() >= WRITE_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes everything buffered.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            let out = self.wbuf.split();
            self.write.write_all(&out).await?;
        }
        Ok(())
    }

    /// The next message. Cancel-safe: partial input stays buffered.
    pub(crate) async fn recv(&mut self) -> io::Result<Bytes> {
        loop {
            if let Some(len) = declared(&self.rbuf) {
                if self.rbuf.len() >= PREFIX + len {
                    self.rbuf.advance(PREFIX);
                    return Ok(self.rbuf.split_to(len).freeze());
                }
            }
            let need = next_need(&self.rbuf);
            if self.rbuf.capacity() - self.rbuf.len() < need.max(READ_CHUNK / 4) {
                self.rbuf.reserve(need.max(READ_CHUNK));
            }
            if self.read.read_buf(&mut self.rbuf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_whole_messages() {
        let mut b = BytesMut::new();
        for m in [&b"ab"[..], b"", b"cde"] {
            b.put_u32(m.len() as u32);
            b.put_slice(m);
        }
        assert_eq!(whole_messages(&b), b.len());
        assert_eq!(whole_messages(&b[..b.len() - 1]), 6 + 4);
        assert_eq!(whole_messages(&b[..3]), 0);
        assert_eq!(next_need(&b[..3]), 4);
        assert_eq!(next_need(&b[..5]), 1);
    }

    #[actix_rt::test]
    async fn relays_between_two_clients() {
        let server = RelayServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = server.local_addr().unwrap();
        actix_rt::spawn(server.run());
        let mut a = RelayClient::connect(addr).await.unwrap();
        let mut b = RelayClient::connect(addr).await.unwrap();
        a.send(b"hello").await.unwrap();
        a.send(&vec![7u8; 300_000]).await.unwrap();
        a.flush().await.unwrap();
        assert_eq!(&b.recv().await.unwrap()[..], b"hello");
        assert_eq!(b.recv().await.unwrap().len(), 300_000);
        b.send(b"back").await.unwrap();
        b.flush().await.unwrap();
        assert_eq!(&a.recv().await.unwrap()[..], b"back");
    }
}

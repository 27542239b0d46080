//! Hostile input against a real router on 127.0.0.1: random bytes, half handshakes,
//! absurd length prefixes, forbidden frames and connection floods. In every case the
//! offender is cut off and everyone else keeps working.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::{addr, eventually, noise, peer, router, start};
use lanmesh::proto::frame::Message as Msg;
use lanmesh::proto::record::put_prefixed;
use lanmesh::proto::{
    Connection, ErrorCode, Frame, HandshakeConfig, Identity, Initiator, Limits, Name, RecordDecoder,
};
use lanmesh::{Peer, RunningRouter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the router closes the connection; returns what it sent and how long it took.
async fn read_to_close(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (all, start.elapsed()),
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Err(_) => panic!("router did not close the connection within {limit:?}"),
        }
    }
}

/// Proves the mesh still works: an acked round trip between two healthy peers.
async fn healthy(a: &Peer, b: &Peer) {
    a.send_acked("B", &b"still fine"[..]).await.unwrap();
    assert_eq!(&b.recv().await.unwrap().data[..], b"still fine");
}

/// A client that speaks the protocol by hand, to misbehave after the handshake.
struct RawPeer {
    stream: TcpStream,
    conn: Connection,
    buf: BytesMut,
    decoder: RecordDecoder,
}

impl RawPeer {
    async fn join(at: SocketAddr, name: Option<&str>) -> RawPeer {
        let config = HandshakeConfig::new(Identity::generate().unwrap(), "lanmesh");
        let name = name.map(|n| Name::new(n).unwrap());
        let (init, msg1) = Initiator::start(&config, name, Bytes::new()).unwrap();
        let mut stream = TcpStream::connect(at).await.unwrap();
        let mut out = BytesMut::new();
        put_prefixed(&mut out, &msg1).unwrap();
        stream.write_all(&out).await.unwrap();
        let mut buf = BytesMut::new();
        let mut decoder = RecordDecoder::new(65_535);
        let msg2 = loop {
            if let Some(r) = decoder.decode(&mut buf).unwrap() {
                break r;
            }
            assert!(
                stream.read_buf(&mut buf).await.unwrap() > 0,
                "closed during handshake"
            );
        };
        let (est, msg3) = init.read_choice(&msg2).unwrap();
        let mut out = BytesMut::new();
        put_prefixed(&mut out, &msg3).unwrap();
        stream.write_all(&out).await.unwrap();
        RawPeer {
            stream,
            conn: est.connection,
            buf,
            decoder,
        }
    }

    async fn record(&mut self) -> Option<BytesMut> {
        loop {
            if let Some(r) = self.decoder.decode(&mut self.buf).unwrap() {
                return Some(r);
            }
            let n = self.stream.read_buf(&mut self.buf).await.ok()?;
            if n == 0 {
                return None;
            }
        }
    }

    async fn frames(&mut self) -> Option<Vec<Frame>> {
        let rec = self.record().await?;
        Some(self.conn.open(&rec).unwrap().map(|f| f.unwrap()).collect())
    }

    async fn send(&mut self, f: &Frame) {
        self.conn.send(f).unwrap();
        let bytes = self.conn.poll_transmit().unwrap().unwrap();
        self.stream.write_all(&bytes).await.unwrap();
    }

    /// Frames until the router closes; returns them all.
    async fn until_closed(&mut self) -> Vec<Frame> {
        let mut all = Vec::new();
        while let Some(fs) = tokio::time::timeout(Duration::from_secs(5), self.frames())
            .await
            .unwrap()
        {
            all.extend(fs);
        }
        all
    }
}

async fn mesh_with_two_peers(builder: lanmesh::RouterBuilder) -> (RunningRouter, Peer, Peer) {
    let r = start(builder).await;
    let a = peer(&r, "A").await;
    let b = peer(&r, "B").await;
    (r, a, b)
}

#[actix_rt::test]
async fn random_bytes_are_cut_off_and_others_keep_talking() {
    // A short deadline for the few junk streams that look like a small valid prefix.
    let limits = Limits {
        handshake_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let (r, a, b) = mesh_with_two_peers(router().limits(limits)).await;
    for seed in 0..40u64 {
        let mut s = TcpStream::connect(addr(&r)).await.unwrap();
        let junk = noise(seed, 1 + (seed as usize * 997) % 20_000);
        // The router may close before taking everything; a failed write is fine.
        let _ = s.write_all(&junk).await;
        read_to_close(&mut s, Duration::from_secs(7)).await;
        if seed % 10 == 0 {
            healthy(&a, &b).await;
        }
    }
    healthy(&a, &b).await;
    let m = r.handle().metrics();
    assert!(m.handshake_failures >= 30, "{m:?}");
    assert_eq!(r.handle().peers().await.unwrap().len(), 2);
}

#[actix_rt::test]
async fn a_half_handshake_is_cut_at_the_deadline() {
    let limits = Limits {
        handshake_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let (r, a, b) = mesh_with_two_peers(router().limits(limits)).await;
    let config = HandshakeConfig::new(Identity::generate().unwrap(), "lanmesh");
    let (_init, msg1) =
        Initiator::start(&config, Some(Name::new("half").unwrap()), Bytes::new()).unwrap();
    let mut s = TcpStream::connect(addr(&r)).await.unwrap();
    let mut out = BytesMut::new();
    put_prefixed(&mut out, &msg1).unwrap();
    s.write_all(&out).await.unwrap();
    // The router answers message 2, then waits for message 3 that never comes.
    let (got, took) = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert!(!got.is_empty(), "message 2 was sent");
    assert!(
        took >= Duration::from_millis(250),
        "closed after {took:?}, before the deadline"
    );
    healthy(&a, &b).await;
}

#[actix_rt::test]
async fn a_2_gib_length_prefix_is_refused_without_buffering() {
    let limits = Limits {
        handshake_timeout: Duration::from_secs(30),
        ..Limits::default()
    };
    let (r, a, b) = mesh_with_two_peers(router().limits(limits)).await;
    let mut s = TcpStream::connect(addr(&r)).await.unwrap();
    // A 4-byte big-endian 2 GiB prefix: on our 2-byte framing that declares 32 KiB, far
    // more than any handshake message may be, so it is refused before reading on.
    let _ = s.write_all(&[0x80, 0x00, 0x00, 0x00]).await;
    let (_, took) = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert!(
        took < Duration::from_secs(5),
        "refused by size, not by the 30 s deadline"
    );
    healthy(&a, &b).await;
}

#[actix_rt::test]
async fn a_garbage_record_after_the_handshake_gets_an_error_frame_then_close() {
    let (r, a, b) = mesh_with_two_peers(router()).await;
    let mut raw = RawPeer::join(addr(&r), Some("rogue")).await;
    let welcome = raw.frames().await.unwrap();
    assert!(matches!(&welcome[0], Frame::Welcome { name } if name.as_str() == "rogue"));
    let mut junk = BytesMut::new();
    put_prefixed(&mut junk, &noise(7, 300)).unwrap();
    raw.stream.write_all(&junk).await.unwrap();
    // The record does not decrypt; the router's sending direction is intact, so it says
    // why in an Error frame before closing.
    let rest = raw.until_closed().await;
    assert!(
        rest.iter().any(|f| matches!(
            f,
            Frame::Error {
                code: ErrorCode::Protocol,
                ..
            }
        )),
        "{rest:?}"
    );
    let peers = r.handle().peers().await.unwrap();
    assert!(
        peers.iter().all(|p| p.name.as_str() != "rogue"),
        "{peers:?}"
    );
    healthy(&a, &b).await;
}

#[actix_rt::test]
async fn frames_a_client_may_not_send_are_refused() {
    let (r, a, b) = mesh_with_two_peers(router()).await;
    let mut raw = RawPeer::join(addr(&r), Some("forger")).await;
    raw.frames().await.unwrap();
    // Pretending to be the router: a Deliver claiming to come from A.
    let forged = Frame::Deliver(Msg {
        peer: Name::new("A").unwrap(),
        id: 1,
        flags: 0,
        chunk: None,
        prev: None,
        payload: Bytes::from_static(b"trust me"),
    });
    raw.send(&forged).await;
    let rest = raw.until_closed().await;
    assert!(
        rest.iter().any(|f| matches!(
            f,
            Frame::Error {
                code: ErrorCode::Protocol,
                ..
            }
        )),
        "{rest:?}"
    );
    assert!(b.get_all().is_empty(), "nothing forged reached B");
    healthy(&a, &b).await;

    // An observer (no name) may list peers but not send.
    let mut watcher = RawPeer::join(addr(&r), None).await;
    watcher
        .send(&Frame::Send(Msg {
            peer: Name::new("B").unwrap(),
            id: 1,
            flags: 0,
            chunk: None,
            prev: None,
            payload: Bytes::from_static(b"anonymous"),
        }))
        .await;
    let rest = watcher.until_closed().await;
    assert!(
        rest.iter().any(|f| matches!(
            f,
            Frame::Error {
                code: ErrorCode::NotJoined,
                ..
            }
        )),
        "{rest:?}"
    );
    healthy(&a, &b).await;
}

#[actix_rt::test]
async fn a_connection_flood_does_not_stop_traffic() {
    let (r, a, b) = mesh_with_two_peers(router()).await;
    let mut flood = Vec::new();
    for i in 0..300u64 {
        let mut s = TcpStream::connect(addr(&r)).await.unwrap();
        if i % 2 == 0 {
            let _ = s.write_all(&noise(i, 2)).await; // a partial length prefix, then silence
        }
        flood.push(s);
        if i % 100 == 0 {
            healthy(&a, &b).await;
        }
    }
    for i in 0..200u32 {
        a.send_acked("B", i.to_be_bytes().to_vec()).await.unwrap();
    }
    assert_eq!(b.get_all().len(), 200);
    drop(flood);
    let handle = r.handle().clone();
    eventually(
        "the flood's sessions to end",
        Duration::from_secs(10),
        move || handle.metrics().sessions_open == 2,
    )
    .await;
    healthy(&a, &b).await;
}

#[actix_rt::test]
async fn the_connection_limit_closes_extra_connections_at_once() {
    let mut config = router().config().unwrap();
    config.max_connections = 20;
    let handle = lanmesh::RouterHandle::start(config).await.unwrap();
    let at = handle.local_addrs()[0];
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(at).await.unwrap());
    }
    let h = handle.clone();
    eventually("20 sessions open", Duration::from_secs(5), move || {
        h.metrics().sessions_open == 20
    })
    .await;
    let mut extra = TcpStream::connect(at).await.unwrap();
    let (_, took) = read_to_close(&mut extra, Duration::from_secs(5)).await;
    assert!(
        took < Duration::from_secs(2),
        "closed at once, not by a deadline"
    );
    assert_eq!(handle.metrics().refused_connections, 1);
    drop(idle);
    let h = handle.clone();
    eventually("idle sessions to end", Duration::from_secs(10), move || {
        h.metrics().sessions_open == 0
    })
    .await;
    let p = Peer::builder("late")
        .router(at.to_string())
        .connect()
        .await
        .unwrap();
    assert_eq!(p.peers().len(), 1);
}

#[actix_rt::test]
async fn the_answer_to_a_refused_offer_is_readable() {
    // A wrong mesh gets an encrypted refusal in message 2, not a silent close.
    let r = start(router().mesh("home")).await;
    let config = HandshakeConfig::new(Identity::generate().unwrap(), "elsewhere");
    let (init, msg1) =
        Initiator::start(&config, Some(Name::new("x").unwrap()), Bytes::new()).unwrap();
    let mut s = TcpStream::connect(addr(&r)).await.unwrap();
    let mut out = BytesMut::new();
    put_prefixed(&mut out, &msg1).unwrap();
    s.write_all(&out).await.unwrap();
    let (got, _) = read_to_close(&mut s, Duration::from_secs(5)).await;
    let mut buf = BytesMut::from(&got[..]);
    let msg2 = RecordDecoder::new(65_535)
        .decode(&mut buf)
        .unwrap()
        .unwrap();
    let err = init.read_choice(&msg2).unwrap_err();
    assert!(
        matches!(
            err,
            lanmesh::proto::ProtoError::Remote {
                code: ErrorCode::MeshMismatch,
                ..
            }
        ),
        "{err:?}"
    );
}

#[actix_rt::test]
async fn a_peer_that_stops_reading_is_refused_messages_then_disconnected() {
    let limits = Limits {
        max_pending_bytes: 256 * 1024,
        ..Limits::default()
    };
    let r = start(
        router()
            .limits(limits)
            .write_stall(Duration::from_millis(600)),
    )
    .await;
    let (a, b) = (peer(&r, "A").await, peer(&r, "B").await);
    // Joins, then never reads again.
    let mut sloth = RawPeer::join(addr(&r), Some("sloth")).await;
    sloth.frames().await.unwrap();
    eventually("A to see sloth", Duration::from_secs(5), || {
        common::names(&a).contains(&"sloth".to_owned())
    })
    .await;
    // Far more than its budget plus the socket buffers: the excess is refused to A
    // with Overloaded, while A and B keep talking.
    // Incompressible, so Snappy cannot shrink it below the budget.
    let chunk = noise(0x2545_f491_4f6c_dd1d, 64 * 1024);
    let mut overloaded = 0;
    for _ in 0..400 {
        if let Err(lanmesh::ClientError::Overloaded { .. }) = a.send("sloth", chunk.clone()).await {
            overloaded += 1;
        }
    }
    let report = a.close().await;
    overloaded += report
        .undelivered
        .iter()
        .filter(|u| u.reason == lanmesh::proto::NackReason::Overloaded)
        .count();
    assert!(overloaded > 0, "nothing was refused for the stuck peer");
    let c = peer(&r, "C").await;
    c.send_acked("B", &b"unaffected"[..]).await.unwrap();
    assert_eq!(&b.recv().await.unwrap().data[..], b"unaffected");
    // Then the write-stall deadline disconnects it.
    eventually("sloth to be disconnected", Duration::from_secs(10), || {
        !common::names(&b).contains(&"sloth".to_owned())
    })
    .await;
    drop(sloth);
}

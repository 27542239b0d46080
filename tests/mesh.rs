//! Messaging between real peers through a real router on 127.0.0.1.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{addr, builder, eventually, names, peer, router, start};
use lanmesh::proto::{Cipher, Compression, ErrorCode, Limits};
use lanmesh::{ClientError, Peer};

#[actix_rt::test]
async fn messages_arrive_in_order_with_encryption_and_compression() {
    let r = start(router()).await;
    let a = peer(&r, "A").await;
    let b = peer(&r, "B").await;
    for i in 0..500u32 {
        a.send_text("B", &format!("message {i}")).await.unwrap();
    }
    for i in 0..500u32 {
        let m = b.recv().await.unwrap();
        assert_eq!(m.from.as_str(), "A");
        assert_eq!(m.text(), Some(format!("message {i}").as_str()));
        assert_eq!(m.id, u64::from(i) + 1, "per-sender serial numbers");
    }
    let infos = r.handle().peers().await.unwrap();
    assert_eq!(infos.len(), 2);
    for p in infos {
        assert_eq!(p.cipher, Cipher::ChaCha20Poly1305);
        assert_eq!(p.compression, Compression::Snappy);
    }
}

#[actix_rt::test]
async fn plain_and_acked_sends_keep_the_order_they_were_made_in() {
    // Plain sends skip the actor (the lane); acked ones go through it. Interleaved, they
    // still arrive in the order of the calls, also from another thread.
    let r = start(router()).await;
    let a = peer(&r, "A").await;
    let b = peer(&r, "B").await;
    let mut expected = Vec::new();
    for round in 0..50u32 {
        for i in 0..20u32 {
            let text = format!("plain {round}.{i}");
            a.send_text("B", &text).await.unwrap();
            expected.push(text);
        }
        let pending = a
            .queue_acked("B", format!("acked {round}").into_bytes())
            .await
            .unwrap();
        expected.push(format!("acked {round}"));
        if round % 10 == 9 {
            pending.await.unwrap();
        }
    }
    let from_thread = a.clone();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            from_thread.send_text("B", "from a thread").await.unwrap();
        });
    })
    .join()
    .unwrap();
    expected.push("from a thread".into());
    for want in &expected {
        let m = b.recv().await.unwrap();
        assert_eq!(String::from_utf8_lossy(&m.data), *want);
    }
}

#[actix_rt::test]
async fn a_fast_sender_and_a_slow_reader_lose_nothing_and_keep_order() {
    // A sends 32 MiB from its own thread, faster than B reads. The router slows A down
    // while B is behind (the mechanism is tested in lanmesh-router's `pressure`): the
    // test checks that this neither deadlocks nor reorders, and that nothing is refused.
    let limits = Limits {
        max_pending_bytes: 1 << 20,
        ..Limits::default()
    };
    let r = start(router().limits(limits).backpressure(128 << 10)).await;
    // B's client keeps few messages, so what it does not take stays in the network.
    let b = builder(&r, "B").inbox_capacity(4).connect().await.unwrap();
    const COUNT: usize = 512;
    const SIZE: usize = 64 * 1024;
    // A sends from a thread of its own, at full speed.
    let router_addr = addr(&r).to_string();
    let sender = std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let a = Peer::builder("A")
                .router(router_addr)
                .connect()
                .await
                .unwrap();
            for i in 0..COUNT {
                a.send("B", vec![(i % 251) as u8; SIZE]).await.unwrap();
            }
            a.close().await
        })
    });
    for i in 0..COUNT {
        let m = b.recv().await.unwrap();
        assert_eq!(m.data.len(), SIZE);
        assert_eq!(m.data[0], (i % 251) as u8, "message {i} in order");
        if i % 4 == 3 {
            // A reader that keeps up with a fraction of the sender, at best.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let report = sender.join().unwrap();
    assert!(
        report.undelivered.is_empty(),
        "refused: {:?}",
        &report.undelivered[..3.min(report.undelivered.len())]
    );
}

#[actix_rt::test]
async fn send_acked_waits_for_the_recipient_and_names_unknown_peers() {
    let r = start(router()).await;
    let a = peer(&r, "A").await;
    let b = peer(&r, "B").await;
    let id = a.send_acked("B", &b"ping"[..]).await.unwrap();
    // The ack means B's client has the message queued: it is there without waiting.
    let got = b.get(10);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].id, &got[0].data[..]), (id, &b"ping"[..]));
    let err = a.send_acked("nobody", &b"x"[..]).await.unwrap_err();
    assert!(matches!(&err, ClientError::UnknownPeer { name } if name == "nobody"));
    assert_eq!(err.to_string(), "unknown peer \"nobody\"");
}

#[actix_rt::test]
async fn plain_send_to_unknown_peer_is_reported_on_close() {
    let r = start(router()).await;
    let a = peer(&r, "A").await;
    a.send("ghost", &b"boo"[..]).await.unwrap();
    let report = a.close().await;
    assert_eq!(report.undelivered.len(), 1);
    assert_eq!(report.undelivered[0].to.as_str(), "ghost");
}

/// A sender's messages to many peers, interleaved and broadcast, leave in a few large
/// records; the router splits each record by destination (more destinations than it
/// scans for, so through its index) and every peer still sees its own in order.
#[actix_rt::test]
async fn messages_to_many_peers_in_one_burst_arrive_each_in_order() {
    let r = start(router()).await;
    let a = peer(&r, "A").await;
    let mut peers = Vec::new();
    for i in 0..12 {
        peers.push(peer(&r, &format!("p{i}")).await);
    }
    for round in 0..5 {
        for i in 0..12 {
            a.send_text(&format!("p{i}"), &format!("{round} to p{i}"))
                .await
                .unwrap();
        }
        a.broadcast_text(&format!("{round} to all")).await.unwrap();
    }
    for (i, p) in peers.iter().enumerate() {
        for round in 0..5 {
            let direct = p.recv().await.unwrap();
            assert_eq!(direct.text(), Some(format!("{round} to p{i}").as_str()));
            let all = p.recv().await.unwrap();
            assert!(all.is_broadcast());
            assert_eq!(all.text(), Some(format!("{round} to all").as_str()));
        }
    }
}

#[actix_rt::test]
async fn broadcast_reaches_everyone_but_the_sender() {
    let r = start(router()).await;
    let a = peer(&r, "A").await;
    let b = peer(&r, "B").await;
    let c = peer(&r, "C").await;
    a.broadcast_text("all hands").await.unwrap();
    for p in [&b, &c] {
        let m = p.recv().await.unwrap();
        assert!(m.is_broadcast());
        assert_eq!((m.from.as_str(), m.text()), ("A", Some("all hands")));
    }
    // A gets nothing: prove it by sending A a marker and seeing the marker first.
    b.send_text("A", "marker").await.unwrap();
    assert_eq!(a.recv().await.unwrap().text(), Some("marker"));
}

#[actix_rt::test]
async fn large_messages_are_chunked_and_compressible_ones_shrink() {
    let r = start(router()).await;
    let a = peer(&r, "A").await;
    let b = peer(&r, "B").await;
    let random = common::noise(0x2545_f491_4f6c_dd1d, 3_000_000);
    a.send_acked("B", random.clone()).await.unwrap();
    assert_eq!(&b.recv().await.unwrap().data[..], &random[..]);

    let before = r.handle().metrics().bytes_in;
    let text = "the same sensor line again\n".repeat(40_000); // ~1 MiB, very compressible
    a.send_acked("B", text.clone().into_bytes()).await.unwrap();
    assert_eq!(b.recv().await.unwrap().data, text.as_bytes());
    let carried = r.handle().metrics().bytes_in - before;
    assert!(
        carried < text.len() as u64 / 5,
        "{carried} bytes carried for {} bytes of text",
        text.len()
    );
}

#[actix_rt::test]
async fn oversized_message_is_refused_before_sending() {
    let r = start(router()).await;
    let limits = Limits {
        max_message: 1000,
        ..Limits::default()
    };
    let a = builder(&r, "A").limits(limits).connect().await.unwrap();
    let _b = peer(&r, "B").await;
    let err = a.send("B", vec![0u8; 1001]).await.unwrap_err();
    assert!(matches!(
        err,
        ClientError::TooLarge {
            len: 1001,
            max: 1000
        }
    ));
}

#[actix_rt::test]
async fn membership_is_tracked_live() {
    // A dropped connection keeps its name for the grace period, then leaves.
    let grace = Duration::from_millis(300);
    let r = start(router().grace(grace)).await;
    let a = peer(&r, "A").await;
    assert_eq!(names(&a), ["A"]);
    let b = peer(&r, "B").await;
    eventually("A to see B", Duration::from_secs(5), || {
        names(&a) == ["A", "B"]
    })
    .await;
    assert_eq!(names(&b), ["A", "B"]);
    b.close().await;
    eventually("A to see B leave", Duration::from_secs(5), || {
        names(&a) == ["A"]
    })
    .await;
    let c = peer(&r, "C").await;
    c.terminate();
    let dropped = std::time::Instant::now();
    eventually("A to see C dropped", Duration::from_secs(5), || {
        names(&a) == ["A"]
    })
    .await;
    assert!(
        dropped.elapsed() >= grace,
        "C left before its grace period ended"
    );
}

#[actix_rt::test]
async fn a_held_name_is_refused_and_the_holder_keeps_working() {
    let r = start(router()).await;
    let a = peer(&r, "A").await;
    let b = peer(&r, "B").await;
    common::assert_name_taken(&r, "A").await;
    b.send_acked("A", &b"still here?"[..]).await.unwrap();
    assert_eq!(&a.recv().await.unwrap().data[..], b"still here?");
}

#[actix_rt::test]
async fn wrong_mesh_and_missing_mesh_key_are_refused() {
    let r = start(router().mesh("home")).await;
    let err = builder(&r, "A").mesh("office").connect().await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Refused {
                code: ErrorCode::MeshMismatch,
                ..
            }
        ),
        "{err:?}"
    );

    let key = lanmesh::generate_mesh_key().unwrap();
    let locked = start(router().mesh_key(key)).await;
    let target = addr(&locked).to_string();
    let err = Peer::builder("A")
        .router(target.clone())
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::ClosedDuringHandshake), "{err:?}");
    let wrong = Peer::builder("A")
        .router(target.clone())
        .mesh_key([7; 32])
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(wrong, ClientError::ClosedDuringHandshake),
        "{wrong:?}"
    );
    let observer = Peer::observer()
        .router(target.clone())
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(observer, ClientError::ClosedDuringHandshake),
        "no peer list without the key"
    );
    let ok = Peer::builder("A")
        .router(target)
        .mesh_key(key)
        .connect()
        .await
        .unwrap();
    assert_eq!(names(&ok), ["A"]);
}

/// AES-256-GCM is opt-in per peer; peers with either cipher talk to each other, and big
/// messages (many records) cross intact.
#[actix_rt::test]
async fn aes256gcm_when_a_peer_prefers_it() {
    let r = start(router()).await;
    let mut config = builder(&r, "F").config().unwrap();
    config.cipher = Cipher::Aes256Gcm;
    let f = Peer::connect(config).await.unwrap();
    let d = peer(&r, "D").await;
    let ciphers = |infos: Vec<lanmesh::proto::PeerInfo>| {
        let mut v: Vec<(String, Cipher)> = infos
            .into_iter()
            .map(|p| (p.name.to_string(), p.cipher))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    assert_eq!(
        ciphers(r.handle().peers().await.unwrap()),
        [
            ("D".to_owned(), Cipher::ChaCha20Poly1305),
            ("F".to_owned(), Cipher::Aes256Gcm)
        ]
    );
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    f.send_acked("D", big.clone()).await.unwrap();
    assert_eq!(d.recv().await.unwrap().data, big);
    d.send_acked("F", big.clone()).await.unwrap();
    assert_eq!(f.recv().await.unwrap().data, big);
}

#[actix_rt::test]
async fn plaintext_needs_both_sides() {
    let strict = start(router()).await;
    let a = Peer::builder("A")
        .router(addr(&strict).to_string())
        .plaintext(true)
        .connect()
        .await
        .unwrap();
    assert_eq!(a.peers()[0].cipher, Cipher::ChaCha20Poly1305);

    let lax = start(router().plaintext(true)).await;
    let b = peer(&lax, "B").await;
    assert_eq!(b.peers()[0].cipher, Cipher::ChaCha20Poly1305);
    let c = Peer::builder("C")
        .router(addr(&lax).to_string())
        .plaintext(true)
        .connect()
        .await
        .unwrap();
    let c_info = c
        .peers()
        .into_iter()
        .find(|p| p.name.as_str() == "C")
        .unwrap();
    assert_eq!(c_info.cipher, Cipher::None);
    c.send_acked("B", &b"in the clear"[..]).await.unwrap();
    assert_eq!(&b.recv().await.unwrap().data[..], b"in the clear");
}

#[actix_rt::test]
async fn pause_holds_messages_and_resume_delivers_them() {
    let r = start(router()).await;
    let a = peer(&r, "A").await;
    let b = builder(&r, "B").inbox_capacity(4).connect().await.unwrap();
    b.pause();
    for i in 0..20u8 {
        a.send("B", vec![i]).await.unwrap();
    }
    // While paused, B takes nothing in; an acked send therefore times out.
    let slow = builder(&r, "S")
        .ack_timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    let err = slow
        .send_acked("B", &b"are you there"[..])
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::AckTimeout { .. }), "{err:?}");
    assert_eq!(b.pending(), 0);
    b.resume();
    let mut got = Vec::new();
    while got.len() < 20 {
        got.extend(
            b.get(3)
                .into_iter()
                .filter(|m| m.from.as_str() == "A")
                .map(|m| m.data[0]),
        );
        if got.len() < 20 {
            let m = b.recv().await.unwrap();
            if m.from.as_str() == "A" {
                got.push(m.data[0]);
            }
        }
    }
    assert_eq!(
        got,
        (0..20).collect::<Vec<u8>>(),
        "held messages arrive in order"
    );
}

#[actix_rt::test]
async fn recv_timeout_returns_none_when_nothing_comes() {
    let r = start(router()).await;
    let a = peer(&r, "A").await;
    assert!(
        a.recv_timeout(Duration::from_millis(50))
            .await
            .unwrap()
            .is_none()
    );
    assert!(a.get_all().is_empty());
}

#[actix_rt::test]
async fn the_router_process_joins_as_a_named_peer() {
    let r = start(router().name("hub")).await;
    let a = peer(&r, "A").await;
    let hub = r.local_peer().unwrap();
    a.send_text_acked("hub", "hello router").await.unwrap();
    assert_eq!(hub.recv().await.unwrap().text(), Some("hello router"));
    hub.send_text("A", "hello peer").await.unwrap();
    assert_eq!(a.recv().await.unwrap().text(), Some("hello peer"));
}

#[actix_rt::test]
async fn several_listen_addresses_serve_one_mesh() {
    let r = start(
        lanmesh::Router::builder()
            .listen("127.0.0.1:0")
            .listen("127.0.0.1:0")
            .mdns(false),
    )
    .await;
    let [first, second] = r.local_addrs() else {
        panic!("two listeners expected")
    };
    assert_ne!(first.port(), second.port());
    let a = Peer::builder("A")
        .router(first.to_string())
        .connect()
        .await
        .unwrap();
    let b = Peer::builder("B")
        .router(second.to_string())
        .connect()
        .await
        .unwrap();
    a.send_acked("B", &b"across listeners"[..]).await.unwrap();
    assert_eq!(&b.recv().await.unwrap().data[..], b"across listeners");
}

#[actix_rt::test]
async fn shutdown_disconnects_peers_with_a_reason() {
    let r = start(router()).await;
    let once = builder(&r, "once")
        .reconnect(false)
        .connect()
        .await
        .unwrap();
    let again = peer(&r, "again").await;
    let mut status = again.watch_status();
    r.shutdown().await;
    let err = once.recv().await.unwrap_err();
    assert!(err.to_string().contains("shutting down"), "{err}");
    // A reconnecting peer says why it is away.
    let s = status
        .wait_for(|s| matches!(s, lanmesh::Status::Reconnecting { .. }))
        .await
        .unwrap()
        .clone();
    let lanmesh::Status::Reconnecting { reason, .. } = s else {
        unreachable!()
    };
    assert!(reason.contains("shutting down"), "{reason}");
    assert_eq!(r.handle().metrics().sessions_open, 0);
    again.terminate();
}

#[test]
fn blocking_facade_works_without_async() {
    // The router runs on its own actix system in a thread; the test thread stays blocking.
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let r = common::router().start().await.unwrap();
            tx.send(addr(&r)).unwrap();
            tokio::task::spawn_blocking(move || stop_rx.recv())
                .await
                .unwrap()
                .ok();
            r.shutdown().await;
        });
    });
    let at = rx.recv().unwrap().to_string();
    let a = lanmesh::blocking::Peer::connect("A", &at).unwrap();
    let b = lanmesh::blocking::Peer::connect("B", &at).unwrap();
    a.send_acked("B", &b"from a script"[..]).unwrap();
    assert_eq!(&b.recv().unwrap().data[..], b"from a script");
    assert!(b.recv_timeout(Duration::from_millis(20)).unwrap().is_none());
    assert_eq!(a.close().undelivered.len(), 0);
    stop_tx.send(()).unwrap();
    server.join().unwrap();
}

#[actix_rt::test]
async fn peers_reconnect_on_their_own_when_the_router_comes_back() {
    let r = start(router()).await;
    let at = addr(&r);
    let a = peer(&r, "A").await;
    let b = peer(&r, "B").await;
    let mut status = a.watch_status();
    r.shutdown().await;
    // Both notice and start dialling again.
    status
        .wait_for(|s| matches!(s, lanmesh::Status::Reconnecting { .. }))
        .await
        .unwrap();
    assert!(
        a.send("B", &b"while away"[..]).await.is_err(),
        "sends fail fast while away"
    );
    let r2 = start(
        lanmesh::Router::builder()
            .listen(at.to_string())
            .mdns(false),
    )
    .await;
    status
        .wait_for(|s| matches!(s, lanmesh::Status::Connected { .. }))
        .await
        .unwrap();
    let mut b_status = b.watch_status();
    b_status
        .wait_for(|s| matches!(s, lanmesh::Status::Connected { .. }))
        .await
        .unwrap();
    a.send_acked("B", &b"back again"[..]).await.unwrap();
    assert_eq!(&b.recv().await.unwrap().data[..], b"back again");
    assert_eq!(r2.handle().peers().await.unwrap().len(), 2);
}

#[actix_rt::test]
async fn the_same_key_replaces_a_stale_session_and_another_key_is_refused() {
    let r = start(router()).await;
    let key = lanmesh::proto::Identity::generate().unwrap();
    let first = builder(&r, "A")
        .identity(key.clone())
        .connect()
        .await
        .unwrap();
    let mut first_status = first.watch_status();
    let second = builder(&r, "A").identity(key).connect().await.unwrap();
    // The older connection is told it was replaced and ends for good.
    first_status
        .wait_for(|s| matches!(s, lanmesh::Status::Closed { .. }))
        .await
        .unwrap();
    let b = peer(&r, "B").await;
    b.send_acked("A", &b"to the newest A"[..]).await.unwrap();
    assert_eq!(&second.recv().await.unwrap().data[..], b"to the newest A");
    common::assert_name_taken(&r, "A").await;
}

#[actix_rt::test]
async fn native_peers_join_through_the_websocket_gateway() {
    let r = start(router().http("127.0.0.1:0")).await;
    let ws = format!("ws://{}/mesh", r.http_addrs()[0]);
    let a = Peer::builder("A")
        .router(ws.clone())
        .connect()
        .await
        .unwrap();
    let b = peer(&r, "B").await;
    b.send_acked("A", &b"over tcp, then ws"[..]).await.unwrap();
    assert_eq!(&a.recv().await.unwrap().data[..], b"over tcp, then ws");
    let big = vec![7u8; 300_000];
    a.send_acked("B", big.clone()).await.unwrap();
    assert_eq!(&b.recv().await.unwrap().data[..], &big[..]);
    let info = r.handle().peers().await.unwrap();
    let a_info = info.iter().find(|p| p.name.as_str() == "A").unwrap();
    assert_eq!(a_info.transport, lanmesh::proto::Transport::Ws);
    assert_eq!(a_info.cipher, Cipher::ChaCha20Poly1305);
}

#[actix_rt::test]
async fn a_refused_websocket_peer_learns_it_at_once() {
    let key = lanmesh::generate_mesh_key().unwrap();
    let r = start(router().http("127.0.0.1:0").mesh_key(key)).await;
    let ws = format!("ws://{}/mesh", r.http_addrs()[0]);
    let started = std::time::Instant::now();
    let err = Peer::builder("A").router(ws).connect().await.unwrap_err();
    assert!(matches!(err, ClientError::ClosedDuringHandshake), "{err:?}");
    // The gateway closes the socket with the session, rather than leaving the peer to
    // wait out its 5 s handshake deadline.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[actix_rt::test]
async fn requests_get_replies_and_never_hang() {
    let r = start(router()).await;
    let sensor = peer(&r, "sensor").await;
    let asker = peer(&r, "asker").await;
    sensor
        .respond(|req| match &req.data[..] {
            b"temp?" => bytes::Bytes::from_static(b"21.5"),
            _ => bytes::Bytes::from_static(b"unknown question"),
        })
        .await
        .unwrap();
    let reply = asker
        .request("sensor", &b"temp?"[..], Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        (reply.from.as_str(), &reply.data[..]),
        ("sensor", &b"21.5"[..])
    );
    // Many in flight at once are told apart by their ids.
    let (a, b) = tokio::join!(
        asker.request("sensor", &b"temp?"[..], Duration::from_secs(5)),
        asker.request("sensor", &b"humidity?"[..], Duration::from_secs(5)),
    );
    assert_eq!(&a.unwrap().data[..], b"21.5");
    assert_eq!(&b.unwrap().data[..], b"unknown question");
    // Requests and replies never land in the inbox.
    assert!(sensor.get_all().is_empty() && asker.get_all().is_empty());

    // A peer without a handler says so at once.
    let err = sensor
        .request("asker", &b"anyone?"[..], Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::NoResponder { name } if name == "asker"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "peer \"asker\" answers no requests");
    let err = asker
        .request("ghost", &b"?"[..], Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::UnknownPeer { .. }), "{err:?}");
    // A responder that is not reading: the request times out rather than hanging.
    sensor.pause();
    let err = asker
        .request("sensor", &b"temp?"[..], Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::RequestTimeout { .. }), "{err:?}");
}

#[actix_rt::test]
async fn typed_messages_travel_as_json() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Reading {
        sensor: String,
        celsius: f32,
    }
    let r = start(router()).await;
    let a = peer(&r, "A").await;
    let b = peer(&r, "B").await;
    let sent = Reading {
        sensor: "kitchen".into(),
        celsius: 21.5,
    };
    a.send_json("B", &sent).await.unwrap();
    let m = b.recv().await.unwrap();
    assert_eq!(m.json::<Reading>().unwrap(), sent);
    assert!(
        m.text().unwrap().contains("\"kitchen\""),
        "JSON is text, readable by any peer"
    );
    assert!(matches!(m.json::<Vec<u8>>(), Err(ClientError::Json(_))));
}

#[actix_rt::test]
async fn names_stay_bound_to_the_first_key_and_the_allow_list_pins_them() {
    let sensor_key = lanmesh::proto::Identity::generate().unwrap();
    let list = std::env::temp_dir().join(format!("lanmesh-allow-{}", std::process::id()));
    std::fs::write(
        &list,
        format!("sensor {}\n", hex::encode(sensor_key.public())),
    )
    .unwrap();
    let r = start(router().grace(Duration::ZERO).allow_list(&list)).await;
    // A pinned name: only its key gets it.
    let err = builder(&r, "sensor").connect().await.unwrap_err();
    assert!(err.to_string().contains("belongs to another key"), "{err}");
    let sensor = builder(&r, "sensor")
        .identity(sensor_key)
        .connect()
        .await
        .unwrap();
    // Any other name belongs to the first key that used it, also after it left.
    let a = peer(&r, "A").await;
    a.close().await;
    let err = builder(&r, "A").connect().await.unwrap_err();
    assert!(err.to_string().contains("belongs to another key"), "{err}");
    assert_eq!(names(&sensor), ["sensor"]);
    std::fs::remove_file(list).unwrap();
}

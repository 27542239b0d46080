//! Attacks on a real router's connection slots and name bindings, from loopback source
//! addresses other than the legitimate peers' (127.0.0.2 and up stand in for other
//! machines of the LAN): bursts of silent connections, keyless observers, a full router,
//! and one key squatting names. Each test asserts what the legitimate peers see.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{eventually, router};
use lanmesh::proto::record::put_prefixed;
use lanmesh::proto::{ErrorCode, HandshakeConfig, Identity, Initiator, RecordDecoder};
use lanmesh::{ClientError, Peer, RouterHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn source(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// A TCP connection to `at` from the loopback address `from`.
async fn connect_from(from: IpAddr, at: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(from, 0))?;
    s.connect(at).await
}

/// Runs `attack` on a thread of its own (its own runtime), so the router's thread only
/// serves; returns its result when it ends.
fn on_thread<T: Send + 'static, F: Future<Output = T> + 'static>(
    attack: impl FnOnce() -> F + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(attack())
    })
}

/// Samples the router's gauges until `stop`; the highest seen.
fn watch(h: &RouterHandle, stop: Arc<AtomicBool>) -> (Arc<AtomicU64>, Arc<AtomicU64>) {
    let (open, hs) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (o, s, h) = (open.clone(), hs.clone(), h.clone());
    actix_rt::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let m = h.metrics();
            o.fetch_max(m.sessions_open, Ordering::Relaxed);
            s.fetch_max(m.handshakes_open, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    (open, hs)
}

async fn start(config: lanmesh::RouterConfig) -> RouterHandle {
    RouterHandle::start(config).await.unwrap()
}

#[actix_rt::test]
async fn bursts_of_silent_connections_take_no_slots_from_legitimate_peers() {
    let mut config = router().config().unwrap();
    config.max_connections = 400;
    config.max_handshakes = 64;
    config.max_handshakes_per_ip = 16;
    // Hundreds of fresh names join here: this test is about slots, not the binding rate.
    config.new_names = lanmesh::BindingRate::UNLIMITED;
    let h = start(config).await;
    let at = h.local_addrs()[0];
    let a = Peer::builder("A")
        .router(at.to_string())
        .connect()
        .await
        .unwrap();
    let b = Peer::builder("B")
        .router(at.to_string())
        .connect()
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (max_open, max_hs) = watch(&h, stop.clone());
    // One outsider, without the key, from 127.0.0.2: five bursts of 1,000 connections
    // that never say a word, each held until the next, while A and B keep talking and
    // new peers keep joining from 127.0.0.1.
    let flooding = Arc::new(AtomicBool::new(true));
    let f = flooding.clone();
    let attacker = on_thread(move || async move {
        let mut opened = 0u32;
        for _ in 0..5 {
            let mut held = Vec::new();
            for _ in 0..1000 {
                if let Ok(s) = connect_from(source(2), at).await {
                    opened += 1;
                    held.push(s);
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        f.store(false, Ordering::Relaxed);
        opened
    });
    let (mut sends, mut failed_sends, mut joins, mut failed_joins) = (0u32, 0u32, 0u32, 0u32);
    let mut got = 0;
    while flooding.load(Ordering::Relaxed) || joins < 5 {
        sends += 1;
        if let Err(e) = a.send_acked("B", sends.to_be_bytes().to_vec()).await {
            eprintln!("send {sends} failed: {e}");
            failed_sends += 1;
        }
        got += b.get_all().len() as u32;
        if sends % 20 == 0 {
            joins += 1;
            match Peer::builder(format!("late-{joins}"))
                .router(at.to_string())
                .connect()
                .await
            {
                Ok(p) => drop(p.close().await),
                Err(e) => {
                    eprintln!("join failed: {e}");
                    failed_joins += 1;
                }
            }
        }
    }
    let opened = attacker.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    got += b.get_all().len() as u32;
    let m = h.metrics();
    eprintln!(
        "{opened} silent connections in 5 bursts: {sends} acked sends ({failed_sends} failed, \
         {got} arrived), {joins} joins ({failed_joins} failed); highest sessions_open {}, \
         handshakes_open {}; refused {}",
        max_open.load(Ordering::Relaxed),
        max_hs.load(Ordering::Relaxed),
        m.refused_connections
    );
    assert_eq!((failed_sends, failed_joins), (0, 0));
    assert_eq!(got, sends);
    assert!(max_open.load(Ordering::Relaxed) <= 400);
    assert!(max_hs.load(Ordering::Relaxed) <= 64);
    assert!(
        m.refused_connections > 0,
        "the per-address budget never applied"
    );
}

#[actix_rt::test]
async fn silent_connections_from_many_addresses_make_room_for_real_handshakes() {
    let mut config = router().config().unwrap();
    config.max_handshakes = 64;
    config.max_handshakes_per_ip = 16;
    let h = start(config).await;
    let at = h.local_addrs()[0];
    let a = Peer::builder("A")
        .router(at.to_string())
        .connect()
        .await
        .unwrap();
    // 20 addresses × 16 silent connections: five times the handshake budget.
    let mut held = Vec::new();
    for ip in 10..30u8 {
        for _ in 0..16 {
            held.push(connect_from(source(ip), at).await.unwrap());
        }
    }
    let h2 = h.clone();
    eventually(
        "the silent ones to fill the budget",
        Duration::from_secs(5),
        move || h2.metrics().handshakes_open == 64,
    )
    .await;
    assert!(h.metrics().sessions_open <= 64 + 1 + 320);
    // The oldest silent handshakes make room: every new peer gets in.
    for i in 0..10 {
        let p = Peer::builder(format!("new-{i}"))
            .router(at.to_string())
            .connect()
            .await
            .unwrap();
        p.send_acked("A", &b"in"[..]).await.unwrap();
        drop(p.close().await);
    }
    assert_eq!(a.get_all().len(), 10);
    assert!(h.metrics().handshakes_open <= 64);
    drop(held);
}

/// Completes a keyless handshake as an observer (no name) from `from`.
async fn observe(from: IpAddr, at: SocketAddr) -> Option<TcpStream> {
    let config = HandshakeConfig::new(Identity::generate().unwrap(), "lanmesh");
    let (init, msg1) = Initiator::start(&config, None, Bytes::new()).unwrap();
    let mut s = connect_from(from, at).await.ok()?;
    let mut out = BytesMut::new();
    put_prefixed(&mut out, &msg1).unwrap();
    s.write_all(&out).await.ok()?;
    let mut buf = BytesMut::new();
    let mut decoder = RecordDecoder::new(65_535);
    let msg2 = loop {
        if let Some(r) = decoder.decode(&mut buf).unwrap() {
            break r;
        }
        if s.read_buf(&mut buf).await.ok()? == 0 {
            return None;
        }
    };
    let (_, msg3) = init.read_choice(&msg2).ok()?;
    let mut out = BytesMut::new();
    put_prefixed(&mut out, &msg3).unwrap();
    s.write_all(&out).await.ok()?;
    Some(s)
}

#[actix_rt::test]
async fn keyless_observers_from_one_address_cannot_lock_a_keyless_mesh_out() {
    let mut config = router().config().unwrap();
    config.max_connections = 100;
    config.max_connections_per_ip = 40;
    let h = start(config).await;
    let at = h.local_addrs()[0];
    let mut observers = Vec::new();
    for _ in 0..100 {
        if let Some(s) = observe(source(3), at).await {
            observers.push(s);
        }
    }
    let h2 = h.clone();
    eventually(
        "the observers to be counted",
        Duration::from_secs(5),
        move || h2.metrics().sessions_open == 40,
    )
    .await;
    let a = Peer::builder("A")
        .router(at.to_string())
        .connect()
        .await
        .unwrap();
    let b = Peer::builder("B")
        .router(at.to_string())
        .connect()
        .await
        .unwrap();
    a.send_acked("B", &b"through"[..]).await.unwrap();
    assert_eq!(&b.recv().await.unwrap().data[..], b"through");
    drop(observers);
}

#[actix_rt::test]
async fn a_full_router_says_it_is_full() {
    let mut config = router().config().unwrap();
    config.max_connections = 3;
    config.mesh_key = Some([7; 32]);
    let h = start(config).await;
    let at = h.local_addrs()[0].to_string();
    let key = [7; 32];
    let mut members = Vec::new();
    for i in 0..3 {
        members.push(
            Peer::builder(format!("m{i}"))
                .router(at.clone())
                .mesh_key(key)
                .connect()
                .await
                .unwrap(),
        );
    }
    let err = Peer::builder("late")
        .router(at.clone())
        .mesh_key(key)
        .connect()
        .await
        .unwrap_err();
    // Refused after the handshake, so only a holder of the mesh key reads it.
    assert!(
        matches!(
            &err,
            ClientError::Refused {
                code: ErrorCode::Overloaded,
                ..
            } | ClientError::Disconnected { .. }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("router full"), "{err}");
    assert!(!err.to_string().contains("mesh key"), "{err}");
    members[0]
        .send_acked("m1", &b"members unaffected"[..])
        .await
        .unwrap();
    drop(members.remove(2).close().await);
    let h2 = h.clone();
    eventually("a slot to free", Duration::from_secs(5), move || {
        h2.metrics().sessions_open == 2
    })
    .await;
    Peer::builder("late")
        .router(at)
        .mesh_key(key)
        .connect()
        .await
        .unwrap();
}

#[actix_rt::test]
async fn one_key_cannot_squat_more_than_its_share_of_names() {
    let mut config = router().config().unwrap();
    config.max_names_per_key = 16;
    // The count, not the pace, is under test here (the next test has the pace).
    config.new_names_per_key = lanmesh::BindingRate::UNLIMITED;
    let h = start(config).await;
    let at = h.local_addrs()[0].to_string();
    let owner = Peer::builder("owner")
        .router(at.clone())
        .connect()
        .await
        .unwrap();
    let squatter = Identity::generate().unwrap();
    let mut bound = 0;
    let mut refused = None;
    for i in 0..100 {
        match Peer::builder(format!("squat-{i}"))
            .router(at.clone())
            .identity(squatter.clone())
            .connect()
            .await
        {
            Ok(p) => {
                bound += 1;
                drop(p.close().await);
            }
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let err = refused.expect("the squatter was stopped");
    eprintln!("one key bound {bound} names, then: {err}");
    assert_eq!(bound, 16);
    assert!(err.to_string().contains("already holds 16 names"), "{err}");
    // The names it did not get are free for their owners; its own still work for it.
    let real = Peer::builder("squat-16")
        .router(at.clone())
        .connect()
        .await
        .unwrap();
    real.send_acked("owner", &b"mine"[..]).await.unwrap();
    assert_eq!(&owner.recv().await.unwrap().data[..], b"mine");
    Peer::builder("squat-0")
        .router(at)
        .identity(squatter)
        .connect()
        .await
        .unwrap();
}

#[actix_rt::test]
async fn names_bound_too_fast_are_refused_and_everyone_else_still_joins() {
    let mut config = router().config().unwrap();
    config.new_names_per_key = lanmesh::BindingRate {
        burst: 4,
        every: Duration::from_secs(60),
    };
    config.new_names = lanmesh::BindingRate {
        burst: 12,
        every: Duration::from_secs(60),
    };
    let h = start(config).await;
    let at = h.local_addrs()[0].to_string();
    let owner_key = Identity::generate().unwrap();
    let owner = Peer::builder("owner")
        .router(at.clone())
        .identity(owner_key.clone())
        .connect()
        .await
        .unwrap();
    drop(owner.close().await);
    // One key, names as fast as the router answers.
    let squatter = Identity::generate().unwrap();
    let mut bound = 0;
    let err = loop {
        match Peer::builder(format!("squat-{bound}"))
            .router(at.clone())
            .identity(squatter.clone())
            .connect()
            .await
        {
            Ok(p) => {
                bound += 1;
                drop(p.close().await);
            }
            Err(e) => break e,
        }
        assert!(bound < 100, "never refused");
    };
    eprintln!("one key bound {bound} names quickly, then: {err}");
    assert_eq!(bound, 4);
    assert!(
        err.to_string().contains("binds new names too fast"),
        "{err}"
    );
    assert!(err.to_string().contains("again in 60 s"), "{err}");
    // Keys are free: fresh ones, one name each, until the router's own bucket is spent.
    let mut fresh = 0;
    let err = loop {
        match Peer::builder(format!("many-{fresh}"))
            .router(at.clone())
            .connect()
            .await
        {
            Ok(p) => {
                fresh += 1;
                drop(p.close().await);
            }
            Err(e) => break e,
        }
        assert!(fresh < 100, "never refused");
    };
    eprintln!("fresh keys bound {fresh} more names, then: {err}");
    assert_eq!(
        1 + bound + fresh,
        12,
        "the router's budget, counting owner's name"
    );
    assert!(
        err.to_string().contains("binding new names too fast"),
        "{err}"
    );
    // A name already bound costs nothing: its owner comes back through all of it, and
    // the squatter's own names still work for it.
    let back = Peer::builder("owner")
        .router(at.clone())
        .identity(owner_key)
        .connect()
        .await
        .unwrap();
    let own = Peer::builder("squat-0")
        .router(at.clone())
        .identity(squatter)
        .connect()
        .await
        .unwrap();
    own.send_acked("owner", &b"hi"[..]).await.unwrap();
    assert_eq!(&back.recv().await.unwrap().data[..], b"hi");
}

#[actix_rt::test]
async fn the_operator_releases_a_squatted_name_while_the_router_runs() {
    let state = std::env::temp_dir().join(format!("lanmesh-release-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let mut config = router().config().unwrap();
    config.state_dir = Some(state.clone());
    let h = start(config).await;
    let at = h.local_addrs()[0].to_string();
    let squatter = Peer::builder("printer")
        .router(at.clone())
        .connect()
        .await
        .unwrap();
    drop(squatter.close().await);
    let refused = Peer::builder("printer")
        .router(at.clone())
        .connect()
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("belongs to another key"),
        "{refused}"
    );
    let names = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_lanmesh"))
            .arg("names")
            .arg("--state-dir")
            .arg(&state)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(names(&["list"]).contains("printer"));
    let said = names(&["release", "printer"]);
    assert!(said.contains("released \"printer\""), "{said}");
    assert!(!names(&["list"]).contains("printer"));
    // The running router notices: the real printer (another key) takes the name.
    let printer = Peer::builder("printer")
        .router(at.clone())
        .connect()
        .await
        .unwrap();
    let other = Peer::builder("laptop").router(at).connect().await.unwrap();
    other.send_acked("printer", &b"page"[..]).await.unwrap();
    assert_eq!(&printer.recv().await.unwrap().data[..], b"page");
    let _ = std::fs::remove_dir_all(&state);
}

//! Direct links end to end: peers of one machine (library API, loopback router) and
//! peers on a LAN of network namespaces (the `lanmesh` binary), where a link is made
//! when the two can reach each other and the router carries the rest.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::process::ChildStdin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::netns::{Host, Lan};
use common::proc::Proc;
use common::{builder, eventually, router, start};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(20);

#[actix_rt::test]
async fn peers_of_one_machine_link_directly_and_acked_streams_stay_exactly_once() {
    let r = start(router()).await;
    let a = builder(&r, "a").connect().await.unwrap();
    let b = builder(&r, "b").connect().await.unwrap();
    // The router introduces each with the address it saw and the port it listens on.
    eventually("b in a's list", LIMIT, || a.peers().len() == 2).await;
    let info = a
        .peers()
        .into_iter()
        .find(|p| p.name.as_str() == "b")
        .unwrap();
    assert!(info.direct.starts_with("127.0.0.1:"), "{}", info.direct);
    assert!(!a.is_direct("b"));

    // Acked messages while the link comes up and after: each once, in order.
    let mut sent = 0u32;
    let started = Instant::now();
    while !a.is_direct("b") || sent < 500 {
        assert!(
            started.elapsed() < LIMIT,
            "no direct link after {sent} messages"
        );
        a.send_acked("b", Bytes::from(sent.to_be_bytes().to_vec()))
            .await
            .unwrap();
        sent += 1;
    }
    for i in 0..sent {
        let m = b.recv().await.unwrap();
        assert_eq!(m.from.as_str(), "a");
        assert_eq!(m.data.as_ref(), i.to_be_bytes(), "message {i}");
    }
    assert!(b.get(1).is_empty(), "a message arrived twice");
    // Requests and replies go over it too.
    b.respond(|req| req.data.clone()).await.unwrap();
    let reply = a
        .request("b", Bytes::from_static(b"ping"), LIMIT)
        .await
        .unwrap();
    assert_eq!(reply.data.as_ref(), b"ping");
    a.close().await;
    b.close().await;
}

#[actix_rt::test]
async fn a_peer_without_direct_links_is_reached_through_the_router() {
    let r = start(router()).await;
    let a = builder(&r, "a").connect().await.unwrap();
    let b = builder(&r, "b").direct(false).connect().await.unwrap();
    eventually("b in a's list", LIMIT, || a.peers().len() == 2).await;
    let info = a
        .peers()
        .into_iter()
        .find(|p| p.name.as_str() == "b")
        .unwrap();
    assert_eq!(info.direct, "", "a peer with links off is not introduced");
    for i in 0..200u32 {
        a.send_acked("b", Bytes::from(i.to_be_bytes().to_vec()))
            .await
            .unwrap();
        b.send_acked("a", Bytes::from(i.to_be_bytes().to_vec()))
            .await
            .unwrap();
    }
    assert!(!a.is_direct("b") && !b.is_direct("a"));
    for i in 0..200u32 {
        assert_eq!(b.recv().await.unwrap().data.as_ref(), i.to_be_bytes());
        assert_eq!(a.recv().await.unwrap().data.as_ref(), i.to_be_bytes());
    }
}

/// Brings up `from`'s link to `to` (messages until it carries them; `to` reads them).
async fn link_up(from: &lanmesh::Peer, to: &lanmesh::Peer) {
    let name = to.name().unwrap().as_str().to_owned();
    let started = Instant::now();
    while !from.is_direct(&name) {
        assert!(started.elapsed() < LIMIT, "no direct link to {name}");
        from.send(&name, Bytes::from_static(b"hi")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        to.get_all();
    }
    to.get_all();
}

#[actix_rt::test]
async fn a_linked_peer_that_stops_reading_does_not_hold_up_its_senders_other_messages() {
    let r = start(router()).await;
    let a = builder(&r, "a").connect().await.unwrap();
    let b = builder(&r, "b").connect().await.unwrap();
    let stuck = builder(&r, "stuck")
        .inbox_capacity(1)
        .connect()
        .await
        .unwrap();
    eventually("all in a's list", LIMIT, || a.peers().len() == 3).await;
    link_up(&a, &stuck).await;
    link_up(&a, &b).await;
    stuck.pause();
    // a floods the stuck peer over their link (incompressible 1 KiB messages) until
    // everything between them is full, and goes on trying.
    let flooded = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let flood = {
        let (a, flooded) = (a.clone(), flooded.clone());
        actix_rt::spawn(async move {
            let data = Bytes::from(common::noise(7, 1024));
            loop {
                let _ = a.send("stuck", data.clone()).await;
                flooded.set(flooded.get() + 1);
            }
        })
    };
    // Past what a's send queue holds (2 MiB), with the sockets' buffers full.
    eventually("a 4 MiB flood", LIMIT, || flooded.get() > 4_096).await;
    let before = flooded.get();
    // Its messages to b go on, at once, over their own link.
    for i in 0..100u32 {
        tokio::time::timeout(
            Duration::from_secs(2),
            a.send("b", Bytes::from(i.to_be_bytes().to_vec())),
        )
        .await
        .unwrap_or_else(|_| panic!("a's send {i} to b waited for the stuck peer"))
        .unwrap();
    }
    for i in 0..100u32 {
        let m = tokio::time::timeout(LIMIT, b.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.data.as_ref(), i.to_be_bytes());
    }
    // And sends to the stuck peer do not hang either: the link that cannot be written
    // is given up, and the router refuses what the stuck peer cannot take.
    eventually("the flood to go on", LIMIT, || {
        flooded.get() > before + 4_096
    })
    .await;
    flood.abort();
    a.close().await;
    b.close().await;
}

#[actix_rt::test]
async fn a_file_between_linked_peers_goes_over_the_link_not_the_router() {
    let r = start(router()).await;
    let dir = std::env::temp_dir().join(format!("lanmesh-direct-file-{}", std::process::id()));
    let (src, save) = (dir.join("src"), dir.join("save"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&save).unwrap();
    let a = builder(&r, "a").connect().await.unwrap();
    let b = builder(&r, "b").save_dir(&save).connect().await.unwrap();
    eventually("b in a's list", LIMIT, || a.peers().len() == 2).await;
    // The link up, both ways (the chunks go one way, the acks the other).
    let started = Instant::now();
    while !(a.is_direct("b") && b.is_direct("a")) {
        assert!(started.elapsed() < LIMIT, "no direct link both ways");
        a.send_acked("b", Bytes::from_static(b"hi")).await.unwrap();
        b.send_acked("a", Bytes::from_static(b"hi")).await.unwrap();
    }
    while b
        .recv_timeout(Duration::from_millis(50))
        .await
        .unwrap()
        .is_some()
    {}

    let data = common::noise(17, 8 << 20);
    let file = src.join("big.bin");
    std::fs::write(&file, &data).unwrap();
    let before = r.handle().metrics().bytes_in;
    let sent = a.send_file("b", &file).await.unwrap();
    assert_eq!(sent.bytes, 8 << 20);
    let through_router = r.handle().metrics().bytes_in - before;
    let m = b.recv().await.unwrap();
    let f = m.file().expect("a file notice");
    let saved = std::fs::read(&f.path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(saved == data, "the saved file differs from the sent one");
    // 8 MiB went from a to b; the router read a few control frames at most.
    assert!(
        through_router < 64 * 1024,
        "{through_router} bytes of the file's traffic went through the router"
    );
    assert!(a.is_direct("b"));
    a.close().await;
    b.close().await;
}

// -- on a LAN of network namespaces ------------------------------------------------------

/// Starts `lanmesh router` in `host` and waits until it advertises.
fn lan_router(host: &Host) -> Proc {
    let p = host.spawn(&["router", "--no-http"]);
    loop {
        if p.line().trim_start().starts_with("mdns") {
            return p;
        }
    }
}

fn next_json(p: &Proc) -> Value {
    let line = p.line();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// `lanmesh peer --name NAME` in `host` (it finds the router by mDNS), once ready.
fn pipe_peer(host: &Host, name: &str) -> (Proc, ChildStdin) {
    let (p, stdin) = host.spawn_with_stdin(&["peer", "--name", name]);
    let ready = next_json(&p);
    assert_eq!(ready["event"], "ready", "{ready}");
    (p, stdin)
}

/// [`pipe_peer`] with the router's address given.
fn pipe_peer_at(host: &Host, name: &str, router: &str) -> (Proc, ChildStdin) {
    let (p, stdin) = host.spawn_with_stdin(&["peer", "--name", name, "--router", router]);
    let ready = next_json(&p);
    assert_eq!(ready["event"], "ready", "{ready}");
    (p, stdin)
}

fn say(stdin: &mut ChildStdin, v: &Value) {
    writeln!(stdin, "{v}").unwrap();
    stdin.flush().unwrap();
}

/// Sends `n` acked messages `0..n` from `tx` to `to` and reads them at `rx`: every one
/// once and in order. Returns the `path` events `tx` reported meanwhile.
fn acked_stream(tx: &Proc, tx_in: &mut ChildStdin, to: &str, rx: &Proc, n: u32) -> Vec<Value> {
    for i in 0..n {
        say(
            tx_in,
            &json!({"to": to, "data": i.to_string(), "ack": true}),
        );
    }
    let deadline = Instant::now() + LIMIT;
    let want: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    assert_eq!(arrivals(rx, want.len(), deadline), want);
    outcomes(tx, "acked", want.len(), deadline)
}

/// The data of the next `n` messages `rx` prints (events skipped).
fn arrivals(rx: &Proc, n: usize, deadline: Instant) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} arrived",
            got.len()
        );
        let v = next_json(rx);
        if v.get("event").is_none() {
            got.push(v["data"].as_str().unwrap().to_owned());
        }
    }
    got
}

/// Reads `tx`'s events until `n` of kind `outcome` (`acked`, `sent`); returns the `path`
/// events among them. An `error` event fails the test.
fn outcomes(tx: &Proc, outcome: &str, n: usize, deadline: Instant) -> Vec<Value> {
    let (mut seen, mut paths) = (0, Vec::new());
    while seen < n {
        assert!(Instant::now() < deadline, "only {seen} of {n} {outcome}");
        let v = next_json(tx);
        match v["event"].as_str() {
            Some(e) if e == outcome => seen += 1,
            Some("path") => paths.push(v),
            Some("error") => panic!("{v}"),
            _ => {}
        }
    }
    paths
}

#[test]
fn peers_on_one_segment_link_directly() {
    let Some(mut lan) = Lan::new(1) else { return };
    let (hr, ha, hb) = (lan.host(&[0]), lan.host(&[0]), lan.host(&[0]));
    let _router = lan_router(&hr);
    let (a, mut a_in) = pipe_peer(&ha, "a");
    let (b, _b_in) = pipe_peer(&hb, "b");
    // Until the link is up a's messages go through the router, then over the link; the
    // stream is never reordered or doubled on the way.
    let mut paths = acked_stream(&a, &mut a_in, "b", &b, 300);
    let deadline = Instant::now() + LIMIT;
    while !paths.iter().any(|p| p["path"] == "direct") {
        assert!(Instant::now() < deadline, "no direct link: {paths:?}");
        paths.extend(acked_stream(&a, &mut a_in, "b", &b, 50));
    }
    assert_eq!(paths[0]["peer"], "b");
}

#[test]
fn peers_that_reach_only_the_router_talk_through_it() {
    let Some(mut lan) = Lan::new(2) else { return };
    // Two segments joined by the router's host alone: left and right cannot reach each
    // other (no forwarding), so each link attempt fails and the router carries all.
    let hr = lan.host(&[0, 1]);
    let (hl, hright) = (lan.host(&[0]), lan.host(&[1]));
    let _router = lan_router(&hr);
    let (l, mut l_in) = pipe_peer(&hl, "left");
    let (r, mut r_in) = pipe_peer(&hright, "right");
    let started = Instant::now();
    let paths = acked_stream(&l, &mut l_in, "right", &r, 300);
    let back = acked_stream(&r, &mut r_in, "left", &l, 300);
    assert!(paths.is_empty() && back.is_empty(), "{paths:?} {back:?}");
    // Failed dials cost nothing a user would wait for.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_peer_behind_a_firewall_that_drops_links_is_reached_through_the_router() {
    let Some(mut lan) = Lan::new(1) else { return };
    let (hr, ha, hb) = (lan.host(&[0]), lan.host(&[0]), lan.host(&[0]));
    // Between a and b every packet vanishes (a SYN no one answers), as behind a firewall
    // that lets only the router in: each dial waits out its timeout, then gives up.
    let (a_ip, b_ip) = (ha.addrs[0].to_string(), hb.addrs[0].to_string());
    common::netns::ip(&[
        "-n",
        &ha.ns,
        "route",
        "add",
        "blackhole",
        &format!("{b_ip}/32"),
    ])
    .unwrap();
    common::netns::ip(&[
        "-n",
        &hb.ns,
        "route",
        "add",
        "blackhole",
        &format!("{a_ip}/32"),
    ])
    .unwrap();
    let _router = lan_router(&hr);
    let (a, mut a_in) = pipe_peer(&ha, "a");
    let (b, mut b_in) = pipe_peer(&hb, "b");
    let there = acked_stream(&a, &mut a_in, "b", &b, 300);
    let back = acked_stream(&b, &mut b_in, "a", &a, 300);
    assert!(there.is_empty() && back.is_empty(), "{there:?} {back:?}");
}

#[test]
fn a_peer_beside_the_router_is_linked_to_from_another_machine() {
    let Some(mut lan) = Lan::new(1) else { return };
    let (hr, hb) = (lan.host(&[0]), lan.host(&[0]));
    let _router = lan_router(&hr);
    // `a` runs on the router's machine and joins over loopback, so the router sees it at
    // 127.0.0.1; `b`, on another machine, must dial it at the router's address instead.
    // Plain sends, so that `a` has nothing to send `b` and never dials it itself: a link
    // can only be `b`'s dial.
    let (a, _a_in) = pipe_peer_at(&hr, "a", "127.0.0.1:7400");
    let (b, mut b_in) = pipe_peer(&hb, "b");
    let mut paths = plain_stream(&b, &mut b_in, "a", &a, 0..300);
    let deadline = Instant::now() + LIMIT;
    let mut next = 300;
    while !paths.iter().any(|p| p["path"] == "direct") {
        assert!(Instant::now() < deadline, "no direct link: {paths:?}");
        paths.extend(plain_stream(&b, &mut b_in, "a", &a, next..next + 50));
        next += 50;
    }
    assert_eq!(paths[0]["peer"], "a");
}

/// Sends messages `seq` from `tx` to `to` with plain sends and reads them at `rx`: each
/// once and in order. Returns the `path` events `tx` reported meanwhile.
fn plain_stream(
    tx: &Proc,
    tx_in: &mut ChildStdin,
    to: &str,
    rx: &Proc,
    seq: std::ops::Range<u32>,
) -> Vec<Value> {
    for i in seq.clone() {
        say(tx_in, &json!({"to": to, "data": i.to_string(), "ref": i}));
    }
    let deadline = Instant::now() + LIMIT;
    let want: Vec<String> = seq.map(|i| i.to_string()).collect();
    assert_eq!(arrivals(rx, want.len(), deadline), want);
    outcomes(tx, "sent", want.len(), deadline)
}

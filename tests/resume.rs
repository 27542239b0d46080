//! Resuming after lost connections: acked messages arrive exactly once and in order
//! through a proxy that keeps cutting, tearing and stalling the TCP streams.

mod common;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use common::chaos::{Chaos, ChaosProxy};
use common::{addr, builder, eventually, names, peer, router, start};
use lanmesh::{Peer, Status};

fn seed() -> u64 {
    std::env::var("LANMESH_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6c61_6e6d_6573_6821)
}

/// Takes `total` messages at `b` in the background, checking they carry 0, 1, 2, … in
/// their first 8 bytes: each once, in order. Ends with how many it took.
fn receive_in_order(b: &Peer, total: u64) -> tokio::task::JoinHandle<u64> {
    let b = b.clone();
    tokio::spawn(async move {
        let mut next = 0u64;
        while next < total {
            let m = b.recv().await.expect("B keeps receiving");
            let n = u64::from_be_bytes(m.data[..8].try_into().expect("an 8-byte number"));
            assert_eq!(n, next, "message {n} arrived when {next} was due");
            next += 1;
        }
        next
    })
}

async fn peer_via(proxy: &ChaosProxy, name: &str) -> Peer {
    Peer::builder(name)
        .router(proxy.addr.to_string())
        // What is tested is the path through the proxy: no direct link around it.
        .direct(false)
        .resend_after(Duration::from_millis(200))
        .ack_timeout(Duration::from_secs(30))
        .connect()
        .await
        .expect("peer joins through the proxy")
}

#[actix_rt::test]
async fn acked_messages_survive_a_cutting_proxy_exactly_once_in_order() {
    const TOTAL: u64 = 20_000;
    const WINDOW: usize = 256;
    let seed = seed();
    let r = start(router()).await;
    let chaos = Chaos {
        // Both directions together: a cut every few hundred messages.
        cut_after: (60_000, 200_000),
        max_fragment: 700,
        stall_one_in: 200,
    };
    let proxy_a = ChaosProxy::start(addr(&r), seed, chaos).await;
    let proxy_b = ChaosProxy::start(addr(&r), seed ^ 0xb, chaos).await;
    let a = peer_via(&proxy_a, "A").await;
    let b = peer_via(&proxy_b, "B").await;

    let receiver = receive_in_order(&b, TOTAL);

    let started = Instant::now();
    let mut in_flight = VecDeque::new();
    let mut acked = 0u64;
    for n in 0..TOTAL {
        let mut data = n.to_be_bytes().to_vec();
        data.extend_from_slice(&[0x5a; 56]);
        in_flight.push_back(a.queue_acked("B", data).await.expect("queued"));
        if in_flight.len() >= WINDOW {
            in_flight.pop_front().unwrap().await.expect("acked");
            acked += 1;
        }
    }
    for pending in in_flight {
        pending.await.expect("acked");
        acked += 1;
    }
    let delivered = tokio::time::timeout(Duration::from_secs(60), receiver)
        .await
        .expect("B received everything")
        .expect("receiver task");
    // Nothing beyond the last one: a duplicate would be waiting in B's inbox by now,
    // since its ack has been seen by A.
    let extra = b.get_all();
    println!(
        "chaos seed {seed:#x}: sent {TOTAL}, acked {acked}, delivered {delivered}, \
         duplicates {}, connections cut {} + {}, connections made {} + {}, in {:.1} s",
        extra.len(),
        proxy_a.cuts(),
        proxy_b.cuts(),
        proxy_a.connections(),
        proxy_b.connections(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!((acked, delivered), (TOTAL, TOTAL));
    assert!(extra.is_empty(), "duplicates delivered: {}", extra.len());
    assert!(
        proxy_a.cuts() + proxy_b.cuts() >= 10,
        "the proxy should have cut the connections many times"
    );
}

#[actix_rt::test]
async fn messages_sent_while_a_peer_is_away_wait_for_it() {
    let r = start(router()).await;
    let calm = Chaos {
        cut_after: (u64::MAX / 2, u64::MAX / 2),
        max_fragment: 1 << 14,
        stall_one_in: 0,
    };
    let proxy = ChaosProxy::start(addr(&r), seed(), calm).await;
    let a = peer(&r, "A").await;
    let b = peer_via(&proxy, "B").await;
    let mut status = b.watch_status();
    // B loses its connection and cannot come back for now.
    proxy.refuse(true);
    proxy.cut_all();
    status
        .wait_for(|s| matches!(s, Status::Reconnecting { .. }))
        .await
        .unwrap();
    // B keeps its name meanwhile, and the router holds what is sent to it.
    assert_eq!(names(&a), ["A", "B"]);
    let plain = a.send("B", &b"sent while away"[..]).await.unwrap();
    let acked = a.queue_acked("B", &b"acked while away"[..]).await.unwrap();
    // B also queues an acked message while it is away; it goes after the welcome.
    let from_b = b.queue_acked("A", &b"queued while away"[..]).await.unwrap();
    proxy.refuse(false);
    status
        .wait_for(|s| matches!(s, Status::Connected { .. }))
        .await
        .unwrap();
    acked
        .await
        .expect("the held message is acknowledged after the resume");
    from_b.await.expect("B's queued message is delivered");
    let got: Vec<Vec<u8>> = [b.recv().await.unwrap(), b.recv().await.unwrap()]
        .into_iter()
        .map(|m| m.data.to_vec())
        .collect();
    assert_eq!(got, [&b"sent while away"[..], &b"acked while away"[..]]);
    assert_eq!(&a.recv().await.unwrap().data[..], b"queued while away");
    assert!(plain > 0);
    // The resume was silent: A never saw B leave and come back.
    assert_eq!(names(&a), ["A", "B"]);
}

#[actix_rt::test]
async fn a_peer_that_does_not_come_back_leaves_after_the_grace_period() {
    let r = start(router().grace(Duration::from_millis(400))).await;
    let calm = Chaos {
        cut_after: (u64::MAX / 2, u64::MAX / 2),
        max_fragment: 1 << 14,
        stall_one_in: 0,
    };
    let proxy = ChaosProxy::start(addr(&r), seed(), calm).await;
    let a = builder(&r, "A")
        .ack_timeout(Duration::from_secs(20))
        .connect()
        .await
        .unwrap();
    let b = peer_via(&proxy, "B").await;
    proxy.refuse(true);
    proxy.cut_all();
    let held = a.queue_acked("B", &b"never read"[..]).await.unwrap();
    // The held message is refused to its sender when the grace period ends.
    let err = held.await.unwrap_err();
    assert!(err.to_string().contains("unknown peer"), "{err}");
    eventually("A to see B leave", Duration::from_secs(5), || {
        names(&a) == ["A"]
    })
    .await;
    drop(b);
}

/// A router killed and started again on its address mid-stream: both peers join the
/// new one, which announces each as joined. They are the same processes (the same
/// incarnation), so their acked streams go on: every message once, in order.
#[actix_rt::test]
async fn acked_streams_survive_a_router_restart_exactly_once_in_order() {
    const TOTAL: u64 = 3_000;
    const WINDOW: usize = 64;
    let (first, at) = common::proc::router("127.0.0.1:0");
    let join = |name: &'static str| {
        Peer::builder(name)
            .router(at.clone())
            // The path under test is the router's: no direct link around it.
            .direct(false)
            .resend_after(Duration::from_millis(200))
            .ack_timeout(Duration::from_secs(30))
            .connect()
    };
    let a = join("A").await.expect("A joins");
    let b = join("B").await.expect("B joins");
    let receiver = receive_in_order(&b, TOTAL);
    let mut first = Some(first);
    let mut second = None;
    let mut in_flight = VecDeque::new();
    for n in 0..TOTAL {
        if n == TOTAL / 3 {
            // Killed: nothing is closed in order, the peers just lose the connection.
            let mut old = first.take().unwrap();
            old.child.kill().unwrap();
            let _ = old.child.wait();
            second = Some(common::proc::Proc::spawn(&[
                "router",
                "--no-mdns",
                "--no-http",
                "--listen",
                &at,
            ]));
        }
        in_flight.push_back(
            a.queue_acked("B", n.to_be_bytes().to_vec())
                .await
                .expect("queued"),
        );
        if in_flight.len() >= WINDOW {
            in_flight.pop_front().unwrap().await.expect("acked");
        }
    }
    for pending in in_flight {
        pending.await.expect("acked");
    }
    let delivered = tokio::time::timeout(Duration::from_secs(60), receiver)
        .await
        .expect("B received everything")
        .expect("receiver task");
    assert_eq!(delivered, TOTAL);
    assert!(b.get_all().is_empty(), "a message arrived twice");
    assert!(second.is_some());
}

#[actix_rt::test]
async fn a_file_goes_on_across_cut_connections_of_its_sender() {
    file_through_cutting_proxies(true, false).await;
}

#[actix_rt::test]
async fn a_file_goes_on_across_cut_connections_of_both_ends() {
    file_through_cutting_proxies(true, true).await;
}

/// Sends a 16 MiB file from A to B, each through a proxy of its own that cuts the
/// connection after every 3–6 MiB (`cut_sender`, `cut_receiver`), or never: the file
/// arrives byte for byte, however many times the connections were made again.
async fn file_through_cutting_proxies(cut_sender: bool, cut_receiver: bool) {
    let r = start(router()).await;
    let chaos = |cuts: bool| Chaos {
        cut_after: if cuts {
            (3 << 20, 6 << 20)
        } else {
            (u64::MAX / 2, u64::MAX / 2)
        },
        max_fragment: 1 << 14,
        stall_one_in: 0,
    };
    let seed = seed();
    let proxy_a = ChaosProxy::start(addr(&r), seed, chaos(cut_sender)).await;
    let proxy_b = ChaosProxy::start(addr(&r), seed ^ 0xf, chaos(cut_receiver)).await;
    let dir = std::env::temp_dir().join(format!(
        "lanmesh-resume-file-{}-{cut_sender}-{cut_receiver}",
        std::process::id()
    ));
    let (src, save) = (dir.join("src"), dir.join("save"));
    std::fs::create_dir_all(&src).expect("a scratch directory");
    std::fs::create_dir_all(&save).expect("a scratch directory");
    let a = peer_via(&proxy_a, "A").await;
    let b = Peer::builder("B")
        .router(proxy_b.addr.to_string())
        .direct(false)
        .save_dir(&save)
        .connect()
        .await
        .expect("B joins through its proxy");
    eventually("B in A's list", Duration::from_secs(10), || {
        a.peers().len() == 2
    })
    .await;

    let data = common::noise(23, 16 << 20);
    let file = src.join("big.bin");
    std::fs::write(&file, &data).expect("the file to send");
    let sent = a.send_file("B", &file).await;
    let saved = match b.recv_timeout(Duration::from_secs(10)).await {
        Ok(Some(m)) => m.file().and_then(|f| std::fs::read(&f.path).ok()),
        _ => None,
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(sent.expect("the file is delivered").bytes, 16 << 20);
    assert!(
        saved == Some(data),
        "the saved file differs from the sent one"
    );
    let (cuts_a, cuts_b) = (proxy_a.cuts(), proxy_b.cuts());
    assert!(
        (cuts_a >= 2) == cut_sender && (cuts_b >= 2) == cut_receiver,
        "the proxies cut {cuts_a} and {cuts_b} times"
    );
}

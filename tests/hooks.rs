//! Lifecycle hooks end to end: a router with `RouterHooks` and peers driven by
//! `Peer::run`, on 127.0.0.1 without mDNS.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{builder, eventually, peer, router, start};
use lanmesh::proto::Name;
use lanmesh::proto::PeerInfo;
use lanmesh::{ClientError, Hooks, Message, Peer, PeerEvent, RouterHooks, Status};

type Log = Arc<Mutex<Vec<String>>>;

fn snapshot(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

/// Writes down every router hook call.
struct RouterLog(Log);

impl RouterHooks for RouterLog {
    fn on_start(&self, router: &lanmesh::RouterHandle) {
        let port = router.local_addrs()[0].port();
        self.0.lock().unwrap().push(format!("start {}", port != 0));
    }
    fn on_peer_joined(&self, peer: &PeerInfo) {
        self.0.lock().unwrap().push(format!("joined {}", peer.name));
    }
    fn on_peer_left(&self, name: &Name) {
        self.0.lock().unwrap().push(format!("left {name}"));
    }
    fn on_shutdown(&self) {
        self.0.lock().unwrap().push("shutdown".into());
    }
}

/// Writes down every peer hook call; answers `ping` requests and declines the rest.
struct PeerLog {
    log: Log,
    messages: usize,
}

impl PeerLog {
    fn new(log: &Log) -> Self {
        Self {
            log: log.clone(),
            messages: 0,
        }
    }
    fn note(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }
}

impl Hooks for PeerLog {
    async fn on_join(&mut self, peer: &Peer) {
        let names: Vec<String> = peer.peers().iter().map(|p| p.name.to_string()).collect();
        self.note(format!("join {}", names.join(",")));
    }
    async fn on_message(&mut self, peer: &Peer, msg: Message) {
        self.messages += 1;
        self.note(format!(
            "message {} {}",
            msg.from,
            msg.text().unwrap_or("?")
        ));
        // Hooks may use the peer: answer in kind.
        peer.send_text(msg.from.as_str(), "got it").await.unwrap();
    }
    async fn on_request(&mut self, _: &Peer, req: Message) -> Option<Bytes> {
        self.note(format!("request {}", String::from_utf8_lossy(&req.data)));
        (&req.data[..] == b"ping").then(|| Bytes::from_static(b"pong"))
    }
    async fn on_peer_joined(&mut self, _: &Peer, info: PeerInfo) {
        self.note(format!("peer joined {}", info.name));
    }
    async fn on_peer_left(&mut self, _: &Peer, name: Name) {
        self.note(format!("peer left {name}"));
    }
    async fn on_status(&mut self, _: &Peer, status: Status) {
        let what = match status {
            Status::Connected { .. } => "connected",
            Status::Reconnecting { .. } => "reconnecting",
            Status::Closed { .. } => "closed",
            _ => "other",
        };
        self.note(format!("status {what}"));
    }
    async fn on_leave(&mut self, _: &Peer, reason: &str) {
        self.note(format!("leave {}", !reason.is_empty()));
    }
}

#[actix_rt::test]
async fn peer_and_router_hooks_see_the_whole_life_in_order() {
    let router_log = Log::default();
    let r = start(router().hooks(RouterLog(router_log.clone()))).await;
    assert_eq!(snapshot(&router_log), ["start true"]);

    let log = Log::default();
    let watcher = builder(&r, "watcher")
        .reconnect(false)
        .connect()
        .await
        .unwrap();
    // `tokio::spawn`: the future of `run` is `Send` when the hooks are.
    let run = tokio::spawn({
        let (watcher, hooks) = (watcher.clone(), PeerLog::new(&log));
        async move { watcher.run(hooks).await }
    });
    eventually("on_join", Duration::from_secs(5), || {
        !snapshot(&log).is_empty()
    })
    .await;

    let a = peer(&r, "A").await;
    a.send_text("watcher", "hello").await.unwrap();
    // The hook answered from inside on_message.
    let answer = a
        .recv_timeout(Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (answer.from.as_str(), answer.text()),
        ("watcher", Some("got it"))
    );

    let reply = a
        .request("watcher", &b"ping"[..], Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(&reply.data[..], b"pong");
    let err = a
        .request("watcher", &b"what?"[..], Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::NoResponder { name } if name == "watcher"),
        "{err:?}"
    );
    a.close().await;
    eventually("A's leave", Duration::from_secs(5), || {
        snapshot(&log).contains(&"peer left A".to_owned())
    })
    .await;

    watcher.close().await;
    let hooks = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("run returns once the peer is closed")
        .unwrap();
    assert_eq!(hooks.messages, 1, "run hands the hooks back");
    assert_eq!(
        snapshot(&log),
        [
            "join watcher",
            "peer joined A",
            "message A hello",
            "request ping",
            "request what?",
            "peer left A",
            "status closed",
            "leave true",
        ]
    );
    // Requests went to the hook, not to the inbox.
    assert!(watcher.get_all().is_empty());

    r.shutdown().await;
    assert_eq!(
        snapshot(&router_log),
        [
            "start true",
            "joined watcher",
            "joined A",
            "left A",
            "left watcher",
            "shutdown"
        ]
    );
    r.shutdown().await;
    assert_eq!(snapshot(&router_log).len(), 6, "on_shutdown runs once");
}

#[actix_rt::test]
async fn on_shutdown_comes_after_the_leaves_it_causes_and_peers_see_the_loss() {
    let router_log = Log::default();
    let r = start(router().hooks(RouterLog(router_log.clone()))).await;
    let log = Log::default();
    let p = peer(&r, "P").await; // reconnects by default
    let run = actix_rt::spawn({
        let (p, hooks) = (p.clone(), PeerLog::new(&log));
        async move { p.run(hooks).await }
    });
    let _q = peer(&r, "Q").await;
    eventually("Q seen", Duration::from_secs(5), || {
        snapshot(&log).contains(&"peer joined Q".to_owned())
    })
    .await;

    r.shutdown().await;
    let seen = snapshot(&router_log);
    assert_eq!(
        seen.last().map(String::as_str),
        Some("shutdown"),
        "{seen:?}"
    );
    assert!(seen.contains(&"left P".to_owned()) && seen.contains(&"left Q".to_owned()));

    eventually("the loss reported", Duration::from_secs(5), || {
        snapshot(&log).contains(&"status reconnecting".to_owned())
    })
    .await;
    p.terminate();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("run ends after terminate")
        .unwrap();
    assert_eq!(
        snapshot(&log).last().map(String::as_str),
        Some("leave true")
    );
}

/// A router hook that panics for one name.
struct Grumpy;

impl RouterHooks for Grumpy {
    fn on_peer_joined(&self, peer: &PeerInfo) {
        assert_ne!(peer.name.as_str(), "boom", "this hook refuses boom");
    }
}

#[actix_rt::test]
async fn a_panicking_router_hook_does_not_take_the_router_down() {
    let r = start(router().hooks(Grumpy)).await;
    let boom = peer(&r, "boom").await;
    let other = peer(&r, "other").await;
    boom.send_acked("other", &b"still here"[..]).await.unwrap();
    assert_eq!(&other.recv().await.unwrap().data[..], b"still here");
    assert_eq!(r.handle().peers().await.unwrap().len(), 2);
}

#[actix_rt::test]
async fn queued_requests_are_answered_later_from_any_task() {
    let r = start(router()).await;
    let server = peer(&r, "server").await;
    let asker = peer(&r, "asker").await;
    server.queue_requests(true);
    let worker = actix_rt::spawn({
        let server = server.clone();
        async move {
            for _ in 0..2 {
                let req = server.recv().await.unwrap();
                assert!(req.is_request());
                if &req.data[..] == b"slow?" {
                    // Answered from a task of its own, after the actor has moved on.
                    server.reply(&req, "done").await.unwrap();
                } else {
                    server.decline(&req).await.unwrap();
                }
            }
        }
    });
    let reply = asker
        .request("server", &b"slow?"[..], Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        (reply.from.as_str(), reply.text()),
        ("server", Some("done"))
    );
    let err = asker
        .request("server", &b"other?"[..], Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NoResponder { .. }), "{err:?}");
    worker.await.unwrap();

    // Turned off again: requests get NoResponder at once and never reach the inbox.
    server.queue_requests(false);
    let err = asker
        .request("server", &b"slow?"[..], Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NoResponder { .. }), "{err:?}");
    assert_eq!(server.pending(), 0);
}

#[actix_rt::test]
async fn a_request_queue_keeps_requests_apart_from_messages() {
    let r = start(router()).await;
    let server = peer(&r, "server").await;
    let asker = peer(&r, "asker").await;
    let mut requests = server.request_queue(1);
    asker
        .send_acked("server", &b"just a message"[..])
        .await
        .unwrap();
    let first = actix_rt::spawn({
        let asker = asker.clone();
        async move {
            asker
                .request_text("server", "temp?", Duration::from_secs(5))
                .await
        }
    });
    // One request waits in the queue, unread: the next one is declined at once.
    eventually("the request in the queue", Duration::from_secs(5), || {
        requests.len() == 1
    })
    .await;
    let err = asker
        .request("server", &b"more?"[..], Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NoResponder { .. }), "{err:?}");
    let req = requests.recv().await.unwrap();
    assert!(req.is_request());
    assert_eq!(
        req.text(),
        Some("temp?"),
        "request_text marks the request as text"
    );
    // Answered from another thread, after the driver has moved on.
    let replier = server.clone();
    std::thread::spawn(move || actix_rt::System::new().block_on(replier.reply(&req, "21.5")))
        .join()
        .unwrap()
        .unwrap();
    let reply = first.await.unwrap().unwrap();
    assert_eq!(reply.text(), Some("21.5"));
    // The message went to the inbox, the requests did not.
    let msg = server.recv().await.unwrap();
    assert_eq!(
        (&msg.data[..], msg.is_request()),
        (&b"just a message"[..], false)
    );
    assert_eq!(server.pending(), 0);

    // Receiver dropped: declined; then stopped: declined too, and none reach the inbox.
    drop(requests);
    for turn in 0..2 {
        let err = asker
            .request("server", &b"still?"[..], Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::NoResponder { .. }),
            "turn {turn}: {err:?}"
        );
        server.stop_responding().await.unwrap();
    }
    assert_eq!(server.pending(), 0);
}

#[actix_rt::test]
async fn peer_events_follow_joins_and_leaves() {
    let r = start(router()).await;
    let a = peer(&r, "A").await;
    let mut events = a.peer_events();
    let b = peer(&r, "B").await;
    let joined = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&joined, PeerEvent::Joined(info) if info.name.as_str() == "B"),
        "{joined:?}"
    );
    b.close().await;
    let left = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&left, PeerEvent::Left(name) if name.as_str() == "B"),
        "{left:?}"
    );
}

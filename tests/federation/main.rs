//! Routers federated through a real 3-node nats-server cluster with JetStream, all on
//! loopback: three routers (two in this process, one `lanmesh router --federate`
//! process), each on another NATS node, with peers on each.
//!
//! Needs nats-server (`scripts/ensure-tools.sh nats`); without it the test says so and
//! passes, unless `LANMESH_REQUIRE_NATS=1`.
#![cfg(feature = "federation")]
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;
mod login;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::proc::Proc;
use common::{eventually, free_port};
use lanmesh::proto::{ErrorCode, Identity};
use lanmesh::{ClientError, FederationConfig, Peer, Router, RunningRouter};

/// How long a cluster, a bucket or a presence entry may take to be seen.
const SETTLE: Duration = Duration::from_secs(30);

/// A 3-node nats-server cluster with JetStream, killed when dropped.
struct Cluster {
    nodes: Vec<Child>,
    urls: Vec<String>,
    dir: PathBuf,
    /// Each node's arguments, to start it again.
    args: Vec<Vec<String>>,
    bin: PathBuf,
}

impl Cluster {
    /// Kills node `i` (SIGKILL: its clients see the connection drop).
    fn kill(&mut self, i: usize) {
        self.nodes[i].kill().unwrap();
        self.nodes[i].wait().unwrap();
    }

    /// Starts node `i` again, same ports and store, and waits until it is ready and
    /// routed to the others.
    fn restart(&mut self, i: usize) {
        self.nodes[i] = node(&self.bin, &self.args[i]);
        meshed(&self.urls[i], self.urls.len());
    }
}

/// Waits until the node at `url` tells its clients of `nodes` servers (itself included):
/// only then can a client that reached it alone move to another when it goes away.
fn meshed(url: &str, nodes: usize) {
    use std::io::Read;
    let addr = url.trim_start_matches("nats://");
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let mut known = 0;
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while !line.ends_with(b"\r\n") && s.read(&mut byte).is_ok_and(|n| n == 1) {
                line.push(byte[0]);
            }
            let info = line.strip_prefix(b"INFO ").unwrap_or_default();
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(info) {
                known = v["connect_urls"].as_array().map_or(0, Vec::len);
            }
        }
        if known >= nodes {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{url} knows {known} of {nodes} servers after {SETTLE:?}"
        );
        // Route connections come up on their own: look again shortly.
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            let _ = n.kill();
            let _ = n.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// nats-server, or `None` (and why) when the test is to be skipped.
fn nats_server() -> Option<PathBuf> {
    match lanmesh_bench::find_nats_server(None) {
        Some(bin) => Some(bin),
        None if std::env::var("LANMESH_REQUIRE_NATS").as_deref() == Ok("1") => {
            panic!(
                "nats-server not found and LANMESH_REQUIRE_NATS=1 (scripts/ensure-tools.sh nats)"
            )
        }
        None => {
            eprintln!(
                "SKIPPED: nats-server not found (scripts/ensure-tools.sh nats installs it); \
                 set LANMESH_REQUIRE_NATS=1 to fail instead"
            );
            None
        }
    }
}

/// Starts nats-server with `args` (loopback, JetStream) and waits until it is ready.
fn node(bin: &Path, args: &[String]) -> Child {
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("Server is ready") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(SETTLE).expect("nats-server ready");
    child
}

fn scratch(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lanmesh-fed-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// One node's arguments: client port, JetStream with its store in `dir`.
fn node_args(port: u16, dir: &Path) -> Vec<String> {
    vec![
        "-a".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-js".into(),
        "-sd".into(),
        dir.display().to_string(),
    ]
}

/// Starts three nodes routed to each other.
fn cluster(bin: &Path) -> Cluster {
    let dir = scratch("cluster");
    let clients: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let spawned: Vec<(Vec<String>, usize)> = (0..3)
        .map(|i| {
            let others: Vec<String> = (0..3)
                .filter(|j| *j != i)
                .map(|j| format!("nats://127.0.0.1:{}", routes[j]))
                .collect();
            let mut args = node_args(clients[i], &dir.join(format!("node{i}")));
            args.extend([
                "-n".into(),
                format!("node{i}"),
                "--cluster_name".into(),
                "lanmesh-test".into(),
                "--cluster".into(),
                format!("nats://127.0.0.1:{}", routes[i]),
                "--routes".into(),
                others.join(","),
            ]);
            (args, i)
        })
        .collect();
    let urls: Vec<String> = clients
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect();
    // All three at once: each waits for the others to route to.
    let nodes = std::thread::scope(|s| {
        let handles: Vec<_> = spawned
            .iter()
            .map(|(args, _)| s.spawn(|| node(bin, args)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Killed on drop even if the nodes never route to each other.
    let cluster = Cluster {
        nodes,
        args: spawned.into_iter().map(|(args, _)| args).collect(),
        bin: bin.to_path_buf(),
        urls,
        dir,
    };
    for url in &cluster.urls {
        meshed(url, cluster.urls.len());
    }
    cluster
}

async fn federated(url: &str, id: &str) -> RunningRouter {
    let mut f = FederationConfig::new([url]);
    f.router_id = Some(id.to_owned());
    f.replicas = 3;
    start_federated(f).await
}

async fn start_federated(f: FederationConfig) -> RunningRouter {
    Router::builder()
        .listen("127.0.0.1:0")
        .mdns(false)
        .federation(f)
        .start()
        .await
        .expect("router starts")
}

async fn join(addr: &str, name: &str) -> Peer {
    Peer::builder(name)
        .router(addr.to_owned())
        .connect()
        .await
        .expect("peer joins")
}

fn sees(p: &Peer, names: &[&str]) -> bool {
    let have = common::names(p);
    names.iter().all(|n| have.iter().any(|h| h == n))
}

/// `lanmesh peers --json --router ADDR`, run off the test's runtime (which serves the
/// router it asks).
async fn peers_json(addr: String) -> serde_json::Value {
    let out = tokio::task::spawn_blocking(move || {
        common::proc::run(&["peers", "--json", "--router", &addr])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn refused(addr: &str, name: &str) -> ClientError {
    Peer::builder(name)
        .router(addr.to_owned())
        .identity(Identity::generate().unwrap())
        .connect()
        .await
        .expect_err("the name is taken")
}

#[actix_rt::test]
async fn routers_on_three_nats_nodes_are_one_mesh() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let Some(bin) = nats_server() else { return };
    let nats = cluster(&bin);
    let a = federated(&nats.urls[0], "site-a").await;
    let b = federated(&nats.urls[1], "site-b").await;
    // The third router is the command line's, on the third node.
    let c = Proc::spawn(&[
        "router",
        "--no-mdns",
        "--no-http",
        "--listen",
        "127.0.0.1:0",
        "--federate",
        &nats.urls[2],
        "--router-id",
        "site-c",
        "--replicas",
        "3",
    ]);
    let c_addr = c.router_addr();
    let a_addr = a.local_addrs()[0].to_string();
    let b_addr = b.local_addrs()[0].to_string();

    let alice = join(&a_addr, "alice").await;
    let bob = join(&b_addr, "bob").await;
    let carol = join(&c_addr, "carol").await;
    eventually("every peer sees the whole mesh", SETTLE, || {
        sees(&alice, &["bob", "carol"])
            && sees(&bob, &["alice", "carol"])
            && sees(&carol, &["alice", "bob"])
    })
    .await;

    // A rough figure for the report, not a target: sequential acked sends to a peer on
    // the same router and to one on another router.
    let amy = join(&a_addr, "amy").await;
    let mut rtt = Vec::new();
    for to in ["amy", "bob"] {
        let started = std::time::Instant::now();
        for i in 0..300u32 {
            alice
                .send_text_acked(to, &format!("rtt {i}"))
                .await
                .unwrap();
        }
        rtt.push(started.elapsed() / 300);
    }
    for p in [&amy, &bob] {
        for i in 0..300u32 {
            let m = p
                .recv_timeout(Duration::from_secs(10))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(m.text(), Some(format!("rtt {i}").as_str()));
        }
    }
    eprintln!(
        "acked send, sequential: same router {:?}, across routers {:?}",
        rtt[0], rtt[1]
    );
    amy.close().await;

    // Sends cross routers in order, and payloads arrive whole (compressible ones are
    // compressed by the sender and forwarded as they are).
    for i in 0..200u32 {
        alice
            .send_text("bob", &format!("message {i}"))
            .await
            .unwrap();
    }
    for i in 0..200u32 {
        let m = bob
            .recv_timeout(Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.from.as_str(), "alice");
        assert_eq!(m.text(), Some(format!("message {i}").as_str()));
    }
    let big = "lanmesh federation ".repeat(4000);
    alice.send_text_acked("carol", &big).await.unwrap();
    let m = carol
        .recv_timeout(Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((m.from.as_str(), m.text()), ("alice", Some(big.as_str())));
    // Acked sends from the command-line router's side, back the other way.
    for i in 0..50u32 {
        carol
            .send_text_acked("bob", &format!("acked {i}"))
            .await
            .unwrap();
    }
    for i in 0..50u32 {
        let m = bob
            .recv_timeout(Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (m.from.as_str(), m.text()),
            ("carol", Some(format!("acked {i}").as_str()))
        );
    }

    // Request and reply across routers; a peer without a responder says so across too.
    bob.respond(|req| match &req.data[..] {
        b"temp?" => bytes::Bytes::from_static(b"21.5"),
        _ => bytes::Bytes::from_static(b"?"),
    })
    .await
    .unwrap();
    let reply = alice
        .request("bob", &b"temp?"[..], Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        (reply.from.as_str(), &reply.data[..]),
        ("bob", &b"21.5"[..])
    );
    let reply = carol
        .request("bob", &b"temp?"[..], Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(&reply.data[..], b"21.5");
    let err = bob
        .request("alice", &b"anyone?"[..], Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::NoResponder { name } if name == "alice"),
        "{err:?}"
    );

    // A broadcast reaches each remote peer once: the next message after it is the marker
    // (broadcast too: one sender's broadcasts keep their order across routers, while a
    // broadcast and a direct message travel different subjects).
    alice.broadcast_text("to all").await.unwrap();
    alice.broadcast_text("marker").await.unwrap();
    for p in [&bob, &carol] {
        let m = p
            .recv_timeout(Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((m.from.as_str(), m.text()), ("alice", Some("to all")));
        let m = p
            .recv_timeout(Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.text(), Some("marker"), "the broadcast came once");
    }

    // `peers --json` lists the whole mesh with the router each peer is on.
    let list = peers_json(a_addr.clone()).await;
    let router_of = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["router"].clone())
    };
    assert_eq!(router_of("alice"), Some("site-a".into()), "{list}");
    assert_eq!(router_of("bob"), Some("site-b".into()), "{list}");
    assert_eq!(router_of("carol"), Some("site-c".into()), "{list}");
    let addr = list.as_array().unwrap()[0]["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(addr.parse::<std::net::SocketAddr>().is_ok(), "{addr}");

    // A name is bound to one key mesh-wide: another key is refused at another router,
    // while its holder is there and after it left.
    for at in [&a_addr, &c_addr] {
        let err = refused(at, "bob").await;
        assert!(
            matches!(
                err,
                ClientError::Refused {
                    code: ErrorCode::NameTaken,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("elsewhere in the mesh"), "{err}");
    }
    bob.close().await;
    eventually("bob's leaving is seen at the other routers", SETTLE, || {
        !sees(&alice, &["bob"]) && !sees(&carol, &["bob"])
    })
    .await;
    let err = alice.send_text_acked("bob", "anyone?").await.unwrap_err();
    assert!(matches!(err, ClientError::UnknownPeer { .. }), "{err:?}");
    let err = refused(&a_addr, "bob").await;
    assert!(
        matches!(
            err,
            ClientError::Refused {
                code: ErrorCode::NameTaken,
                ..
            }
        ),
        "the binding outlives the presence: {err:?}"
    );

    // A router that stops leaves the others' lists without waiting for expiry.
    b.shutdown().await;
    a.shutdown().await;
    eventually("alice's router is gone from carol's list", SETTLE, || {
        !sees(&carol, &["alice"])
    })
    .await;
    drop(c);
}

/// Blocking `GET path` on the gateway at `at`, off the test's runtime (which serves the
/// router the gateway asks): the status and the body.
async fn http_get(at: std::net::SocketAddr, path: &'static str) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(at).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_owned();
        (status, body)
    })
    .await
    .unwrap()
}

/// `lanmesh ARGS`, run off the test's runtime.
async fn cli(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        common::proc::run(&args)
    })
    .await
    .unwrap()
}

/// Reads `p`'s messages up to and including the one with text `last`.
async fn texts_until(p: &Peer, last: &str) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        let m = p
            .recv_timeout(Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{:?} waited for {last:?}, had {got:?}", p.name()));
        let text = m.text().unwrap().to_owned();
        got.push(text.clone());
        if text == last {
            return got;
        }
    }
}

#[actix_rt::test]
async fn a_broadcast_is_one_nats_message_per_router_and_reaches_each_peer_once() {
    let Some(bin) = nats_server() else { return };
    let nats = cluster(&bin);
    let a = federated(&nats.urls[0], "site-a").await;
    let b = federated(&nats.urls[1], "site-b").await;
    let c = federated(&nats.urls[2], "site-c").await;
    let addr = |r: &RunningRouter| r.local_addrs()[0].to_string();
    let alice = join(&addr(&a), "alice").await;
    let amy = join(&addr(&a), "amy").await;
    let bob = join(&addr(&b), "bob").await;
    let bea = join(&addr(&b), "bea").await;
    let carol = join(&addr(&c), "carol").await;
    let cat = join(&addr(&c), "cat").await;
    let everyone = ["alice", "amy", "bob", "bea", "carol", "cat"];
    eventually("every router sees the whole mesh", SETTLE, || {
        [&alice, &amy, &bob, &bea, &carol, &cat]
            .iter()
            .all(|p| sees(p, &everyone))
    })
    .await;
    let before = [
        a.handle().metrics(),
        b.handle().metrics(),
        c.handle().metrics(),
    ];

    // Ten broadcasts and an eleventh to end with: one sender's broadcasts keep their
    // order, so a copy of any of the ten would come before the last.
    let sent: Vec<String> = (0..10).map(|i| format!("to all {i}")).collect();
    for text in &sent {
        alice.broadcast_text(text).await.unwrap();
    }
    alice.broadcast_text("the end").await.unwrap();
    let mut expected = sent.clone();
    expected.push("the end".into());
    for p in [&amy, &bob, &bea, &carol, &cat] {
        assert_eq!(texts_until(p, "the end").await, expected, "{:?}", p.name());
    }

    let after = [
        a.handle().metrics(),
        b.handle().metrics(),
        c.handle().metrics(),
    ];
    // Router A published each broadcast once (four remote peers, two routers), and each
    // other router received it once, for its two members.
    assert_eq!(
        after[0].nats_broadcasts_out - before[0].nats_broadcasts_out,
        11,
        "{:?}",
        after[0]
    );
    assert_eq!(
        after[0].nats_frames_out - before[0].nats_frames_out,
        11,
        "nothing else went out: {:?}",
        after[0]
    );
    for (i, site) in [(1, "B"), (2, "C")] {
        assert_eq!(
            after[i].nats_broadcasts_in - before[i].nats_broadcasts_in,
            11,
            "router {site}: {:?}",
            after[i]
        );
        assert_eq!(
            after[i].nats_frames_in - before[i].nats_frames_in,
            11,
            "router {site}: {:?}",
            after[i]
        );
    }
    // The sender's router read its own subject's messages and handed nothing back.
    assert_eq!(after[0].nats_broadcasts_in, before[0].nats_broadcasts_in);

    // A broadcast from the other side, and a direct message, still arrive.
    cat.broadcast_text("from c").await.unwrap();
    for p in [&alice, &amy, &bob, &bea, &carol] {
        assert_eq!(texts_until(p, "from c").await, vec!["from c".to_owned()]);
    }
}

#[actix_rt::test]
async fn a_name_released_in_the_mesh_can_be_claimed_by_another_key_at_another_router() {
    let Some(bin) = nats_server() else { return };
    let dir = scratch("release");
    let port = free_port();
    let _server = KillOnDrop(node(&bin, &node_args(port, &dir.join("nats"))));
    let url = format!("nats://127.0.0.1:{port}");
    let config = |id: &str| {
        let mut f = FederationConfig::new([url.clone()]);
        f.router_id = Some(id.to_owned());
        f.ttl = Duration::from_secs(2);
        f
    };
    let a = start_federated(config("site-a")).await;
    let b = start_federated(config("site-b")).await;
    let (a_addr, b_addr) = (
        a.local_addrs()[0].to_string(),
        b.local_addrs()[0].to_string(),
    );
    let first = Identity::generate().unwrap();
    let second = Identity::generate().unwrap();
    let as_key = |addr: &str, id: &Identity| {
        Peer::builder("dora")
            .router(addr.to_owned())
            .identity(id.clone())
    };
    let watcher = join(&b_addr, "watcher").await;
    let dora = as_key(&a_addr, &first).connect().await.unwrap();
    eventually("router B sees dora", SETTLE, || sees(&watcher, &["dora"])).await;
    let state = dir.join("cli-state");
    let release = vec![
        "names".to_owned(),
        "release".into(),
        "dora".into(),
        "--federate".into(),
        url.clone(),
        "--state-dir".into(),
        state.display().to_string(),
    ];

    // While a router serves the name, it is not released.
    let out = cli(release.clone()).await;
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in use at router site-a"), "{stderr}");
    dora.close().await;
    eventually("dora's leaving is seen at router B", SETTLE, || {
        !sees(&watcher, &["dora"])
    })
    .await;
    // Gone, but still bound to the first key mesh-wide.
    let err = as_key(&b_addr, &second).connect().await.unwrap_err();
    assert!(err.to_string().contains("elsewhere in the mesh"), "{err}");

    let out = cli(release.clone()).await;
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("released \"dora\" in mesh"), "{stdout}");
    // Another key claims it at the other router, and the first key is refused now.
    let dora2 = as_key(&b_addr, &second).connect().await.unwrap();
    let err = as_key(&a_addr, &first).connect().await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Refused {
                code: ErrorCode::NameTaken,
                ..
            }
        ),
        "{err:?}"
    );
    // Router A forgot its own binding of the name to the first key too: with the new
    // owner gone from B, the new key joins at A.
    dora2.close().await;
    eventually("dora's second key leaves router B", SETTLE, || {
        !sees(&watcher, &["dora"])
    })
    .await;
    let moved = as_key(&a_addr, &second).connect().await.unwrap();
    eventually("router B sees dora at A", SETTLE, || {
        sees(&watcher, &["dora"])
    })
    .await;
    moved.close().await;
    // Nothing bound: said so, and a failure.
    let mut other = release.clone();
    other[2] = "nobody".into();
    let out = cli(other).await;
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("not bound in mesh"),
        "{out:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_rt::test]
async fn peers_and_the_http_port_say_how_the_router_stands_with_nats_and_list_remote_peers() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let Some(bin) = nats_server() else { return };
    let dir = scratch("creds");
    let port = free_port();
    let mut args = node_args(port, &dir.join("nats"));
    args.extend([
        "--user".into(),
        "lanmesh".into(),
        "--pass".into(),
        "s3cret-pw".into(),
    ]);
    let _server = KillOnDrop(node(&bin, &args));
    let with = |password: &str, id: &str| {
        let mut f = FederationConfig::new([format!("nats://lanmesh:{password}@127.0.0.1:{port}")]);
        f.router_id = Some(id.to_owned());
        f
    };
    // Credentials in the URL: the routers log in; a wrong password does not.
    let a = Router::builder()
        .listen("127.0.0.1:0")
        .http("127.0.0.1:0")
        .mdns(false)
        .federation(with("s3cret-pw", "site-a"))
        .start()
        .await
        .unwrap();
    let b = start_federated(with("s3cret-pw", "site-b")).await;
    let x = start_federated(with("wrong", "site-x")).await;
    let a_addr = a.local_addrs()[0].to_string();
    let alice = join(&a_addr, "alice").await;
    let _bob = join(&b.local_addrs()[0].to_string(), "bob").await;
    eventually("alice sees bob across routers", SETTLE, || {
        sees(&alice, &["bob"])
    })
    .await;
    assert!(a.handle().metrics().nats_connected);
    let mx = x.handle().metrics();
    assert!(mx.federated && !mx.nats_connected, "{mx:?}");

    // `lanmesh peers` says where the router stands, first; `--json` keeps its array.
    let out = cli(vec![
        "peers".into(),
        "--trust-router".into(),
        "--router".into(),
        a_addr.clone(),
    ])
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().next(),
        Some("router site-a: federated, connected to NATS"),
        "{text}"
    );
    let x_addr = x.local_addrs()[0].to_string();
    let out = cli(vec![
        "peers".into(),
        "--trust-router".into(),
        "--router".into(),
        x_addr.clone(),
    ])
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .next()
            .is_some_and(|l| l.starts_with("router site-x: federated, NATS unreachable")),
        "{out:?}"
    );
    let out = cli(vec![
        "peers".into(),
        "--trust-router".into(),
        "--json".into(),
        "--router".into(),
        x_addr,
    ])
    .await;
    assert!(out.status.success(), "{out:?}");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(list.is_array(), "{list}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NATS unreachable"),
        "{out:?}"
    );
    // A router that is not federated says nothing of NATS.
    let plain = common::start(common::router()).await;
    let out = cli(vec![
        "peers".into(),
        "--trust-router".into(),
        "--router".into(),
        plain.local_addrs()[0].to_string(),
    ])
    .await;
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("NATS"),
        "{out:?}"
    );

    // /api/peers lists the remote peer with its router, without counters (they are its
    // router's); neither it nor /metrics tells the NATS credentials.
    let http = a.http_addrs()[0];
    let (status, body) = http_get(http, "/api/peers").await;
    assert_eq!(status, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let entry = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {list}"))
    };
    assert_eq!(entry("alice")["router"], "site-a");
    assert!(entry("alice")["messages_sent"].is_u64(), "{list}");
    assert_eq!(entry("bob")["router"], "site-b");
    assert!(entry("bob").get("messages_sent").is_none(), "{list}");
    let (_, metrics) = http_get(http, "/metrics").await;
    assert!(
        metrics.contains("\nlanmesh_nats_connected 1\n"),
        "{metrics}"
    );
    for text in [&body, &metrics] {
        assert!(!text.contains("s3cret"), "{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `lanmesh router --federate URL --router-id ID --http 127.0.0.1:0`: the process and its
/// TCP and HTTP addresses.
fn federated_process(url: &str, id: &str) -> (Proc, String, String) {
    let (p, tcp, http) = common::proc::router_with(&[
        "--http",
        "127.0.0.1:0",
        "--federate",
        url,
        "--router-id",
        id,
    ]);
    (
        p,
        tcp,
        http.expect("the router printed its gateway's address"),
    )
}

#[test]
fn the_dashboard_of_a_federated_router_shows_remote_peers_with_their_router() {
    if !common::webdriver::available() {
        return;
    }
    let Some(bin) = nats_server() else { return };
    let dir = scratch("dashboard");
    let port = free_port();
    let _server = KillOnDrop(node(&bin, &node_args(port, &dir.join("nats"))));
    let url = format!("nats://127.0.0.1:{port}");
    let (_a, _, a_http) = federated_process(&url, "site-a");
    let (_b, b_tcp, _) = federated_process(&url, "site-b");
    let _bob = Proc::spawn(&["listen", "--router", &b_tcp, "--name", "bob"]);

    let browser = common::webdriver::Browser::start();
    browser.goto(&format!("{a_http}/"));
    // Bob's row says his router; the page's own row says this one; the pill says NATS.
    browser.wait_for(
        "bob's row with router site-b, and the NATS pill",
        r#"
        const rows = [...document.querySelectorAll('#peers tr')];
        const row = (n) => rows.find((tr) => tr.querySelector('.name') && tr.querySelector('.name').textContent.split(' ')[0] === n);
        const bob = row('bob');
        const me = window.lanmeshPeer && row(window.lanmeshPeer.name);
        return !!bob && !!me
          && !document.getElementById('router-col').hidden
          && bob.querySelector('.router').textContent === 'site-b'
          && bob.classList.contains('remote')
          && bob.querySelectorAll('.num')[0].textContent === '–'
          && me.querySelector('.router').textContent === 'site-a (this one)'
          && document.getElementById('nats').textContent === 'NATS connected';
        "#,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_browser_peer_talks_to_a_peer_of_another_router() {
    if !common::webdriver::available() {
        return;
    }
    let Some(bin) = nats_server() else { return };
    let dir = scratch("browser");
    let port = free_port();
    let _server = KillOnDrop(node(&bin, &node_args(port, &dir.join("nats"))));
    let url = format!("nats://127.0.0.1:{port}");
    let (_a, _, a_http) = federated_process(&url, "site-a");
    let (_b, b_tcp, _) = federated_process(&url, "site-b");
    let bob = Proc::spawn(&[
        "listen", "--router", &b_tcp, "--name", "bob", "--json", "--count", "1",
    ]);
    bob.wait_stderr("listening as");

    // A page at router A joins through A's gateway.
    let browser = common::webdriver::Browser::start();
    browser.goto(&format!("{a_http}/index.html"));
    let ws = format!("{}/mesh", a_http.replace("http://", "ws://"));
    let joined = browser.run_async(
        common::webdriver::CONNECT_PEER,
        serde_json::json!([ws, "web-1"]),
    );
    assert_eq!(joined["ok"], true, "{joined}");
    browser.wait_for(
        "bob, at router B, in the page's list",
        "return window.web.peers().includes('bob');",
    );
    // Browser → a native peer of the other router, acknowledged across NATS.
    let sent = browser.run_async(
        "const [done] = arguments; window.web.sendAcked('bob', 'from a browser at site a').then(() => done('ok'), (e) => done(String(e)));",
        serde_json::json!([]),
    );
    assert_eq!(sent, "ok");
    let v: serde_json::Value = serde_json::from_str(&bob.line()).unwrap();
    assert_eq!(
        (v["from"].as_str(), v["data"].as_str()),
        (Some("web-1"), Some("from a browser at site a"))
    );
    // And back: a native sender at router B, acknowledged by the browser's client.
    let o = common::proc::run(&[
        "send",
        "--router",
        &b_tcp,
        "--name",
        "carol",
        "--ack",
        "web-1",
        "to the browser at site a",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    browser.wait_for(
        "carol's message in the page",
        "return window.inbox.some((m) => m.from === 'carol' && m.data === 'to the browser at site a');",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_rt::test]
async fn a_router_that_loses_nats_serves_its_own_peers_and_rejoins() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let Some(bin) = nats_server() else { return };
    let dir = scratch("single");
    let port = free_port();
    let args = node_args(port, &dir);
    let mut server = KillOnDrop(node(&bin, &args));
    let url = format!("nats://127.0.0.1:{port}");
    let config = |id: &str| {
        let mut f = FederationConfig::new([url.clone()]);
        f.router_id = Some(id.to_owned());
        f.ttl = Duration::from_secs(2);
        f
    };
    let a = start_federated(config("site-a")).await;
    let b = start_federated(config("site-b")).await;
    let a_addr = a.local_addrs()[0].to_string();
    let alice = join(&a_addr, "alice").await;
    let anna = join(&a_addr, "anna").await;
    let bob = join(&b.local_addrs()[0].to_string(), "bob").await;
    eventually("the two routers see each other's peers", SETTLE, || {
        sees(&alice, &["bob"]) && sees(&bob, &["alice", "anna"])
    })
    .await;
    alice.send_text_acked("bob", "before").await.unwrap();
    assert_eq!(bob.recv().await.unwrap().text(), Some("before"));
    // `/metrics` says how the router stands with NATS.
    let m = a.handle().metrics();
    assert!(m.federated && m.nats_connected, "{m:?}");
    assert_eq!(m.remote_peers, 1, "{m:?}");
    assert!(
        m.nats_frames_out >= 1 && m.nats_frames_in >= 1,
        "the message out, its ack in: {m:?}"
    );

    // NATS goes away: the routers keep serving their own peers.
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    eventually("the router notices", SETTLE, || {
        !a.handle().metrics().nats_connected
    })
    .await;
    eventually("the other router's peers leave the lists", SETTLE, || {
        !sees(&alice, &["bob"]) && !sees(&bob, &["alice"])
    })
    .await;
    for i in 0..20u32 {
        alice
            .send_text_acked("anna", &format!("local {i}"))
            .await
            .unwrap();
        let m = anna
            .recv_timeout(Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.text(), Some(format!("local {i}").as_str()));
    }
    let err = alice.send_text_acked("bob", "lost?").await.unwrap_err();
    assert!(matches!(err, ClientError::UnknownPeer { .. }), "{err:?}");
    // A peer joining meanwhile is admitted (bound here for now).
    let late = join(&a_addr, "late").await;

    // NATS is back (same port, same store): the routers reconnect by themselves.
    let _server = KillOnDrop(node(&bin, &args));
    eventually("the routers see each other again", SETTLE, || {
        sees(&alice, &["bob"]) && sees(&bob, &["alice", "anna", "late"])
    })
    .await;
    assert!(a.handle().metrics().nats_connected);
    late.send_text_acked("bob", "after").await.unwrap();
    let m = bob
        .recv_timeout(Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((m.from.as_str(), m.text()), ("late", Some("after")));
    // "late" was bound mesh-wide once NATS came back.
    let err = refused(&b.local_addrs()[0].to_string(), "late").await;
    assert!(
        matches!(
            err,
            ClientError::Refused {
                code: ErrorCode::NameTaken,
                ..
            }
        ),
        "{err:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Acked messages alice sends bob in the stream tests.
const STREAM: u32 = 20_000;

/// Acked messages in flight at once (`queue_acked`), as a fast sender keeps them.
const IN_FLIGHT: usize = 256;

/// Receives `STREAM` messages `"<n>"` from `from` and checks they are 0, 1, 2, … in that
/// order: exactly once, no gap. Counts them in `got` as they come.
async fn receive_stream(
    to: Peer,
    from: &'static str,
    got: std::rc::Rc<std::cell::Cell<u32>>,
) -> Peer {
    for want in 0..STREAM {
        let m = match to.recv_timeout(SETTLE).await.unwrap() {
            Some(m) => m,
            None => panic!("message {want} did not arrive in {SETTLE:?}"),
        };
        assert_eq!(m.from.as_str(), from);
        let n: u32 = std::str::from_utf8(&m.data).unwrap().parse().unwrap();
        assert_eq!(
            n, want,
            "in order, each once: {n} came where {want} was due"
        );
        got.set(want + 1);
    }
    to
}

/// Sends `STREAM` acked messages, `IN_FLIGHT` at a time; calls `at(acked)` after each
/// ack, so the test can break things mid-stream. Every send must succeed.
async fn send_stream(from: &Peer, to: &str, mut at: impl FnMut(u32)) {
    let mut window = std::collections::VecDeque::new();
    let mut acked = 0u32;
    for i in 0..STREAM {
        if window.len() >= IN_FLIGHT {
            let ack: lanmesh::Acked = window.pop_front().unwrap();
            let id = ack.id();
            if let Err(e) = ack.await {
                panic!("acked send {acked} (id {id}) failed: {e:?}");
            }
            acked += 1;
            at(acked);
        }
        let queued = from.queue_acked(to, i.to_string().into_bytes()).await;
        window.push_back(queued.unwrap_or_else(|e| panic!("send {i} refused: {e:?}")));
    }
    for ack in window {
        let id = ack.id();
        if let Err(e) = ack.await {
            panic!("acked send {acked} (id {id}) failed: {e:?}");
        }
        acked += 1;
        at(acked);
    }
}

/// The stream from `from` to `to` ends: nothing more arrives from it (no late copy).
async fn nothing_more(to: &Peer) {
    let extra = to.recv_timeout(Duration::from_millis(500)).await.unwrap();
    assert!(
        extra.is_none(),
        "after the stream: {:?}",
        extra.map(|m| m.data)
    );
}

#[actix_rt::test]
async fn acked_messages_cross_nats_node_kills_exactly_once_in_order() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let Some(bin) = nats_server() else { return };
    let mut nats = cluster(&bin);
    // Each router is given one node only: it learns the others from the cluster.
    let a = federated(&nats.urls[0], "site-a").await;
    let b = federated(&nats.urls[1], "site-b").await;
    let alice = join(&a.local_addrs()[0].to_string(), "alice").await;
    let bob = join(&b.local_addrs()[0].to_string(), "bob").await;
    eventually("the routers see each other's peers", SETTLE, || {
        sees(&alice, &["bob"]) && sees(&bob, &["alice"])
    })
    .await;

    let run = async {
        let started = std::time::Instant::now();
        let got = std::rc::Rc::new(std::cell::Cell::new(0));
        let receiver = actix_rt::spawn(receive_stream(bob, "alice", got.clone()));
        // Alice's router's node dies at 4,000 acks and is back at 8,000; then bob's
        // router's node (node 1: the router may have moved to it meanwhile, then both
        // move) dies at 12,000 and is back at 16,000.
        let mut down = Vec::new();
        send_stream(&alice, "bob", |acked| match acked {
            4_000 => {
                nats.kill(0);
                down.push((acked, got.get()));
            }
            8_000 => nats.restart(0),
            12_000 => {
                nats.kill(1);
                down.push((acked, got.get()));
            }
            16_000 => nats.restart(1),
            _ => {}
        })
        .await;
        let bob = receiver.await.unwrap();
        assert_eq!(got.get(), STREAM);
        nothing_more(&bob).await;
        let m = b.handle().metrics();
        eprintln!(
            "{STREAM} acked across routers through two NATS node kills in {:?}; \
             (acked, delivered) at each kill: {down:?}; router B: {} frames in, {} out",
            started.elapsed(),
            m.nats_frames_in,
            m.nats_frames_out
        );
    };
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the stream ends within 120 s");
}

/// `lanmesh router` arguments for router "site-b" on `listen`, with its state in `state`
/// (so the same key across restarts), federated through `url`.
fn router_b<'a>(
    listen: &'a str,
    state: &'a Path,
    url: &'a str,
    ttl: &'static str,
) -> [&'a str; 13] {
    [
        "router",
        "--no-mdns",
        "--no-http",
        "--listen",
        listen,
        "--state-dir",
        state.to_str().unwrap(),
        "--federate",
        url,
        "--router-id",
        "site-b",
        "--presence-ttl",
        ttl,
    ]
}

#[actix_rt::test]
async fn a_crashed_router_leaves_the_mesh_and_its_peers_come_back_with_it() {
    let Some(bin) = nats_server() else { return };
    let dir = scratch("restart");
    let port = free_port();
    let _server = KillOnDrop(node(&bin, &node_args(port, &dir.join("nats"))));
    let url = format!("nats://127.0.0.1:{port}");
    let mut f = FederationConfig::new([url.clone()]);
    f.router_id = Some("site-a".into());
    f.ttl = Duration::from_secs(1);
    let a = start_federated(f).await;
    let alice = join(&a.local_addrs()[0].to_string(), "alice").await;
    // Router B is a process, killed with SIGKILL (nothing deleted from NATS) and started
    // again on the same port with the same state (so the same key).
    let b_listen = format!("127.0.0.1:{}", free_port());
    let b_state = dir.join("router-b");
    let b_args = router_b(&b_listen, &b_state, &url, "1");
    let b = Proc::spawn(&b_args);
    let b_addr = b.router_addr();
    let bob = join(&b_addr, "bob").await;
    eventually("alice sees bob", SETTLE, || sees(&alice, &["bob"])).await;

    drop(b);
    eventually("bob's entry expires at router A", SETTLE, || {
        !sees(&alice, &["bob"])
    })
    .await;
    let err = alice.send_text_acked("bob", "there?").await.unwrap_err();
    assert!(matches!(err, ClientError::UnknownPeer { .. }), "{err:?}");

    let b = Proc::spawn(&b_args);
    assert_eq!(b.router_addr(), b_addr);
    eventually(
        "bob rejoins the restarted router, and alice sees him",
        SETTLE,
        || sees(&alice, &["bob"]),
    )
    .await;
    alice.send_text_acked("bob", "welcome back").await.unwrap();
    let m = bob
        .recv_timeout(Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((m.from.as_str(), m.text()), ("alice", Some("welcome back")));
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_rt::test]
async fn a_fast_sender_is_slowed_down_across_routers_not_refused() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let Some(bin) = nats_server() else { return };
    let dir = scratch("flood");
    let port = free_port();
    let _server = KillOnDrop(node(&bin, &node_args(port, &dir)));
    let url = format!("nats://127.0.0.1:{port}");
    let config = |id: &str| {
        let mut f = FederationConfig::new([url.clone()]);
        f.router_id = Some(id.to_owned());
        f
    };
    let a = start_federated(config("site-a")).await;
    // Bob's router lets few forwards wait in a session's inbox: without backpressure
    // across routers, what comes from NATS faster than bob's session takes it is refused.
    let b = Router::builder()
        .listen("127.0.0.1:0")
        .mdns(false)
        .configure(|c| c.mailbox_capacity = 4)
        .federation(config("site-b"))
        .start()
        .await
        .expect("router starts");
    let alice = join(&a.local_addrs()[0].to_string(), "alice").await;
    let bob = join(&b.local_addrs()[0].to_string(), "bob").await;
    eventually("the routers see each other's peers", SETTLE, || {
        sees(&alice, &["bob"]) && sees(&bob, &["alice"])
    })
    .await;
    // Plain sends, as fast as alice's client takes them: nothing on the way may refuse
    // one (a refusal is a loss for an at-most-once send), so the routers must slow her
    // down to what bob's side takes.
    const FLOOD: u32 = 100_000;
    let run = async {
        let receiver = actix_rt::spawn(async move {
            for want in 0..FLOOD {
                let m = match bob.recv_timeout(SETTLE).await.unwrap() {
                    Some(m) => m,
                    None => panic!("message {want} of {FLOOD} never came: lost on the way"),
                };
                let n = u32::from_be_bytes(m.data[..4].try_into().unwrap());
                assert_eq!(n, want, "in order, none lost");
            }
        });
        let mut payload = [0u8; 64];
        for i in 0..FLOOD {
            payload[..4].copy_from_slice(&i.to_be_bytes());
            alice
                .send("bob", bytes::Bytes::copy_from_slice(&payload))
                .await
                .unwrap();
        }
        receiver.await.unwrap();
    };
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the flood ends within 120 s");
    let m = b.handle().metrics();
    eprintln!(
        "{FLOOD} sends across routers, none refused; router B: {} frames in, {} out",
        m.nats_frames_in, m.nats_frames_out
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_rt::test]
async fn acked_messages_cross_a_router_restart_exactly_once_in_order() {
    let Some(bin) = nats_server() else { return };
    let dir = scratch("restart-stream");
    let port = free_port();
    let _server = KillOnDrop(node(&bin, &node_args(port, &dir.join("nats"))));
    let url = format!("nats://127.0.0.1:{port}");
    let mut f = FederationConfig::new([url.clone()]);
    f.router_id = Some("site-a".into());
    f.ttl = Duration::from_secs(3);
    let a = start_federated(f).await;
    // Router B is a process, killed (SIGKILL) mid-stream and started again at once on
    // its port with its state: bob rejoins it, it rejoins the mesh, and both sides hear
    // the other "joined" again — the same processes, so their acked streams go on.
    let b_listen = format!("127.0.0.1:{}", free_port());
    let b_state = dir.join("router-b");
    let b_args = router_b(&b_listen, &b_state, &url, "3");
    let mut b = Some(Proc::spawn(&b_args));
    let b_addr = b.as_ref().unwrap().router_addr();
    let alice = join(&a.local_addrs()[0].to_string(), "alice").await;
    let bob = join(&b_addr, "bob").await;
    eventually("the routers see each other's peers", SETTLE, || {
        sees(&alice, &["bob"]) && sees(&bob, &["alice"])
    })
    .await;
    let run = async {
        let got = std::rc::Rc::new(std::cell::Cell::new(0));
        let receiver = actix_rt::spawn(receive_stream(bob, "alice", got.clone()));
        let mut restarted = None;
        send_stream(&alice, "bob", |acked| {
            if acked == 5_000 {
                drop(b.take());
                restarted = Some(Proc::spawn(&b_args));
            }
        })
        .await;
        let bob = receiver.await.unwrap();
        assert_eq!(got.get(), STREAM);
        nothing_more(&bob).await;
        assert!(restarted.is_some());
    };
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the stream ends within 120 s");
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_rt::test]
async fn a_file_crosses_federated_routers_byte_for_byte() {
    let Some(bin) = nats_server() else { return };
    let dir = scratch("file");
    let port = free_port();
    let _server = KillOnDrop(node(&bin, &node_args(port, &dir.join("nats"))));
    let url = format!("nats://127.0.0.1:{port}");
    let site = |id: &str| {
        let mut f = FederationConfig::new([url.clone()]);
        f.router_id = Some(id.into());
        f
    };
    let a = start_federated(site("site-a")).await;
    let b = start_federated(site("site-b")).await;
    let save = dir.join("save");
    std::fs::create_dir_all(&save).unwrap();
    let alice = join(&a.local_addrs()[0].to_string(), "alice").await;
    let bob = Peer::builder("bob")
        .router(b.local_addrs()[0].to_string())
        .save_dir(&save)
        .connect()
        .await
        .unwrap();
    eventually("they see each other", SETTLE, || {
        sees(&alice, &["bob"]) && sees(&bob, &["alice"])
    })
    .await;
    // Incompressible, and many chunks and windows long (each window's acks cross back).
    let data = common::noise(23, 12 << 20);
    let file = dir.join("big.bin");
    std::fs::write(&file, &data).unwrap();
    let sent = alice.send_file("bob", &file).await.unwrap();
    assert_eq!(sent.bytes, data.len() as u64);
    let m = bob.recv_timeout(SETTLE).await.unwrap().unwrap();
    let f = m.file().expect("a file notice");
    assert_eq!(m.from.as_str(), "alice");
    let saved = std::fs::read(&f.path).unwrap();
    assert!(saved == data, "the saved file differs from the sent one");
    // It went through NATS, not around it: router A published every chunk.
    let chunks = data.len().div_ceil(lanmesh::proto::blob::CHUNK_DATA) as u64;
    let out = a.handle().metrics().nats_frames_out;
    assert!(out >= chunks, "{out} frames published for {chunks} chunks");
    let _ = std::fs::remove_dir_all(&dir);
}

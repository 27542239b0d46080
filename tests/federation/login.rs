//! How routers log in to NATS: TLS with the test's own CA. Each test runs one nats-server
//! of its own, and checks both sides: the right login meets the other router, a wrong
//! one stays on its own LAN and says NATS is unreachable.

use std::path::Path;
use std::time::Duration;

use lanmesh::{FederationConfig, Peer, RunningRouter};

use super::{KillOnDrop, SETTLE, eventually, free_port, join, nats_server, node, node_args};
use super::{scratch, sees, start_federated};

/// Runs `openssl ARGS` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA of the test's own in `dir` (`ca.pem`, `ca.key`), and a certificate from it named
/// `NAME.pem` / `NAME.key` for each of `names`, valid for 127.0.0.1.
fn certificates(dir: &Path, names: &[&str]) {
    #[rustfmt::skip]
    openssl(dir, &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
        "-out", "ca.pem", "-days", "1", "-subj", "/CN=lanmesh test CA"]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    for name in names {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        #[rustfmt::skip]
        openssl(dir, &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr,
            "-subj", "/CN=127.0.0.1"]);
        #[rustfmt::skip]
        openssl(dir, &["x509", "-req", "-in", &csr, "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", &pem, "-days", "1", "-extfile", "san.ext"]);
    }
}

/// A router with `f`'s login (and router id `id`) and a peer `peer` on it.
async fn site(mut f: FederationConfig, id: &str, peer: &str) -> (RunningRouter, Peer) {
    f.router_id = Some(id.into());
    let router = start_federated(f).await;
    let p = join(&router.local_addrs()[0].to_string(), peer).await;
    (router, p)
}

/// `a` and `b` (peers on two routers) see each other and an acked message crosses.
async fn meet(a: &Peer, b: &Peer, text: &str) {
    let (na, nb) = (
        a.name().unwrap().as_str().to_owned(),
        b.name().unwrap().as_str().to_owned(),
    );
    eventually("the routers meet", SETTLE, || {
        sees(a, &[&nb]) && sees(b, &[&na])
    })
    .await;
    a.send_text_acked(&nb, text).await.unwrap();
    let m = b.recv_timeout(SETTLE).await.unwrap().unwrap();
    assert_eq!(m.text(), Some(text));
}

/// For two seconds `router` stays off NATS and its peer `p` and `other` do not see each
/// other.
async fn stays_apart(router: &RunningRouter, p: &Peer, other: &Peer, why: &str) {
    let (np, no) = (
        p.name().unwrap().as_str().to_owned(),
        other.name().unwrap().as_str().to_owned(),
    );
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        assert!(!router.handle().metrics().nats_connected, "{why}");
        assert!(!sees(other, &[&np]) && !sees(p, &[&no]), "{why}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn routers_reach_nats_over_tls_with_its_ca_and_not_without() {
    let Some(bin) = nats_server() else { return };
    let dir = scratch("tls");
    std::fs::create_dir_all(&dir).unwrap();
    certificates(&dir, &["server"]);
    let port = free_port();
    let mut args = node_args(port, &dir.join("nats"));
    for a in ["--tls", "--tlscert"] {
        args.push(a.into());
    }
    args.push(dir.join("server.pem").display().to_string());
    args.push("--tlskey".into());
    args.push(dir.join("server.key").display().to_string());
    let _server = KillOnDrop(node(&bin, &args));
    let url = format!("tls://127.0.0.1:{port}");
    let with_ca = || {
        let mut f = FederationConfig::new([url.clone()]);
        f.tls_ca = Some(dir.join("ca.pem"));
        f
    };
    let (a, alice) = site(with_ca(), "site-a", "alice").await;
    let (b, bob) = site(with_ca(), "site-b", "bob").await;
    meet(&alice, &bob, "over tls").await;
    assert!(a.handle().metrics().nats_connected && b.handle().metrics().nats_connected);

    // Without the CA the server's certificate is not trusted: no connection; the router
    // serves its own peers and says NATS is unreachable.
    let (c, carol) = site(FederationConfig::new([url.clone()]), "site-c", "carol").await;
    stays_apart(&c, &carol, &alice, "connected without the CA").await;
    let _ = std::fs::remove_dir_all(&dir);
}

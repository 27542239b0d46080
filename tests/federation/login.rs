//! How routers log in to NATS: TLS with the test's own CA and client certificates, an NKey
//! user, and a `.creds` file issued by an operator of the test's own (NATS's JWT mode).
//! Each test runs one nats-server of its own, and checks both sides: the right login
//! meets the other router, a wrong one stays on its own LAN and says NATS is unreachable.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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

#[actix_rt::test]
async fn a_server_that_verifies_clients_takes_a_router_certificate_from_its_ca_only() {
    let Some(bin) = nats_server() else { return };
    let dir = scratch("mtls");
    std::fs::create_dir_all(&dir).unwrap();
    certificates(&dir, &["server", "site-a", "site-b"]);
    // A second CA, whose certificate the server does not take.
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    certificates(&other, &["site-c"]);
    let port = free_port();
    let mut args = node_args(port, &dir.join("nats"));
    let file = |f: &str| dir.join(f).display().to_string();
    args.extend([
        "--tlsverify".into(),
        "--tlscert".into(),
        file("server.pem"),
        "--tlskey".into(),
        file("server.key"),
        "--tlscacert".into(),
        file("ca.pem"),
    ]);
    let _server = KillOnDrop(node(&bin, &args));
    let url = format!("tls://127.0.0.1:{port}");
    let with = |cert: Option<(&Path, &str)>| {
        let mut f = FederationConfig::new([url.clone()]);
        f.tls_ca = Some(dir.join("ca.pem"));
        f.tls_client = cert.map(|(d, n)| (d.join(format!("{n}.pem")), d.join(format!("{n}.key"))));
        f
    };
    let (_a, alice) = site(with(Some((&dir, "site-a"))), "site-a", "alice").await;
    let (_b, bob) = site(with(Some((&dir, "site-b"))), "site-b", "bob").await;
    meet(&alice, &bob, "with client certificates").await;

    let (c, carol) = site(with(Some((&other, "site-c"))), "site-c", "carol").await;
    stays_apart(
        &c,
        &carol,
        &alice,
        "connected with another CA's certificate",
    )
    .await;
    let (d, dave) = site(with(None), "site-d", "dave").await;
    stays_apart(&d, &dave, &alice, "connected without a client certificate").await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_rt::test]
async fn routers_log_in_as_nkey_users_and_an_unlisted_key_does_not() {
    let Some(bin) = nats_server() else { return };
    let dir = scratch("nkey");
    std::fs::create_dir_all(&dir).unwrap();
    let (listed, unlisted) = (nkeys::KeyPair::new_user(), nkeys::KeyPair::new_user());
    std::fs::write(
        dir.join("server.conf"),
        format!(
            "authorization {{ users = [ {{ nkey: {} }} ] }}\n",
            listed.public_key()
        ),
    )
    .unwrap();
    for (file, pair) in [("listed.nk", &listed), ("unlisted.nk", &unlisted)] {
        std::fs::write(dir.join(file), format!("{}\n", pair.seed().unwrap())).unwrap();
    }
    let port = free_port();
    let mut args = vec!["-c".into(), dir.join("server.conf").display().to_string()];
    args.extend(node_args(port, &dir.join("nats")));
    let _server = KillOnDrop(node(&bin, &args));
    let url = format!("nats://127.0.0.1:{port}");
    let with = |seed: &str| {
        let mut f = FederationConfig::new([url.clone()]);
        f.nkey = Some(dir.join(seed));
        f
    };
    let (_a, alice) = site(with("listed.nk"), "site-a", "alice").await;
    let (_b, bob) = site(with("listed.nk"), "site-b", "bob").await;
    meet(&alice, &bob, "as an nkey user").await;
    let (c, carol) = site(with("unlisted.nk"), "site-c", "carol").await;
    stays_apart(&c, &carol, &alice, "connected with an unlisted nkey").await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A NATS JWT: `claims` (with `iss`, `sub` and `nats` filled in here) signed by `issuer`.
fn jwt(issuer: &nkeys::KeyPair, subject: &str, nats: serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = serde_json::json!({
        "jti": format!("{subject}-{}", std::process::id()),
        "iat": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        "iss": issuer.public_key(),
        "sub": subject,
        "name": subject,
        "nats": nats,
    });
    let body = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = URL_SAFE_NO_PAD.encode(issuer.sign(body.as_bytes()).unwrap());
    format!("{body}.{signature}")
}

/// A `.creds` file for a user of `account` (what `nsc generate creds` writes).
fn creds(account: &nkeys::KeyPair) -> String {
    let user = nkeys::KeyPair::new_user();
    let token = jwt(
        account,
        &user.public_key(),
        serde_json::json!({"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
            "type": "user", "version": 2}),
    );
    format!(
        "-----BEGIN NATS USER JWT-----\n{token}\n------END NATS USER JWT------\n\n\
         -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
        user.seed().unwrap()
    )
}

#[actix_rt::test]
async fn routers_log_in_with_creds_files_of_their_operator_and_a_stranger_does_not() {
    let Some(bin) = nats_server() else { return };
    let dir = scratch("creds");
    std::fs::create_dir_all(&dir).unwrap();
    // An operator that vouches for two accounts: the mesh's (with JetStream) and the
    // system account. A third account it never signed issues the stranger's creds.
    let operator = nkeys::KeyPair::new_operator();
    let (mesh, system, stranger) = (
        nkeys::KeyPair::new_account(),
        nkeys::KeyPair::new_account(),
        nkeys::KeyPair::new_account(),
    );
    let version = |kind: &str| serde_json::json!({"type": kind, "version": 2});
    let mut mesh_claims = version("account");
    mesh_claims["limits"] = serde_json::json!({"subs": -1, "data": -1, "payload": -1,
        "imports": -1, "exports": -1, "wildcards": true, "conn": -1, "leaf": -1,
        "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1});
    let conf = format!(
        "operator: \"{}\"\nsystem_account: {sys}\nresolver: MEMORY\n\
         resolver_preload: {{ {acc}: \"{}\", {sys}: \"{}\" }}\n",
        jwt(&operator, &operator.public_key(), version("operator")),
        jwt(&operator, &mesh.public_key(), mesh_claims),
        jwt(&operator, &system.public_key(), version("account")),
        sys = system.public_key(),
        acc = mesh.public_key(),
    );
    std::fs::write(dir.join("server.conf"), conf).unwrap();
    for (file, account) in [
        ("a.creds", &mesh),
        ("b.creds", &mesh),
        ("c.creds", &stranger),
    ] {
        std::fs::write(dir.join(file), creds(account)).unwrap();
    }
    let port = free_port();
    let mut args = vec!["-c".into(), dir.join("server.conf").display().to_string()];
    args.extend(node_args(port, &dir.join("nats")));
    let _server = KillOnDrop(node(&bin, &args));
    let url = format!("nats://127.0.0.1:{port}");
    let with = |file: &str| {
        let mut f = FederationConfig::new([url.clone()]);
        f.credentials = Some(dir.join(file));
        f
    };
    let (_a, alice) = site(with("a.creds"), "site-a", "alice").await;
    let (_b, bob) = site(with("b.creds"), "site-b", "bob").await;
    meet(&alice, &bob, "with creds").await;
    let (c, carol) = site(with("c.creds"), "site-c", "carol").await;
    stays_apart(&c, &carol, &alice, "connected with a stranger's creds").await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_rt::test]
async fn a_router_with_an_unreadable_login_does_not_start() {
    let dir = scratch("badlogin");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("account.nk"),
        nkeys::KeyPair::new_account().seed().unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("junk.creds"), "not a creds file\n").unwrap();
    let url = "nats://127.0.0.1:1";
    type Spoil = fn(&mut FederationConfig, &Path);
    let cases: [(&str, Spoil); 4] = [
        ("not an NKey user seed", |f, d| {
            f.nkey = Some(d.join("account.nk"))
        }),
        ("not a NATS .creds file", |f, d| {
            f.credentials = Some(d.join("junk.creds"))
        }),
        ("No such file", |f, d| f.nkey = Some(d.join("missing.nk"))),
        ("give one NATS login", |f, d| {
            f.servers = vec!["nats://u:p@127.0.0.1:1".into()];
            f.nkey = Some(d.join("account.nk"));
        }),
    ];
    for (expected, set) in cases {
        let mut f = FederationConfig::new([url]);
        set(&mut f, &dir);
        let err = lanmesh::Router::builder()
            .listen("127.0.0.1:0")
            .mdns(false)
            .federation(f)
            .start()
            .await
            .err()
            .unwrap_or_else(|| panic!("started with a bad login ({expected})"));
        assert!(err.to_string().contains(expected), "{expected}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

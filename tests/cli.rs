//! The `lanmesh` binary end to end: a router process and client processes on 127.0.0.1.
//! The router runs with `--no-mdns` and loopback addresses only.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output, Stdio};

use common::proc::{BIN, Proc};

/// Starts a router on an ephemeral port; returns it and its address.
fn router(extra: &[&str]) -> (Proc, String) {
    let (p, tcp, _) = common::proc::router_with(extra);
    (p, tcp)
}

fn run(args: &[&str]) -> Output {
    run_in(&common::proc::test_home(), args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `lanmesh send --router AT --name A --ack TO TEXT`, which must succeed.
fn send_acked(at: &str, to: &str, text: &str) {
    let o = run(&["send", "--router", at, "--name", "A", "--ack", to, text]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn listen_receives_in_order_what_send_sends_and_peers_shows_the_ciphers() {
    let (_router, at) = router(&[]);
    let listener = Proc::spawn(&[
        "listen", "--router", &at, "--name", "B", "--json", "--count", "3",
    ]);
    listener.wait_stderr("listening as");
    let other = Proc::spawn(&["listen", "--router", &at, "--name", "C"]);
    other.wait_stderr("listening as");

    let o = run(&["peers", "--router", &at, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let peers: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = peers.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["B", "C"]);
    for p in &peers {
        assert_eq!(p["transport"], "tcp");
        assert_eq!(p["cipher"], "chacha20poly1305");
        assert_eq!(p["compression"], "snappy");
    }

    for text in ["first", "second message", "third: ünïcode ✓"] {
        let o = run(&["send", "--router", &at, "--name", "A", "B", text]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let got: Vec<serde_json::Value> = (0..3)
        .map(|_| serde_json::from_str(&listener.line()).unwrap())
        .collect();
    let texts: Vec<&str> = got.iter().map(|v| v["data"].as_str().unwrap()).collect();
    assert_eq!(texts, ["first", "second message", "third: ünïcode ✓"]);
    for v in &got {
        assert_eq!(v["from"], "A");
        assert!(v["id"].is_u64());
        assert!(v.get("encoding").is_none());
    }
    // The contract's key order: from, id, data.
    let raw = serde_json::to_string(&got[0]).unwrap();
    assert!(raw.starts_with("{\"from\":\"A\",\"id\":"), "{raw}");
    assert!(
        listener.wait().success(),
        "listen --count 3 exits 0 after three messages"
    );
}

#[test]
fn cipher_aes256gcm_is_opt_in_and_shown_by_peers() {
    let (_router, at) = router(&[]);
    let fast = Proc::spawn(&[
        "listen",
        "--router",
        &at,
        "--name",
        "F",
        "--json",
        "--count",
        "1",
        "--cipher",
        "aes256gcm",
    ]);
    fast.wait_stderr("listening as");
    let default = Proc::spawn(&["listen", "--router", &at, "--name", "D"]);
    default.wait_stderr("listening as");
    let o = run(&["peers", "--router", &at, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let peers: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let mut ciphers: Vec<(&str, &str)> = peers
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["cipher"].as_str().unwrap()))
        .collect();
    ciphers.sort();
    assert_eq!(ciphers, [("D", "chacha20poly1305"), ("F", "aes256gcm")]);
    // A ChaCha sender reaches an AES receiver: the router re-encrypts per connection.
    let o = run(&["send", "--router", &at, "--name", "A", "--ack", "F", "hi"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&fast.line()).unwrap();
    assert_eq!(v["data"], "hi");
    let o = run(&["peers", "--router", &at, "--cipher", "rot13"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("aes256gcm"), "{}", stderr(&o));
}

#[test]
fn binary_payloads_are_base64_in_json() {
    let (_router, at) = router(&[]);
    let listener = Proc::spawn(&[
        "listen", "--router", &at, "--name", "B", "--json", "--count", "1",
    ]);
    listener.wait_stderr("listening as");
    // Bytes from standard input travel as one message (`--file` streams a file instead).
    let mut child = Command::new(BIN)
        .env("LANMESH_HOME", common::proc::test_home())
        .args(["send", "--router", &at, "--name", "A", "--ack", "B"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &[0xff, 0x00, 0xfe]).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&listener.line()).unwrap();
    assert_eq!(v["data"], "/wD+");
    assert_eq!(v["encoding"], "base64");
}

#[test]
fn sending_to_an_unknown_peer_fails_clearly() {
    let (_router, at) = router(&[]);
    for ack in [true, false] {
        let mut args = vec!["send", "--router", &at, "--name", "A"];
        if ack {
            args.push("--ack");
        }
        args.extend(["nobody", "hello?"]);
        let o = run(&args);
        assert!(!o.status.success(), "ack={ack}");
        assert!(
            stderr(&o).contains("unknown peer \"nobody\""),
            "ack={ack}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn a_mesh_key_keeps_strangers_out() {
    let dir = std::env::temp_dir().join(format!("lanmesh-key-{}", std::process::id()));
    let o = run(&["keygen"]);
    assert!(o.status.success());
    let key = String::from_utf8(o.stdout).unwrap();
    assert_eq!(key.trim().len(), 64);
    assert!(key.trim().chars().all(|c| c.is_ascii_hexdigit()));
    std::fs::write(&dir, &key).unwrap();
    let keyfile = dir.to_str().unwrap();

    let (_router, at) = router(&["--mesh-key-file", keyfile]);
    let o = run(&["peers", "--router", &at, "--json"]);
    assert!(!o.status.success(), "no peer list without the key");
    assert!(stderr(&o).contains("mesh key"), "{}", stderr(&o));
    let listener = Proc::spawn(&[
        "listen",
        "--router",
        &at,
        "--mesh-key-file",
        keyfile,
        "--name",
        "B",
        "--count",
        "1",
    ]);
    listener.wait_stderr("listening as");
    let o = run(&["send", "--router", &at, "--name", "A", "B", "secret"]);
    assert!(!o.status.success(), "a sender without the key is refused");
    let o = run(&[
        "send",
        "--router",
        &at,
        "--mesh-key-file",
        keyfile,
        "--name",
        "A",
        "--ack",
        "B",
        "secret",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(listener.line(), "A: secret");
    std::fs::remove_file(dir).unwrap();
}

#[test]
fn the_router_joins_as_a_peer_and_stops_cleanly_on_sigterm() {
    let (router, at) = router(&["--name", "hub"]);
    assert_eq!(router.line().trim(), "joined as \"hub\"");
    send_acked(&at, "hub", "hello hub");
    assert_eq!(router.line(), "A: hello hub");
    let pid = router.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(router.wait().success(), "graceful shutdown exits 0");
}

fn run_in(home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("LANMESH_HOME", home)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn names_stay_bound_to_their_key_and_router_keys_stay_pinned_across_restarts() {
    // This test trusts another router key at the end, so its user has a home of its own:
    // the other tests of this binary, which share one under plain `cargo test`, must not
    // see that pin.
    let base = common::proc::test_home().join("names-and-pins");
    let state = base.join("router-state");
    let state_arg = state.to_str().unwrap();
    let me = base.join("user");
    let other_user = base.join("other-user");
    let listen = |at: &str| {
        Proc::spawn_command(
            Command::new(BIN)
                .args(["listen", "--router", at, "--name", "B", "--count", "1"])
                .env("LANMESH_HOME", &me),
        )
    };

    // This user's key takes "B" first.
    let (first, at) = router(&["--grace", "0", "--state-dir", state_arg]);
    let o = run_in(&me, &["peers", "--router", &at, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let holder = listen(&at);
    holder.wait_stderr("listening as");
    drop(holder);
    // Another user's key is refused the name, even now that it is free.
    let o = run_in(
        &other_user,
        &["send", "--router", &at, "--name", "B", "C", "x"],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("belongs to another key"),
        "{}",
        stderr(&o)
    );
    drop(first);

    // After a restart with the same state the binding holds, and the router has the
    // same key, so this user's pin still matches.
    let (second, at) = router(&["--grace", "0", "--state-dir", state_arg]);
    let o = run_in(
        &other_user,
        &["send", "--router", &at, "--name", "B", "C", "x"],
    );
    assert!(
        stderr(&o).contains("belongs to another key"),
        "{}",
        stderr(&o)
    );
    let listener = listen(&at);
    listener.wait_stderr("listening as");
    let o = run_in(
        &me,
        &[
            "send",
            "--router",
            &at,
            "--name",
            "A",
            "--ack",
            "B",
            "still mine",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(listener.line(), "A: still mine");
    drop(second);

    // A router of the same mesh with another key is refused until trusted.
    let elsewhere = base.join("impostor-state");
    let (_third, at) = router(&["--state-dir", elsewhere.to_str().unwrap()]);
    let o = run_in(&me, &["peers", "--router", &at]);
    assert!(!o.status.success(), "a changed router key must be refused");
    let err = stderr(&o);
    assert!(
        err.contains("--trust-router") && err.contains("pins"),
        "{err}"
    );
    let o = run_in(&me, &["peers", "--router", &at, "--trust-router"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run_in(&me, &["peers", "--router", &at]);
    assert!(o.status.success(), "trusted once, pinned from then on");
}

/// Issue 16 (7) and 18 (1): processes of one user at once never evict each other. A
/// listener keeps running while the same name sends, and twenty acked sends in parallel
/// from one name all succeed, each once.
#[test]
fn processes_of_one_user_under_one_name_run_side_by_side() {
    let (_router, at) = router(&[]);
    let pc2 = Proc::spawn(&["listen", "--router", &at, "--name", "PC2", "--json"]);
    pc2.wait_stderr("listening as");
    let b = Proc::spawn(&[
        "listen", "--router", &at, "--name", "B", "--json", "--count", "21",
    ]);
    b.wait_stderr("listening as");
    // Sending under the listener's own name does not end it.
    let o = run(&["send", "--router", &at, "--name", "PC2", "--ack", "B", "hi"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Twenty at once, all acked, none lost, none doubled.
    let children: Vec<_> = (0..20)
        .map(|i| {
            Command::new(BIN)
                .env("LANMESH_HOME", common::proc::test_home())
                .args(["send", "--router", &at, "--name", "PC2", "--ack", "B"])
                .arg(format!("parallel {i}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let mut got: Vec<String> = (0..21)
        .map(|_| {
            let v: serde_json::Value = serde_json::from_str(&b.line()).unwrap();
            assert_eq!(v["from"], "PC2");
            v["data"].as_str().unwrap().to_owned()
        })
        .collect();
    got.sort();
    let mut want: Vec<String> = (0..20).map(|i| format!("parallel {i}")).collect();
    want.push("hi".into());
    want.sort();
    assert_eq!(got, want);
    // The listener is still in the mesh and still receives.
    send_acked(&at, "PC2", "still there?");
    let v: serde_json::Value = serde_json::from_str(&pc2.line()).unwrap();
    assert_eq!(v["data"], "still there?");
}

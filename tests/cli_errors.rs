//! What the CLI says when something is wrong (issue 18, items 7 and 8): one line on
//! stderr that names the cause once and says what to do. Real binaries, a router with
//! `--no-mdns` on 127.0.0.1.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};

use common::free_port;
use common::proc::{Proc, run};

/// Starts a router with `extra` arguments; returns it, its TCP and its HTTP address.
/// A router with `extra` arguments; its gateway's address without the scheme.
fn router(extra: &[&str]) -> (Proc, String, Option<String>) {
    let (p, tcp, http) = common::proc::router_with(extra);
    let http = http.map(|url| url.trim_start_matches("http://").to_owned());
    (p, tcp, http)
}

/// The one line a failing command printed on stderr.
fn failure(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "should fail: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.contains(" WARN ")).collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    lines[0].to_owned()
}

#[test]
fn a_cause_is_printed_once() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let o = run(&["router", "--no-mdns", "--no-http", "--listen", &addr]);
    let line = failure(&o);
    assert!(line.contains(&format!("cannot listen on {addr}")), "{line}");
    assert_eq!(line.matches("Address already in use").count(), 1, "{line}");

    let o = run(&[
        "router",
        "--no-mdns",
        "--listen",
        "127.0.0.1:0",
        "--http",
        &addr,
    ]);
    let line = failure(&o);
    assert!(
        line.contains(&format!("cannot serve HTTP on {addr}")),
        "{line}"
    );
    assert_eq!(line.matches("Address already in use").count(), 1, "{line}");

    let closed = format!("127.0.0.1:{}", free_port());
    let o = run(&["send", "--router", &closed, "--name", "A", "B", "hi"]);
    let line = failure(&o);
    assert_eq!(line.matches("Connection refused").count(), 1, "{line}");
}

#[test]
fn the_http_port_given_as_router_is_named_as_such() {
    let (_router, _tcp, http) = router(&["--http", "127.0.0.1:0"]);
    let http = http.unwrap();
    let o = run(&["send", "--router", &http, "--name", "A", "B", "hi"]);
    let line = failure(&o);
    assert!(
        line.contains("this is the router's HTTP port; the router listens"),
        "{line}"
    );
    assert!(line.contains(&format!("ws://{http}/mesh")), "{line}");
    // And the URL it suggests works.
    let listener = Proc::spawn(&[
        "listen",
        "--router",
        &format!("ws://{http}/mesh"),
        "--name",
        "W",
        "--count",
        "1",
    ]);
    listener.wait_stderr("listening as");
}

#[test]
fn an_address_without_a_port_means_the_default_port() {
    let closed = format!("127.0.0.1:{}", free_port());
    let host = closed.split(':').next().unwrap();
    let o = run(&["peers", "--router", host]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("invalid socket address"), "{err}");
    if !o.status.success() {
        assert!(err.contains("127.0.0.1:7400"), "{err}");
    }
}

#[test]
fn a_name_too_long_says_the_limit_and_the_argument() {
    let (_router, at, _) = router(&[]);
    for len in [65, 300] {
        let long = "n".repeat(len);
        let line = failure(&run(&["send", "--router", &at, "--name", &long, "B", "hi"]));
        assert_eq!(
            line,
            format!("lanmesh: --name: the name is {len} bytes long; names are at most 64 bytes")
        );
        let line = failure(&run(&["send", "--router", &at, "--name", "A", &long, "hi"]));
        assert_eq!(
            line,
            format!(
                "lanmesh: the recipient (TO): the name is {len} bytes long; names are at most 64 bytes"
            )
        );
    }
    let line = failure(&run(&[
        "listen",
        "--router",
        &at,
        "--name",
        &"n".repeat(65),
    ]));
    assert!(line.starts_with("lanmesh: --name: "), "{line}");
    // 64 is allowed.
    let ok = Proc::spawn(&["listen", "--router", &at, "--name", &"n".repeat(64)]);
    ok.wait_stderr("listening as");
}

#[test]
fn mesh_key_mismatches_say_which_side_lacks_what() {
    let dir = std::env::temp_dir().join(format!("lanmesh-errkeys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = |name: &str| {
        let path = dir.join(name);
        std::fs::write(&path, run(&["keygen"]).stdout).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (ours, theirs) = (key("ours"), key("theirs"));

    let (_keyless, at, _) = router(&[]);
    let line = failure(&run(&[
        "send",
        "--router",
        &at,
        "--mesh-key-file",
        &ours,
        "--name",
        "A",
        "B",
        "hi",
    ]));
    assert!(line.contains(&format!("{at} has no mesh key")), "{line}");
    assert!(!line.contains("missing"), "{line}");

    let state = dir.join("keyed-state");
    let (_keyed, at, _) = router(&[
        "--mesh-key-file",
        &theirs,
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    let line = failure(&run(&["peers", "--router", &at, "--trust-router"]));
    assert!(line.contains("it needs a mesh key"), "{line}");
    let line = failure(&run(&[
        "peers",
        "--router",
        &at,
        "--trust-router",
        "--mesh-key-file",
        &ours,
    ]));
    assert!(line.contains("refused our mesh key"), "{line}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Item 8: the router logs warnings only (a joining peer is not news without -v), and
/// after SIGTERM the same ports can be taken again at once, even with a browser's
/// connection open on the HTTP port.
#[test]
fn the_router_is_quiet_and_restarts_on_the_same_ports_at_once() {
    let (tcp, http) = (free_port(), free_port());
    let (tcp, http) = (format!("127.0.0.1:{tcp}"), format!("127.0.0.1:{http}"));
    let args = ["router", "--no-mdns", "--listen", &tcp, "--http", &http];
    let first = Proc::spawn(&args);
    assert!(first.line().starts_with("lanmesh router"));
    first.wait_stdout("http");
    let l = Proc::spawn(&["listen", "--router", &tcp, "--name", "B", "--count", "1"]);
    l.wait_stderr("listening as");
    let mut open = std::net::TcpStream::connect(&http).unwrap();
    std::io::Write::write_all(&mut open, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let pid = first.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut first = first;
    let status = first.child.wait().unwrap();
    assert!(status.success());
    let logged: Vec<String> = first.stderr.try_iter().collect();
    assert!(
        logged.iter().all(|l| !l.contains("INFO")),
        "no INFO without -v: {logged:?}"
    );
    let second = Proc::spawn(&args);
    assert!(
        second.line().starts_with("lanmesh router"),
        "restart on the same ports"
    );
    second.wait_stdout("http");
}

/// Item 8: a listener says once when its router goes away and once when it is back.
#[test]
fn a_listener_says_when_its_router_goes_and_comes_back() {
    let tcp = format!("127.0.0.1:{}", free_port());
    let state = std::env::temp_dir().join(format!("lanmesh-away-{}", std::process::id()));
    let args = [
        "router",
        "--no-mdns",
        "--no-http",
        "--listen",
        &tcp,
        "--state-dir",
        state.to_str().unwrap(),
    ];
    let first = Proc::spawn(&args);
    first.wait_stdout("tcp");
    let l = Proc::spawn(&["listen", "--router", &tcp, "--name", "B"]);
    l.wait_stderr("listening as");
    drop(first);
    l.wait_stderr("lost the router");
    let second = Proc::spawn(&args);
    second.wait_stdout("tcp");
    l.wait_stderr("back in the mesh via");
    let o = run(&[
        "send",
        "--router",
        &tcp,
        "--name",
        "A",
        "--ack",
        "B",
        "welcome back",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(l.line(), "A: welcome back");
    let said: Vec<String> = l.stderr.try_iter().collect();
    assert!(
        said.iter().all(|s| !s.contains("lost the router")),
        "said once: {said:?}"
    );
    let _ = std::fs::remove_dir_all(state);
}

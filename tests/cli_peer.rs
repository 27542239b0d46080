//! The CLI as a full peer (issue 18, items 1 and 5): `lanmesh peer` driven through pipes,
//! `broadcast`, `request` and `respond --exec`, and processes of one user side by side.
//! Real binaries against a router with `--no-mdns` on 127.0.0.1.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
use std::process::{ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::proc::{BIN, Proc, run, test_home};
use serde_json::{Value, json};

/// Starts a router on an ephemeral port; returns it and its address.
fn router() -> (Proc, String) {
    common::proc::router("127.0.0.1:0")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `lanmesh peer --name NAME` with a pipe to its stdin, once it has said it is ready.
fn peer(at: &str, name: &str) -> (Proc, ChildStdin) {
    let (p, stdin) = Proc::spawn_with_stdin(
        Command::new(BIN)
            .args(["peer", "--router", at, "--name", name])
            .env("LANMESH_HOME", test_home()),
    );
    let ready = next_json(&p);
    assert_eq!(ready["event"], "ready", "{ready}");
    assert_eq!(ready["name"], name);
    (p, stdin)
}

fn next_json(p: &Proc) -> Value {
    let line = p.line();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

fn say(stdin: &mut ChildStdin, v: Value) {
    writeln!(stdin, "{v}").unwrap();
    stdin.flush().unwrap();
}

/// Reads lines until `want` of them match `pred`; returns those, in order. Other lines
/// are skipped (membership events, for example).
fn collect(p: &Proc, want: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.len() < want {
        assert!(Instant::now() < deadline, "only {got:?} within 20 s");
        let v = next_json(p);
        if pred(&v) {
            got.push(v);
        }
    }
    got
}

fn is_message(v: &Value) -> bool {
    v.get("event").is_none()
}

fn event_is(name: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == name
}

#[test]
fn two_pipe_peers_exchange_acked_messages_and_report_every_outcome() {
    let (_router, at) = router();
    let (b, mut b_in) = peer(&at, "B");
    let (a, mut a_in) = peer(&at, "A");
    // B hears A join.
    let joined = collect(&b, 1, event_is("joined"));
    assert_eq!(joined[0]["name"], "A");

    say(
        &mut a_in,
        json!({"to": "B", "data": "hi B", "ack": true, "ref": 1}),
    );
    say(
        &mut b_in,
        json!({"to": "A", "data": "/wD+", "encoding": "base64", "ack": true, "ref": "x"}),
    );
    say(
        &mut a_in,
        json!({"to": "nobody", "data": "?", "ack": true, "ref": 2}),
    );
    say(&mut a_in, json!({"to": "B", "data": "plain", "ref": 3}));
    writeln!(a_in, "this is not JSON").unwrap();
    say(&mut a_in, json!({"data": "to whom?", "ref": 4}));

    // A: its ack, the unknown peer, the plain send's id, two bad lines, and B's message.
    let mut a_lines = collect(&a, 6, |v| v["event"] != "joined" && v["event"] != "path");
    let from_b = a_lines.iter().position(is_message).expect("B's message");
    let m = a_lines.remove(from_b);
    assert_eq!(
        (&m["from"], &m["data"], &m["encoding"]),
        (&json!("B"), &json!("/wD+"), &json!("base64"))
    );
    let by_ref = |r: Value| {
        a_lines
            .iter()
            .find(|v| v["ref"] == r)
            .unwrap_or_else(|| panic!("no outcome for ref {r}: {a_lines:?}"))
            .clone()
    };
    let acked = by_ref(json!(1));
    assert_eq!(
        (&acked["event"], &acked["to"]),
        (&json!("acked"), &json!("B"))
    );
    assert!(acked["id"].is_u64());
    let unknown = by_ref(json!(2));
    assert_eq!(unknown["event"], "error");
    assert_eq!(unknown["error"], "unknown peer \"nobody\"");
    assert_eq!(by_ref(json!(3))["event"], "sent");
    let no_action = by_ref(json!(4));
    assert!(
        no_action["error"]
            .as_str()
            .unwrap()
            .starts_with("line 5: say what to do"),
        "{no_action}"
    );
    let not_json = a_lines.iter().find(|v| v.get("ref").is_none()).unwrap();
    assert!(
        not_json["error"]
            .as_str()
            .unwrap()
            .starts_with("line 4: not JSON"),
        "{not_json}"
    );

    // B: A's two messages in order, and its own ack.
    let b_lines = collect(&b, 3, |v| is_message(v) || v["event"] == "acked");
    let texts: Vec<&Value> = b_lines
        .iter()
        .filter(|v| is_message(v))
        .map(|v| &v["data"])
        .collect();
    assert_eq!(texts, [&json!("hi B"), &json!("plain")]);
    let ack = b_lines.iter().find(|v| v["event"] == "acked").unwrap();
    assert_eq!(ack["ref"], "x");

    // End of input: A sends five more acked messages and closes its input at once; every
    // ack is reported before it exits 0, and B has all five, in order.
    for i in 0..5 {
        say(
            &mut a_in,
            json!({"to": "B", "data": format!("last {i}"), "ack": true, "ref": 10 + i}),
        );
    }
    drop(a_in);
    let acks = collect(&a, 5, event_is("acked"));
    let refs: Vec<u64> = acks.iter().map(|v| v["ref"].as_u64().unwrap()).collect();
    let mut sorted = refs.clone();
    sorted.sort();
    assert_eq!(sorted, [10, 11, 12, 13, 14]);
    assert!(a.wait().success(), "end of input is a clean exit");
    let got = collect(&b, 5, is_message);
    let texts: Vec<&str> = got.iter().map(|v| v["data"].as_str().unwrap()).collect();
    assert_eq!(texts, ["last 0", "last 1", "last 2", "last 3", "last 4"]);
    let left = collect(&b, 1, event_is("left"));
    assert_eq!(left[0]["name"], "A");
}

#[test]
fn broadcast_reaches_every_listener() {
    let (_router, at) = router();
    let listeners: Vec<Proc> = ["X", "Y"]
        .iter()
        .map(|n| {
            let l = Proc::spawn(&[
                "listen", "--router", &at, "--name", n, "--json", "--count", "1",
            ]);
            l.wait_stderr("listening as");
            l
        })
        .collect();
    let o = run(&["broadcast", "--router", &at, "--name", "S", "hello all"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("to 2 other peers"), "{}", stderr(&o));
    for l in listeners {
        let v: Value = serde_json::from_str(&l.line()).unwrap();
        assert_eq!((&v["from"], &v["data"]), (&json!("S"), &json!("hello all")));
        assert!(l.wait().success());
    }
    // Without --name, the command has a stable name of its own.
    let (p, _stdin) = peer(&at, "Z");
    let o = run(&["broadcast", "--router", &at, "again"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = collect(&p, 1, is_message);
    assert!(
        m[0]["from"].as_str().unwrap().starts_with("cli-"),
        "{}",
        m[0]
    );
    assert_eq!(m[0]["broadcast"], true);
}

#[test]
fn requests_are_answered_by_respond_exec_and_by_a_pipe_peer() {
    let (_router, at) = router();
    let responder = Proc::spawn(&[
        "respond",
        "--router",
        &at,
        "--name",
        "upper",
        "--exec",
        "printf '%s/' \"$LANMESH_FROM\"; tr a-z A-Z",
    ]);
    responder.wait_stderr("answering requests");
    let o = run(&["request", "--router", &at, "--name", "Q", "upper", "hello"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "Q/HELLO\n");
    let o = run(&[
        "request", "--router", &at, "--name", "Q", "--json", "upper", "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (&v["from"], &v["data"]),
        (&json!("upper"), &json!("Q/JSON"))
    );

    // A pipe peer asks, and answers a request of its own.
    let (p, mut p_in) = peer(&at, "P");
    say(
        &mut p_in,
        json!({"to": "upper", "request": "abc", "timeout_ms": 5000, "ref": "q"}),
    );
    let reply = collect(&p, 1, event_is("reply"));
    assert_eq!(
        (&reply[0]["ref"], &reply[0]["from"], &reply[0]["data"]),
        (&json!("q"), &json!("upper"), &json!("P/ABC"))
    );
    let asking = std::thread::spawn({
        let at = at.clone();
        move || run(&["request", "--router", &at, "--name", "Q", "P", "ping"])
    });
    let req = collect(&p, 1, event_is("request"));
    assert_eq!(
        (&req[0]["from"], &req[0]["data"]),
        (&json!("Q"), &json!("ping"))
    );
    say(
        &mut p_in,
        json!({"reply": req[0]["id"], "to": "Q", "data": "pong"}),
    );
    let o = asking.join().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "pong\n");
}

#[test]
fn a_request_nobody_answers_fails_in_one_clear_line() {
    let (_router, at) = router();
    let first_line = |o: &Output| {
        let err = stderr(o);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        err.trim_end().to_owned()
    };
    let o = run(&["request", "--router", &at, "nobody", "hi?"]);
    assert!(!o.status.success());
    assert_eq!(first_line(&o), "lanmesh: unknown peer \"nobody\"");

    let l = Proc::spawn(&["listen", "--router", &at, "--name", "deaf"]);
    l.wait_stderr("listening as");
    let o = run(&["request", "--router", &at, "deaf", "hi?"]);
    assert!(!o.status.success());
    assert_eq!(first_line(&o), "lanmesh: peer \"deaf\" answers no requests");

    let slow = Proc::spawn(&[
        "respond", "--router", &at, "--name", "slow", "--exec", "sleep 5",
    ]);
    slow.wait_stderr("answering requests");
    let o = run(&[
        "request",
        "--router",
        &at,
        "--timeout",
        "0.3",
        "slow",
        "hi?",
    ]);
    assert!(!o.status.success());
    assert!(
        first_line(&o).starts_with("lanmesh: no reply from \"slow\" within"),
        "{}",
        stderr(&o)
    );

    let failing = Proc::spawn(&[
        "respond", "--router", &at, "--name", "broken", "--exec", "exit 3",
    ]);
    failing.wait_stderr("answering requests");
    let o = run(&["request", "--router", &at, "broken", "hi?"]);
    assert!(!o.status.success());
    assert_eq!(
        first_line(&o),
        "lanmesh: peer \"broken\" answers no requests"
    );
    failing.wait_stderr("failed (exit status: 3); declined");
}

/// Issue 18 (1): a pipe peer keeps running while twenty acked sends and five requests
/// under its own name run at once, and every one of them succeeds.
#[test]
fn many_processes_of_one_user_share_a_name_without_evicting_each_other() {
    let (_router, at) = router();
    let (b, mut b_in) = peer(&at, "B");
    let (pc2, mut pc2_in) = peer(&at, "PC2");
    let sends: Vec<_> = (0..20)
        .map(|i| {
            Command::new(BIN)
                .env("LANMESH_HOME", test_home())
                .args(["send", "--router", &at, "--name", "PC2", "--ack", "B"])
                .arg(format!("parallel {i}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let requests: Vec<_> = (0..5)
        .map(|i| {
            Command::new(BIN)
                .env("LANMESH_HOME", test_home())
                .args(["request", "--router", &at, "--name", "PC2", "B"])
                .arg(format!("question {i}"))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // B answers the five questions and receives the twenty messages.
    let mut texts = Vec::new();
    let mut asked = 0;
    while texts.len() < 20 || asked < 5 {
        let v = collect(&b, 1, |v| is_message(v) || v["event"] == "request").remove(0);
        if v["event"] == "request" {
            assert_eq!(v["from"], "PC2");
            let answer = format!("answer to {}", v["data"].as_str().unwrap());
            say(
                &mut b_in,
                json!({"reply": v["id"], "to": "PC2", "data": answer}),
            );
            asked += 1;
        } else {
            assert_eq!(v["from"], "PC2");
            texts.push(v["data"].as_str().unwrap().to_owned());
        }
    }
    for c in sends {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    for c in requests {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).starts_with("answer to question "));
    }
    texts.sort();
    let mut want: Vec<String> = (0..20).map(|i| format!("parallel {i}")).collect();
    want.sort();
    assert_eq!(texts, want, "each once");
    // The pipe peer under that name is still there, both ways.
    say(
        &mut pc2_in,
        json!({"to": "B", "data": "still here", "ack": true, "ref": 1}),
    );
    assert_eq!(collect(&pc2, 1, event_is("acked"))[0]["ref"], 1);
    say(
        &mut b_in,
        json!({"to": "PC2", "data": "so am I", "ack": true}),
    );
    assert_eq!(collect(&pc2, 1, is_message)[0]["data"], "so am I");
}

/// Two receiving processes cannot share a name (one must get its messages): the newer
/// takes it, and the older says why it stops, in one line, and exits — a pipe peer too,
/// though its input is still open.
#[test]
fn a_second_receiver_of_a_name_says_why_the_first_stops() {
    let (_router, at) = router();
    let first = Proc::spawn(&["listen", "--router", &at, "--name", "R"]);
    first.wait_stderr("listening as");
    let (second, _input_still_open) = peer(&at, "R");
    first.wait_stderr("another process of this user joined as \"R\" to receive its messages");
    assert!(!first.wait().success());
    let third = Proc::spawn(&["listen", "--router", &at, "--name", "R"]);
    third.wait_stderr("listening as");
    let closed = collect(&second, 1, event_is("closed"));
    assert!(
        closed[0]["error"]
            .as_str()
            .unwrap()
            .contains("another process"),
        "{}",
        closed[0]
    );
    assert!(!second.wait().success(), "exits although its input is open");
}

//! Browsers as peers, end to end: a router process with its gateway on 127.0.0.1, headless
//! Chromium running the wasm client, and native CLI peers on either side.
#![allow(clippy::unwrap_used)]

mod common;

use common::proc::Proc;
use common::proc::{gateway_router, run};
use common::webdriver::{self, Browser};
use serde_json::{Value, json};

#[test]
fn a_browser_page_is_a_peer_both_ways() {
    if !webdriver::available() {
        return;
    }
    let (_router, tcp, http) = gateway_router();
    let ws = format!("{}/mesh", http.replace("http://", "ws://"));
    let browser = Browser::start();
    browser.goto(&format!("{http}/index.html"));

    // The page imports the client from the router and joins as web-1.
    let joined = browser.run_async(webdriver::CONNECT_PEER, json!([ws, "web-1"]));
    assert_eq!(joined["ok"], true, "{joined}");

    // Browser → native listener.
    let listener = Proc::spawn(&[
        "listen", "--router", &tcp, "--name", "B", "--json", "--count", "1",
    ]);
    listener.wait_stderr("listening as");
    let sent = browser.run_async(
        "const [done] = arguments; window.web.sendAcked('B', 'from the browser').then(() => done('ok'), (e) => done(String(e)));",
        json!([]),
    );
    assert_eq!(sent, "ok");
    let v: Value = serde_json::from_str(&listener.line()).unwrap();
    assert_eq!(
        (v["from"].as_str(), v["data"].as_str()),
        (Some("web-1"), Some("from the browser"))
    );

    // Native sender → browser, acknowledged by the browser's client.
    let o = run(&[
        "send",
        "--router",
        &tcp,
        "--name",
        "A",
        "--ack",
        "web-1",
        "to the browser",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    browser.wait_for(
        "the message in the page",
        "return (window.inbox || []).some((m) => m.from === 'A' && m.data === 'to the browser');",
    );

    // Binary stays binary.
    // (From standard input: `--file` streams files to peers that save them.)
    let mut child = std::process::Command::new(common::proc::BIN)
        .env("LANMESH_HOME", common::proc::test_home())
        .args(["send", "--router", &tcp, "--name", "A", "--ack", "web-1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &[0u8, 159, 146, 150]).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    browser.wait_for("the binary message", "return window.inbox.some((m) => Array.isArray(m.data) && m.data.join(',') === '0,159,146,150');");

    // The router lists the page as a WebSocket peer with the same cipher as everyone.
    let o = run(&["peers", "--router", &tcp, "--json"]);
    let peers: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    let web = peers
        .iter()
        .find(|p| p["name"] == "web-1")
        .unwrap_or_else(|| panic!("{peers:?}"));
    assert_eq!(web["transport"], "ws");
    assert_eq!(web["cipher"], "chacha20poly1305");
    assert_eq!(web["compression"], "snappy");

    // An acked send to nobody fails with the same words as the CLI.
    let err = browser.run_async(
        "const [done] = arguments; window.web.sendAcked('nobody', 'x').then(() => done('delivered?'), (e) => done(String(e.message || e)));",
        json!([]),
    );
    assert!(
        err.as_str()
            .unwrap_or_default()
            .contains("unknown peer \"nobody\""),
        "{err}"
    );
}

#[test]
fn the_dashboard_joins_and_shows_the_mesh() {
    if !webdriver::available() {
        return;
    }
    let (_router, tcp, http) = gateway_router();
    let browser = Browser::start();
    let listener = Proc::spawn(&[
        "listen", "--router", &tcp, "--name", "sensor", "--count", "1",
    ]);
    listener.wait_stderr("listening as");
    browser.goto(&format!("{http}/"));
    browser.wait_for("the dashboard to connect", "return !!window.lanmeshPeer && document.getElementById('status').textContent === 'connected';");
    browser.wait_for(
        "the peers table",
        "return document.getElementById('peers').textContent.includes('sensor');",
    );
    let o = run(&[
        "send",
        "--router",
        &tcp,
        "--name",
        "laptop",
        "--ack",
        "dashboard",
        "hi",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    browser.wait_for(
        "the message in the log",
        "return document.getElementById('log').textContent.includes('hi');",
    );
    // The send box reaches a native peer.
    let sent = browser.run_async(
        "const [done] = arguments; document.getElementById('text').value = 'from the dashboard'; document.getElementById('to').value = 'sensor'; document.querySelector('#send-form button').click(); const t = setInterval(() => { const s = document.getElementById('send-status').textContent; if (s) { clearInterval(t); done(s); } }, 20);",
        json!([]),
    );
    assert!(
        sent.as_str()
            .unwrap_or_default()
            .starts_with("acknowledged by sensor"),
        "{sent}"
    );
    assert_eq!(listener.line(), "dashboard: from the dashboard");
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "a screenshot can be taken");
    if let Ok(path) = std::env::var("LANMESH_SCREENSHOT") {
        std::fs::write(path, png).unwrap();
    }
}

/// Not a test: `just screenshot` writes docs/dashboard.png, the dashboard with three
/// native peers and some traffic, for the README.
#[test]
#[ignore = "makes the README screenshot; run with `just screenshot`"]
fn dashboard_screenshot() {
    if !webdriver::available() {
        return;
    }
    let (_router, tcp, http) = gateway_router();
    let laptop = Proc::spawn(&["listen", "--router", &tcp, "--name", "laptop"]);
    laptop.wait_stderr("listening as");
    let kitchen = Proc::spawn(&["listen", "--router", &tcp, "--name", "pi-kitchen"]);
    kitchen.wait_stderr("listening as");
    let browser = Browser::start();
    browser.goto(&format!("{http}/"));
    browser.wait_for(
        "the dashboard",
        "return document.getElementById('status').textContent === 'connected';",
    );
    // A few seconds of traffic so the chart and the rates have something to show.
    for round in 0..6u32 {
        for i in 0..(5 + round * 3) {
            let reading = format!("temperature={}.{} C", 20 + (i % 4), (round * 7 + i) % 10);
            let o = run(&[
                "send", "--router", &tcp, "--name", "sensor", "laptop", &reading,
            ]);
            assert!(o.status.success());
        }
        let o = run(&[
            "send",
            "--router",
            &tcp,
            "--name",
            "pi-garage",
            "--ack",
            "dashboard",
            &format!("door closed (check {round})"),
        ]);
        assert!(o.status.success());
        let o = run(&[
            "send",
            "--router",
            &tcp,
            "--name",
            "laptop-2",
            "pi-kitchen",
            "lights off",
        ]);
        assert!(o.status.success());
        std::thread::sleep(std::time::Duration::from_millis(700));
    }
    browser.run_async(
        "const [done] = arguments; document.getElementById('text').value = 'hello laptop'; document.getElementById('to').value = 'laptop'; document.querySelector('#send-form button').click(); setTimeout(() => done(1), 1500);",
        json!([]),
    );
    let png = browser.screenshot();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard.png");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, png).unwrap();
}

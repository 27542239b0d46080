//! The browser peer does what a native peer does, proven in headless Chromium against a
//! real router process: reconnects with its resume token and acked sends exactly once
//! and in order across a cutting proxy, request/reply both ways with `NoResponder` as its
//! own error, and files both ways (a `lanmesh send --file` arriving as a `Blob` with
//! progress, a page's `File` saved by `lanmesh listen --save-dir`).
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::chaos::{Chaos, ChaosProxy};
use common::proc::Proc;
use common::proc::gateway_router;
use common::webdriver::{self, Browser};
use serde_json::{Value, json};

/// Joins the page as `name` through `ws`; messages go to `window.inbox`, files to
/// `window.files`, statuses to `window.statuses`.
const CONNECT: &str = r#"
const [wsUrl, name, done] = arguments;
import('/pkg/lanmesh_wasm.js').then(async (m) => {
  await m.default();
  window.inbox = []; window.files = []; window.progress = 0; window.statuses = [];
  const peer = await m.MeshPeer.connect(wsUrl, name, { meshKey: null });
  peer.onmessage = (from, data, id) => window.inbox.push({ from, data: typeof data === 'string' ? data : Array.from(data), id });
  peer.onstatus = (status, detail) => window.statuses.push(status);
  peer.onfileprogress = (from, name, received, total) => { window.progress += 1; };
  peer.onfile = async (from, blob, name) => {
    const bytes = new Uint8Array(await blob.arrayBuffer());
    let sum = 0;
    for (const b of bytes) sum = (sum * 31 + b) >>> 0;
    window.files.push({ from, name, size: blob.size, sum });
  };
  window.web = peer;
  done({ ok: true });
}).catch((e) => done({ ok: false, error: String(e) }));
"#;

/// The page's checksum of some bytes.
fn checksum(data: &[u8]) -> u64 {
    data.iter()
        .fold(0u32, |s, b| s.wrapping_mul(31).wrapping_add(u32::from(*b))) as u64
}

/// Polls `script` until it returns true, for up to `limit`.
fn wait_long(browser: &Browser, what: &str, script: &str, limit: Duration) {
    let start = Instant::now();
    while browser.eval(script) != Value::Bool(true) {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A native peer in this process (the library, blocking).
fn native(tcp: &str, name: &str) -> lanmesh::blocking::Peer {
    lanmesh::blocking::Peer::connect_with(lanmesh::Peer::builder(name).router(tcp)).unwrap()
}

#[test]
fn acked_sends_from_a_browser_arrive_exactly_once_and_in_order_across_cuts() {
    if !webdriver::available() {
        return;
    }
    const TOTAL: usize = 2000;
    let (_router, tcp, http) = gateway_router();
    let gateway: SocketAddr = http.trim_start_matches("http://").parse().unwrap();
    // The page's WebSocket goes through a proxy that cuts it every 80-300 KB; messages
    // carry about 1 KB of noise each, so a run sees many cuts.
    let seed = std::env::var("LANMESH_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0b12_0a5e_u64);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let chaos = Chaos {
        // More than a record (64 KiB), so that every connection gets some through.
        cut_after: (80_000, 300_000),
        max_fragment: 1500,
        stall_one_in: 50,
    };
    let proxy = rt.block_on(ChaosProxy::start(gateway, seed, chaos));
    let ws = format!("ws://{}/mesh", proxy.addr);

    let listener = Proc::spawn(&[
        "listen",
        "--router",
        &tcp,
        "--name",
        "B",
        "--json",
        "--count",
        &TOTAL.to_string(),
    ]);
    listener.wait_stderr("listening as");
    let browser = Browser::start();
    browser.goto(&format!("{http}/index.html"));
    let joined = browser.run_async(CONNECT, json!([ws, "web-1"]));
    assert_eq!(joined["ok"], true, "{joined}");
    // Up to 64 acked sends in flight; each resolves when B has it.
    browser.run_async(
        r#"const [total, done] = arguments;
        window.acked = 0; window.failed = [];
        const noise = () => Array.from(crypto.getRandomValues(new Uint8Array(500)), (b) => b.toString(16).padStart(2, '0')).join('');
        (async () => {
          let next = 0; const inFlight = new Set();
          while (next < total || inFlight.size > 0) {
            while (next < total && inFlight.size < 64) {
              const n = next++;
              const p = window.web.sendAcked('B', 'msg-' + n + ' ' + noise())
                .then(() => { window.acked += 1; }, (e) => { window.failed.push(n + ': ' + e.message); })
                .finally(() => inFlight.delete(p));
              inFlight.add(p);
            }
            await Promise.race(inFlight);
          }
        })();
        done(true);"#,
        json!([TOTAL]),
    );
    wait_long(
        &browser,
        "every acked send to settle",
        &format!("return window.acked + window.failed.length === {TOTAL};"),
        Duration::from_secs(120),
    );
    let failed = browser.eval("return window.failed;");
    assert_eq!(failed, json!([]), "seed {seed:#x}: acked sends failed");
    let mut got = Vec::new();
    for _ in 0..TOTAL {
        let v: Value = serde_json::from_str(&listener.line()).unwrap();
        assert_eq!(v["from"], "web-1");
        let data = v["data"].as_str().unwrap();
        got.push(data.split(' ').next().unwrap().to_owned());
    }
    let want: Vec<String> = (0..TOTAL).map(|n| format!("msg-{n}")).collect();
    assert_eq!(got, want, "seed {seed:#x}: lost, doubled or reordered");
    // And the other way: a native peer's acked stream to the page, whose connection the
    // proxy keeps cutting; the page's duplicate filter drops what a resend repeats.
    const BACK: usize = 1000;
    rt.block_on(async {
        let n = lanmesh::Peer::builder("N")
            .router(&tcp)
            .connect()
            .await
            .unwrap();
        // At most 64 in flight, as the page does.
        let mut acks = std::collections::VecDeque::new();
        let mut x = seed | 1;
        for i in 0..BACK {
            let mut data = format!("back-{i} ").into_bytes();
            data.extend((0..1000).map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 56) as u8
            }));
            if acks.len() >= 64 {
                let a: lanmesh::Acked = acks.pop_front().unwrap();
                a.await.unwrap();
            }
            acks.push_back(n.queue_acked("web-1", data).await.unwrap());
        }
        for a in acks {
            a.await.unwrap();
        }
    });
    wait_long(
        &browser,
        "the native stream in the page",
        &format!("return window.inbox.filter((m) => m.from === 'N').length >= {BACK};"),
        Duration::from_secs(60),
    );
    let back = browser.eval("return window.inbox.filter((m) => m.from === 'N').map((m) => String.fromCharCode(...m.data.slice(0, m.data.indexOf(32))));");
    let want: Vec<String> = (0..BACK).map(|i| format!("back-{i}")).collect();
    assert_eq!(
        back,
        json!(want),
        "seed {seed:#x}: the page lost, doubled or reordered"
    );
    let cuts = proxy.cuts();
    assert!(cuts >= 3, "seed {seed:#x}: only {cuts} cuts");
    let statuses = browser.eval("return window.statuses;");
    assert!(
        statuses
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "reconnecting"),
        "{statuses}"
    );
    eprintln!("seed {seed:#x}: {TOTAL} + {BACK} acked messages across {cuts} cuts");
}

#[test]
fn requests_go_both_ways_and_no_responder_is_its_own_error() {
    if !webdriver::available() {
        return;
    }
    let (_router, tcp, http) = gateway_router();
    let ws = format!("{}/mesh", http.replace("http://", "ws://"));
    let browser = Browser::start();
    browser.goto(&format!("{http}/index.html"));
    let joined = browser.run_async(CONNECT, json!([ws, "web-1"]));
    assert_eq!(joined["ok"], true, "{joined}");
    browser.eval(
        "window.web.respond(async (from, data, id) => 'page heard ' + (typeof data === 'string' ? data : new TextDecoder().decode(data)) + ' from ' + from); return true;",
    );
    // A native peer asks the page.
    let asker = native(&tcp, "asker");
    let reply = asker
        .request("web-1", &b"ping"[..], Duration::from_secs(5))
        .unwrap();
    assert_eq!(reply.text(), Some("page heard ping from asker"));
    // The page asks a native responder, and one that answers nothing.
    let sensor = native(&tcp, "sensor");
    sensor
        .respond(|req| {
            let mut out = b"21.5 for ".to_vec();
            out.extend_from_slice(&req.data);
            out.into()
        })
        .unwrap();
    let mute = native(&tcp, "mute");
    let answers = browser.run_async(
        r#"const [done] = arguments;
        (async () => {
          const r = await window.web.request('sensor', 'temp?', 3000);
          let code = null;
          try { await window.web.request('mute', 'hello?', 3000); } catch (e) { code = e.code; }
          let unknown = null;
          try { await window.web.request('nobody', 'x', 3000); } catch (e) { unknown = e.code; }
          return { reply: typeof r === 'string' ? r : Array.from(r), code, unknown };
        })().then(done, (e) => done({ error: String(e) }));"#,
        json!([]),
    );
    assert_eq!(
        answers,
        json!({ "reply": "21.5 for temp?", "code": "NoResponder", "unknown": "UnknownPeer" })
    );
    // The page stops answering: the native requester is told at once.
    browser.eval("window.web.respond(null); return true;");
    let err = asker
        .request("web-1", &b"again"[..], Duration::from_secs(5))
        .unwrap_err();
    assert!(
        matches!(err, lanmesh::ClientError::NoResponder { .. }),
        "{err}"
    );
    drop(mute);
}

#[test]
fn files_go_from_the_cli_to_a_page_and_from_a_page_to_a_listener() {
    if !webdriver::available() {
        return;
    }
    let (_router, tcp, http) = gateway_router();
    let ws = format!("{}/mesh", http.replace("http://", "ws://"));
    let browser = Browser::start();
    browser.goto(&format!("{http}/index.html"));
    let joined = browser.run_async(CONNECT, json!([ws, "web-1"]));
    assert_eq!(joined["ok"], true, "{joined}");

    // CLI → page: 3 MiB of noise arrives as a Blob, with progress along the way.
    let dir = std::env::temp_dir().join(format!("lanmesh-browser-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    let file = dir.join("noise.bin");
    std::fs::write(&file, &noise).unwrap();
    let o = std::process::Command::new(common::proc::BIN)
        .env("LANMESH_HOME", common::proc::test_home())
        .args(["send", "--router", &tcp, "--name", "A", "--file"])
        .arg(&file)
        .arg("web-1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_long(
        &browser,
        "the file in the page",
        "return window.files.length === 1;",
        Duration::from_secs(30),
    );
    let got = browser.eval("return window.files[0];");
    assert_eq!(
        got,
        json!({ "from": "A", "name": "noise.bin", "size": noise.len(), "sum": checksum(&noise) })
    );
    let progress = browser.eval("return window.progress;").as_u64().unwrap();
    assert!(progress > 10, "{progress} progress calls for 3 MiB");

    // Page → listener: a File the page made, saved by `lanmesh listen --save-dir`.
    let save = dir.join("save");
    std::fs::create_dir_all(&save).unwrap();
    let listener = Proc::spawn(&[
        "listen",
        "--router",
        &tcp,
        "--name",
        "B",
        "--json",
        "--count",
        "1",
        "--save-dir",
        save.to_str().unwrap(),
    ]);
    listener.wait_stderr("listening as");
    let sent = browser.run_async(
        r#"const [done] = arguments;
        const bytes = new Uint8Array(2 * 1024 * 1024 + 17);
        for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) % 251;
        const f = new File([bytes], 'from-page.bin');
        let calls = 0;
        window.web.sendFile('B', f, { onprogress: (p) => { calls += 1; } })
          .then((r) => done({ ...r, calls }), (e) => done({ error: e.message, code: e.code }));"#,
        json!([]),
    );
    assert_eq!(sent["name"], "from-page.bin", "{sent}");
    assert_eq!(sent["bytes"], 2 * 1024 * 1024 + 17);
    assert!(sent["calls"].as_u64().unwrap() > 1, "{sent}");
    let line: Value = serde_json::from_str(&listener.line()).unwrap();
    assert_eq!(line["from"], "web-1");
    let saved = std::fs::read(line["path"].as_str().unwrap()).unwrap();
    let want: Vec<u8> = (0..2 * 1024 * 1024 + 17)
        .map(|i| ((i * 7) % 251) as u8)
        .collect();
    assert!(saved == want, "the saved file differs");
    // A page without `onfile` refuses files, and the sender is told why.
    browser.eval("window.web.onfile = null; return true;");
    let o = std::process::Command::new(common::proc::BIN)
        .env("LANMESH_HOME", common::proc::test_home())
        .args(["send", "--router", &tcp, "--name", "A", "--file"])
        .arg(&file)
        .arg("web-1")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("no onfile handler"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_dashboard_shows_it_is_reconnecting_and_sends_files() {
    if !webdriver::available() {
        return;
    }
    let (_router, tcp, http) = gateway_router();
    let gateway: SocketAddr = http.trim_start_matches("http://").parse().unwrap();
    // Page and WebSocket both through a proxy that only cuts when told to.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let calm = Chaos {
        cut_after: (u64::MAX / 4, u64::MAX / 4),
        max_fragment: 16 * 1024,
        stall_one_in: 0,
    };
    let proxy = rt.block_on(ChaosProxy::start(gateway, 7, calm));
    let browser = Browser::start();
    browser.goto(&format!("http://{}/", proxy.addr));
    let status = "document.getElementById('status').textContent";
    browser.wait_for(
        "the dashboard to connect",
        &format!("return {status} === 'connected';"),
    );
    proxy.refuse(true);
    proxy.cut_all();
    browser.wait_for(
        "the dashboard to say it is reconnecting",
        &format!("return {status} === 'reconnecting…';"),
    );
    proxy.refuse(false);
    wait_long(
        &browser,
        "the dashboard to come back",
        &format!("return {status} === 'connected';"),
        Duration::from_secs(20),
    );

    // A file picked in the send box reaches a native listener's save directory.
    let save = std::env::temp_dir().join(format!("lanmesh-dashboard-save-{}", std::process::id()));
    std::fs::create_dir_all(&save).unwrap();
    let listener = Proc::spawn(&[
        "listen",
        "--router",
        &tcp,
        "--name",
        "B",
        "--json",
        "--count",
        "1",
        "--save-dir",
        save.to_str().unwrap(),
    ]);
    listener.wait_stderr("listening as");
    browser.wait_for(
        "B in the recipients",
        "return [...document.getElementById('to').options].some((o) => o.value === 'B');",
    );
    browser.eval(
        "const dt = new DataTransfer(); dt.items.add(new File(['report of the day'], 'report.txt')); \
         document.getElementById('file').files = dt.files; document.getElementById('to').value = 'B'; \
         document.getElementById('send-file').click(); return true;",
    );
    browser.wait_for(
        "the file confirmed",
        "return document.getElementById('send-status').textContent.startsWith('B has report.txt');",
    );
    let line: Value = serde_json::from_str(&listener.line()).unwrap();
    let saved = std::fs::read_to_string(line["path"].as_str().unwrap()).unwrap();
    assert_eq!(saved, "report of the day");
    let _ = std::fs::remove_dir_all(&save);
}

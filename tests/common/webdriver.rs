//! Just enough WebDriver to drive headless Chromium from a test: a chromedriver process
//! on a loopback port, plain HTTP/1.1 with `Connection: close`, JSON bodies.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::free_port;

/// Where the Debian packages put them.
pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";
pub(crate) const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A script for [`Browser::run_async`] with `[wsUrl, name]`: the page imports the wasm
/// client from the router, joins as `name` and keeps what arrives in `window.inbox`
/// (`window.web` is the peer). Resolves to `{ok, peers}` or `{ok: false, error}`.
pub(crate) const CONNECT_PEER: &str = r#"
const [wsUrl, name, done] = arguments;
import('/pkg/lanmesh_wasm.js').then(async (m) => {
  await m.default();
  const peer = await m.MeshPeer.connect(wsUrl, name, { meshKey: null });
  window.inbox = [];
  peer.onmessage = (from, data, id) => window.inbox.push({ from, data: typeof data === 'string' ? data : Array.from(data), id });
  window.web = peer;
  done({ ok: true, peers: peer.peers() });
}).catch((e) => done({ ok: false, error: String(e) }));
"#;

/// A chromedriver with one browser session; both end when dropped.
pub(crate) struct Browser {
    driver: Child,
    port: u16,
    session: String,
    profile: std::path::PathBuf,
}

/// `None` (with a message) when Chromium is not installed and not required.
pub(crate) fn available() -> bool {
    let there =
        std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists();
    if !there {
        assert!(
            std::env::var("LANMESH_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "Chromium is required (LANMESH_REQUIRE_BROWSER=1) but {CHROMIUM} or {CHROMEDRIVER} is missing"
        );
        eprintln!(
            "skipping: {CHROMIUM} / {CHROMEDRIVER} not installed (apt-get install chromium chromium-driver)"
        );
    }
    there
}

fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<Value> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    // chromedriver keeps the connection open: read the headers, then Content-Length bytes.
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head_end, length) = loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(Value::Null);
        }
        raw.extend_from_slice(&chunk[..n]);
        if let Some(pos) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..pos]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            break (pos + 4, length);
        }
    };
    while raw.len() < head_end + length {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
    }
    Ok(serde_json::from_slice(&raw[head_end..]).unwrap_or(Value::Null))
}

impl Browser {
    pub(crate) fn start() -> Browser {
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while http(port, "GET", "/status", None)
            .map(|v| v["value"]["ready"] != true)
            .unwrap_or(true)
        {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile =
            std::env::temp_dir().join(format!("lanmesh-chromium-{}-{port}", std::process::id()));
        let caps = json!({ "capabilities": { "alwaysMatch": { "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--disable-quic", "--window-size=1280,900",
                     format!("--user-data-dir={}", profile.display())]
        }}}});
        let v = http(port, "POST", "/session", Some(&caps)).unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_owned();
        Browser {
            driver,
            port,
            session,
            profile,
        }
    }

    fn call(&self, method: &str, what: &str, body: Option<&Value>) -> Value {
        let v = http(
            self.port,
            method,
            &format!("/session/{}/{what}", self.session),
            body,
        )
        .unwrap();
        v["value"].clone()
    }

    pub(crate) fn goto(&self, url: &str) {
        self.call("POST", "url", Some(&json!({ "url": url })));
    }

    /// Runs an async script: its last argument is the callback that returns the result.
    pub(crate) fn run_async(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "execute/async",
            Some(&json!({ "script": script, "args": args })),
        )
    }

    /// Runs a synchronous script and returns its value.
    pub(crate) fn eval(&self, script: &str) -> Value {
        self.call(
            "POST",
            "execute/sync",
            Some(&json!({ "script": script, "args": [] })),
        )
    }

    /// Runs a synchronous script with `args` (`arguments` in the script).
    pub(crate) fn call_sync(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "execute/sync",
            Some(&json!({ "script": script, "args": args })),
        )
    }

    /// Polls `script` until it returns true.
    pub(crate) fn wait_for(&self, what: &str, script: &str) {
        let start = Instant::now();
        while self.eval(script) != Value::Bool(true) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A PNG screenshot of the page.
    pub(crate) fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let b64 = self.call("GET", "screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

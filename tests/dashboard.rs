//! The dashboard as users open it: several browsers at once against one router process
//! (keyless, on 127.0.0.1), each its own headless Chromium with its own profile (so its
//! own key), while native peers move traffic.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::proc::Proc;
use common::proc::{gateway_router, run};
use common::webdriver::{self, Browser};
use serde_json::Value;

const CONNECTED: &str =
    "return !!window.lanmeshPeer && document.getElementById('status').textContent === 'connected';";

fn dashboard(http: &str) -> (Browser, String) {
    let b = Browser::start();
    b.goto(&format!("{http}/"));
    b.wait_for("the dashboard to connect", CONNECTED);
    let name = b.eval("return window.lanmeshPeer.name;");
    (b, name.as_str().unwrap().to_owned())
}

/// The start of this browser's public key, as the dashboard names itself by it.
fn key_tag(b: &Browser) -> String {
    let id = b.eval("return localStorage.getItem('lanmesh.identity');");
    id.as_str().unwrap()[64..68].to_owned()
}

/// The Sent/s and Recv/s cells of `peer`'s row in the dashboard's table.
const RATES: &str = r#"
const row = [...document.querySelectorAll('#peers tr')].find((tr) => tr.querySelector('.name') && tr.querySelector('.name').textContent.split(' ')[0] === arguments[0]);
if (!row) return null;
const nums = row.querySelectorAll('.num');
return [Number(nums[0].textContent), Number(nums[1].textContent)];
"#;

fn rates(b: &Browser, peer: &str) -> Option<(f64, f64)> {
    let v = b.call_sync(RATES, serde_json::json!([peer]));
    let a = v.as_array()?;
    Some((a[0].as_f64()?, a[1].as_f64()?))
}

/// Polls until `cond` holds for the rates of `peer` in `b`.
fn wait_rates(b: &Browser, peer: &str, what: &str, cond: impl Fn(f64, f64) -> bool) {
    let start = std::time::Instant::now();
    loop {
        if let Some((sent, recv)) = rates(b, peer) {
            if cond(sent, recv) {
                return;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}: {:?}",
            rates(b, peer)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A native peer `from` that sends to `to` about 5 times a second until dropped.
struct Traffic {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(tcp: &str, from: &str, to: &str) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let (tcp, from, to, flag) = (tcp.to_owned(), from.to_owned(), to.to_owned(), stop.clone());
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                // The router's rates count what passes through it: a direct link
                // between the two would keep the traffic out of the dashboard.
                let peer = lanmesh::Peer::builder(from.as_str())
                    .router(tcp)
                    .direct(false)
                    .connect()
                    .await
                    .unwrap();
                let mut i = 0u64;
                while !flag.load(Ordering::Relaxed) {
                    i += 1;
                    peer.send_text_acked(&to, &format!("reading {i}"))
                        .await
                        .unwrap();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                peer.close().await;
            });
        });
        Traffic {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn two_browsers_at_once_each_with_its_own_name_and_live_rates() {
    if !webdriver::available() {
        return;
    }
    let (_router, tcp, http) = gateway_router();

    // The first browser is `dashboard`; a second one (another profile, so another key)
    // is refused that name and takes `dashboard-XXXX` from its own key, at once.
    let (first, first_name) = dashboard(&http);
    assert_eq!(first_name, "dashboard");
    let (second, second_name) = dashboard(&http);
    assert_eq!(second_name, format!("dashboard-{}", key_tag(&second)));

    // Both stay connected, and each sees the other.
    for (b, other) in [(&first, &second_name), (&second, &first_name)] {
        b.wait_for(
            "the other dashboard in the table",
            &format!("return document.getElementById('peers').textContent.includes('{other}');"),
        );
        assert_eq!(b.eval(CONNECTED), Value::Bool(true));
    }

    // Per-peer rates while a native peer sends ~5 messages a second to a listener.
    let listener = Proc::spawn(&["listen", "--router", &tcp, "--name", "L"]);
    listener.wait_stderr("listening as");
    let traffic = Traffic::start(&tcp, "S", "L");
    for b in [&first, &second] {
        wait_rates(b, "S", "S's Sent/s", |sent, _| sent >= 2.0);
        wait_rates(b, "L", "L's Recv/s", |_, recv| recv >= 2.0);
    }
    drop(traffic);
    wait_rates(&first, "L", "L's Recv/s to fall back to 0", |_, recv| {
        recv == 0.0
    });

    // A loop of `lanmesh send`, each a session of its own that lives a moment: its name
    // is in the table only now and then, yet has a rate whenever it is.
    let stop = Arc::new(AtomicBool::new(false));
    let sends = {
        let (tcp, stop) = (tcp.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 400 {
                n += 1;
                let o = run(&["send", "--router", &tcp, "--name", "loop", "L", "tick"]);
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            }
        })
    };
    wait_rates(&first, "loop", "the sending loop's Sent/s", |sent, _| {
        sent > 0.0
    });
    wait_rates(&first, "L", "L's Recv/s from the loop", |_, recv| {
        recv > 0.0
    });
    stop.store(true, Ordering::Relaxed);
    sends.join().unwrap();

    // `lanmesh send dashboard …` reaches the first browser, and the second by its name.
    for (b, name) in [(&first, &first_name), (&second, &second_name)] {
        let text = format!("hello {name}");
        let o = run(&[
            "send", "--router", &tcp, "--name", "laptop", "--ack", name, &text,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        b.wait_for(
            "the message in the log",
            &format!("return document.getElementById('log').textContent.includes('{text}');"),
        );
    }

    // Reloaded, each browser takes its own name again.
    for (b, name) in [(&first, &first_name), (&second, &second_name)] {
        b.goto(&format!("{http}/"));
        b.wait_for("the dashboard to reconnect", CONNECTED);
        assert_eq!(
            b.eval("return window.lanmeshPeer.name;"),
            Value::from(name.as_str())
        );
    }
}

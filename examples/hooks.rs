//! Lifecycle hooks on both sides: a router that keeps a guest book ([`RouterHooks`]) and a
//! `greeter` peer with a custom handler ([`Hooks`]) that welcomes newcomers, echoes what it
//! is told, answers `uptime?` and says goodbye. A `visitor` exercises it, then everything
//! shuts down, so the example ends by itself.
//!
//! ```text
//! cargo run --example hooks                                   # a router of its own, on loopback
//! LANMESH_ROUTER=192.168.1.10:7400 cargo run --example hooks  # an existing router (its hooks are its own)
//! ```
#![allow(clippy::print_stdout)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use bytes::Bytes;
use lanmesh::proto::{Name, PeerInfo};
use lanmesh::{ClientError, Hooks, Message, Peer, RouterHandle, RouterHooks};

/// Router side: writes down who came and went (tinyproto's `conn_init`/`conn_shutdown`).
#[derive(Default)]
struct GuestBook {
    entries: Mutex<Vec<String>>,
}

impl GuestBook {
    fn write(&self, line: String) {
        println!("[router]  {line}");
        if let Ok(mut e) = self.entries.lock() {
            e.push(line);
        }
    }
}

impl RouterHooks for GuestBook {
    fn on_start(&self, router: &RouterHandle) {
        self.write(format!("up on {:?}", router.local_addrs()));
    }
    fn on_peer_joined(&self, peer: &PeerInfo) {
        self.write(format!(
            "{} joined ({}, {})",
            peer.name, peer.transport, peer.cipher
        ));
    }
    fn on_peer_left(&self, name: &Name) {
        self.write(format!("{name} left"));
    }
    fn on_shutdown(&self) {
        self.write("shut down".into());
    }
}

/// Peer side: the custom handler (tinyproto's `pre_loop`/`transmission_received`/
/// `post_loop`). State lives in `&mut self`; no locks needed.
struct Greeter {
    started: Instant,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
    echoed: usize,
    goodbyes: Vec<String>,
}

impl Hooks for Greeter {
    async fn on_join(&mut self, peer: &Peer) {
        println!("[greeter] in the mesh with {} peer(s)", peer.peers().len());
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(());
        }
    }

    async fn on_peer_joined(&mut self, peer: &Peer, info: PeerInfo) {
        let welcome = format!("welcome, {}! ask me \"uptime?\"", info.name);
        if let Err(e) = peer.send_text(info.name.as_str(), &welcome).await {
            println!("[greeter] could not welcome {}: {e}", info.name);
        }
    }

    async fn on_message(&mut self, peer: &Peer, msg: Message) {
        let text = msg.text().unwrap_or("<binary>").to_owned();
        println!("[greeter] {} says {text:?}", msg.from);
        self.echoed += 1;
        let _ = peer
            .send_text(msg.from.as_str(), &text.to_uppercase())
            .await;
    }

    async fn on_request(&mut self, _: &Peer, request: Message) -> Option<Bytes> {
        match &request.data[..] {
            b"uptime?" => {
                let ms = self.started.elapsed().as_millis();
                Some(Bytes::from(format!("up {ms} ms")))
            }
            // `None`: the asker gets `NoResponder` at once.
            _ => None,
        }
    }

    async fn on_peer_left(&mut self, _: &Peer, name: Name) {
        println!("[greeter] goodbye, {name}");
        self.goodbyes.push(name.to_string());
    }

    async fn on_leave(&mut self, _: &Peer, reason: &str) {
        println!(
            "[greeter] leaving ({reason}); echoed {} message(s)",
            self.echoed
        );
    }
}

#[actix_rt::main]
#[allow(dead_code)] // the tests call `demo` instead
pub(crate) async fn main() -> anyhow::Result<()> {
    demo().await
}

/// Runs the whole story; fails if any step does not happen within its time.
pub(crate) async fn demo() -> anyhow::Result<()> {
    let wait = Duration::from_secs(5);
    // Loopback only unless a router address is given: this example never touches the LAN.
    let book = Arc::new(GuestBook::default());
    let own = match std::env::var("LANMESH_ROUTER").ok() {
        Some(_) => None,
        None => Some(
            lanmesh::Router::builder()
                .listen("127.0.0.1:0")
                .mdns(false)
                .hooks(Arc::clone(&book))
                .start()
                .await?,
        ),
    };
    let at = match &own {
        Some(r) => r.local_addrs()[0].to_string(),
        None => std::env::var("LANMESH_ROUTER")?,
    };

    let greeter = Peer::builder("greeter")
        .router(at.clone())
        .connect()
        .await?;
    let (ready, joined) = tokio::sync::oneshot::channel();
    let running = actix_rt::spawn({
        let greeter = greeter.clone();
        let hooks = Greeter {
            started: Instant::now(),
            ready: Some(ready),
            echoed: 0,
            goodbyes: Vec::new(),
        };
        async move { greeter.run(hooks).await }
    });
    tokio::time::timeout(wait, joined).await??;

    let visitor = Peer::builder("visitor").router(at).connect().await?;
    // Periodic work (tinyproto's `loop_pass`) is a task beside the hooks, not a poll.
    let ticker = actix_rt::spawn({
        let greeter = greeter.clone();
        async move {
            let mut every = tokio::time::interval(Duration::from_millis(100));
            for n in 1..=3 {
                every.tick().await;
                let _ = greeter.broadcast_text(&format!("tick {n}")).await;
            }
        }
    });
    let mut ticks = 0;
    // The next message from the greeter that is not a tick.
    let mut next = async || -> anyhow::Result<String> {
        loop {
            let m = visitor
                .recv_timeout(wait)
                .await?
                .context("the greeter went quiet")?;
            let text = m.text().unwrap_or_default().to_owned();
            if m.is_broadcast() && text.starts_with("tick") {
                ticks += 1;
                continue;
            }
            return Ok(text);
        }
    };
    let welcome = next().await?;
    println!("[visitor] {welcome}");
    ensure!(welcome.starts_with("welcome, visitor!"), "{welcome}");
    visitor.send_text("greeter", "hello there").await?;
    let echo = next().await?;
    println!("[visitor] {echo}");
    ensure!(echo == "HELLO THERE", "{echo}");

    let uptime = visitor.request("greeter", "uptime?", wait).await?;
    println!("[visitor] {}", uptime.text().unwrap_or_default());
    match visitor.request("greeter", "weather?", wait).await {
        Err(ClientError::NoResponder { .. }) => println!("[visitor] no answer to weather?"),
        other => anyhow::bail!("expected NoResponder, got {other:?}"),
    }
    tokio::time::timeout(wait, ticker).await??;
    while ticks < 3 {
        let m = visitor
            .recv_timeout(wait)
            .await?
            .context("a tick is missing")?;
        ensure!(m.is_broadcast(), "unexpected {m:?}");
        ticks += 1;
    }
    visitor.close().await;

    // Wait for the greeter to see the visitor go, then stop it; `run` hands the handler back.
    let mut events = greeter.peer_events();
    let already_gone = !greeter.peers().iter().any(|p| p.name.as_str() == "visitor");
    if !already_gone {
        tokio::time::timeout(wait, events.recv()).await??;
    }
    greeter.close().await;
    let greeter_hooks = tokio::time::timeout(wait, running).await??;
    ensure!(
        greeter_hooks.goodbyes == ["visitor"],
        "{:?}",
        greeter_hooks.goodbyes
    );

    if let Some(router) = own {
        router.shutdown().await;
        let entries = book.entries.lock().map(|e| e.clone()).unwrap_or_default();
        for expected in [
            "visitor joined (tcp, chacha20poly1305)",
            "visitor left",
            "shut down",
        ] {
            ensure!(
                entries.iter().any(|e| e == expected),
                "{expected:?} missing from {entries:?}"
            );
        }
        ensure!(
            entries.last().map(String::as_str) == Some("shut down"),
            "{entries:?}"
        );
    }
    Ok(())
}

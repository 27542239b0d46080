//! The rows of the README's migration table that no other test covers: calls of
//! UltraSockets, serpy, RUDP and tinyproto and their lanmesh equivalents, on 127.0.0.1.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{addr, builder, eventually, names, peer, router, start};
use lanmesh::{ClientError, Hooks, Message, Peer};

/// UltraSockets `client.get(num)` / `client.get("all")`, serpy's `for data in conn`: the
/// oldest waiting messages, each with its sender and serial number, without waiting.
#[actix_rt::test]
async fn get_n_takes_the_oldest_and_get_all_the_rest() {
    let r = start(router()).await;
    let a = peer(&r, "A").await;
    let b = peer(&r, "B").await;
    assert!(
        b.get(3).is_empty(),
        "nothing waiting: an empty batch, at once"
    );
    let mut ids = Vec::new();
    for i in 0..5u8 {
        // Acked: once it returns, the message is in B's inbox.
        ids.push(a.send_acked("B", vec![i]).await.unwrap());
    }
    assert_eq!(b.pending(), 5);
    let first = b.get(2);
    assert_eq!(
        first.iter().map(|m| (m.data[0], m.id)).collect::<Vec<_>>(),
        [(0, ids[0]), (1, ids[1])],
        "oldest first, with the sender's serial numbers"
    );
    assert!(first.iter().all(|m| m.from.as_str() == "A"));
    let rest = b.get_all();
    assert_eq!(
        rest.iter().map(|m| m.data[0]).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    assert_eq!(b.pending(), 0);
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
}

/// UltraSockets `client.terminate()`: the connection is dropped at once; the others see
/// the peer leave, and sending to it fails clearly.
#[actix_rt::test]
async fn terminate_drops_the_connection_at_once() {
    let r = start(router()).await;
    let a = peer(&r, "A").await;
    let b = builder(&r, "B").reconnect(false).connect().await.unwrap();
    eventually("A sees B", Duration::from_secs(5), || {
        names(&a).contains(&"B".to_owned())
    })
    .await;
    b.terminate();
    eventually("A sees B leave", Duration::from_secs(5), || {
        !names(&a).contains(&"B".to_owned())
    })
    .await;
    assert!(
        b.recv().await.is_err(),
        "a terminated peer receives nothing"
    );
    assert!(b.is_closed());
    assert!(b.send("A", &b"late"[..]).await.is_err());
    let err = a.send_acked("B", &b"still there?"[..]).await.unwrap_err();
    assert!(matches!(err, ClientError::UnknownPeer { .. }), "{err:?}");
}

/// tinyproto's `TinyProtoConnection` echo handler, as a blocking script: hooks driven by
/// `blocking::Peer::run`; `QUIT` ends the connection (tinyproto: `self.shutdown = True`).
struct Echo {
    echoed: usize,
}

impl Hooks for Echo {
    async fn on_message(&mut self, peer: &Peer, msg: Message) {
        let text = msg.text().unwrap_or_default();
        if text == "QUIT" {
            peer.close().await;
            return;
        }
        self.echoed += 1;
        let echo = format!("Echo back: {text}");
        peer.send_text(msg.from.as_str(), &echo).await.unwrap();
    }
}

#[actix_rt::test]
async fn a_tinyproto_style_handler_runs_in_a_blocking_script() {
    let r = start(router()).await;
    let at = addr(&r).to_string();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    // The script: a thread of its own, no async in sight.
    let script = std::thread::spawn(move || {
        let echo = lanmesh::blocking::Peer::connect("echo", &at).unwrap();
        ready_tx.send(()).unwrap();
        echo.run(Echo { echoed: 0 }).echoed
    });
    ready_rx.await.unwrap();
    let client = peer(&r, "client").await;
    for text in ["hello", "again"] {
        client.send_text("echo", text).await.unwrap();
        let m = client
            .recv_timeout(Duration::from_secs(5))
            .await
            .unwrap()
            .expect("an echo");
        assert_eq!(m.text(), Some(format!("Echo back: {text}").as_str()));
    }
    client.send_text("echo", "QUIT").await.unwrap();
    let echoed = tokio::task::spawn_blocking(move || script.join().unwrap())
        .await
        .unwrap();
    assert_eq!(
        echoed, 2,
        "run returns the handler once the connection is closed"
    );
    eventually("echo leaves", Duration::from_secs(5), || {
        !names(&client).contains(&"echo".to_owned())
    })
    .await;
}

//! The whole `MeshPeer` shell in headless Chromium against an in-memory router: the
//! page's `WebSocket` is replaced by a fake that records what the peer sends and lets
//! the test deliver the router's messages, which a `lanmesh_proto::Responder` makes.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use js_sys::{Array, Function, Promise, Reflect, Uint8Array};
use lanmesh_proto::frame::flags;
use lanmesh_proto::{
    Answer, Cipher, Compression, ErrorCode, Established, Frame, Framing, HandshakeConfig, Identity,
    Message, NackReason, Name, PeerInfo, Responder, Transport,
};
use lanmesh_wasm::MeshPeer;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const FAKE_WEBSOCKET: &str = r#"
class FakeWebSocket {
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.binaryType = 'blob';
    this.bufferedAmount = 0;
    this.sent = [];
    this.closedWith = null;
    this.onopen = this.onmessage = this.onerror = this.onclose = null;
    globalThis.fakeSockets.push(this);
    setTimeout(() => {
      this.readyState = 1;
      if (this.onopen) this.onopen(new Event('open'));
    }, 0);
  }
  send(data) {
    if (this.readyState !== 1) throw new DOMException('not open', 'InvalidStateError');
    this.sent.push(new Uint8Array(data).slice());
  }
  close(code) {
    this.readyState = 3;
    this.closedWith = code === undefined ? 'none' : code;
  }
  deliver(bytes) {
    if (this.onmessage) this.onmessage(new MessageEvent('message', { data: bytes.slice().buffer }));
  }
  drop(code) {
    this.readyState = 3;
    if (this.onclose) this.onclose(new CloseEvent('close', { code, reason: '' }));
  }
  take() {
    const sent = this.sent;
    this.sent = [];
    return sent;
  }
}
FakeWebSocket.CONNECTING = 0;
FakeWebSocket.OPEN = 1;
FakeWebSocket.CLOSING = 2;
FakeWebSocket.CLOSED = 3;
globalThis.fakeSockets = globalThis.fakeSockets || [];
globalThis.WebSocket = FakeWebSocket;
"#;

fn install_fake_websocket() {
    Function::new_no_args(FAKE_WEBSOCKET)
        .call0(&JsValue::UNDEFINED)
        .unwrap();
}

fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap()
}

fn call(obj: &JsValue, method: &str, args: &[JsValue]) -> JsValue {
    let f: Function = get(obj, method).dyn_into().unwrap();
    f.apply(obj, &args.iter().collect()).unwrap()
}

async fn sleep(ms: i32) {
    let p = Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .unwrap();
    });
    JsFuture::from(p).await.unwrap();
}

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

fn info(n: &str) -> PeerInfo {
    PeerInfo {
        name: name(n),
        transport: Transport::Ws,
        cipher: Cipher::ChaCha20Poly1305,
        compression: Compression::Snappy,
        key: [0xab; 32],
        addr: "127.0.0.1:1".into(),
        joined_ms: 1,
        direct: String::new(),
        incarnation: 0,
    }
}

fn message(e: JsValue) -> String {
    e.dyn_into::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .unwrap_or_else(|e| format!("not an Error: {e:?}"))
}

/// The router end: the fake socket plus the protocol state.
struct Router {
    socket: JsValue,
    conn: Option<Established>,
}

impl Router {
    /// Waits for the newest fake socket to have sent something; returns it all.
    async fn receive_raw(&self) -> Vec<Vec<u8>> {
        for _ in 0..200 {
            let sent: Array = call(&self.socket, "take", &[]).dyn_into().unwrap();
            if sent.length() > 0 {
                return sent
                    .iter()
                    .map(|v| v.dyn_into::<Uint8Array>().unwrap().to_vec())
                    .collect();
            }
            sleep(5).await;
        }
        panic!("the peer sent nothing")
    }

    async fn receive(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        for record in self.receive_raw().await {
            let conn = &mut self.conn.as_mut().unwrap().connection;
            frames.extend(conn.open(&record).unwrap().map(|f| f.unwrap()));
        }
        frames
    }

    fn deliver_raw(&self, bytes: &[u8]) {
        call(&self.socket, "deliver", &[Uint8Array::from(bytes).into()]);
    }

    fn send(&mut self, frames: &[Frame]) {
        let conn = &mut self.conn.as_mut().unwrap().connection;
        for f in frames {
            conn.send(f).unwrap();
        }
        while let Some(record) = conn.poll_transmit().unwrap() {
            call(
                &self.socket,
                "deliver",
                &[Uint8Array::from(&record[..]).into()],
            );
        }
    }
}

type Slot = Rc<RefCell<Option<Result<MeshPeer, JsValue>>>>;

/// Starts `MeshPeer.connect` and runs the router's side of the handshake.
async fn handshake(peer_name: &str) -> (Slot, Router) {
    install_fake_websocket();
    let slot: Slot = Rc::default();
    let out = slot.clone();
    let peer_name = peer_name.to_owned();
    wasm_bindgen_futures::spawn_local(async move {
        let result =
            MeshPeer::connect("ws://router.test/mesh".into(), peer_name, JsValue::NULL).await;
        *out.borrow_mut() = Some(result);
    });
    sleep(0).await;
    let sockets: Array = get(&js_sys::global(), "fakeSockets").dyn_into().unwrap();
    let socket = sockets.get(sockets.length() - 1);
    assert_eq!(get(&socket, "binaryType"), "arraybuffer");
    let mut router = Router { socket, conn: None };

    let mut config = HandshakeConfig::new(Identity::generate().unwrap(), "lanmesh");
    config.framing = Framing::Message;
    let mut responder = Responder::new(&config).unwrap();
    let msg1 = router.receive_raw().await;
    assert_eq!(msg1.len(), 1, "message 1 is one WebSocket message");
    let Answer::Accept(msg2) = responder.read_offer(&msg1[0]).unwrap() else {
        panic!("refused")
    };
    router.deliver_raw(&msg2);
    let msg3 = router.receive_raw().await;
    router.conn = Some(responder.read_confirm(&msg3[0]).unwrap());
    (slot, router)
}

async fn settled(slot: &Slot) -> Result<MeshPeer, JsValue> {
    for _ in 0..200 {
        if let Some(result) = slot.borrow_mut().take() {
            return result;
        }
        sleep(5).await;
    }
    panic!("connect did not settle")
}

type Calls = Rc<RefCell<Vec<Vec<JsValue>>>>;
type Callback = Closure<dyn FnMut(JsValue, JsValue, JsValue)>;

/// Records the arguments of every call of a callback.
fn recorder() -> (Calls, Callback) {
    let calls: Calls = Rc::default();
    let c = calls.clone();
    let closure = Closure::new(move |a: JsValue, b: JsValue, d: JsValue| {
        c.borrow_mut().push(vec![a, b, d]);
    });
    (calls, closure)
}

fn function(c: &Callback) -> Option<Function> {
    Some(c.as_ref().unchecked_ref::<Function>().clone())
}

fn strings(v: &JsValue) -> Vec<String> {
    Array::from(v)
        .iter()
        .map(|s| s.as_string().unwrap())
        .collect()
}

#[wasm_bindgen_test]
async fn mesh_peer_speaks_the_protocol_over_its_websocket() {
    let (slot, mut router) = handshake("web-1").await;
    // Welcome, the list and a first message in one record: the message arrives before
    // `connect` has even returned, and waits for `onmessage`.
    router.send(&[
        Frame::Welcome {
            name: name("web-1"),
        },
        Frame::PeerList {
            last: true,
            peers: vec![info("web-1"), info("laptop")],
        },
        Frame::Deliver(Message {
            peer: name("laptop"),
            id: 7,
            flags: flags::TEXT | flags::ACK_REQUESTED,
            chunk: None,
            prev: None,
            payload: Bytes::from_static(b"hi"),
        }),
    ]);
    let peer = settled(&slot).await.unwrap();
    assert_eq!(peer.name(), "web-1");
    assert_eq!(strings(&peer.peers()), ["laptop", "web-1"]);
    let laptop = peer.peer_info().get(0);
    assert_eq!(get(&laptop, "name"), "laptop");
    assert_eq!(get(&laptop, "transport"), "ws");
    assert_eq!(get(&laptop, "cipher"), "chacha20poly1305");
    assert_eq!(get(&laptop, "key"), "ab".repeat(32).as_str());
    assert_eq!(
        router.receive().await,
        vec![Frame::Ack {
            peer: name("laptop"),
            id: 7
        }]
    );

    let (messages, on_message) = recorder();
    peer.set_onmessage(function(&on_message));
    let (peer_lists, on_peers) = recorder();
    peer.set_onpeers(function(&on_peers));
    sleep(0).await;
    {
        let got = messages.borrow();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0][0], "laptop");
        assert_eq!(got[0][1], "hi");
        assert_eq!(got[0][2], 7);
    }
    assert_eq!(
        peer_lists.borrow().len(),
        1,
        "onpeers gets the list when set"
    );
    assert_eq!(strings(&peer_lists.borrow()[0][0]), ["laptop", "web-1"]);

    // Binary delivery.
    router.send(&[Frame::Deliver(Message {
        peer: name("laptop"),
        id: 8,
        flags: 0,
        chunk: None,
        prev: None,
        payload: Bytes::from_static(&[1, 2, 3]),
    })]);
    {
        let got = messages.borrow();
        assert_eq!(got.len(), 2);
        let data = got[1][1].dyn_ref::<Uint8Array>().unwrap().to_vec();
        assert_eq!(data, [1, 2, 3]);
    }

    // Text and binary sends.
    JsFuture::from(peer.send("laptop", "hello".into()))
        .await
        .unwrap();
    let frames = router.receive().await;
    let [Frame::Send(m)] = &frames[..] else {
        panic!("{frames:?}")
    };
    assert_eq!(
        (m.id, m.flags, &m.payload[..]),
        (1, flags::TEXT, &b"hello"[..])
    );
    let bytes: JsValue = Uint8Array::from(&[9u8, 8, 7][..]).into();
    JsFuture::from(peer.send("laptop", bytes.clone()))
        .await
        .unwrap();
    let frames = router.receive().await;
    assert!(matches!(&frames[..], [Frame::Send(m)] if m.id == 2 && m.flags == 0));
    let err = JsFuture::from(peer.send("laptop", JsValue::from(5)))
        .await
        .unwrap_err();
    assert!(err.is_instance_of::<js_sys::TypeError>());

    // sendAcked: a nack for an unknown peer, then an ack.
    let unknown = JsFuture::from(peer.send_acked("x", "y".into()));
    let frames = router.receive().await;
    assert!(
        matches!(&frames[..], [Frame::Send(m)] if m.id == 3 && m.flags & flags::ACK_REQUESTED != 0)
    );
    router.send(&[Frame::Nack {
        peer: name("x"),
        id: 3,
        reason: NackReason::UnknownPeer,
    }]);
    assert_eq!(message(unknown.await.unwrap_err()), r#"unknown peer "x""#);
    let acked = JsFuture::from(peer.send_acked("laptop", bytes.clone()));
    router.receive().await;
    router.send(&[Frame::Ack {
        peer: name("laptop"),
        id: 4,
    }]);
    acked.await.unwrap();

    // Membership changes and the router's ping.
    router.send(&[Frame::PeerJoined(info("phone")), Frame::Ping(5)]);
    assert_eq!(
        strings(&peer_lists.borrow()[1][0]),
        ["laptop", "phone", "web-1"]
    );
    assert_eq!(router.receive().await, vec![Frame::Pong(5)]);

    // The socket drops: the peer reconnects on a new socket, offering its resume token,
    // and what waits for an ack goes again once welcomed.
    let (statuses, on_status) = recorder();
    peer.set_onstatus(function(&on_status));
    let pending = JsFuture::from(peer.send_acked("laptop", bytes));
    let first = router.receive().await;
    let [Frame::Send(sent)] = &first[..] else {
        panic!("{first:?}")
    };
    let id = sent.id;
    let before: Array = get(&js_sys::global(), "fakeSockets").dyn_into().unwrap();
    call(&router.socket, "drop", &[JsValue::from(1006)]);
    assert_eq!(statuses.borrow()[0][0], "reconnecting");
    let err = JsFuture::from(peer.send("laptop", "while away".into()))
        .await
        .unwrap_err();
    assert_eq!(message(err), "disconnected: not connected");
    let mut router = reconnected(before.length(), "web-1").await;
    router.send(&[
        Frame::Welcome {
            name: name("web-1"),
        },
        Frame::PeerList {
            last: true,
            peers: vec![info("web-1"), info("laptop")],
        },
    ]);
    let again = router.receive().await;
    assert!(
        matches!(&again[..], [Frame::Send(m)] if m.id == id && m.prev == Some(4)),
        "the unacked message goes again in its stream: {again:?}"
    );
    router.send(&[Frame::Ack {
        peer: name("laptop"),
        id,
    }]);
    pending.await.unwrap();
    assert_eq!(statuses.borrow().last().unwrap()[0], "connected");
    assert_eq!(peer.status(), "connected");
}

/// Waits for the peer's next socket (beyond the first `known`) and runs the router's
/// side of the handshake on it; the offer carries the same resume token as before.
async fn reconnected(known: u32, peer_name: &str) -> Router {
    let sockets: Array = get(&js_sys::global(), "fakeSockets").dyn_into().unwrap();
    for _ in 0..400 {
        if sockets.length() > known {
            break;
        }
        sleep(5).await;
    }
    assert!(sockets.length() > known, "the peer never dialled again");
    let socket = sockets.get(sockets.length() - 1);
    let mut router = Router { socket, conn: None };
    let mut config = HandshakeConfig::new(Identity::generate().unwrap(), "lanmesh");
    config.framing = Framing::Message;
    let mut responder = Responder::new(&config).unwrap();
    let msg1 = router.receive_raw().await;
    let Answer::Accept(msg2) = responder.read_offer(&msg1[0]).unwrap() else {
        panic!("refused")
    };
    let offer = responder.offer().unwrap();
    assert_eq!(offer.name, Some(name(peer_name)));
    assert_eq!(offer.resume.len(), 16, "a resume token is offered");
    router.deliver_raw(&msg2);
    let msg3 = router.receive_raw().await;
    router.conn = Some(responder.read_confirm(&msg3[0]).unwrap());
    router
}

#[wasm_bindgen_test]
async fn close_says_goodbye_and_a_refusal_rejects_connect() {
    let (slot, mut router) = handshake("web-2").await;
    router.send(&[
        Frame::Welcome {
            name: name("web-2"),
        },
        Frame::PeerList {
            last: true,
            peers: vec![info("web-2")],
        },
    ]);
    let peer = settled(&slot).await.unwrap();
    let (closes, on_close) = recorder();
    peer.set_onclose(function(&on_close));
    peer.close();
    assert_eq!(router.receive().await, vec![Frame::Close]);
    assert!(
        closes.borrow().is_empty(),
        "closed only once the router answers"
    );
    router.send(&[Frame::Close]);
    assert_eq!(get(&router.socket, "closedWith"), 1000);
    assert_eq!(closes.borrow()[0][0], "disconnected: closed");
    drop(peer);

    let (slot, mut router) = handshake("web-1").await;
    router.send(&[Frame::Error {
        code: ErrorCode::NameTaken,
        text: r#"name "web-1" is taken"#.into(),
    }]);
    let err = settled(&slot).await.err().unwrap();
    assert_eq!(message(err), r#"router refused: name "web-1" is taken"#);
    assert_eq!(get(&router.socket, "closedWith"), 1000);
}

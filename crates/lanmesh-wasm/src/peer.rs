//! `MeshPeer`: the wasm-bindgen shell around [`Client`]. It only moves bytes and time.
//!
//! * One `WebSocket` (binary, `arraybuffer`): each received message goes to
//!   [`Client::feed`]; everything [`Client::poll_transmit`] hands out is sent as one
//!   binary message.
//! * One `setTimeout`, re-armed to [`Client::poll_timeout`] after every step.
//! * The JavaScript callbacks and promises, settled from the client's events.
//!
//! State lives in `Rc<RefCell<Inner>>`; the closures registered with the browser hold a
//! `Weak` to it and are owned by `Inner`, so dropping the peer drops them. No `RefCell`
//! borrow is held while JavaScript runs: each step collects the calls to make, releases
//! the borrow, then makes them, so a callback may call back into the peer.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};

use bytes::{Bytes, BytesMut};
use js_sys::{Array, ArrayBuffer, Function, Object, Promise, Reflect, Uint8Array};
use lanmesh_proto::{Destination, Framing, HandshakeConfig, Identity, Name, ProtoError};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use crate::client::{Client, ClientConfig, DEFAULT_MESH, Event, Incoming, Payload};
use crate::error::ClientError;
use crate::keys::{IDENTITY_STORAGE_KEY, identity_from_text, identity_to_text, mesh_key_from_text};

/// `send` resolves once the socket's send buffer is back under this many bytes, so a
/// fast sender waits instead of growing the browser's buffer without bound.
const MAX_BUFFERED: u32 = 8 * 1024 * 1024;
/// Messages kept for an `onmessage` handler that is not set yet (they arrive with the
/// member list, before `connect` has even returned the peer).
const MAX_BACKLOG: usize = 1024;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Options of `MeshPeer.connect`. */
export interface MeshPeerOptions {
  /** The mesh key as 64 hex digits (as `lanmesh keygen` prints it), or null. */
  meshKey?: string | null;
  /** Offer unencrypted records (used only if the router allows them too). */
  plaintext?: boolean;
  /** The mesh to join (default "lanmesh"). */
  mesh?: string;
}

/** A member of the mesh, as `peer.peerInfo()` lists it. */
export interface MeshPeerInfo {
  name: string;
  transport: string;
  cipher: string;
  compression: string;
  /** Static public key, hex. */
  key: string;
}
"#;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(callback: &Function, ms: i32) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
    #[wasm_bindgen(js_name = queueMicrotask)]
    fn queue_microtask(callback: &Function);
}

fn now() -> u64 {
    js_sys::Date::now() as u64
}

fn js_error(message: &str) -> JsValue {
    js_sys::Error::new(message).into()
}

fn describe(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "unknown error".into())
}

/// The identity kept in `localStorage` under [`IDENTITY_STORAGE_KEY`], made and stored on
/// first use; a fresh one each time where there is no `localStorage` (a worker, a
/// sandboxed frame).
pub fn stored_identity() -> Result<Identity, ClientError> {
    let storage = web_sys::window().and_then(|w| w.local_storage().ok().flatten());
    if let Some(identity) = storage
        .as_ref()
        .and_then(|s| s.get_item(IDENTITY_STORAGE_KEY).ok().flatten())
        .and_then(|text| identity_from_text(&text))
    {
        return Ok(identity);
    }
    let identity = Identity::generate().map_err(ClientError::Handshake)?;
    if let Some(storage) = storage {
        // Private browsing may refuse to store: the key then lives as long as the page.
        let _ = storage.set_item(IDENTITY_STORAGE_KEY, &identity_to_text(&identity));
    }
    Ok(identity)
}

/// A JavaScript function to call once no borrow is held.
struct Call {
    f: Function,
    args: Array,
}

impl Call {
    fn new(f: &Function, args: &[JsValue]) -> Self {
        Self {
            f: f.clone(),
            args: args.iter().collect(),
        }
    }
}

fn run(calls: Vec<Call>) {
    for call in calls {
        if let Err(e) = call.f.apply(&JsValue::UNDEFINED, &call.args) {
            web_sys::console::error_2(&"lanmesh: a MeshPeer callback threw".into(), &e);
        }
    }
}

/// The two ends of a promise.
struct Settle {
    resolve: Function,
    reject: Function,
}

impl Settle {
    /// A new promise and its ends.
    fn promise() -> (Promise, Option<Self>) {
        let mut settle = None;
        let promise = Promise::new(&mut |resolve, reject| {
            settle = Some(Self { resolve, reject });
        });
        (promise, settle)
    }
}

/// The closures the browser calls. Owned here; detached from the socket on close and
/// dropped with the peer.
struct Handlers {
    open: Closure<dyn FnMut(web_sys::Event)>,
    message: Closure<dyn FnMut(MessageEvent)>,
    error: Closure<dyn FnMut(web_sys::Event)>,
    close: Closure<dyn FnMut(CloseEvent)>,
    timer: Closure<dyn FnMut()>,
    drain: Closure<dyn FnMut()>,
}

impl Handlers {
    fn new(weak: &Weak<RefCell<Inner>>) -> Self {
        let w = weak.clone();
        let open = Closure::new(move |_: web_sys::Event| {
            step(&w, |inner| {
                inner.opened = true;
                Vec::new()
            });
        });
        let w = weak.clone();
        let message = Closure::new(move |e: MessageEvent| {
            let data = e.data();
            step(&w, |inner| match data.dyn_ref::<ArrayBuffer>() {
                // Vec -> Bytes -> BytesMut moves the buffer: the record is decrypted
                // where it was copied out of the ArrayBuffer.
                Some(buf) => {
                    let record = BytesMut::from(Bytes::from(Uint8Array::new(buf).to_vec()));
                    inner.client.feed_owned(record, now())
                }
                None => inner
                    .client
                    .abort(ClientError::Protocol(ProtoError::Malformed {
                        what: "non-binary WebSocket message",
                    })),
            });
        });
        let w = weak.clone();
        let error = Closure::new(move |_: web_sys::Event| {
            // Browsers say nothing useful here; `close` follows with a code.
            step(&w, |inner| {
                inner.errored = true;
                Vec::new()
            });
        });
        let w = weak.clone();
        let close = Closure::new(move |e: CloseEvent| {
            step(&w, |inner| {
                let mut detail = format!("the WebSocket closed with code {}", e.code());
                let reason = e.reason();
                if !reason.is_empty() {
                    detail = format!("{detail} ({reason})");
                }
                if inner.opened {
                    inner.client.connection_lost(&detail)
                } else {
                    let detail = if inner.errored {
                        format!("the WebSocket could not be opened; {detail}")
                    } else {
                        detail
                    };
                    inner.client.abort(ClientError::Connect {
                        url: inner.url.clone(),
                        detail,
                    })
                }
            });
        });
        let w = weak.clone();
        let timer = Closure::new(move || {
            step(&w, |inner| {
                inner.timer = None;
                inner.client.handle_timeout(now())
            });
        });
        let w = weak.clone();
        let drain = Closure::new(move || {
            let Some(rc) = w.upgrade() else { return };
            let calls = {
                let mut inner = rc.borrow_mut();
                inner.drain_queued = false;
                inner.drain_calls()
            };
            run(calls);
        });
        Self {
            open,
            message,
            error,
            close,
            timer,
            drain,
        }
    }

    fn attach(&self, ws: &WebSocket) {
        ws.set_onopen(Some(self.open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(self.message.as_ref().unchecked_ref()));
        ws.set_onerror(Some(self.error.as_ref().unchecked_ref()));
        ws.set_onclose(Some(self.close.as_ref().unchecked_ref()));
    }
}

#[derive(Default)]
struct Callbacks {
    message: Option<Function>,
    peers: Option<Function>,
    close: Option<Function>,
}

struct Inner {
    client: Client,
    url: String,
    ws: WebSocket,
    opened: bool,
    errored: bool,
    handlers: Option<Handlers>,
    /// The armed `setTimeout`: its id and the deadline it is for.
    timer: Option<(JsValue, u64)>,
    on: Callbacks,
    connecting: Option<Settle>,
    acks: HashMap<u64, Settle>,
    backlog: VecDeque<Incoming>,
    /// `onpeers` has not seen the current list yet.
    peers_owed: bool,
    drain_queued: bool,
}

/// Runs one step on the peer behind `weak` (if it still exists), then settles what the
/// step's events call for with no borrow held.
fn step(weak: &Weak<RefCell<Inner>>, f: impl FnOnce(&mut Inner) -> Vec<Event>) {
    if let Some(rc) = weak.upgrade() {
        step_rc(&rc, f);
    }
}

fn step_rc(rc: &Rc<RefCell<Inner>>, f: impl FnOnce(&mut Inner) -> Vec<Event>) {
    let calls = {
        let mut inner = rc.borrow_mut();
        let events = f(&mut inner);
        inner.after(events)
    };
    run(calls);
}

fn names_array(client: &Client) -> Array {
    client
        .peers()
        .map(|p| JsValue::from_str(p.name.as_str()))
        .collect()
}

fn message_args(m: Incoming) -> [JsValue; 3] {
    let data = match m.data {
        Payload::Text(s) => JsValue::from_str(&s),
        Payload::Binary(b) => Uint8Array::from(&b[..]).into(),
    };
    [
        JsValue::from_str(m.from.as_str()),
        data,
        JsValue::from_f64(m.id as f64),
    ]
}

impl Inner {
    /// Sends what the client queued, then turns its events into calls.
    fn after(&mut self, mut events: Vec<Event>) -> Vec<Call> {
        events.extend(self.transmit());
        let mut calls = Vec::new();
        let mut peers_changed = false;
        for event in events {
            match event {
                Event::Connected => {
                    if let Some(s) = self.connecting.take() {
                        calls.push(Call::new(&s.resolve, &[]));
                    }
                }
                Event::Message(m) => match &self.on.message {
                    // Behind a backlog still being drained, a message waits its turn.
                    Some(f) if self.backlog.is_empty() => {
                        calls.push(Call::new(f, &message_args(m)));
                    }
                    _ if self.backlog.len() < MAX_BACKLOG => {
                        self.backlog.push_back(m);
                        if self.on.message.is_some() {
                            self.queue_drain();
                        }
                    }
                    _ => web_sys::console::warn_1(
                        &format!(
                            "lanmesh: no onmessage handler; message {} from {} dropped",
                            m.id, m.from
                        )
                        .into(),
                    ),
                },
                Event::PeersChanged => peers_changed = true,
                Event::Acked { id } => {
                    if let Some(s) = self.acks.remove(&id) {
                        calls.push(Call::new(&s.resolve, &[]));
                    }
                }
                Event::AckFailed { id, error } => {
                    if let Some(s) = self.acks.remove(&id) {
                        calls.push(Call::new(&s.reject, &[js_error(&error.to_string())]));
                    }
                }
                Event::Undelivered { to, id, reason } => {
                    web_sys::console::warn_1(
                        &format!("lanmesh: message {id} to {to} was not delivered: {reason:?}")
                            .into(),
                    );
                }
                Event::Closed { reason } => {
                    self.shutdown();
                    let error = js_error(&reason);
                    if let Some(s) = self.connecting.take() {
                        calls.push(Call::new(&s.reject, std::slice::from_ref(&error)));
                    }
                    for (_, s) in self.acks.drain() {
                        calls.push(Call::new(&s.reject, std::slice::from_ref(&error)));
                    }
                    if let Some(f) = &self.on.close {
                        calls.push(Call::new(f, &[JsValue::from_str(&reason)]));
                    }
                }
            }
        }
        if peers_changed && !self.client.is_closed() {
            match &self.on.peers {
                Some(f) => {
                    self.peers_owed = false;
                    calls.push(Call::new(f, &[names_array(&self.client).into()]));
                }
                None => self.peers_owed = true,
            }
        }
        self.rearm();
        calls
    }

    /// Hands the client's queued messages to the socket (message 1 waits for `open`).
    fn transmit(&mut self) -> Vec<Event> {
        if !self.opened {
            return Vec::new();
        }
        while let Some(message) = self.client.poll_transmit() {
            if let Err(e) = self.ws.send_with_u8_array(&message) {
                let detail = format!("the WebSocket refused data: {}", describe(&e));
                return self.client.connection_lost(&detail);
            }
        }
        Vec::new()
    }

    /// Points the one timer at the client's next deadline.
    fn rearm(&mut self) {
        let next = self.client.poll_timeout();
        if self.timer.as_ref().map(|(_, at)| *at) == next {
            return;
        }
        if let Some((id, _)) = self.timer.take() {
            clear_timeout(&id);
        }
        if let (Some(at), Some(handlers)) = (next, &self.handlers) {
            let delay = i32::try_from(at.saturating_sub(now())).unwrap_or(i32::MAX);
            let id = set_timeout(handlers.timer.as_ref().unchecked_ref(), delay);
            self.timer = Some((id, at));
        }
    }

    /// Calls owed to handlers set after the events happened.
    fn drain_calls(&mut self) -> Vec<Call> {
        let mut calls = Vec::new();
        if let Some(f) = &self.on.message {
            calls.extend(
                self.backlog
                    .drain(..)
                    .map(|m| Call::new(f, &message_args(m))),
            );
        }
        if let (true, Some(f)) = (self.peers_owed, &self.on.peers) {
            self.peers_owed = false;
            calls.push(Call::new(f, &[names_array(&self.client).into()]));
        }
        calls
    }

    fn queue_drain(&mut self) {
        if self.drain_queued {
            return;
        }
        if let Some(handlers) = &self.handlers {
            self.drain_queued = true;
            queue_microtask(handlers.drain.as_ref().unchecked_ref());
        }
    }

    /// Detaches from the socket, closes it and stops the timer. The closures stay owned
    /// here (one of them may be running right now) and go when the peer is dropped.
    fn shutdown(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onerror(None);
        self.ws.set_onclose(None);
        if matches!(
            self.ws.ready_state(),
            WebSocket::CONNECTING | WebSocket::OPEN
        ) {
            let _ = self.ws.close_with_code(1000);
        }
        if let Some((id, _)) = self.timer.take() {
            clear_timeout(&id);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Options {
    mesh_key: Option<[u8; 32]>,
    plaintext: bool,
    mesh: String,
}

fn options_from_js(v: &JsValue) -> Result<Options, ClientError> {
    let mut options = Options {
        mesh_key: None,
        plaintext: false,
        mesh: DEFAULT_MESH.to_owned(),
    };
    if v.is_undefined() || v.is_null() {
        return Ok(options);
    }
    if !v.is_object() {
        return Err(ClientError::Invalid("options must be an object".into()));
    }
    let get = |key: &str| {
        Reflect::get(v, &JsValue::from_str(key))
            .ok()
            .filter(|x| !x.is_undefined() && !x.is_null())
    };
    if let Some(key) = get("meshKey") {
        let text = key.as_string().ok_or_else(|| {
            ClientError::Invalid("meshKey must be a string of 64 hex digits or null".into())
        })?;
        options.mesh_key = Some(mesh_key_from_text(&text)?);
    }
    if let Some(plaintext) = get("plaintext") {
        options.plaintext = plaintext
            .as_bool()
            .ok_or_else(|| ClientError::Invalid("plaintext must be a boolean".into()))?;
    }
    if let Some(mesh) = get("mesh") {
        options.mesh = mesh
            .as_string()
            .ok_or_else(|| ClientError::Invalid("mesh must be a string".into()))?;
    }
    Ok(options)
}

fn parse_name(name: &str) -> Result<Name, ClientError> {
    Name::new(name).map_err(|e| ClientError::Invalid(format!("invalid peer name {name:?}: {e}")))
}

/// Turns `send`'s data into a payload: a string is text, bytes are binary.
pub(crate) fn payload_from_js(data: &JsValue) -> Result<Payload, JsValue> {
    if let Some(s) = data.as_string() {
        return Ok(Payload::Text(s));
    }
    if let Some(a) = data.dyn_ref::<Uint8Array>() {
        return Ok(Payload::Binary(Bytes::from(a.to_vec())));
    }
    if let Some(b) = data.dyn_ref::<ArrayBuffer>() {
        return Ok(Payload::Binary(Bytes::from(Uint8Array::new(b).to_vec())));
    }
    Err(js_sys::TypeError::new("data must be a string, a Uint8Array or an ArrayBuffer").into())
}

fn sleep(ms: i32) -> JsFuture {
    JsFuture::from(Promise::new(&mut |resolve, _| {
        set_timeout(&resolve, ms);
    }))
}

/// A member of a lanmesh mesh, in the browser: the same Noise handshake and frames as the
/// native peer, over a WebSocket to the router's gateway (`ws://host:7401/mesh`).
#[wasm_bindgen]
pub struct MeshPeer {
    inner: Rc<RefCell<Inner>>,
}

#[wasm_bindgen]
impl MeshPeer {
    /// Connects to the router at `url` (e.g. `ws://host:7401/mesh`) and joins the mesh as
    /// `name`. Resolves once welcomed with the member list; rejects with an `Error` when
    /// the socket fails, the router refuses (e.g. the name is taken), or the handshake
    /// fails or takes more than 10 s.
    pub async fn connect(
        url: String,
        name: String,
        #[wasm_bindgen(unchecked_optional_param_type = "MeshPeerOptions | null")] options: JsValue,
    ) -> Result<MeshPeer, JsValue> {
        let to_js = |e: ClientError| js_error(&e.to_string());
        let options = options_from_js(&options).map_err(to_js)?;
        let name = parse_name(&name).map_err(to_js)?;
        let identity = stored_identity().map_err(to_js)?;
        let mut handshake = HandshakeConfig::new(identity, options.mesh);
        handshake.mesh_key = options.mesh_key;
        handshake.allow_plaintext = options.plaintext;
        handshake.framing = Framing::Message;
        let client = Client::start(ClientConfig::new(name, handshake), now()).map_err(to_js)?;
        let ws = WebSocket::new(&url).map_err(|e| {
            to_js(ClientError::Connect {
                url: url.clone(),
                detail: describe(&e),
            })
        })?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let (ready, connecting) = Settle::promise();
        let inner = Rc::new(RefCell::new(Inner {
            client,
            url,
            ws,
            opened: false,
            errored: false,
            handlers: None,
            timer: None,
            on: Callbacks::default(),
            connecting,
            acks: HashMap::new(),
            backlog: VecDeque::new(),
            peers_owed: false,
            drain_queued: false,
        }));
        {
            let mut guard = inner.borrow_mut();
            let handlers = Handlers::new(&Rc::downgrade(&inner));
            handlers.attach(&guard.ws);
            guard.handlers = Some(handlers);
            guard.rearm();
        }
        JsFuture::from(ready).await?;
        Ok(MeshPeer { inner })
    }

    /// The name the router welcomed this peer under.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.inner.borrow().client.name().to_string()
    }

    /// `(from, data, id) => {}`: a message arrived; `data` is a string when it was sent
    /// as text, else a `Uint8Array`. Messages that came before it was set are delivered
    /// to it then.
    #[wasm_bindgen(
        getter,
        unchecked_return_type = "((from: string, data: string | Uint8Array, id: number) => void) | null"
    )]
    pub fn onmessage(&self) -> Option<Function> {
        self.inner.borrow().on.message.clone()
    }

    /// Sets `onmessage`.
    #[wasm_bindgen(setter)]
    pub fn set_onmessage(
        &self,
        #[wasm_bindgen(
            unchecked_param_type = "((from: string, data: string | Uint8Array, id: number) => void) | null"
        )]
        f: Option<Function>,
    ) {
        let mut inner = self.inner.borrow_mut();
        inner.on.message = f;
        if inner.on.message.is_some() && !inner.backlog.is_empty() {
            inner.queue_drain();
        }
    }

    /// `(names) => {}`: the member list changed. Also called (in a microtask) right
    /// after it is set, with the current list.
    #[wasm_bindgen(getter, unchecked_return_type = "((names: string[]) => void) | null")]
    pub fn onpeers(&self) -> Option<Function> {
        self.inner.borrow().on.peers.clone()
    }

    /// Sets `onpeers`.
    #[wasm_bindgen(setter)]
    pub fn set_onpeers(
        &self,
        #[wasm_bindgen(unchecked_param_type = "((names: string[]) => void) | null")] f: Option<
            Function,
        >,
    ) {
        let mut inner = self.inner.borrow_mut();
        inner.on.peers = f;
        if inner.on.peers.is_some() && inner.client.is_connected() {
            inner.peers_owed = true;
            inner.queue_drain();
        }
    }

    /// `(reason) => {}`: the connection ended (router gone, refused, `close()`).
    #[wasm_bindgen(getter, unchecked_return_type = "((reason: string) => void) | null")]
    pub fn onclose(&self) -> Option<Function> {
        self.inner.borrow().on.close.clone()
    }

    /// Sets `onclose`.
    #[wasm_bindgen(setter)]
    pub fn set_onclose(
        &self,
        #[wasm_bindgen(unchecked_param_type = "((reason: string) => void) | null")] f: Option<
            Function,
        >,
    ) {
        self.inner.borrow_mut().on.close = f;
    }

    /// Sends `data` (a string is sent as text, bytes as binary) to peer `to`. Resolves
    /// once handed to the WebSocket (and its buffer is under 8 MiB); an unknown peer is
    /// only reported to `sendAcked`.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn send(
        &self,
        to: &str,
        #[wasm_bindgen(unchecked_param_type = "string | Uint8Array")] data: JsValue,
    ) -> Promise {
        self.send_unacked(Some(to), &data)
    }

    /// Sends `data` to every other peer.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn broadcast(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string | Uint8Array")] data: JsValue,
    ) -> Promise {
        self.send_unacked(None, &data)
    }

    /// Sends `data` to `to` and resolves when the recipient's client has it; rejects with
    /// e.g. `unknown peer "laptop"`, or after 10 s without an acknowledgement.
    #[wasm_bindgen(js_name = sendAcked, unchecked_return_type = "Promise<void>")]
    pub fn send_acked(
        &self,
        to: &str,
        #[wasm_bindgen(unchecked_param_type = "string | Uint8Array")] data: JsValue,
    ) -> Promise {
        let (promise, settle) = Settle::promise();
        let Some(settle) = settle else {
            return Promise::reject(&js_error("the Promise executor was not run"));
        };
        match self.submit(Some(to), &data, Some(settle)) {
            Ok(()) => promise,
            Err(e) => Promise::reject(&e),
        }
    }

    /// The names of the members (this peer included), sorted.
    #[wasm_bindgen(unchecked_return_type = "string[]")]
    pub fn peers(&self) -> Array {
        names_array(&self.inner.borrow().client)
    }

    /// The members with how they are connected: `{name, transport, cipher, compression,
    /// key}` (key in hex).
    #[wasm_bindgen(js_name = peerInfo, unchecked_return_type = "MeshPeerInfo[]")]
    pub fn peer_info(&self) -> Array {
        let inner = self.inner.borrow();
        inner
            .client
            .peers()
            .map(|p| {
                let o = Object::new();
                let fields = [
                    ("name", p.name.as_str().to_owned()),
                    ("transport", p.transport.as_str().to_owned()),
                    ("cipher", p.cipher.as_str().to_owned()),
                    ("compression", p.compression.as_str().to_owned()),
                    ("key", hex::encode(p.key)),
                ];
                for (k, v) in fields {
                    // Setting a data property on a fresh plain object cannot fail.
                    let _ = Reflect::set(&o, &JsValue::from_str(k), &JsValue::from_str(&v));
                }
                JsValue::from(o)
            })
            .collect()
    }

    /// Closes the connection: tells the router, closes the socket, rejects what is still
    /// waiting and calls `onclose`.
    pub fn close(&self) {
        step_rc(&self.inner, |inner| inner.client.close());
    }
}

impl MeshPeer {
    fn send_unacked(&self, to: Option<&str>, data: &JsValue) -> Promise {
        if let Err(e) = self.submit(to, data, None) {
            return Promise::reject(&e);
        }
        let ws = self.inner.borrow().ws.clone();
        if ws.buffered_amount() <= MAX_BUFFERED {
            return Promise::resolve(&JsValue::UNDEFINED);
        }
        wasm_bindgen_futures::future_to_promise(async move {
            while ws.buffered_amount() > MAX_BUFFERED {
                if ws.ready_state() != WebSocket::OPEN {
                    return Err(js_error("disconnected: the connection is closed"));
                }
                sleep(10).await?;
            }
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Queues one message; with `ack`, registers the promise it settles before anything
    /// can settle it.
    fn submit(&self, to: Option<&str>, data: &JsValue, ack: Option<Settle>) -> Result<(), JsValue> {
        let to_js = |e: ClientError| js_error(&e.to_string());
        let dest = match to {
            Some(name) => Destination::Peer(parse_name(name).map_err(to_js)?),
            None => Destination::Everyone,
        };
        let payload = payload_from_js(data)?;
        let mut result = Ok(());
        step_rc(&self.inner, |inner| {
            match inner.client.send(dest, payload, ack.is_some(), now()) {
                Ok(id) => {
                    if let Some(settle) = ack {
                        inner.acks.insert(id, settle);
                    }
                }
                Err(e) => result = Err(to_js(e)),
            }
            Vec::new()
        });
        result
    }
}

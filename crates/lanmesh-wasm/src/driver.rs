//! The browser driver of a [`PeerCore`]: a `WebSocket` (one record per binary message),
//! one `setTimeout` re-armed to [`PeerCore::poll_timeout`] after every step, and the
//! page's callbacks and promises, settled from the core's events.
//!
//! State lives in `Rc<RefCell<Inner>>`; the closures registered with the browser hold a
//! `Weak` to it and are owned by `Inner`, so dropping the peer drops them. No `RefCell`
//! borrow is held while JavaScript runs: each step collects the calls to make, releases
//! the borrow, then makes them, so a callback may call back into the peer.
//!
//! When the core asks for a new transport ([`Event::Dial`], after a lost connection and
//! its backoff) a new `WebSocket` is opened to the same URL; the old one was detached
//! first, so nothing it still reports can reach the peer.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};

use bytes::{Bytes, BytesMut};
use js_sys::{Array, ArrayBuffer, Function, Promise, Uint8Array};
use lanmesh_core::peer::{Event, FileEvent, PeerCore};
use lanmesh_core::{ClientError, Instant, Message, Status};
use lanmesh_proto::Name;
use lanmesh_proto::blob::AbortReason;
use lanmesh_proto::frame::flags;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use crate::js::{client_error, describe, payload_to_js, set};

/// Messages kept for an `onmessage` handler that is not set yet (they arrive with the
/// member list, before `connect` has even returned the peer).
const MAX_BACKLOG: usize = 1024;
/// File bytes read from a `Blob` at a time: whole chunks, about 1 MiB.
const READ_CHUNKS: usize = 16;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(callback: &Function, ms: i32) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
    #[wasm_bindgen(js_name = queueMicrotask)]
    fn queue_microtask(callback: &Function);
}

/// The page's clock, for the core.
pub(crate) fn now() -> Instant {
    Instant::from_millis(js_sys::Date::now() as u64)
}

/// A JavaScript function to call once no borrow is held.
pub(crate) struct Call {
    f: Function,
    args: Array,
}

impl Call {
    pub(crate) fn new(f: &Function, args: &[JsValue]) -> Self {
        Self {
            f: f.clone(),
            args: args.iter().collect(),
        }
    }
}

pub(crate) fn run(calls: Vec<Call>) {
    for call in calls {
        if let Err(e) = call.f.apply(&JsValue::UNDEFINED, &call.args) {
            web_sys::console::error_2(&"lanmesh: a MeshPeer callback threw".into(), &e);
        }
    }
}

/// The two ends of a promise.
pub(crate) struct Settle {
    pub(crate) resolve: Function,
    pub(crate) reject: Function,
}

impl Settle {
    /// A new promise and its ends.
    pub(crate) fn promise() -> (Promise, Option<Self>) {
        let mut settle = None;
        let promise = Promise::new(&mut |resolve, reject| {
            settle = Some(Self { resolve, reject });
        });
        (promise, settle)
    }

    fn ok(self, v: &JsValue) -> Call {
        Call::new(&self.resolve, std::slice::from_ref(v))
    }

    fn err(self, e: &ClientError) -> Call {
        Call::new(&self.reject, &[client_error(e)])
    }
}

/// The closures the browser calls. Owned here; detached from each socket when it is
/// replaced or closed, and dropped with the peer.
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
            step(&w, |inner| inner.opened = true);
        });
        let w = weak.clone();
        let message = Closure::new(move |e: MessageEvent| {
            let data = e.data();
            step(&w, |inner| match data.dyn_ref::<ArrayBuffer>() {
                Some(buf) => {
                    // Vec -> Bytes -> BytesMut moves the buffer: the record is decrypted
                    // where it was copied out of the ArrayBuffer.
                    let mut record = BytesMut::from(Bytes::from(Uint8Array::new(buf).to_vec()));
                    inner.core.handle_input(&mut record, now());
                }
                None => {
                    let error = "the router sent a non-binary WebSocket message".to_owned();
                    inner.drop_socket();
                    inner.core.transport_closed(Some(error), now());
                }
            });
        });
        let w = weak.clone();
        let error = Closure::new(move |_: web_sys::Event| {
            // Browsers say nothing useful here; `close` follows with a code.
            step(&w, |inner| inner.errored = true);
        });
        let w = weak.clone();
        let close = Closure::new(move |e: CloseEvent| {
            step(&w, |inner| inner.on_socket_closed(e.code(), &e.reason()));
        });
        let w = weak.clone();
        let timer = Closure::new(move || {
            step(&w, |inner| {
                inner.timer = None;
                inner.core.handle_timeout(now());
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

fn detach(ws: &WebSocket) {
    ws.set_onopen(None);
    ws.set_onmessage(None);
    ws.set_onerror(None);
    ws.set_onclose(None);
    if matches!(ws.ready_state(), WebSocket::CONNECTING | WebSocket::OPEN) {
        let _ = ws.close_with_code(1000);
    }
}

/// The page's callbacks.
#[derive(Default)]
pub(crate) struct Callbacks {
    pub(crate) message: Option<Function>,
    pub(crate) peers: Option<Function>,
    pub(crate) close: Option<Function>,
    pub(crate) status: Option<Function>,
    pub(crate) file: Option<Function>,
    pub(crate) file_progress: Option<Function>,
    /// Answers requests: `(from, data, id) => reply`.
    pub(crate) respond: Option<Function>,
}

/// A file the page is sending.
pub(crate) struct Outgoing {
    pub(crate) settle: Settle,
    pub(crate) blob: web_sys::Blob,
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) progress: Option<Function>,
    /// Bytes read from the blob and not sent yet, and where the next read starts.
    pub(crate) buffered: Bytes,
    pub(crate) read_at: u64,
    /// A read of the blob is under way.
    pub(crate) reading: bool,
}

/// A file arriving.
struct Incoming {
    name: String,
    size: u64,
    chunks: Array,
    received: u64,
}

pub(crate) struct Inner {
    pub(crate) core: PeerCore,
    pub(crate) url: String,
    ws: Option<WebSocket>,
    /// The current socket opened (its handshake bytes may go).
    opened: bool,
    errored: bool,
    /// Some connection was welcomed: a later failure is a reconnect, not a refusal.
    was_connected: bool,
    handlers: Option<Handlers>,
    /// The armed `setTimeout`: its id and the deadline it is for.
    timer: Option<(JsValue, Instant)>,
    pub(crate) on: Callbacks,
    connecting: Option<Settle>,
    pub(crate) acks: HashMap<u64, Settle>,
    pub(crate) replies: HashMap<u64, Settle>,
    pub(crate) sending: HashMap<u64, Outgoing>,
    receiving: HashMap<(Name, u64), Incoming>,
    backlog: VecDeque<Message>,
    /// `onpeers` has not seen the current list yet.
    peers_owed: bool,
    drain_queued: bool,
    /// Set when a step must run after the current one (a blob read finished, say).
    pub(crate) weak: Weak<RefCell<Inner>>,
}

/// Runs one step on the peer behind `weak` (if it still exists), then settles what the
/// step's events call for with no borrow held.
pub(crate) fn step(weak: &Weak<RefCell<Inner>>, f: impl FnOnce(&mut Inner)) {
    if let Some(rc) = weak.upgrade() {
        step_rc(&rc, f);
    }
}

pub(crate) fn step_rc(rc: &Rc<RefCell<Inner>>, f: impl FnOnce(&mut Inner)) {
    let calls = {
        let mut inner = rc.borrow_mut();
        f(&mut inner);
        inner.after()
    };
    run(calls);
}

pub(crate) fn names_array(core: &PeerCore) -> Array {
    core.peers()
        .map(|p| JsValue::from_str(p.name.as_str()))
        .collect()
}

fn message_args(m: &Message) -> [JsValue; 3] {
    [
        JsValue::from_str(m.from.as_str()),
        payload_to_js(&m.data, m.flags),
        JsValue::from_f64(m.id as f64),
    ]
}

fn status_args(s: &Status) -> [JsValue; 2] {
    let (kind, detail) = match s {
        Status::Connecting => ("connecting", String::new()),
        Status::Connected { router } => ("connected", router.clone()),
        Status::Reconnecting { attempt, reason } => {
            ("reconnecting", format!("attempt {attempt}: {reason}"))
        }
        Status::Closed { reason } => ("closed", reason.clone()),
        _ => ("unknown", String::new()),
    };
    [JsValue::from_str(kind), JsValue::from_str(&detail)]
}

impl Inner {
    /// Starts the peer: the first socket is opened and the handshake queued.
    pub(crate) fn start(core: PeerCore, url: String, connecting: Settle) -> Rc<RefCell<Self>> {
        let rc = Rc::new(RefCell::new(Self {
            core,
            url,
            ws: None,
            opened: false,
            errored: false,
            was_connected: false,
            handlers: None,
            timer: None,
            on: Callbacks::default(),
            connecting: Some(connecting),
            acks: HashMap::new(),
            replies: HashMap::new(),
            sending: HashMap::new(),
            receiving: HashMap::new(),
            backlog: VecDeque::new(),
            peers_owed: false,
            drain_queued: false,
            weak: Weak::new(),
        }));
        {
            let mut inner = rc.borrow_mut();
            inner.weak = Rc::downgrade(&rc);
            inner.handlers = Some(Handlers::new(&inner.weak));
        }
        step_rc(&rc, Inner::dial);
        rc
    }

    /// Opens a socket to the router and starts a handshake on it.
    fn dial(&mut self) {
        self.drop_socket();
        let ws = match WebSocket::new(&self.url) {
            Ok(ws) => ws,
            Err(e) => {
                let error = ClientError::Connect {
                    addr: self.url.clone(),
                    detail: describe(&e),
                };
                return self.fail_to_connect(error);
            }
        };
        ws.set_binary_type(BinaryType::Arraybuffer);
        if let Some(h) = &self.handlers {
            h.attach(&ws);
        }
        self.ws = Some(ws);
        self.opened = false;
        self.errored = false;
        let url = self.url.clone();
        if let Err(e) = self.core.connect(&url, now()) {
            self.fail_to_connect(e);
        }
    }

    /// The first connection could not be made: `connect` rejects with `error`.
    fn fail_to_connect(&mut self, error: ClientError) {
        if let Some(s) = self.connecting.take() {
            run(vec![s.err(&error)]);
        }
        self.core.terminate();
    }

    fn drop_socket(&mut self) {
        if let Some(ws) = self.ws.take() {
            detach(&ws);
        }
        self.opened = false;
    }

    fn on_socket_closed(&mut self, code: u16, reason: &str) {
        let mut detail = format!("the WebSocket closed with code {code}");
        if !reason.is_empty() {
            detail = format!("{detail} ({reason})");
        }
        let opened = self.opened;
        self.drop_socket();
        if !opened && !self.was_connected {
            let detail = if self.errored {
                format!("the WebSocket could not be opened; {detail}")
            } else {
                detail
            };
            let error = ClientError::Connect {
                addr: self.url.clone(),
                detail,
            };
            return self.fail_to_connect(error);
        }
        self.core.transport_closed(Some(detail), now());
    }

    /// Sends what the core queued, turns its events into calls, re-arms the timer.
    fn after(&mut self) -> Vec<Call> {
        let mut calls = Vec::new();
        let mut peers_changed = false;
        // Events can queue bytes and bytes can fail into events: until both are quiet.
        loop {
            self.transmit();
            let Some(event) = self.core.poll_event() else {
                break;
            };
            self.on_event(event, &mut calls, &mut peers_changed);
        }
        if !self.core.has_transport() && self.ws.is_some() && self.core.queued_bytes() == 0 {
            self.drop_socket();
        }
        if peers_changed && !self.core.is_closed() {
            match &self.on.peers {
                Some(f) => {
                    self.peers_owed = false;
                    calls.push(Call::new(f, &[names_array(&self.core).into()]));
                }
                None => self.peers_owed = true,
            }
        }
        self.rearm();
        calls
    }

    fn on_event(&mut self, event: Event, calls: &mut Vec<Call>, peers_changed: &mut bool) {
        match event {
            Event::Connected => {
                self.was_connected = true;
                if let Some(s) = self.connecting.take() {
                    calls.push(Call::new(&s.resolve, &[]));
                }
                *peers_changed = true;
            }
            Event::Status(s) => {
                if let Some(f) = &self.on.status {
                    calls.push(Call::new(f, &status_args(&s)));
                }
            }
            Event::Peer(_) => *peers_changed = true,
            Event::Message(m) => self.deliver(m, calls),
            Event::Request(req) => self.answer(req),
            Event::Acked { id } => {
                if let Some(s) = self.acks.remove(&id) {
                    calls.push(s.ok(&JsValue::UNDEFINED));
                }
            }
            Event::SendFailed { id, error } => {
                if let Some(s) = self.acks.remove(&id) {
                    calls.push(s.err(&error));
                }
            }
            Event::Reply { id, reply } => {
                if let Some(s) = self.replies.remove(&id) {
                    calls.push(s.ok(&payload_to_js(&reply.data, reply.flags)));
                }
            }
            Event::RequestFailed { id, error } => {
                if let Some(s) = self.replies.remove(&id) {
                    calls.push(s.err(&error));
                }
            }
            Event::Undelivered(u) => web_sys::console::warn_1(
                &format!(
                    "lanmesh: message {} to {} was not delivered: {:?}",
                    u.id, u.to, u.reason
                )
                .into(),
            ),
            Event::File(f) => self.on_file(f, calls),
            Event::Dial => self.dial(),
            Event::Closed { error, .. } => {
                self.shutdown();
                if let Some(s) = self.connecting.take() {
                    calls.push(s.err(&error));
                }
                for (_, s) in self.acks.drain() {
                    calls.push(s.err(&error));
                }
                for (_, s) in self.replies.drain() {
                    calls.push(s.err(&error));
                }
                for (_, out) in self.sending.drain() {
                    calls.push(out.settle.err(&error));
                }
                if let Some(f) = &self.on.close {
                    calls.push(Call::new(f, &[JsValue::from_str(&error.to_string())]));
                }
            }
            _ => {}
        }
    }

    fn deliver(&mut self, m: Message, calls: &mut Vec<Call>) {
        match &self.on.message {
            // Behind a backlog still being drained, a message waits its turn.
            Some(f) if self.backlog.is_empty() => calls.push(Call::new(f, &message_args(&m))),
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
        }
    }

    /// A request: the page's `respond` handler answers it, with a value or a promise. The
    /// handler runs in a microtask, once this step has let go of the peer, so that it may
    /// call the peer itself.
    fn answer(&mut self, req: Message) {
        let Some(handler) = self.on.respond.clone() else {
            let _ = self.core.decline(&req.from, req.id);
            return;
        };
        let (from, id) = (req.from.clone(), req.id);
        let args: Array = message_args(&req).iter().collect();
        let weak = self.weak.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let answer = match handler.apply(&JsValue::UNDEFINED, &args) {
                Ok(v) if v.is_instance_of::<Promise>() => {
                    JsFuture::from(v.unchecked_into::<Promise>()).await
                }
                other => other,
            };
            step(&weak, |inner| {
                let sent = match answer {
                    Ok(v) if v.is_undefined() || v.is_null() => inner.core.decline(&from, id),
                    Ok(v) => match crate::js::payload_from_js(&v) {
                        Ok((data, flag_bits)) => {
                            let text = flag_bits & flags::TEXT != 0;
                            inner.core.reply(&from, id, &data, text).map(drop)
                        }
                        Err(_) => {
                            web_sys::console::error_1(
                                &"lanmesh: a respond handler returned neither a string nor bytes"
                                    .into(),
                            );
                            inner.core.decline(&from, id)
                        }
                    },
                    Err(e) => {
                        web_sys::console::error_2(&"lanmesh: a respond handler threw".into(), &e);
                        inner.core.decline(&from, id)
                    }
                };
                if let Err(e) = sent {
                    web_sys::console::warn_1(&format!("lanmesh: could not answer: {e}").into());
                }
            });
        });
    }

    fn on_file(&mut self, event: FileEvent, calls: &mut Vec<Call>) {
        match event {
            FileEvent::Accepted { blob, .. } | FileEvent::Acked { blob, .. } => {
                self.report_progress(blob, calls);
                self.pump(blob);
            }
            FileEvent::Delivered { blob, size } => {
                if let Some(out) = self.sending.remove(&blob) {
                    let sent: JsValue = js_sys::Object::new().into();
                    set(&sent, "name", &JsValue::from_str(&out.name));
                    set(&sent, "bytes", &JsValue::from_f64(size as f64));
                    if let Some(f) = &out.progress {
                        let p = progress(size, size, size);
                        calls.push(Call::new(f, &[p]));
                    }
                    calls.push(out.settle.ok(&sent));
                }
            }
            FileEvent::SendFailed { blob, error } => {
                if let Some(out) = self.sending.remove(&blob) {
                    calls.push(out.settle.err(&error));
                }
            }
            FileEvent::Offered {
                from,
                blob,
                size,
                name,
                ..
            } => {
                if self.on.file.is_none() {
                    self.core.abort_file(
                        &from,
                        blob,
                        AbortReason::Refused,
                        "the page takes no files (it has no onfile handler)",
                    );
                    return;
                }
                self.receiving.insert(
                    (from.clone(), blob),
                    Incoming {
                        name,
                        size,
                        chunks: Array::new(),
                        received: 0,
                    },
                );
                self.core.accept_file(&from, blob, now());
            }
            FileEvent::Data {
                from,
                blob,
                data,
                last,
                ..
            } => {
                let key = (from.clone(), blob);
                let Some(inc) = self.receiving.get_mut(&key) else {
                    return;
                };
                inc.chunks.push(&Uint8Array::from(&data[..]));
                inc.received += data.len() as u64;
                let (received, total, name) = (inc.received, inc.size, inc.name.clone());
                if let Some(f) = &self.on.file_progress {
                    let args = [
                        JsValue::from_str(from.as_str()),
                        JsValue::from_str(&name),
                        JsValue::from_f64(received as f64),
                        JsValue::from_f64(total as f64),
                    ];
                    calls.push(Call::new(f, &args));
                }
                // In memory, a chunk is "written" as soon as it is kept.
                if !last {
                    self.core.file_written(&from, blob, received, now());
                    return;
                }
                let Some(inc) = self.receiving.remove(&key) else {
                    return;
                };
                match web_sys::Blob::new_with_u8_array_sequence(&inc.chunks) {
                    Ok(file) => {
                        self.core.file_saved(&from, blob);
                        if let Some(f) = &self.on.file {
                            let args = [
                                JsValue::from_str(from.as_str()),
                                file.into(),
                                JsValue::from_str(&inc.name),
                            ];
                            calls.push(Call::new(f, &args));
                        }
                    }
                    Err(e) => {
                        let text = format!("the browser could not hold the file: {}", describe(&e));
                        self.core.abort_file(&from, blob, AbortReason::Io, &text);
                    }
                }
            }
            FileEvent::ReceiveFailed { from, blob, reason } => {
                if let Some(inc) = self.receiving.remove(&(from.clone(), blob)) {
                    web_sys::console::warn_1(
                        &format!("lanmesh: file {:?} from {from} failed: {reason}", inc.name)
                            .into(),
                    );
                }
            }
            _ => {}
        }
    }

    fn report_progress(&self, blob: u64, calls: &mut Vec<Call>) {
        let Some(out) = self.sending.get(&blob) else {
            return;
        };
        if let (Some(f), Some((sent, acked))) = (&out.progress, self.core.file_progress(blob)) {
            calls.push(Call::new(f, &[progress(out.size, sent, acked)]));
        }
    }

    /// Sends what the window allows of outgoing `blob`, reading its `Blob` as needed.
    pub(crate) fn pump(&mut self, blob: u64) {
        loop {
            let Some(room) = self.core.file_room(blob) else {
                return;
            };
            let Some(out) = self.sending.get_mut(&blob) else {
                return;
            };
            if out.buffered.len() < room {
                if !out.reading {
                    self.read_more(blob, room);
                }
                return;
            }
            let data = out.buffered.split_to(room);
            if let Err(e) = self.core.file_chunk(blob, data) {
                if let Some(out) = self.sending.remove(&blob) {
                    run(vec![out.settle.err(&e)]);
                }
                return;
            }
        }
    }

    fn read_more(&mut self, blob: u64, chunk: usize) {
        let Some(out) = self.sending.get_mut(&blob) else {
            return;
        };
        out.reading = true;
        let start = out.read_at;
        let end = (start + (READ_CHUNKS * chunk.max(1)) as u64).min(out.size);
        out.read_at = end;
        let slice = out.blob.slice_with_f64_and_f64(start as f64, end as f64);
        let weak = self.weak.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let read = match slice {
                Ok(s) => JsFuture::from(s.array_buffer()).await,
                Err(e) => Err(e),
            };
            step(&weak, |inner| {
                let Some(out) = inner.sending.get_mut(&blob) else {
                    return;
                };
                out.reading = false;
                match read {
                    Ok(buf) => {
                        let bytes = Uint8Array::new(&buf).to_vec();
                        let mut joined = Vec::with_capacity(out.buffered.len() + bytes.len());
                        joined.extend_from_slice(&out.buffered);
                        joined.extend_from_slice(&bytes);
                        out.buffered = Bytes::from(joined);
                        inner.pump(blob);
                    }
                    Err(e) => {
                        let text = format!("cannot read the file: {}", describe(&e));
                        inner.core.cancel_file(blob, &text);
                        if let Some(out) = inner.sending.remove(&blob) {
                            let error = ClientError::File {
                                path: out.name.clone(),
                                detail: describe(&e),
                            };
                            run(vec![out.settle.err(&error)]);
                        }
                    }
                }
            });
        });
    }

    /// Hands the core's queued messages to the socket (once it is open).
    fn transmit(&mut self) {
        let Some(ws) = &self.ws else { return };
        if !self.opened {
            return;
        }
        while let Some(message) = self.core.poll_transmit() {
            if let Err(e) = ws.send_with_u8_array(&message) {
                let detail = format!("the WebSocket refused data: {}", describe(&e));
                self.drop_socket();
                self.core.transport_closed(Some(detail), now());
                return;
            }
        }
    }

    /// The socket, for `send`'s backpressure.
    pub(crate) fn socket(&self) -> Option<WebSocket> {
        self.ws.clone()
    }

    /// Points the one timer at the core's next deadline.
    fn rearm(&mut self) {
        let next = self.core.poll_timeout();
        if self.timer.as_ref().map(|(_, at)| *at) == next {
            return;
        }
        if let Some((id, _)) = self.timer.take() {
            clear_timeout(&id);
        }
        if let (Some(at), Some(handlers)) = (next, &self.handlers) {
            let wait = at.saturating_since(now());
            let delay = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
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
                    .map(|m| Call::new(f, &message_args(&m))),
            );
        }
        if let (true, Some(f)) = (self.peers_owed, &self.on.peers) {
            self.peers_owed = false;
            calls.push(Call::new(f, &[names_array(&self.core).into()]));
        }
        calls
    }

    pub(crate) fn queue_drain(&mut self) {
        if self.drain_queued {
            return;
        }
        if let Some(handlers) = &self.handlers {
            self.drain_queued = true;
            queue_microtask(handlers.drain.as_ref().unchecked_ref());
        }
    }

    pub(crate) fn owe_peers(&mut self) {
        self.peers_owed = true;
        self.queue_drain();
    }

    pub(crate) fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Detaches from the socket and stops the timer. The closures stay owned here (one of
    /// them may be running right now) and go when the peer is dropped.
    fn shutdown(&mut self) {
        // The core's last words (a `Close`, an `Error`) leave first.
        self.transmit();
        self.drop_socket();
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

fn progress(total: u64, sent: u64, acked: u64) -> JsValue {
    let p: JsValue = js_sys::Object::new().into();
    set(&p, "total", &JsValue::from_f64(total as f64));
    set(&p, "sent", &JsValue::from_f64(sent as f64));
    set(&p, "acked", &JsValue::from_f64(acked as f64));
    p
}

//! `MeshPeer`: the JavaScript API of the browser peer (DESIGN.md §7), over the driver in
//! [`crate::driver`]. Every method only moves a call into the core and its answer back
//! out as a promise or a callback.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use js_sys::{Array, Function, Promise};
use lanmesh_core::ClientError;
use lanmesh_core::peer::{Config, PeerCore};
use lanmesh_proto::{Destination, Framing, HandshakeConfig, Identity};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::WebSocket;

use crate::driver::{Inner, Outgoing, Settle, names_array, now, step_rc};
use crate::js::{client_error, get, js_error, options_from_js, parse_name, payload_from_js};
use crate::keys::{IDENTITY_STORAGE_KEY, identity_from_text, identity_to_text};

/// `send` resolves once the socket's send buffer is back under this many bytes, so a
/// fast sender waits instead of growing the browser's buffer without bound.
const MAX_BUFFERED: u32 = 8 * 1024 * 1024;
/// How long `request` waits for a reply unless told otherwise.
const REQUEST_TIMEOUT_MS: f64 = 5_000.0;

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
  /** Reconnect (with backoff, resuming the session) when the connection is lost
   *  (default true). */
  reconnect?: boolean;
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

/** What a rejected promise holds: an Error with a `code` to branch on, such as
 *  "UnknownPeer", "NoResponder", "RequestTimeout", "AckTimeout", "Disconnected",
 *  "Refused", "FileRefused", "FileFailed", "TooLarge". */
export interface MeshPeerError extends Error {
  code: string;
}

/** Where the connection stands, for `onstatus`. */
export type MeshPeerStatus = "connecting" | "connected" | "reconnecting" | "closed";

/** How far a file being sent has come. */
export interface MeshFileProgress {
  total: number;
  /** Bytes handed to the connection. */
  sent: number;
  /** Bytes the recipient has confirmed. */
  acked: number;
}

/** Options of `sendFile`. */
export interface MeshSendFileOptions {
  /** The name to offer it under (default: the File's name, else "file"). */
  name?: string;
  onprogress?: (progress: MeshFileProgress) => void;
}

/** A file the recipient has confirmed whole. */
export interface MeshFileSent {
  name: string;
  bytes: number;
}
"#;

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

/// A random token naming this page's session across reconnects (crypto.getRandomValues).
fn resume_token() -> Bytes {
    let mut token = [0u8; 16];
    match getrandom::fill(&mut token) {
        Ok(()) => Bytes::copy_from_slice(&token),
        // Without randomness every reconnect counts as a new session, which is safe.
        Err(_) => Bytes::new(),
    }
}

fn sleep(ms: i32) -> JsFuture {
    JsFuture::from(Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    }))
}

/// A member of a lanmesh mesh, in the browser: the same Noise handshake, frames and
/// protocol core as the native peer, over a WebSocket to the router's gateway
/// (`ws://host:7401/mesh`). It reconnects by itself when the connection is lost, resuming
/// its session: acked sends arrive exactly once and in order across the cut.
#[wasm_bindgen]
pub struct MeshPeer {
    inner: Rc<RefCell<Inner>>,
}

/// Defines a getter and a setter for one of the page's callbacks.
macro_rules! callback {
    ($get:ident, $set:ident, $field:ident, $ts:literal, $doc:literal) => {
        #[wasm_bindgen]
        impl MeshPeer {
            #[doc = $doc]
            #[wasm_bindgen(getter, unchecked_return_type = $ts)]
            pub fn $get(&self) -> Option<Function> {
                self.inner.borrow().on.$field.clone()
            }

            #[doc = concat!("Sets `", stringify!($get), "`.")]
            #[wasm_bindgen(setter)]
            pub fn $set(&self, #[wasm_bindgen(unchecked_param_type = $ts)] f: Option<Function>) {
                self.inner.borrow_mut().on.$field = f;
            }
        }
    };
}

callback!(
    onclose,
    set_onclose,
    close,
    "((reason: string) => void) | null",
    "`(reason) => {}`: the peer is closed for good (refused, `close()`, or reconnection off)."
);
callback!(
    onstatus,
    set_onstatus,
    status,
    "((status: MeshPeerStatus, detail: string) => void) | null",
    "`(status, detail) => {}`: the connection changed: `\"reconnecting\"` (with why and which attempt), `\"connected\"` (again), `\"closed\"`."
);
callback!(
    onfileprogress,
    set_onfileprogress,
    file_progress,
    "((from: string, name: string, received: number, total: number) => void) | null",
    "`(from, name, received, total) => {}`: bytes of an incoming file arrived."
);

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
        let to_js = |e: ClientError| client_error(&e);
        let options = options_from_js(&options).map_err(to_js)?;
        let name = parse_name(&name).map_err(to_js)?;
        let identity = stored_identity().map_err(to_js)?;
        let mut handshake = HandshakeConfig::new(identity, options.mesh);
        handshake.mesh_key = options.mesh_key;
        handshake.allow_plaintext = options.plaintext;
        handshake.framing = Framing::Message;
        let mut config = Config::new(Some(name), handshake);
        config.connect_timeout = Duration::from_secs(10);
        config.reconnect = options.reconnect;
        if options.reconnect {
            config.resume_token = resume_token();
        }
        let (ready, connecting) = Settle::promise();
        let Some(connecting) = connecting else {
            return Err(js_error("the Promise executor was not run"));
        };
        config.files.accept = true;
        let inner = Inner::start(PeerCore::new(config), url, connecting);
        JsFuture::from(ready).await?;
        Ok(MeshPeer { inner })
    }

    /// The name the router welcomed this peer under.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        let inner = self.inner.borrow();
        inner
            .core
            .name()
            .map(ToString::to_string)
            .unwrap_or_default()
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
        if inner.on.message.is_some() && inner.has_backlog() {
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
        if inner.on.peers.is_some() && inner.core.is_running() {
            inner.owe_peers();
        }
    }

    /// `(from, file, name) => {}`: a file arrived whole (`file` is a `Blob`). Without
    /// this handler the page refuses files, and their senders are told so.
    #[wasm_bindgen(
        getter,
        unchecked_return_type = "((from: string, file: Blob, name: string) => void) | null"
    )]
    pub fn onfile(&self) -> Option<Function> {
        self.inner.borrow().on.file.clone()
    }

    /// Sets `onfile`.
    #[wasm_bindgen(setter)]
    pub fn set_onfile(
        &self,
        #[wasm_bindgen(
            unchecked_param_type = "((from: string, file: Blob, name: string) => void) | null"
        )]
        f: Option<Function>,
    ) {
        // The core takes every offer; the driver refuses it, with a reason a browser
        // user understands, while there is no handler.
        self.inner.borrow_mut().on.file = f;
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
        self.send_plain(Some(to), &data)
    }

    /// Sends `data` to every other peer.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn broadcast(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string | Uint8Array")] data: JsValue,
    ) -> Promise {
        self.send_plain(None, &data)
    }

    /// Sends `data` to `to` and resolves when the recipient's client has it; rejects with
    /// e.g. `unknown peer "laptop"`, or after 10 s without an acknowledgement. Acked
    /// sends arrive exactly once and in order, also across a lost connection.
    #[wasm_bindgen(js_name = sendAcked, unchecked_return_type = "Promise<void>")]
    pub fn send_acked(
        &self,
        to: &str,
        #[wasm_bindgen(unchecked_param_type = "string | Uint8Array")] data: JsValue,
    ) -> Promise {
        self.settled(|inner, settle| {
            let to = parse_name(to).map_err(|e| client_error(&e))?;
            let (bytes, bits) = payload_from_js(&data)?;
            let id = inner
                .core
                .send_acked(&to, bytes, bits, now())
                .map_err(|e| client_error(&e))?;
            inner.acks.insert(id, settle);
            Ok(())
        })
    }

    /// Asks `to` (a peer that answers requests) and resolves with its reply (a string if
    /// it answered with text, else a `Uint8Array`). Rejects with code `NoResponder` when
    /// the peer answers no requests, `UnknownPeer`, or `RequestTimeout` after
    /// `timeoutMs` (default 5000).
    #[wasm_bindgen(unchecked_return_type = "Promise<string | Uint8Array>")]
    pub fn request(
        &self,
        to: &str,
        #[wasm_bindgen(unchecked_param_type = "string | Uint8Array")] data: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "number")] timeout_ms: JsValue,
    ) -> Promise {
        let ms = timeout_ms.as_f64().unwrap_or(REQUEST_TIMEOUT_MS).max(1.0);
        let timeout = Duration::from_millis(ms as u64);
        self.settled(|inner, settle| {
            let to = parse_name(to).map_err(|e| client_error(&e))?;
            let (bytes, bits) = payload_from_js(&data)?;
            let id = inner
                .core
                .request(&to, bytes, bits, timeout, now())
                .map_err(|e| client_error(&e))?;
            inner.replies.insert(id, settle);
            Ok(())
        })
    }

    /// Answers requests with `handler(from, data, id)`, which returns the reply (a string
    /// or bytes, or a promise of one), or `null` to tell the requester this page has no
    /// answer. `respond(null)` stops: requesters then get `NoResponder`.
    pub fn respond(
        &self,
        #[wasm_bindgen(
            unchecked_param_type = "((from: string, data: string | Uint8Array, id: number) => string | Uint8Array | null | Promise<string | Uint8Array | null>) | null"
        )]
        handler: Option<Function>,
    ) {
        let mut inner = self.inner.borrow_mut();
        let on = handler.is_some();
        inner.on.respond = handler;
        inner.core.set_answers_requests(on);
    }

    /// Sends `file` (a `File` or any `Blob`) to `to`, reading it a chunk at a time, and
    /// resolves with `{name, bytes}` once the recipient has all of it (a native peer:
    /// on its disk). Rejects with `FileRefused` (no save directory there, too large),
    /// `FileFailed`, `UnknownPeer` or `Disconnected`.
    #[wasm_bindgen(js_name = sendFile, unchecked_return_type = "Promise<MeshFileSent>")]
    pub fn send_file(
        &self,
        to: &str,
        file: web_sys::Blob,
        #[wasm_bindgen(unchecked_optional_param_type = "MeshSendFileOptions")] options: JsValue,
    ) -> Promise {
        let name = get(&options, "name")
            .and_then(|n| n.as_string())
            .or_else(|| get(&file, "name").and_then(|n| n.as_string()))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "file".into());
        let progress = get(&options, "onprogress").and_then(|f| f.dyn_into::<Function>().ok());
        let size = file.size() as u64;
        self.settled(|inner, settle| {
            let to = parse_name(to).map_err(|e| client_error(&e))?;
            let blob = inner
                .core
                .offer_file(&to, size, &name, now())
                .map_err(|e| client_error(&e))?;
            inner.sending.insert(
                blob,
                Outgoing {
                    settle,
                    blob: file,
                    name,
                    size,
                    progress,
                    buffered: Bytes::new(),
                    read_at: 0,
                    reading: false,
                },
            );
            Ok(())
        })
    }

    /// The names of the members (this peer included), sorted.
    #[wasm_bindgen(unchecked_return_type = "string[]")]
    pub fn peers(&self) -> Array {
        names_array(&self.inner.borrow().core)
    }

    /// The members with how they are connected: `{name, transport, cipher, compression,
    /// key}` (key in hex).
    #[wasm_bindgen(js_name = peerInfo, unchecked_return_type = "MeshPeerInfo[]")]
    pub fn peer_info(&self) -> Array {
        let inner = self.inner.borrow();
        inner.core.peers().map(crate::js::peer_info).collect()
    }

    /// Where the connection stands: `"connected"`, `"reconnecting"`, `"closed"`.
    #[wasm_bindgen(getter, unchecked_return_type = "MeshPeerStatus")]
    pub fn status(&self) -> String {
        match self.inner.borrow().core.status() {
            lanmesh_core::Status::Connected { .. } => "connected",
            lanmesh_core::Status::Reconnecting { .. } => "reconnecting",
            lanmesh_core::Status::Closed { .. } => "closed",
            _ => "connecting",
        }
        .into()
    }

    /// Closes the connection: tells the router, closes the socket, rejects what is still
    /// waiting and calls `onclose`.
    pub fn close(&self) {
        step_rc(&self.inner, |inner| inner.core.close(now()));
    }
}

impl MeshPeer {
    /// A promise settled by the core's events; `f` queues the call and registers the
    /// promise's ends before anything can settle them.
    fn settled(&self, f: impl FnOnce(&mut Inner, Settle) -> Result<(), JsValue>) -> Promise {
        let (promise, settle) = Settle::promise();
        let Some(settle) = settle else {
            return Promise::reject(&js_error("the Promise executor was not run"));
        };
        let mut result = Ok(());
        step_rc(&self.inner, |inner| result = f(inner, settle));
        match result {
            Ok(()) => promise,
            Err(e) => Promise::reject(&e),
        }
    }

    fn send_plain(&self, to: Option<&str>, data: &JsValue) -> Promise {
        let mut result = Ok(());
        step_rc(&self.inner, |inner| {
            result = (|| {
                let dest = match to {
                    Some(name) => {
                        Destination::Peer(parse_name(name).map_err(|e| client_error(&e))?)
                    }
                    None => Destination::Everyone,
                };
                let (bytes, bits) = payload_from_js(data)?;
                inner
                    .core
                    .send(&dest, bytes, bits)
                    .map(drop)
                    .map_err(|e| client_error(&e))
            })();
        });
        if let Err(e) = result {
            return Promise::reject(&e);
        }
        let Some(ws) = self.inner.borrow().socket() else {
            return Promise::resolve(&JsValue::UNDEFINED);
        };
        if ws.buffered_amount() <= MAX_BUFFERED {
            return Promise::resolve(&JsValue::UNDEFINED);
        }
        wasm_bindgen_futures::future_to_promise(async move {
            while ws.buffered_amount() > MAX_BUFFERED {
                if ws.ready_state() != WebSocket::OPEN {
                    return Err(client_error(&ClientError::disconnected(
                        "the connection is closed",
                    )));
                }
                sleep(10).await?;
            }
            Ok(JsValue::UNDEFINED)
        })
    }
}

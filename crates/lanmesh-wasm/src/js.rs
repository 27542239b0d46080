//! JavaScript values in and out: payloads, options, and errors that say what happened
//! (`message`) and what kind of failure it was (`code`).

use bytes::Bytes;
use js_sys::{ArrayBuffer, Reflect, Uint8Array};
use lanmesh_core::ClientError;
use lanmesh_proto::frame::flags;
use lanmesh_proto::{Name, PeerInfo};
use wasm_bindgen::{JsCast, JsValue};

use crate::keys::mesh_key_from_text;

/// Sets `key` on a plain object (which cannot fail on a fresh one).
pub(crate) fn set(o: &JsValue, key: &str, value: &JsValue) {
    let _ = Reflect::set(o, &JsValue::from_str(key), value);
}

pub(crate) fn get(o: &JsValue, key: &str) -> Option<JsValue> {
    Reflect::get(o, &JsValue::from_str(key))
        .ok()
        .filter(|x| !x.is_undefined() && !x.is_null())
}

/// A JavaScript `Error` with a `message`, for failures that are not a `ClientError`.
pub(crate) fn js_error(message: &str) -> JsValue {
    js_sys::Error::new(message).into()
}

/// What kind of failure, for code to branch on (`err.code`).
fn code(e: &ClientError) -> &'static str {
    match e {
        ClientError::Connect { .. } => "Connect",
        ClientError::HandshakeTimeout { .. } => "HandshakeTimeout",
        ClientError::Handshake(_) => "Handshake",
        ClientError::ClosedDuringHandshake => "ClosedDuringHandshake",
        ClientError::Refused { .. } => "Refused",
        ClientError::Protocol(_) => "Protocol",
        ClientError::UnknownPeer { .. } => "UnknownPeer",
        ClientError::Overloaded { .. } => "Overloaded",
        ClientError::NoResponder { .. } => "NoResponder",
        ClientError::RequestTimeout { .. } => "RequestTimeout",
        ClientError::TooLarge { .. } => "TooLarge",
        ClientError::AckTimeout { .. } => "AckTimeout",
        ClientError::FileRefused { .. } => "FileRefused",
        ClientError::FileFailed { .. } => "FileFailed",
        ClientError::Disconnected { .. } => "Disconnected",
        ClientError::Invalid(_) => "Invalid",
        _ => "Error",
    }
}

/// The `Error` a promise rejects with: `message` is the one-line text, `code` the kind.
pub(crate) fn client_error(e: &ClientError) -> JsValue {
    let err: JsValue = js_sys::Error::new(&e.to_string()).into();
    set(&err, "code", &JsValue::from_str(code(e)));
    err
}

pub(crate) fn describe(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "unknown error".into())
}

pub(crate) fn parse_name(name: &str) -> Result<Name, ClientError> {
    Name::new(name).map_err(|e| ClientError::Invalid(format!("invalid peer name {name:?}: {e}")))
}

/// Data to send: a string is text ([`flags::TEXT`]), bytes are binary.
pub(crate) fn payload_from_js(data: &JsValue) -> Result<(Bytes, u8), JsValue> {
    if let Some(s) = data.as_string() {
        return Ok((Bytes::from(s), flags::TEXT));
    }
    if let Some(a) = data.dyn_ref::<Uint8Array>() {
        return Ok((Bytes::from(a.to_vec()), 0));
    }
    if let Some(b) = data.dyn_ref::<ArrayBuffer>() {
        return Ok((Bytes::from(Uint8Array::new(b).to_vec()), 0));
    }
    Err(js_sys::TypeError::new("data must be a string, a Uint8Array or an ArrayBuffer").into())
}

/// Received data: a string if it was sent as text, else a `Uint8Array`.
pub(crate) fn payload_to_js(data: &[u8], flag_bits: u8) -> JsValue {
    if flag_bits & flags::TEXT != 0 {
        JsValue::from_str(&String::from_utf8_lossy(data))
    } else {
        Uint8Array::from(data).into()
    }
}

/// `{name, transport, cipher, compression, key}` (the key in hex).
pub(crate) fn peer_info(p: &PeerInfo) -> JsValue {
    let o: JsValue = js_sys::Object::new().into();
    set(&o, "name", &JsValue::from_str(p.name.as_str()));
    set(&o, "transport", &JsValue::from_str(p.transport.as_str()));
    set(&o, "cipher", &JsValue::from_str(p.cipher.as_str()));
    set(
        &o,
        "compression",
        &JsValue::from_str(p.compression.as_str()),
    );
    set(&o, "key", &JsValue::from_str(&hex::encode(p.key)));
    o
}

/// The options of `MeshPeer.connect`.
pub(crate) struct Options {
    pub(crate) mesh_key: Option<[u8; 32]>,
    pub(crate) plaintext: bool,
    pub(crate) mesh: String,
    pub(crate) reconnect: bool,
}

pub(crate) fn options_from_js(v: &JsValue) -> Result<Options, ClientError> {
    let mut options = Options {
        mesh_key: None,
        plaintext: false,
        mesh: lanmesh_core::DEFAULT_MESH.to_owned(),
        reconnect: true,
    };
    if v.is_undefined() || v.is_null() {
        return Ok(options);
    }
    if !v.is_object() {
        return Err(ClientError::Invalid("options must be an object".into()));
    }
    if let Some(key) = get(v, "meshKey") {
        let text = key.as_string().ok_or_else(|| {
            ClientError::Invalid("meshKey must be a string of 64 hex digits or null".into())
        })?;
        options.mesh_key = Some(mesh_key_from_text(&text)?);
    }
    let boolean = |key: &str| -> Result<Option<bool>, ClientError> {
        get(v, key)
            .map(|b| {
                b.as_bool()
                    .ok_or_else(|| ClientError::Invalid(format!("{key} must be a boolean")))
            })
            .transpose()
    };
    if let Some(p) = boolean("plaintext")? {
        options.plaintext = p;
    }
    if let Some(r) = boolean("reconnect")? {
        options.reconnect = r;
    }
    if let Some(mesh) = get(v, "mesh") {
        options.mesh = mesh
            .as_string()
            .ok_or_else(|| ClientError::Invalid("mesh must be a string".into()))?;
    }
    Ok(options)
}

//! JSON lines shared by the commands that speak them (`peer`, `request --json`): how a
//! payload is written (text when it is UTF-8, else base64 with `"encoding":"base64"`, as
//! `listen --json` does) and read back, and how one line goes out on stdout.

use std::io::Write as _;

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Map, Value};

/// Puts `data` into `obj` as `"data"` (plus `"encoding":"base64"` when it is not UTF-8).
pub(crate) fn put_data(obj: &mut Map<String, Value>, data: &[u8]) {
    match std::str::from_utf8(data) {
        Ok(t) => {
            obj.insert("data".into(), t.into());
        }
        Err(_) => {
            obj.insert(
                "data".into(),
                base64::engine::general_purpose::STANDARD
                    .encode(data)
                    .into(),
            );
            obj.insert("encoding".into(), "base64".into());
        }
    }
}

/// A received message in the `listen --json` shape: `{"from","id","data"}`, with
/// `"encoding":"base64"` for binary data and `"broadcast":true` for a broadcast.
pub(crate) fn message(m: &lanmesh::Message) -> Map<String, Value> {
    let mut obj = Map::new();
    obj.insert("from".into(), m.from.as_str().into());
    obj.insert("id".into(), m.id.into());
    put_data(&mut obj, &m.data);
    if m.is_broadcast() {
        obj.insert("broadcast".into(), true.into());
    }
    obj
}

/// The payload named by `key` in a command line (`"data"`, or a request's text), and
/// whether it is text: a JSON string, decoded from base64 when the line says
/// `"encoding":"base64"`.
pub(crate) fn take_data(cmd: &Map<String, Value>, key: &str) -> Result<(Bytes, bool), String> {
    let base64 = match cmd.get("encoding") {
        None => false,
        Some(Value::String(e)) if e == "base64" => true,
        Some(Value::String(e)) if e == "text" || e == "utf-8" => false,
        Some(other) => return Err(format!("\"encoding\" must be \"base64\", not {other}")),
    };
    let text = match cmd.get(key) {
        Some(Value::String(s)) => s,
        Some(other) => return Err(format!("{key:?} must be a string, not {other}")),
        None => return Err(format!("{key:?} is missing")),
    };
    if base64 {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("{key:?} is not valid base64: {e}"))?;
        Ok((Bytes::from(bytes), false))
    } else {
        Ok((Bytes::copy_from_slice(text.as_bytes()), true))
    }
}

/// Writes one JSON object as a line on stdout and flushes it, so that a program at the
/// other end of a pipe sees it at once.
pub(crate) fn emit(obj: Map<String, Value>) {
    let line = Value::Object(obj).to_string();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `{"event": name}` with the given fields.
pub(crate) fn event(name: &str) -> Map<String, Value> {
    let mut obj = Map::new();
    obj.insert("event".into(), name.into());
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("objects only"),
        }
    }

    #[test]
    fn data_is_text_or_base64_both_ways() {
        let mut obj = Map::new();
        put_data(&mut obj, &[0xff, 0x00, 0xfe]);
        assert_eq!(obj["data"], "/wD+");
        assert_eq!(obj["encoding"], "base64");
        assert_eq!(
            take_data(&obj, "data").unwrap(),
            (Bytes::from_static(&[0xff, 0x00, 0xfe]), false)
        );
        let text = cmd(serde_json::json!({"data": "hé"}));
        assert_eq!(
            take_data(&text, "data").unwrap(),
            (Bytes::from("hé".as_bytes()), true)
        );
    }

    #[test]
    fn bad_data_says_what_is_wrong() {
        let e = take_data(&cmd(serde_json::json!({"data": 5})), "data").unwrap_err();
        assert!(e.contains("must be a string"), "{e}");
        let e = take_data(&cmd(serde_json::json!({})), "data").unwrap_err();
        assert!(e.contains("missing"), "{e}");
        let bad = serde_json::json!({"data": "***", "encoding": "base64"});
        let e = take_data(&cmd(bad), "data").unwrap_err();
        assert!(e.contains("base64"), "{e}");
    }
}

//! The `MeshPeer` shell in headless Chromium with the browser's real `WebSocket` and
//! `localStorage`: the stored identity, and the errors `connect` rejects with.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)]

use lanmesh_wasm::{IDENTITY_STORAGE_KEY, MeshPeer, identity_to_text, stored_identity};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

fn message(e: JsValue) -> String {
    e.dyn_into::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .unwrap_or_else(|e| format!("not an Error: {e:?}"))
}

fn options(json: &str) -> JsValue {
    js_sys::JSON::parse(json).unwrap()
}

#[wasm_bindgen_test]
fn identity_is_generated_once_and_kept_in_local_storage() {
    let storage = web_sys::window().unwrap().local_storage().unwrap().unwrap();
    storage.remove_item(IDENTITY_STORAGE_KEY).unwrap();
    let first = stored_identity().unwrap();
    let text = storage.get_item(IDENTITY_STORAGE_KEY).unwrap().unwrap();
    assert_eq!(text, identity_to_text(&first));
    assert_eq!(stored_identity().unwrap(), first);
    // A damaged entry is replaced by a fresh key.
    storage.set_item(IDENTITY_STORAGE_KEY, "not hex").unwrap();
    let fresh = stored_identity().unwrap();
    assert_ne!(fresh, first);
    assert_eq!(
        storage.get_item(IDENTITY_STORAGE_KEY).unwrap().unwrap(),
        identity_to_text(&fresh)
    );
}

#[wasm_bindgen_test]
async fn connect_rejects_when_nothing_listens() {
    // Port 9 (discard) is closed on the test machine: the socket fails to open.
    let err = MeshPeer::connect(
        "ws://127.0.0.1:9/mesh".into(),
        "web-1".into(),
        JsValue::NULL,
    )
    .await
    .err()
    .unwrap();
    let text = message(err);
    assert!(
        text.starts_with("cannot connect to router at ws://127.0.0.1:9/mesh: "),
        "{text}"
    );
}

#[wasm_bindgen_test]
async fn connect_rejects_bad_arguments_with_clear_errors() {
    let cases = [
        (
            "ws://127.0.0.1:9/mesh",
            "two words",
            JsValue::NULL,
            "invalid peer name",
        ),
        (
            "not a url",
            "web-1",
            JsValue::UNDEFINED,
            "cannot connect to router at not a url",
        ),
        (
            "ws://127.0.0.1:9/mesh",
            "web-1",
            options(r#"{"meshKey": "abcd"}"#),
            "meshKey must be 64 hex digits",
        ),
        (
            "ws://127.0.0.1:9/mesh",
            "web-1",
            options(r#"{"plaintext": "yes"}"#),
            "plaintext must be a boolean",
        ),
        (
            "ws://127.0.0.1:9/mesh",
            "web-1",
            JsValue::from(3),
            "options must be an object",
        ),
    ];
    for (url, name, opts, want) in cases {
        let err = MeshPeer::connect(url.into(), name.into(), opts)
            .await
            .err()
            .unwrap();
        let text = message(err);
        assert!(text.starts_with(want), "{url} {name}: {text}");
    }
}

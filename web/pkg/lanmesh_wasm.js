/* @ts-self-types="./lanmesh_wasm.d.ts" */

/**
 * A member of a lanmesh mesh, in the browser: the same Noise handshake, frames and
 * protocol core as the native peer, over a WebSocket to the router's gateway
 * (`ws://host:7401/mesh`). It reconnects by itself when the connection is lost, resuming
 * its session: acked sends arrive exactly once and in order across the cut.
 */
export class MeshPeer {
    static __wrap(ptr) {
        const obj = Object.create(MeshPeer.prototype);
        obj.__wbg_ptr = ptr;
        MeshPeerFinalization.register(obj, obj.__wbg_ptr, obj);
        return obj;
    }
    __destroy_into_raw() {
        const ptr = this.__wbg_ptr;
        this.__wbg_ptr = 0;
        MeshPeerFinalization.unregister(this);
        return ptr;
    }
    free() {
        const ptr = this.__destroy_into_raw();
        wasm.__wbg_meshpeer_free(ptr, 0);
    }
    /**
     * Sends `data` to every other peer.
     * @param {string | Uint8Array} data
     * @returns {Promise<void>}
     */
    broadcast(data) {
        const ret = wasm.meshpeer_broadcast(this.__wbg_ptr, data);
        return ret;
    }
    /**
     * Closes the connection: tells the router, closes the socket, rejects what is still
     * waiting and calls `onclose`.
     */
    close() {
        wasm.meshpeer_close(this.__wbg_ptr);
    }
    /**
     * Connects to the router at `url` (e.g. `ws://host:7401/mesh`) and joins the mesh as
     * `name`. Resolves once welcomed with the member list; rejects with an `Error` when
     * the socket fails, the router refuses (e.g. the name is taken), or the handshake
     * fails or takes more than 10 s.
     * @param {string} url
     * @param {string} name
     * @param {MeshPeerOptions | null} [options]
     * @returns {Promise<MeshPeer>}
     */
    static connect(url, name, options) {
        let ptr0, len0, ptr1, len1;
        try {
            ptr0 = passStringToWasm0(url, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passStringToWasm0(name, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len1 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.meshpeer_connect(ptr0, len0, ptr1, len1, options);
        return ret;
    }
    /**
     * The name the router welcomed this peer under.
     * @returns {string}
     */
    get name() {
        let deferred1_0;
        let deferred1_1;
        try {
            const ret = wasm.meshpeer_name(this.__wbg_ptr);
            deferred1_0 = ret[0];
            deferred1_1 = ret[1];
            return getStringFromWasm0(ret[0], ret[1]);
        } finally {
            wasm.__wbindgen_free(deferred1_0, deferred1_1, 1);
        }
    }
    /**
     * `(reason) => {}`: the peer is closed for good (refused, `close()`, or reconnection off).
     * @returns {((reason: string) => void) | null}
     */
    get onclose() {
        const ret = wasm.meshpeer_onclose(this.__wbg_ptr);
        return ret;
    }
    /**
     * `(from, file, name) => {}`: a file arrived whole (`file` is a `Blob`). Without
     * this handler the page refuses files, and their senders are told so.
     * @returns {((from: string, file: Blob, name: string) => void) | null}
     */
    get onfile() {
        const ret = wasm.meshpeer_onfile(this.__wbg_ptr);
        return ret;
    }
    /**
     * `(from, name, received, total) => {}`: bytes of an incoming file arrived.
     * @returns {((from: string, name: string, received: number, total: number) => void) | null}
     */
    get onfileprogress() {
        const ret = wasm.meshpeer_onfileprogress(this.__wbg_ptr);
        return ret;
    }
    /**
     * `(from, data, id) => {}`: a message arrived; `data` is a string when it was sent
     * as text, else a `Uint8Array`. Messages that came before it was set are delivered
     * to it then.
     * @returns {((from: string, data: string | Uint8Array, id: number) => void) | null}
     */
    get onmessage() {
        const ret = wasm.meshpeer_onmessage(this.__wbg_ptr);
        return ret;
    }
    /**
     * `(names) => {}`: the member list changed. Also called (in a microtask) right
     * after it is set, with the current list.
     * @returns {((names: string[]) => void) | null}
     */
    get onpeers() {
        const ret = wasm.meshpeer_onpeers(this.__wbg_ptr);
        return ret;
    }
    /**
     * `(status, detail) => {}`: the connection changed: `"reconnecting"` (with why and which attempt), `"connected"` (again), `"closed"`.
     * @returns {((status: MeshPeerStatus, detail: string) => void) | null}
     */
    get onstatus() {
        const ret = wasm.meshpeer_onstatus(this.__wbg_ptr);
        return ret;
    }
    /**
     * The members with how they are connected: `{name, transport, cipher, compression,
     * key}` (key in hex).
     * @returns {MeshPeerInfo[]}
     */
    peerInfo() {
        const ret = wasm.meshpeer_peerInfo(this.__wbg_ptr);
        return ret;
    }
    /**
     * The names of the members (this peer included), sorted.
     * @returns {string[]}
     */
    peers() {
        const ret = wasm.meshpeer_peers(this.__wbg_ptr);
        return ret;
    }
    /**
     * Asks `to` (a peer that answers requests) and resolves with its reply (a string if
     * it answered with text, else a `Uint8Array`). Rejects with code `NoResponder` when
     * the peer answers no requests, `UnknownPeer`, or `RequestTimeout` after
     * `timeoutMs` (default 5000).
     * @param {string} to
     * @param {string | Uint8Array} data
     * @param {number} [timeout_ms]
     * @returns {Promise<string | Uint8Array>}
     */
    request(to, data, timeout_ms) {
        const ptr0 = passStringToWasm0(to, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.meshpeer_request(this.__wbg_ptr, ptr0, len0, data, timeout_ms);
        return ret;
    }
    /**
     * Answers requests with `handler(from, data, id)`, which returns the reply (a string
     * or bytes, or a promise of one), or `null` to tell the requester this page has no
     * answer. `respond(null)` stops: requesters then get `NoResponder`.
     * @param {((from: string, data: string | Uint8Array, id: number) => string | Uint8Array | null | Promise<string | Uint8Array | null>) | null} handler
     */
    respond(handler) {
        wasm.meshpeer_respond(this.__wbg_ptr, isLikeNone(handler) ? 0 : addToExternrefTable0(handler));
    }
    /**
     * Sends `data` to `to` and resolves when the recipient's client has it; rejects with
     * e.g. `unknown peer "laptop"`, or after 10 s without an acknowledgement. Acked
     * sends arrive exactly once and in order, also across a lost connection.
     * @param {string} to
     * @param {string | Uint8Array} data
     * @returns {Promise<void>}
     */
    sendAcked(to, data) {
        const ptr0 = passStringToWasm0(to, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.meshpeer_sendAcked(this.__wbg_ptr, ptr0, len0, data);
        return ret;
    }
    /**
     * Sends `file` (a `File` or any `Blob`) to `to`, reading it a chunk at a time, and
     * resolves with `{name, bytes}` once the recipient has all of it (a native peer:
     * on its disk). Rejects with `FileRefused` (no save directory there, too large),
     * `FileFailed`, `UnknownPeer` or `Disconnected`.
     * @param {string} to
     * @param {Blob} file
     * @param {MeshSendFileOptions} [options]
     * @returns {Promise<MeshFileSent>}
     */
    sendFile(to, file, options) {
        const ptr0 = passStringToWasm0(to, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.meshpeer_sendFile(this.__wbg_ptr, ptr0, len0, file, options);
        return ret;
    }
    /**
     * Sends `data` (a string is sent as text, bytes as binary) to peer `to`. Resolves
     * once handed to the WebSocket (and its buffer is under 8 MiB); an unknown peer is
     * only reported to `sendAcked`.
     * @param {string} to
     * @param {string | Uint8Array} data
     * @returns {Promise<void>}
     */
    send(to, data) {
        const ptr0 = passStringToWasm0(to, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.meshpeer_send(this.__wbg_ptr, ptr0, len0, data);
        return ret;
    }
    /**
     * @param {((reason: string) => void) | null} f
     */
    set onclose(f) {
        wasm.meshpeer_set_onclose(this.__wbg_ptr, isLikeNone(f) ? 0 : addToExternrefTable0(f));
    }
    /**
     * Sets `onfile`.
     * @param {((from: string, file: Blob, name: string) => void) | null} f
     */
    set onfile(f) {
        wasm.meshpeer_set_onfile(this.__wbg_ptr, isLikeNone(f) ? 0 : addToExternrefTable0(f));
    }
    /**
     * @param {((from: string, name: string, received: number, total: number) => void) | null} f
     */
    set onfileprogress(f) {
        wasm.meshpeer_set_onfileprogress(this.__wbg_ptr, isLikeNone(f) ? 0 : addToExternrefTable0(f));
    }
    /**
     * Sets `onmessage`.
     * @param {((from: string, data: string | Uint8Array, id: number) => void) | null} f
     */
    set onmessage(f) {
        wasm.meshpeer_set_onmessage(this.__wbg_ptr, isLikeNone(f) ? 0 : addToExternrefTable0(f));
    }
    /**
     * Sets `onpeers`.
     * @param {((names: string[]) => void) | null} f
     */
    set onpeers(f) {
        wasm.meshpeer_set_onpeers(this.__wbg_ptr, isLikeNone(f) ? 0 : addToExternrefTable0(f));
    }
    /**
     * @param {((status: MeshPeerStatus, detail: string) => void) | null} f
     */
    set onstatus(f) {
        wasm.meshpeer_set_onstatus(this.__wbg_ptr, isLikeNone(f) ? 0 : addToExternrefTable0(f));
    }
    /**
     * Where the connection stands: `"connected"`, `"reconnecting"`, `"closed"`.
     * @returns {MeshPeerStatus}
     */
    get status() {
        let deferred1_0;
        let deferred1_1;
        try {
            const ret = wasm.meshpeer_status(this.__wbg_ptr);
            deferred1_0 = ret[0];
            deferred1_1 = ret[1];
            return getStringFromWasm0(ret[0], ret[1]);
        } finally {
            wasm.__wbindgen_free(deferred1_0, deferred1_1, 1);
        }
    }
}
if (Symbol.dispose) MeshPeer.prototype[Symbol.dispose] = MeshPeer.prototype.free;
function __wbg_get_imports() {
    const import0 = {
        __proto__: null,
        __wbg_Error_208446807d0d1e30: function(arg0, arg1) {
            const ret = Error(getStringFromWasm0(arg0, arg1));
            return ret;
        },
        __wbg___wbindgen_boolean_get_4f1baf9a00be3c74: function(arg0) {
            const v = arg0;
            const ret = typeof(v) === 'boolean' ? v : undefined;
            return isLikeNone(ret) ? 0xFFFFFF : ret ? 1 : 0;
        },
        __wbg___wbindgen_is_function_741ff2bb612836f5: function(arg0) {
            const ret = typeof(arg0) === 'function';
            return ret;
        },
        __wbg___wbindgen_is_null_c22311b1cc228e3a: function(arg0) {
            const ret = arg0 === null;
            return ret;
        },
        __wbg___wbindgen_is_object_8b968c3ab8e96595: function(arg0) {
            const val = arg0;
            const ret = typeof(val) === 'object' && val !== null;
            return ret;
        },
        __wbg___wbindgen_is_undefined_be5b34249ff1fc15: function(arg0) {
            const ret = arg0 === undefined;
            return ret;
        },
        __wbg___wbindgen_number_get_934b640d0889af78: function(arg0, arg1) {
            const obj = arg1;
            const ret = typeof(obj) === 'number' ? obj : undefined;
            getDataViewMemory0().setFloat64((arg0 >>> 0) + 8 * 1, isLikeNone(ret) ? 0 : ret, true);
            getDataViewMemory0().setInt32((arg0 >>> 0) + 4 * 0, !isLikeNone(ret), true);
        },
        __wbg___wbindgen_string_get_7ce8eee7fd327545: function(arg0, arg1) {
            const obj = arg1;
            const ret = typeof(obj) === 'string' ? obj : undefined;
            var ptr1 = isLikeNone(ret) ? 0 : passStringToWasm0(ret, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            var len1 = WASM_VECTOR_LEN;
            getDataViewMemory0().setInt32((arg0 >>> 0) + 4 * 1, len1, true);
            getDataViewMemory0().setInt32((arg0 >>> 0) + 4 * 0, ptr1, true);
        },
        __wbg___wbindgen_throw_4c88d8bf264fd984: function(arg0, arg1) {
            throw new Error(getStringFromWasm0(arg0, arg1));
        },
        __wbg__wbg_cb_unref_09736879a3f67559: function(arg0) {
            arg0._wbg_cb_unref();
        },
        __wbg_apply_bfe2b07b146427e2: function() { return handleError(function (arg0, arg1, arg2) {
            const ret = arg0.apply(arg1, arg2);
            return ret;
        }, arguments); },
        __wbg_arrayBuffer_5abbcb61bd48f427: function(arg0) {
            const ret = arg0.arrayBuffer();
            return ret;
        },
        __wbg_bufferedAmount_1a6499d60a181d57: function(arg0) {
            const ret = arg0.bufferedAmount;
            return ret;
        },
        __wbg_call_a410eb4b59ed5965: function() { return handleError(function (arg0, arg1, arg2) {
            const ret = arg0.call(arg1, arg2);
            return ret;
        }, arguments); },
        __wbg_clearTimeout_0a950802e09a170f: function(arg0) {
            clearTimeout(arg0);
        },
        __wbg_close_297c4419d0990129: function() { return handleError(function (arg0, arg1) {
            arg0.close(arg1);
        }, arguments); },
        __wbg_code_3e6881d821eab2c4: function(arg0) {
            const ret = arg0.code;
            return ret;
        },
        __wbg_data_c7e5e8500f1bca2f: function(arg0) {
            const ret = arg0.data;
            return ret;
        },
        __wbg_error_9b95f63d905893d2: function(arg0, arg1) {
            console.error(arg0, arg1);
        },
        __wbg_error_d1fc0193610e0e39: function(arg0) {
            console.error(arg0);
        },
        __wbg_getItem_49556a3e59cfb688: function() { return handleError(function (arg0, arg1, arg2, arg3) {
            const ret = arg1.getItem(getStringFromWasm0(arg2, arg3));
            var ptr1 = isLikeNone(ret) ? 0 : passStringToWasm0(ret, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            var len1 = WASM_VECTOR_LEN;
            getDataViewMemory0().setInt32((arg0 >>> 0) + 4 * 1, len1, true);
            getDataViewMemory0().setInt32((arg0 >>> 0) + 4 * 0, ptr1, true);
        }, arguments); },
        __wbg_getRandomValues_5d8c030b527203a6: function() { return handleError(function (arg0, arg1) {
            globalThis.crypto.getRandomValues(getArrayU8FromWasm0(arg0, arg1));
        }, arguments); },
        __wbg_get_2080c49015e35254: function() { return handleError(function (arg0, arg1) {
            const ret = Reflect.get(arg0, arg1);
            return ret;
        }, arguments); },
        __wbg_instanceof_ArrayBuffer_12cdaa4161423e6b: function(arg0) {
            let result;
            try {
                result = arg0 instanceof ArrayBuffer;
            } catch (_) {
                result = false;
            }
            const ret = result;
            return ret;
        },
        __wbg_instanceof_Error_74e3cca0c4a69161: function(arg0) {
            let result;
            try {
                result = arg0 instanceof Error;
            } catch (_) {
                result = false;
            }
            const ret = result;
            return ret;
        },
        __wbg_instanceof_Promise_59148c6049d0e3a0: function(arg0) {
            let result;
            try {
                result = arg0 instanceof Promise;
            } catch (_) {
                result = false;
            }
            const ret = result;
            return ret;
        },
        __wbg_instanceof_Uint8Array_d7aeb0dcb3108fea: function(arg0) {
            let result;
            try {
                result = arg0 instanceof Uint8Array;
            } catch (_) {
                result = false;
            }
            const ret = result;
            return ret;
        },
        __wbg_instanceof_Window_5cf453f5639aa1a2: function(arg0) {
            let result;
            try {
                result = arg0 instanceof Window;
            } catch (_) {
                result = false;
            }
            const ret = result;
            return ret;
        },
        __wbg_length_186163212ffe79c3: function(arg0) {
            const ret = arg0.length;
            return ret;
        },
        __wbg_localStorage_6827cfe6db14a9f6: function() { return handleError(function (arg0) {
            const ret = arg0.localStorage;
            return isLikeNone(ret) ? 0 : addToExternrefTable0(ret);
        }, arguments); },
        __wbg_meshpeer_new: function(arg0) {
            const ret = MeshPeer.__wrap(arg0);
            return ret;
        },
        __wbg_message_43d8c8f1d543a349: function(arg0) {
            const ret = arg0.message;
            return ret;
        },
        __wbg_new_13de428334042d26: function(arg0) {
            const ret = new Uint8Array(arg0);
            return ret;
        },
        __wbg_new_37eb45aaf5eeb820: function() {
            const ret = new Array();
            return ret;
        },
        __wbg_new_4416a2fe2fac9c65: function(arg0, arg1) {
            const ret = new TypeError(getStringFromWasm0(arg0, arg1));
            return ret;
        },
        __wbg_new_787b9fb330d55d78: function(arg0, arg1) {
            const ret = new Error(getStringFromWasm0(arg0, arg1));
            return ret;
        },
        __wbg_new_ba40181b3f24ac80: function(arg0, arg1) {
            try {
                var state0 = {a: arg0, b: arg1};
                var cb0 = (arg0, arg1) => {
                    const a = state0.a;
                    state0.a = 0;
                    try {
                        return wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke___js_sys_67b5248a47457fb2___Function_fn_wasm_bindgen_c68b8da8c1f9b242___JsValue_____wasm_bindgen_c68b8da8c1f9b242___sys__Undefined___js_sys_67b5248a47457fb2___Function_fn_wasm_bindgen_c68b8da8c1f9b242___JsValue_____wasm_bindgen_c68b8da8c1f9b242___sys__Undefined_______true_(a, state0.b, arg0, arg1);
                    } finally {
                        state0.a = a;
                    }
                };
                const ret = new Promise(cb0);
                return ret;
            } finally {
                state0.a = 0;
            }
        },
        __wbg_new_cd4348290afae586: function() {
            const ret = new Object();
            return ret;
        },
        __wbg_new_d72daa1c90ded389: function() { return handleError(function (arg0, arg1) {
            const ret = new WebSocket(getStringFromWasm0(arg0, arg1));
            return ret;
        }, arguments); },
        __wbg_new_from_slice_b8daf545a41c6aa0: function(arg0, arg1) {
            const ret = new Uint8Array(getArrayU8FromWasm0(arg0, arg1));
            return ret;
        },
        __wbg_new_typed_e09da9dae6ee5935: function(arg0, arg1) {
            try {
                var state0 = {a: arg0, b: arg1};
                var cb0 = (arg0, arg1) => {
                    const a = state0.a;
                    state0.a = 0;
                    try {
                        return wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke___js_sys_67b5248a47457fb2___Function_fn_wasm_bindgen_c68b8da8c1f9b242___JsValue_____wasm_bindgen_c68b8da8c1f9b242___sys__Undefined___js_sys_67b5248a47457fb2___Function_fn_wasm_bindgen_c68b8da8c1f9b242___JsValue_____wasm_bindgen_c68b8da8c1f9b242___sys__Undefined_______true_(a, state0.b, arg0, arg1);
                    } finally {
                        state0.a = a;
                    }
                };
                const ret = new Promise(cb0);
                return ret;
            } finally {
                state0.a = 0;
            }
        },
        __wbg_new_with_u8_array_sequence_9cda61cd48ab1b97: function() { return handleError(function (arg0) {
            const ret = new Blob(arg0);
            return ret;
        }, arguments); },
        __wbg_now_463ac581d2fc7ea3: function() {
            const ret = Date.now();
            return ret;
        },
        __wbg_prototypesetcall_13162965d1fe7aa3: function(arg0, arg1, arg2) {
            Uint8Array.prototype.set.call(getArrayU8FromWasm0(arg0, arg1), arg2);
        },
        __wbg_push_c9f4893fc209f768: function(arg0, arg1) {
            const ret = arg0.push(arg1);
            return ret;
        },
        __wbg_queueMicrotask_1e8503a8a690f0a3: function(arg0) {
            const ret = arg0.queueMicrotask;
            return ret;
        },
        __wbg_queueMicrotask_4a1a4d8dd332373b: function(arg0) {
            queueMicrotask(arg0);
        },
        __wbg_queueMicrotask_9cd651a8362f3b78: function(arg0) {
            queueMicrotask(arg0);
        },
        __wbg_readyState_039bc047141a5f6d: function(arg0) {
            const ret = arg0.readyState;
            return ret;
        },
        __wbg_reason_34b16516ab3f72d4: function(arg0, arg1) {
            const ret = arg1.reason;
            const ptr1 = passStringToWasm0(ret, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            const len1 = WASM_VECTOR_LEN;
            getDataViewMemory0().setInt32((arg0 >>> 0) + 4 * 1, len1, true);
            getDataViewMemory0().setInt32((arg0 >>> 0) + 4 * 0, ptr1, true);
        },
        __wbg_reject_334b730b3c00849b: function(arg0) {
            const ret = Promise.reject(arg0);
            return ret;
        },
        __wbg_resolve_dbf78ab4942478b0: function(arg0) {
            const ret = Promise.resolve(arg0);
            return ret;
        },
        __wbg_send_d83d0891cf698779: function() { return handleError(function (arg0, arg1, arg2) {
            arg0.send(getArrayU8FromWasm0(arg1, arg2));
        }, arguments); },
        __wbg_setItem_cfa3cb31f271776a: function() { return handleError(function (arg0, arg1, arg2, arg3, arg4) {
            arg0.setItem(getStringFromWasm0(arg1, arg2), getStringFromWasm0(arg3, arg4));
        }, arguments); },
        __wbg_setTimeout_51dc8ae063ede485: function(arg0, arg1) {
            const ret = setTimeout(arg0, arg1);
            return ret;
        },
        __wbg_setTimeout_9ef22b48643bd7de: function() { return handleError(function (arg0, arg1, arg2) {
            const ret = arg0.setTimeout(arg1, arg2);
            return ret;
        }, arguments); },
        __wbg_set_2793479888329cb6: function() { return handleError(function (arg0, arg1, arg2) {
            const ret = Reflect.set(arg0, arg1, arg2);
            return ret;
        }, arguments); },
        __wbg_set_binaryType_d5b4dafd0f127fb2: function(arg0, arg1) {
            arg0.binaryType = __wbindgen_enum_BinaryType[arg1];
        },
        __wbg_set_onclose_078935cf8d0fb024: function(arg0, arg1) {
            arg0.onclose = arg1;
        },
        __wbg_set_onerror_f7f089f7f059501c: function(arg0, arg1) {
            arg0.onerror = arg1;
        },
        __wbg_set_onmessage_26abc49cfa5f9ffc: function(arg0, arg1) {
            arg0.onmessage = arg1;
        },
        __wbg_set_onopen_757be120cc7b1ea6: function(arg0, arg1) {
            arg0.onopen = arg1;
        },
        __wbg_size_9d1084e29743663c: function(arg0) {
            const ret = arg0.size;
            return ret;
        },
        __wbg_slice_b94f88ac0a502e53: function() { return handleError(function (arg0, arg1, arg2) {
            const ret = arg0.slice(arg1, arg2);
            return ret;
        }, arguments); },
        __wbg_static_accessor_GLOBAL_THIS_003ee833af9699fc: function() {
            const ret = typeof globalThis === 'undefined' ? undefined : globalThis;
            return isLikeNone(ret) ? 0 : addToExternrefTable0(ret);
        },
        __wbg_static_accessor_GLOBAL_e4293fb22cbe77da: function() {
            const ret = typeof global === 'undefined' ? undefined : global;
            return isLikeNone(ret) ? 0 : addToExternrefTable0(ret);
        },
        __wbg_static_accessor_SELF_53bb20457401453d: function() {
            const ret = typeof self === 'undefined' ? undefined : self;
            return isLikeNone(ret) ? 0 : addToExternrefTable0(ret);
        },
        __wbg_static_accessor_WINDOW_b5e0810bfecb7feb: function() {
            const ret = typeof window === 'undefined' ? undefined : window;
            return isLikeNone(ret) ? 0 : addToExternrefTable0(ret);
        },
        __wbg_then_656f253a5dd7d8ea: function(arg0, arg1, arg2) {
            const ret = arg0.then(arg1, arg2);
            return ret;
        },
        __wbg_then_e3f7f2d365708be8: function(arg0, arg1) {
            const ret = arg0.then(arg1);
            return ret;
        },
        __wbg_warn_228ff2257384d295: function(arg0) {
            console.warn(arg0);
        },
        __wbindgen_generic_0000000000000001: function(arg0, arg1) {
            // Cast intrinsic for `Closure(Closure { owned: true, function: Function { arguments: [Externref], shim_idx: 173, ret: Result(Unit), inner_ret: Some(Result(Unit)) }, mutable: true }) -> Externref`.
            const ret = makeMutClosure(arg0, arg1, wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke___wasm_bindgen_c68b8da8c1f9b242___JsValue__core_8a97de082bc4c33___result__Result_____wasm_bindgen_c68b8da8c1f9b242___JsError___true_);
            return ret;
        },
        __wbindgen_generic_0000000000000002: function(arg0, arg1) {
            // Cast intrinsic for `Closure(Closure { owned: true, function: Function { arguments: [NamedExternref("CloseEvent")], shim_idx: 6, ret: Unit, inner_ret: Some(Unit) }, mutable: true }) -> Externref`.
            const ret = makeMutClosure(arg0, arg1, wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke___web_sys_dab04b46ef11af1c___features__gen_CloseEvent__CloseEvent______true_);
            return ret;
        },
        __wbindgen_generic_0000000000000003: function(arg0, arg1) {
            // Cast intrinsic for `Closure(Closure { owned: true, function: Function { arguments: [NamedExternref("Event")], shim_idx: 6, ret: Unit, inner_ret: Some(Unit) }, mutable: true }) -> Externref`.
            const ret = makeMutClosure(arg0, arg1, wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke___web_sys_dab04b46ef11af1c___features__gen_CloseEvent__CloseEvent______true__27);
            return ret;
        },
        __wbindgen_generic_0000000000000004: function(arg0, arg1) {
            // Cast intrinsic for `Closure(Closure { owned: true, function: Function { arguments: [NamedExternref("MessageEvent")], shim_idx: 6, ret: Unit, inner_ret: Some(Unit) }, mutable: true }) -> Externref`.
            const ret = makeMutClosure(arg0, arg1, wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke___web_sys_dab04b46ef11af1c___features__gen_CloseEvent__CloseEvent______true__28);
            return ret;
        },
        __wbindgen_generic_0000000000000005: function(arg0, arg1) {
            // Cast intrinsic for `Closure(Closure { owned: true, function: Function { arguments: [], shim_idx: 5, ret: Unit, inner_ret: Some(Unit) }, mutable: true }) -> Externref`.
            const ret = makeMutClosure(arg0, arg1, wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke_______true_);
            return ret;
        },
        __wbindgen_generic_0000000000000006: function(arg0) {
            // Cast intrinsic for `F64 -> Externref`.
            const ret = arg0;
            return ret;
        },
        __wbindgen_generic_0000000000000007: function(arg0, arg1) {
            // Cast intrinsic for `Ref(String) -> Externref`.
            const ret = getStringFromWasm0(arg0, arg1);
            return ret;
        },
        __wbindgen_init_externref_table: function() {
            const table = wasm.__wbindgen_externrefs;
            table.set(0, undefined);
            table.set(1024, undefined);
            table.set(1025, null);
            table.set(1026, true);
            table.set(1027, false);
        },
    };
    return {
        __proto__: null,
        "./lanmesh_wasm_bg.js": import0,
    };
}

function wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke_______true_(arg0, arg1) {
    wasm.wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke_______true_(arg0, arg1);
}

function wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke___web_sys_dab04b46ef11af1c___features__gen_CloseEvent__CloseEvent______true_(arg0, arg1, arg2) {
    wasm.wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke___web_sys_dab04b46ef11af1c___features__gen_CloseEvent__CloseEvent______true_(arg0, arg1, arg2);
}

function wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke___web_sys_dab04b46ef11af1c___features__gen_CloseEvent__CloseEvent______true__27(arg0, arg1, arg2) {
    wasm.wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke___web_sys_dab04b46ef11af1c___features__gen_CloseEvent__CloseEvent______true__27(arg0, arg1, arg2);
}

function wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke___web_sys_dab04b46ef11af1c___features__gen_CloseEvent__CloseEvent______true__28(arg0, arg1, arg2) {
    wasm.wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke___web_sys_dab04b46ef11af1c___features__gen_CloseEvent__CloseEvent______true__28(arg0, arg1, arg2);
}

function wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke___wasm_bindgen_c68b8da8c1f9b242___JsValue__core_8a97de082bc4c33___result__Result_____wasm_bindgen_c68b8da8c1f9b242___JsError___true_(arg0, arg1, arg2) {
    const ret = wasm.wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke___wasm_bindgen_c68b8da8c1f9b242___JsValue__core_8a97de082bc4c33___result__Result_____wasm_bindgen_c68b8da8c1f9b242___JsError___true_(arg0, arg1, arg2);
    if (ret[1]) {
        throw takeFromExternrefTable0(ret[0]);
    }
}

function wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke___js_sys_67b5248a47457fb2___Function_fn_wasm_bindgen_c68b8da8c1f9b242___JsValue_____wasm_bindgen_c68b8da8c1f9b242___sys__Undefined___js_sys_67b5248a47457fb2___Function_fn_wasm_bindgen_c68b8da8c1f9b242___JsValue_____wasm_bindgen_c68b8da8c1f9b242___sys__Undefined_______true_(arg0, arg1, arg2, arg3) {
    wasm.wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke___js_sys_67b5248a47457fb2___Function_fn_wasm_bindgen_c68b8da8c1f9b242___JsValue_____wasm_bindgen_c68b8da8c1f9b242___sys__Undefined___js_sys_67b5248a47457fb2___Function_fn_wasm_bindgen_c68b8da8c1f9b242___JsValue_____wasm_bindgen_c68b8da8c1f9b242___sys__Undefined_______true_(arg0, arg1, arg2, arg3);
}


const __wbindgen_enum_BinaryType = ["blob", "arraybuffer"];
const MeshPeerFinalization = (typeof FinalizationRegistry === 'undefined')
    ? { register: () => {}, unregister: () => {} }
    : new FinalizationRegistry(ptr => wasm.__wbg_meshpeer_free(ptr, 1));

function addToExternrefTable0(obj) {
    const idx = wasm.__externref_table_alloc();
    wasm.__wbindgen_externrefs.set(idx, obj);
    return idx;
}

const CLOSURE_DTORS = (typeof FinalizationRegistry === 'undefined')
    ? { register: () => {}, unregister: () => {} }
    : new FinalizationRegistry(state => wasm.__wbindgen_destroy_closure(state.a, state.b));

function getArrayU8FromWasm0(ptr, len) {
    ptr = ptr >>> 0;
    return getUint8ArrayMemory0().subarray(ptr / 1, ptr / 1 + len);
}

let cachedDataViewMemory0 = null;
function getDataViewMemory0() {
    if (cachedDataViewMemory0 === null || cachedDataViewMemory0.buffer.detached === true || (cachedDataViewMemory0.buffer.detached === undefined && cachedDataViewMemory0.buffer !== wasm.memory.buffer)) {
        cachedDataViewMemory0 = new DataView(wasm.memory.buffer);
    }
    return cachedDataViewMemory0;
}

function getStringFromWasm0(ptr, len) {
    ptr = ptr >>> 0;
    return decodeText(getUint8ArrayMemory0().subarray(ptr, ptr + len));
}

let cachedUint8ArrayMemory0 = null;
function getUint8ArrayMemory0() {
    if (cachedUint8ArrayMemory0 === null || cachedUint8ArrayMemory0.byteLength === 0) {
        cachedUint8ArrayMemory0 = new Uint8Array(wasm.memory.buffer);
    }
    return cachedUint8ArrayMemory0;
}

function handleError(f, args) {
    try {
        return f.apply(this, args);
    } catch (e) {
        const idx = addToExternrefTable0(e);
        wasm.__wbindgen_exn_store(idx);
    }
}

function isLikeNone(x) {
    return x === undefined || x === null;
}

function makeMutClosure(arg0, arg1, f) {
    const state = { a: arg0, b: arg1, cnt: 1 };
    const real = (...args) => {

        // First up with a closure we increment the internal reference
        // count. This ensures that the Rust closure environment won't
        // be deallocated while we're invoking it.
        state.cnt++;
        const a = state.a;
        state.a = 0;
        try {
            return f(a, state.b, ...args);
        } finally {
            state.a = a;
            real._wbg_cb_unref();
        }
    };
    real._wbg_cb_unref = () => {
        if (--state.cnt === 0) {
            wasm.__wbindgen_destroy_closure(state.a, state.b);
            state.a = 0;
            CLOSURE_DTORS.unregister(state);
        }
    };
    CLOSURE_DTORS.register(real, state, state);
    return real;
}

function passStringToWasm0(arg, malloc, realloc) {
    if (realloc === undefined) {
        const buf = cachedTextEncoder.encode(arg);
        const ptr = malloc(buf.length, 1) >>> 0;
        getUint8ArrayMemory0().subarray(ptr, ptr + buf.length).set(buf);
        WASM_VECTOR_LEN = buf.length;
        return ptr;
    }

    let len = arg.length;
    let ptr = malloc(len, 1) >>> 0;

    const mem = getUint8ArrayMemory0();

    let offset = 0;

    for (; offset < len; offset++) {
        const code = arg.charCodeAt(offset);
        if (code > 0x7F) break;
        mem[ptr + offset] = code;
    }
    if (offset !== len) {
        if (offset !== 0) {
            arg = arg.slice(offset);
        }
        ptr = realloc(ptr, len, len = offset + arg.length * 3, 1) >>> 0;
        const view = getUint8ArrayMemory0().subarray(ptr + offset, ptr + len);
        const ret = cachedTextEncoder.encodeInto(arg, view);

        offset += ret.written;
        ptr = realloc(ptr, len, offset, 1) >>> 0;
    }

    WASM_VECTOR_LEN = offset;
    return ptr;
}

function takeFromExternrefTable0(idx) {
    const value = wasm.__wbindgen_externrefs.get(idx);
    wasm.__externref_table_dealloc(idx);
    return value;
}

let cachedTextDecoder = new TextDecoder('utf-8', { ignoreBOM: true });
cachedTextDecoder.decode();
const MAX_SAFARI_DECODE_BYTES = 2146435072;
let numBytesDecoded = 0;
function decodeText(bytes) {
    numBytesDecoded += bytes.length;
    if (numBytesDecoded >= MAX_SAFARI_DECODE_BYTES) {
        cachedTextDecoder = new TextDecoder('utf-8', { ignoreBOM: true });
        cachedTextDecoder.decode();
        numBytesDecoded = bytes.length;
    }
    return cachedTextDecoder.decode(bytes);
}

const cachedTextEncoder = new TextEncoder();

if (!('encodeInto' in cachedTextEncoder)) {
    cachedTextEncoder.encodeInto = function (arg, view) {
        const buf = cachedTextEncoder.encode(arg);
        view.set(buf);
        return {
            read: arg.length,
            written: buf.length
        };
    };
}

let WASM_VECTOR_LEN = 0;

let wasmModule, wasmInstance, wasm;
function __wbg_finalize_init(instance, module) {
    wasmInstance = instance;
    wasm = instance.exports;
    wasmModule = module;
    cachedDataViewMemory0 = null;
    cachedUint8ArrayMemory0 = null;
    wasm.__wbindgen_start();
    return wasm;
}

async function __wbg_load(module, imports) {
    if (typeof Response === 'function' && module instanceof Response) {
        if (!module.ok) {
            throw new Error(`failed to fetch Wasm: ${module.status} ${module.statusText} fetching '${module.url}'`);
        }

        if (typeof WebAssembly.instantiateStreaming === 'function') {
            try {
                return await WebAssembly.instantiateStreaming(module, imports);
            } catch (e) {
                const validResponse = expectedResponseType(module.type);

                if (validResponse && module.headers.get('Content-Type') !== 'application/wasm') {
                    console.warn("`WebAssembly.instantiateStreaming` failed because your server does not serve Wasm with `application/wasm` MIME type. Falling back to `WebAssembly.instantiate` which is slower. Original error:\n", e);

                } else { throw e; }
            }
        }

        const bytes = await module.arrayBuffer();
        return await WebAssembly.instantiate(bytes, imports);
    } else {
        const instance = await WebAssembly.instantiate(module, imports);

        if (instance instanceof WebAssembly.Instance) {
            return { instance, module };
        } else {
            return instance;
        }
    }

    function expectedResponseType(type) {
        switch (type) {
            case 'basic': case 'cors': case 'default': return true;
        }
        return false;
    }
}

function initSync(module) {
    if (wasm !== undefined) return wasm;


    if (module !== undefined) {
        if (Object.getPrototypeOf(module) === Object.prototype) {
            ({module} = module)
        } else {
            console.warn('using deprecated parameters for `initSync()`; pass a single object instead')
        }
    }

    const imports = __wbg_get_imports();
    if (!(module instanceof WebAssembly.Module)) {
        module = new WebAssembly.Module(module);
    }
    const instance = new WebAssembly.Instance(module, imports);
    return __wbg_finalize_init(instance, module);
}

let __wbg_init_promise;
async function __wbg_init(module_or_path) {
    if (wasm !== undefined) return wasm;
    if (__wbg_init_promise === undefined) {
        __wbg_init_promise = __wbg_init_once(module_or_path);
        __wbg_init_promise.catch(() => { __wbg_init_promise = undefined; });
    }
    return __wbg_init_promise;
}

async function __wbg_init_once(module_or_path) {

    if (module_or_path !== undefined) {
        if (Object.getPrototypeOf(module_or_path) === Object.prototype) {
            ({module_or_path} = module_or_path)
        } else {
            console.warn('using deprecated parameters for the initialization function; pass a single object instead')
        }
    }

    if (module_or_path === undefined) {
        module_or_path = new URL('lanmesh_wasm_bg.wasm', import.meta.url);
    }
    const imports = __wbg_get_imports();

    if (typeof module_or_path === 'string' || (typeof Request === 'function' && module_or_path instanceof Request) || (typeof URL === 'function' && module_or_path instanceof URL)) {
        module_or_path = fetch(module_or_path);
    }

    const { instance, module } = await __wbg_load(await module_or_path, imports);

    return __wbg_finalize_init(instance, module);
}

export { initSync, __wbg_init as default };

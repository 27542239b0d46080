/* tslint:disable */
/* eslint-disable */

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



/**
 * A member of a lanmesh mesh, in the browser: the same Noise handshake, frames and
 * protocol core as the native peer, over a WebSocket to the router's gateway
 * (`ws://host:7401/mesh`). It reconnects by itself when the connection is lost, resuming
 * its session: acked sends arrive exactly once and in order across the cut.
 */
export class MeshPeer {
    private constructor();
    free(): void;
    [Symbol.dispose](): void;
    /**
     * Sends `data` to every other peer.
     */
    broadcast(data: string | Uint8Array): Promise<void>;
    /**
     * Closes the connection: tells the router, closes the socket, rejects what is still
     * waiting and calls `onclose`.
     */
    close(): void;
    /**
     * Connects to the router at `url` (e.g. `ws://host:7401/mesh`) and joins the mesh as
     * `name`. Resolves once welcomed with the member list; rejects with an `Error` when
     * the socket fails, the router refuses (e.g. the name is taken), or the handshake
     * fails or takes more than 10 s.
     */
    static connect(url: string, name: string, options?: MeshPeerOptions | null): Promise<MeshPeer>;
    /**
     * The members with how they are connected: `{name, transport, cipher, compression,
     * key}` (key in hex).
     */
    peerInfo(): MeshPeerInfo[];
    /**
     * The names of the members (this peer included), sorted.
     */
    peers(): string[];
    /**
     * Asks `to` (a peer that answers requests) and resolves with its reply (a string if
     * it answered with text, else a `Uint8Array`). Rejects with code `NoResponder` when
     * the peer answers no requests, `UnknownPeer`, or `RequestTimeout` after
     * `timeoutMs` (default 5000).
     */
    request(to: string, data: string | Uint8Array, timeout_ms?: number): Promise<string | Uint8Array>;
    /**
     * Answers requests with `handler(from, data, id)`, which returns the reply (a string
     * or bytes, or a promise of one), or `null` to tell the requester this page has no
     * answer. `respond(null)` stops: requesters then get `NoResponder`.
     */
    respond(handler: ((from: string, data: string | Uint8Array, id: number) => string | Uint8Array | null | Promise<string | Uint8Array | null>) | null): void;
    /**
     * Sends `data` to `to` and resolves when the recipient's client has it; rejects with
     * e.g. `unknown peer "laptop"`, or after 10 s without an acknowledgement. Acked
     * sends arrive exactly once and in order, also across a lost connection.
     */
    sendAcked(to: string, data: string | Uint8Array): Promise<void>;
    /**
     * Sends `file` (a `File` or any `Blob`) to `to`, reading it a chunk at a time, and
     * resolves with `{name, bytes}` once the recipient has all of it (a native peer:
     * on its disk). Rejects with `FileRefused` (no save directory there, too large),
     * `FileFailed`, `UnknownPeer` or `Disconnected`.
     */
    sendFile(to: string, file: Blob, options?: MeshSendFileOptions): Promise<MeshFileSent>;
    /**
     * Sends `data` (a string is sent as text, bytes as binary) to peer `to`. Resolves
     * once handed to the WebSocket (and its buffer is under 8 MiB); an unknown peer is
     * only reported to `sendAcked`.
     */
    send(to: string, data: string | Uint8Array): Promise<void>;
    /**
     * The name the router welcomed this peer under.
     */
    readonly name: string;
    /**
     * `(reason) => {}`: the peer is closed for good (refused, `close()`, or reconnection off).
     */
    onclose: ((reason: string) => void) | null;
    /**
     * `(from, file, name) => {}`: a file arrived whole (`file` is a `Blob`). Without
     * this handler the page refuses files, and their senders are told so.
     */
    onfile: ((from: string, file: Blob, name: string) => void) | null;
    /**
     * `(from, name, received, total) => {}`: bytes of an incoming file arrived.
     */
    onfileprogress: ((from: string, name: string, received: number, total: number) => void) | null;
    /**
     * `(from, data, id) => {}`: a message arrived; `data` is a string when it was sent
     * as text, else a `Uint8Array`. Messages that came before it was set are delivered
     * to it then.
     */
    onmessage: ((from: string, data: string | Uint8Array, id: number) => void) | null;
    /**
     * `(names) => {}`: the member list changed. Also called (in a microtask) right
     * after it is set, with the current list.
     */
    onpeers: ((names: string[]) => void) | null;
    /**
     * `(status, detail) => {}`: the connection changed: `"reconnecting"` (with why and which attempt), `"connected"` (again), `"closed"`.
     */
    onstatus: ((status: MeshPeerStatus, detail: string) => void) | null;
    /**
     * Where the connection stands: `"connected"`, `"reconnecting"`, `"closed"`.
     */
    readonly status: MeshPeerStatus;
}

export type InitInput = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;

export interface InitOutput {
    readonly memory: WebAssembly.Memory;
    readonly __wbg_meshpeer_free: (a: number, b: number) => void;
    readonly meshpeer_broadcast: (a: number, b: any) => any;
    readonly meshpeer_close: (a: number) => void;
    readonly meshpeer_connect: (a: number, b: number, c: number, d: number, e: any) => any;
    readonly meshpeer_name: (a: number) => [number, number];
    readonly meshpeer_onclose: (a: number) => any;
    readonly meshpeer_onfile: (a: number) => any;
    readonly meshpeer_onfileprogress: (a: number) => any;
    readonly meshpeer_onmessage: (a: number) => any;
    readonly meshpeer_onpeers: (a: number) => any;
    readonly meshpeer_onstatus: (a: number) => any;
    readonly meshpeer_peerInfo: (a: number) => any;
    readonly meshpeer_peers: (a: number) => any;
    readonly meshpeer_request: (a: number, b: number, c: number, d: any, e: any) => any;
    readonly meshpeer_respond: (a: number, b: number) => void;
    readonly meshpeer_send: (a: number, b: number, c: number, d: any) => any;
    readonly meshpeer_sendAcked: (a: number, b: number, c: number, d: any) => any;
    readonly meshpeer_sendFile: (a: number, b: number, c: number, d: any, e: any) => any;
    readonly meshpeer_set_onclose: (a: number, b: number) => void;
    readonly meshpeer_set_onfile: (a: number, b: number) => void;
    readonly meshpeer_set_onfileprogress: (a: number, b: number) => void;
    readonly meshpeer_set_onmessage: (a: number, b: number) => void;
    readonly meshpeer_set_onpeers: (a: number, b: number) => void;
    readonly meshpeer_set_onstatus: (a: number, b: number) => void;
    readonly meshpeer_status: (a: number) => [number, number];
    readonly wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke___js_sys_67b5248a47457fb2___Function_fn_wasm_bindgen_c68b8da8c1f9b242___JsValue_____wasm_bindgen_c68b8da8c1f9b242___sys__Undefined___js_sys_67b5248a47457fb2___Function_fn_wasm_bindgen_c68b8da8c1f9b242___JsValue_____wasm_bindgen_c68b8da8c1f9b242___sys__Undefined_______true_: (a: number, b: number, c: any, d: any) => void;
    readonly wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke___wasm_bindgen_c68b8da8c1f9b242___JsValue__core_8a97de082bc4c33___result__Result_____wasm_bindgen_c68b8da8c1f9b242___JsError___true_: (a: number, b: number, c: any) => [number, number];
    readonly wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke___web_sys_dab04b46ef11af1c___features__gen_CloseEvent__CloseEvent______true_: (a: number, b: number, c: any) => void;
    readonly wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke___web_sys_dab04b46ef11af1c___features__gen_CloseEvent__CloseEvent______true__27: (a: number, b: number, c: any) => void;
    readonly wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke___web_sys_dab04b46ef11af1c___features__gen_CloseEvent__CloseEvent______true__28: (a: number, b: number, c: any) => void;
    readonly wasm_bindgen_c68b8da8c1f9b242___convert__closures_____invoke_______true_: (a: number, b: number) => void;
    readonly __wbindgen_malloc: (a: number, b: number) => number;
    readonly __wbindgen_realloc: (a: number, b: number, c: number, d: number) => number;
    readonly __wbindgen_free: (a: number, b: number, c: number) => void;
    readonly __wbindgen_exn_store: (a: number) => void;
    readonly __externref_table_alloc: () => number;
    readonly __wbindgen_externrefs: WebAssembly.Table;
    readonly __wbindgen_destroy_closure: (a: number, b: number) => void;
    readonly __externref_table_dealloc: (a: number) => void;
    readonly __wbindgen_start: () => void;
}

export type SyncInitInput = BufferSource | WebAssembly.Module;

/**
 * Instantiates the given `module`, which can either be bytes or
 * a precompiled `WebAssembly.Module`.
 *
 * @param {{ module: SyncInitInput }} module - Passing `SyncInitInput` directly is deprecated.
 *
 * @returns {InitOutput}
 */
export function initSync(module: { module: SyncInitInput } | SyncInitInput): InitOutput;

/**
 * If `module_or_path` is {RequestInfo} or {URL}, makes a request and
 * for everything else, calls `WebAssembly.instantiate` directly.
 *
 * @param {{ module_or_path: InitInput | Promise<InitInput> }} module_or_path - Passing `InitInput` directly is deprecated.
 *
 * @returns {Promise<InitOutput>}
 */
export default function __wbg_init (module_or_path?: { module_or_path: InitInput | Promise<InitInput> } | InitInput | Promise<InitInput>): Promise<InitOutput>;

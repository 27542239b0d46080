"""Python and a browser as peers of one mesh: the wheel on one side, the wasm client
(web/pkg, served by the router's gateway) in headless Chromium on the other, through a
`lanmesh router --no-mdns` process on 127.0.0.1.

Skips, saying what to install, without /usr/bin/chromium and /usr/bin/chromedriver,
unless LANMESH_REQUIRE_BROWSER=1 (CI), where it fails instead. Without the wheel there is
nothing to run: this file is collected only by pytest in the virtualenv
scripts/python.sh installs the wheel into.
"""

from __future__ import annotations

import json
from typing import Iterator, Tuple

import pytest

import lanmesh
from conftest import Proc, eventually
from webdriver import Browser, require_chromium


@pytest.fixture
def gateway_router(spawn) -> Tuple[str, str]:
    """A `lanmesh router` process with its gateway, both on 127.0.0.1, mDNS off; yields
    (TCP address, HTTP base URL)."""
    p: Proc = spawn("router", "--no-mdns", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0")

    def addresses():
        tcp = http = None
        for line in list(p.out):
            line = line.strip()
            if line.startswith("tcp"):
                tcp = line[3:].strip()
            elif line.startswith("http"):
                http = line[4:].strip().rstrip("/")
        return (tcp, http) if tcp and http else None

    return eventually(addresses, 10, f"the router's addresses: {p.out} {p.err}")


@pytest.fixture
def browser() -> Iterator[Browser]:
    require_chromium()
    with Browser() as b:
        yield b


# Joins as `name` and records what arrives: the kind the page sees (a string is text,
# a Uint8Array binary) with the data as JSON can carry it back to the test.
CONNECT = r"""
const [wsUrl, name, done] = arguments;
import('/pkg/lanmesh_wasm.js').then(async (m) => {
  await m.default();
  const peer = await m.MeshPeer.connect(wsUrl, name, { meshKey: null });
  window.inbox = [];
  peer.onmessage = (from, data, id) => window.inbox.push(typeof data === 'string'
    ? { from, kind: 'text', data, id: Number(id) }
    : { from, kind: 'bytes', data: Array.from(data), id: Number(id) });
  peer.respond((from, data) => 'browser got ' + data);
  window.web = peer;
  done({ ok: true });
}).catch((e) => done({ ok: false, error: String(e) }));
"""

# Sends each of `items` ([kind, value]) to `to` with sendAcked, one after the other;
# bytes travel as a Uint8Array, JSON as the Python package's form (a tab, then JSON).
SEND_ACKED = r"""
const [to, items, done] = arguments;
(async () => {
  for (const [kind, value] of items) {
    const data = kind === 'bytes' ? new Uint8Array(value)
      : kind === 'json' ? '\t' + JSON.stringify(value) : value;
    await window.web.sendAcked(to, data);
  }
  return 'ok';
})().then(done, (e) => done(String(e.message || e)));
"""


def test_python_and_a_browser_exchange_text_bytes_and_json_both_ways(gateway_router, browser):
    tcp, http = gateway_router
    with lanmesh.Peer("py", router=tcp) as py:
        # Any page of the router's origin can import the client; style.css is one that
        # runs no script of its own (index.html would join as the dashboard too).
        browser.goto(f"{http}/style.css")
        joined = browser.run_async(CONNECT, f"{http.replace('http://', 'ws://')}/mesh", "web-1")
        assert joined == {"ok": True}, joined
        eventually(lambda: "web-1" in py.peers(), 10, "the browser in the Python peer's list")

        # Python → browser: each kind arrives as the kind the browser has for it, in order;
        # the acked send returns once the browser's client has the message.
        sent = [
            py.send("web-1", "text from Python ✓"),
            py.send("web-1", b"\x00\x9f\x92\x96"),
            py.send("web-1", b"utf-8 bytes stay bytes"),
            py.send("web-1", {"temp": 21.5, "tags": ["a", "b"], "ok": True}),
        ]
        acked = py.send_acked("web-1", "acked from Python", timeout=10)
        inbox = browser.wait_for(
            "Python's five messages in the page",
            "return window.inbox.length >= 5 ? window.inbox : null;",
        )
        assert [m["from"] for m in inbox] == ["py"] * 5
        assert [m["id"] for m in inbox] == [*sent, acked]
        assert [(m["kind"], m["data"]) for m in inbox[:3] + inbox[4:]] == [
            ("text", "text from Python ✓"),
            ("bytes", [0, 0x9F, 0x92, 0x96]),
            ("bytes", list(b"utf-8 bytes stay bytes")),
            ("text", "acked from Python"),
        ]
        # JSON is text to a browser, which JSON.parse reads as it is (the leading tab is
        # white space to it): the same value comes out.
        assert inbox[3]["kind"] == "text" and inbox[3]["data"].startswith("\t")
        assert browser.eval("return JSON.parse(window.inbox[3].data);") == {"temp": 21.5, "tags": ["a", "b"], "ok": True}
        assert json.loads(inbox[3]["data"]) == {"temp": 21.5, "tags": ["a", "b"], "ok": True}

        # Browser → Python, acked: the Python peer gets each back as the kind it was sent as.
        items = [
            ["text", "text from the browser ✓"],
            ["bytes", [0, 159, 146, 150]],
            ["json", {"from": "browser", "n": [1, 2.5]}],
        ]
        assert browser.run_async(SEND_ACKED, "py", items) == "ok"
        got = [py.recv(timeout=5) for _ in items]
        assert [(m.sender, m.kind, m.data) for m in got] == [
            ("web-1", "text", "text from the browser ✓"),
            ("web-1", "bytes", b"\x00\x9f\x92\x96"),
            ("web-1", "json", {"from": "browser", "n": [1, 2.5]}),
        ]
        assert [m.id for m in got] == sorted(m.id for m in got)

        # Requests both ways: Python asks the page's responder, the page asks Python's,
        # whose JSON answer the page reads with JSON.parse.
        assert py.request("web-1", "ping", timeout=10) == "browser got ping"
        py.respond(lambda req: {"echo": req.data, "kind": req.kind})
        reply = browser.run_async(
            "const [done] = arguments; window.web.request('py', 'hi', 10000)"
            ".then((r) => done(JSON.parse(r)), (e) => done(String(e.message || e)));"
        )
        assert reply == {"echo": "hi", "kind": "text"}

        # An acked send to a name that left fails with the CLI's words.
        browser.eval("window.web.close();")
        eventually(lambda: "web-1" not in py.peers(), 10, "the browser gone from the list")
        with pytest.raises(lanmesh.UnknownPeer, match='unknown peer "web-1"'):
            py.send_acked("web-1", "anyone?", timeout=5)

"""Python and the `lanmesh` command line talking to each other, both ways, through a
`lanmesh router` process; and a Python peer over the WebSocket gateway."""

from __future__ import annotations

import base64
import json

import lanmesh
from conftest import cli, eventually, listen_json, python


def test_what_python_sends_a_cli_listener_prints_sensibly(cli_router, spawn):
    listener = spawn("listen", "--router", cli_router, "--name", "B", "--json", "--count", "5")
    listener.wait_stderr("listening as")
    with lanmesh.Peer("PC2", router=cli_router) as peer:
        peer.send("B", "plain text ✓")
        peer.send("B", b"\x00\xff\xfe")
        peer.send("B", b"utf-8 bytes")
        peer.send_acked("B", {"temp": 21.5})
        peer.broadcast([1, 2, 3])
        lines = listen_json(listener, 5)
    assert [line["from"] for line in lines] == ["PC2"] * 5
    assert lines[0]["data"] == "plain text ✓" and "encoding" not in lines[0]
    assert lines[1]["encoding"] == "base64" and base64.b64decode(lines[1]["data"]) == b"\x00\xff\xfe"
    assert lines[2]["data"] == "utf-8 bytes"
    # JSON values: a tab, then the JSON — which a JSON parser reads as it is.
    assert lines[3]["data"] == '\t{"temp":21.5}'
    assert json.loads(lines[3]["data"]) == {"temp": 21.5}
    assert json.loads(lines[4]["data"]) == [1, 2, 3]
    assert [line["id"] for line in lines] == sorted(line["id"] for line in lines)


def test_what_the_cli_sends_python_receives_as_the_matching_kind(cli_router):
    with lanmesh.Peer("B", router=cli_router) as b:
        send = ("send", "--router", cli_router, "--name", "A")
        for args, stdin in (
            (["B", "hello from the CLI"], None),
            (["B"], b"\x00binary\xff"),  # from standard input
            (["B"], b'\t{"from": "stdin"}'),
            (["--ack", "B", "acked text"], None),
        ):
            out = cli(*send, *args, input=stdin)
            assert out.returncode == 0, out.stderr
        got = [b.recv(timeout=5) for _ in range(4)]
    assert [(m.sender, m.kind, m.data) for m in got] == [
        ("A", "text", "hello from the CLI"),
        ("A", "bytes", b"\x00binary\xff"),
        ("A", "json", {"from": "stdin"}),
        ("A", "text", "acked text"),
    ]


def test_cli_peers_lists_python_peers_with_their_cipher(cli_router):
    with lanmesh.Peer("py-a", router=cli_router), lanmesh.Peer("py-b", router=cli_router, cipher="aes256gcm"):
        out = cli("peers", "--router", cli_router, "--json")
        assert out.returncode == 0, out.stderr
        peers = {p["name"]: p for p in json.loads(out.stdout)}
    assert peers["py-a"]["cipher"] == "chacha20poly1305"
    assert peers["py-b"]["cipher"] == "aes256gcm"
    assert peers["py-a"]["transport"] == "tcp" and peers["py-a"]["compression"] == "snappy"


def test_the_readme_script_reaches_a_cli_listener(cli_router, spawn):
    listener = spawn("listen", "--router", cli_router, "--name", "B", "--json", "--count", "1")
    listener.wait_stderr("listening as")
    script = (
        "import lanmesh\n"
        f'with lanmesh.Peer("PC2", router="{cli_router}") as peer:\n'
        '    peer.send_acked("B", {"temp": 21.5})\n'
        '    print(peer.get("all"))\n'
    )
    out = python(script)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "None"  # PC2 itself received nothing
    (line,) = listen_json(listener, 1)
    assert line["from"] == "PC2" and json.loads(line["data"]) == {"temp": 21.5}
    assert listener.p.wait(timeout=5) == 0


def test_a_cli_listener_and_a_python_peer_share_the_user_key(cli_router, spawn):
    # The Python peer uses the same key as the CLI (LANMESH_HOME/identity): a name the
    # CLI used is this user's in Python too, and another key may not take it.
    first = spawn("listen", "--router", cli_router, "--name", "mine", "--count", "1")
    first.wait_stderr("listening as")
    with lanmesh.Peer("sender", router=cli_router) as s:
        s.send_acked("mine", "bye")
    assert first.p.wait(timeout=5) == 0
    eventually(lambda: cli("send", "--router", cli_router, "--name", "x", "--ack", "mine", "?").returncode != 0,
               what="the listener gone")
    with lanmesh.Peer("mine", router=cli_router) as again:
        assert again.name == "mine"


def test_a_python_peer_joins_over_the_websocket_gateway():
    with lanmesh.Router("127.0.0.1:0", http="127.0.0.1:0", mdns=False) as r:
        (http,) = r.http_addresses
        with lanmesh.Peer("web", router=f"ws://{http}/mesh") as w, lanmesh.Peer("tcp", router=r.address) as t:
            w.send_acked("tcp", {"over": "ws"})
            assert t.recv(timeout=5).data == {"over": "ws"}
            t.send_acked("web", b"back")
            assert w.recv(timeout=5).data == b"back"

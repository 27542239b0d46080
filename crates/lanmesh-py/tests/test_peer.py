"""The blocking peer against in-process routers and `lanmesh router` processes: data
kinds, the inbox, requests, lifecycle."""

from __future__ import annotations

import threading
import time

import pytest

import lanmesh
from conftest import eventually

KINDS = [
    b"\x00\xffbinary",
    bytearray(b"a bytearray"),
    memoryview(b"a memoryview"),
    "text ✓",
    "",
    "\tstarts with a tab",
    {"temp": 21.5, "tags": ["a", "b"], "ok": True, "none": None},
    [1, 2.5, "three"],
    42,
    -0.5,
    True,
    None,
]


def expected(value):
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value


@pytest.mark.parametrize("where", ["in-process", "process"])
def test_every_kind_of_data_comes_back_as_the_kind_it_was_sent_as(where, request):
    addr = request.getfixturevalue("router").address if where == "in-process" else request.getfixturevalue("cli_router")
    with lanmesh.Peer("A", router=addr) as a, lanmesh.Peer("B", router=addr) as b:
        for value in KINDS:
            a.send("B", value)
        got = [b.recv(timeout=5) for _ in KINDS]
        for value, msg in zip(KINDS, got):
            assert msg is not None
            assert msg.data == expected(value)
            assert type(msg.data) is type(expected(value)), (value, msg)
            assert msg.sender == "A"
        kinds = [m.kind for m in got]
        assert kinds == ["bytes"] * 3 + ["text"] * 3 + ["json"] * 6
        assert [m.id for m in got] == sorted(m.id for m in got)


def test_message_unpacks_like_an_ultrasockets_entry(router):
    with lanmesh.Peer("A", router=router.address) as a, lanmesh.Peer("B", router=router.address) as b:
        sent = a.send_acked("B", {"n": 1})
        msg = b.recv(timeout=5)
        sender, data, serial = msg
        assert (sender, data, serial) == ("A", {"n": 1}, sent)
        assert (msg[0], msg[1], msg[2], msg[-1]) == ("A", {"n": 1}, sent, sent)
        assert len(msg) == 3
        with pytest.raises(IndexError):
            msg[3]
        assert msg.json() == {"n": 1}
        assert msg.text() == '{"n":1}'
        assert not msg.is_broadcast and not msg.is_request
        assert "Message(sender='A'" in repr(msg)


def test_text_and_json_views_of_each_kind(router):
    with lanmesh.Peer("A", router=router.address) as a, lanmesh.Peer("B", router=router.address) as b:
        a.send("B", b'{"raw": 1}')
        a.send("B", '[1, 2]')
        a.send("B", b"\xff\xfe")
        raw, text, binary = (b.recv(timeout=5) for _ in range(3))
        assert raw.text() == '{"raw": 1}' and raw.json() == {"raw": 1}
        assert text.data == "[1, 2]" and text.json() == [1, 2]
        with pytest.raises(UnicodeDecodeError):
            binary.text()
        with pytest.raises(ValueError):
            binary.json()


def test_get_takes_the_oldest_first_and_none_when_empty(router):
    with lanmesh.Peer("A", router=router.address) as a, lanmesh.Peer("B", router=router.address) as b:
        assert b.get(1) is None
        assert b.get("all") is None
        for i in range(5):
            a.send_acked("B", i)
        assert [m.data for m in b.get(2)] == [0, 1]
        assert b.pending == 3
        assert [m.data for m in b.get("all")] == [2, 3, 4]
        assert b.get("all") is None
        for bad in (0, -1, "some", 1.5):
            with pytest.raises(ValueError):
                b.get(bad)


def test_recv_times_out_with_none_and_iteration_ends_when_closed(router):
    with lanmesh.Peer("A", router=router.address) as a, lanmesh.Peer("B", router=router.address) as b:
        started = time.monotonic()
        assert b.recv(timeout=0.2) is None
        assert time.monotonic() - started >= 0.2
        for i in range(3):
            a.send("B", i)
        threading.Timer(0.5, b.close).start()
        assert [m.data for m in b] == [0, 1, 2]
        with pytest.raises(lanmesh.Disconnected):
            b.recv()


def test_broadcast_reaches_every_other_peer(router):
    addr = router.address
    with lanmesh.Peer("A", router=addr) as a, lanmesh.Peer("B", router=addr) as b, lanmesh.Peer("C", router=addr) as c:
        a.broadcast({"all": True})
        for p in (b, c):
            m = p.recv(timeout=5)
            assert m.data == {"all": True} and m.is_broadcast and m.sender == "A"
        assert a.recv(timeout=0.2) is None


def test_a_bytes_reply_that_is_utf8_stays_bytes(router):
    with lanmesh.Peer("A", router=router.address) as a, lanmesh.Peer("sensor", router=router.address) as s:
        s.respond(lambda req: b"21.5")
        reply = a.request("sensor", "bytes?", timeout=2)
        assert reply == b"21.5" and isinstance(reply, bytes)


def test_requests_get_replies_of_the_kind_returned(router, unraisable):
    with lanmesh.Peer("A", router=router.address) as a, lanmesh.Peer("sensor", router=router.address) as s:
        seen = []

        @s.respond
        def answer(req):
            seen.append((req.sender, req.data, req.is_request))
            if req.data == "bytes?":
                return b"21.5"
            if isinstance(req.data, bytes):
                return req.data
            if req.data == "none?":
                return None
            if req.data == "bad?":
                return {1, 2}
            return {"temp": 21.5, "asked": req.data}

        assert a.request("sensor", "temp?", timeout=2) == {"temp": 21.5, "asked": "temp?"}
        assert a.request("sensor", b"\xff\x00", timeout=2) == b"\xff\x00"
        assert a.request("sensor", [1, 2], timeout=2) == {"temp": 21.5, "asked": [1, 2]}
        with pytest.raises(lanmesh.NoResponder):
            a.request("sensor", "none?", timeout=2)
        # A reply that cannot be sent is reported, and the requester hears at once.
        with pytest.raises(lanmesh.NoResponder):
            a.request("sensor", "bad?", timeout=5)
        assert unraisable and unraisable[0][0] is TypeError and "set" in unraisable[0][1]
        assert seen[0] == ("A", "temp?", True)
        s.respond(None)
        with pytest.raises(lanmesh.NoResponder) as e:
            a.request("sensor", "temp?", timeout=2)
        assert str(e.value) == 'peer "sensor" answers no requests'
        assert e.value.peer == "sensor"


def test_a_request_to_a_slow_responder_times_out(router):
    with lanmesh.Peer("A", router=router.address) as a, lanmesh.Peer("slow", router=router.address) as s:
        release = threading.Event()
        s.respond(lambda req: release.wait(5) and "late")
        started = time.monotonic()
        with pytest.raises(lanmesh.Timeout) as e:
            a.request("slow", "?", timeout=0.3)
        assert 0.3 <= time.monotonic() - started < 3
        assert isinstance(e.value, TimeoutError)
        release.set()


def test_pause_holds_messages_in_the_router_and_resume_delivers_them(router):
    with lanmesh.Peer("A", router=router.address) as a, lanmesh.Peer("B", router=router.address) as b:
        b.pause()
        for i in range(20):
            a.send("B", i)
        # Asserting that nothing arrives needs a wait: give the router time to deliver.
        time.sleep(0.3)
        assert b.pending <= 1  # at most what was being read when it paused
        b.resume()
        got = [b.recv(timeout=5).data for _ in range(20)]
        assert got == list(range(20))


def test_close_reports_sends_the_router_could_not_deliver(router):
    a = lanmesh.Peer("A", router=router.address)
    a.send("B", "to nobody")
    a.send("nobody", "either")
    report = a.close()
    assert sorted((u.to, u.reason) for u in report) == [("B", "unknown peer"), ("nobody", "unknown peer")]
    assert a.closed and a.status == "closed"
    assert a.close() == []


def test_terminate_drops_the_connection_at_once(router):
    # Without reconnecting, the router lets the name go as soon as the connection drops
    # (a peer that reconnects keeps it for the grace period).
    a = lanmesh.Peer("A", router=router.address, reconnect=False)
    b = lanmesh.Peer("B", router=router.address)
    a.terminate()
    eventually(lambda: "A" not in b.peers(), what="A gone")
    assert a.closed
    with pytest.raises(lanmesh.Disconnected):
        a.send_acked("B", "after")
    with pytest.raises(lanmesh.UnknownPeer):
        b.send_acked("A", "still there?")
    b.close()


def test_peers_status_and_repr(router):
    with lanmesh.Peer("A", router=router.address) as a:
        assert a.peers() == ["A"]
        with lanmesh.Peer("B", router=router.address):
            eventually(lambda: a.peers() == ["A", "B"], what="B listed")
        eventually(lambda: a.peers() == ["A"], what="B gone")
        assert a.status == "connected"
        assert a.status.router == router.address
        assert a.name == "A"
        assert repr(a) == f'<Peer "A" connected to {router.address}>'
        assert router.peers() == ["A"]


def test_the_router_process_is_a_peer_too():
    with lanmesh.Router("127.0.0.1:0", name="PC1", mdns=False) as server:
        with lanmesh.Peer("PC2", router="tcp://" + server.address) as client:
            client.send_acked("PC1", "hello server")
            assert server.peer.recv(timeout=5).data == "hello server"
            server.peer.send("PC2", ["hello", "client"])
            assert client.recv(timeout=5).data == ["hello", "client"]
            assert server.peers() == ["PC1", "PC2"]
            own = server.peer
        server.stop()
        assert own.closed
        with pytest.raises(lanmesh.Disconnected):
            own.send_acked("PC2", "after stop")


def test_several_listen_addresses_serve_one_mesh():
    with lanmesh.Router(["127.0.0.1:0", "127.0.0.1:0"], mdns=False) as r:
        first, second = r.addresses
        assert first != second
        with lanmesh.Peer("A", router=first) as a, lanmesh.Peer("B", router=second) as b:
            a.send_acked("B", "across")
            assert b.recv(timeout=5).data == "across"


def test_a_stopped_router_disconnects_its_peers_with_the_reason():
    r = lanmesh.Router("127.0.0.1:0", mdns=False)
    a = lanmesh.Peer("A", router=r.address, reconnect=False)
    r.stop()
    assert a.wait(timeout=5)
    assert a.status == "closed"
    with pytest.raises(lanmesh.Disconnected) as e:
        a.recv()
    assert "shutting down" in str(e.value)
    r.stop()


def test_a_peer_reconnects_when_its_router_comes_back(tmp_path):
    state = tmp_path / "router"
    r = lanmesh.Router("127.0.0.1:0", mdns=False, state_dir=state)
    addr = r.address
    changes = []
    a = lanmesh.Peer("A", router=addr, on_status=lambda s: changes.append(s.state))
    r.stop()
    eventually(lambda: "reconnecting" in changes, what="reconnecting")
    r = lanmesh.Router(addr, mdns=False, state_dir=state)
    eventually(lambda: changes[-1:] == ["connected"], timeout=10, what="reconnected")
    with lanmesh.Peer("B", router=addr) as b:
        a.send_acked("B", "back")
        assert b.recv(timeout=5).data == "back"
    a.close()
    r.stop()


def test_files_stream_to_a_peer_that_saves_them(router, tmp_path):
    src = tmp_path / "blob.bin"
    data = bytes(range(256)) * 4096 * 3  # 3 MiB
    src.write_bytes(data)
    inbox = tmp_path / "inbox"
    with lanmesh.Peer("laptop", router=router.address) as laptop, lanmesh.Peer(
        "nas", router=router.address, save_dir=inbox
    ) as nas:
        progress = []
        size = laptop.send_file("nas", src, progress=lambda done, total: progress.append((done, total)))
        assert size == len(data)
        assert progress[-1] == (len(data), len(data))
        assert all(a <= b for (a, _), (b, _) in zip(progress, progress[1:]))
        notice = nas.recv(timeout=5)
        assert notice.kind == "file"
        assert notice.file["bytes"] == len(data)
        assert (inbox / notice.file["file"]).read_bytes() == data
        with lanmesh.Peer("other", router=router.address) as other:
            with pytest.raises(lanmesh.FileRefused):
                laptop.send_file("other", src)
        with pytest.raises(lanmesh.FileUnreadable):
            laptop.send_file("nas", tmp_path / "missing")

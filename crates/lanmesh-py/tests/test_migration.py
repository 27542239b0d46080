"""Every row of the README's migration tables for UltraSockets, serpy and tinyproto, in
Python: one test per row (the README's Python tables name them)."""

from __future__ import annotations

import threading
import time

import pytest

import lanmesh
from conftest import eventually

# -- UltraSockets --------------------------------------------------------------------------


def test_us_server_is_a_client_too():
    # Server("ip:8000", n, "PC1")
    with lanmesh.Router("127.0.0.1:0", name="PC1", mdns=False) as server:
        with lanmesh.Peer("PC2", router=server.address) as client:
            client.send_acked("PC1", "hi")
            assert server.peer.recv(timeout=5)[1] == "hi"


def test_us_client_joins_by_name(router):
    # Client("ip:8000", "PC2"); UltraSockets' "tcp://" prefix is accepted too
    with lanmesh.Peer("PC2", router="tcp://" + router.address) as client:
        assert client.name == "PC2" and client.peers() == ["PC2"]


def test_us_send_to_a_name(router):
    # client.send("PC1", message)
    with lanmesh.Peer("PC1", router=router.address) as pc1, lanmesh.Peer("PC2", router=router.address) as pc2:
        pc2.send("PC1", "message")
        assert pc1.recv(timeout=5).data == "message"


def test_us_any_data_type(router):
    # any data type (UltraSockets sends str(message)); lanmesh keeps the type
    with lanmesh.Peer("PC1", router=router.address) as pc1, lanmesh.Peer("PC2", router=router.address) as pc2:
        for value in (1, 2.5, "s", [1, "a"], {"k": None}, b"raw"):
            pc2.send("PC1", value)
            assert pc1.recv(timeout=5).data == value


def test_us_get_num_none_when_empty(router):
    # client.get(num): None when empty, oldest first
    with lanmesh.Peer("PC1", router=router.address) as pc1, lanmesh.Peer("PC2", router=router.address) as pc2:
        assert pc1.get(3) is None
        for i in range(5):
            pc2.send_acked("PC1", i)
        assert [m.data for m in pc1.get(3)] == [0, 1, 2]


def test_us_get_all(router):
    # client.get("all")
    with lanmesh.Peer("PC1", router=router.address) as pc1, lanmesh.Peer("PC2", router=router.address) as pc2:
        for i in range(5):
            pc2.send_acked("PC1", i)
        assert [m.data for m in pc1.get("all")] == [0, 1, 2, 3, 4]
        assert pc1.get("all") is None


def test_us_entries_are_sender_message_serial(router):
    # [sender, message, serial] entries
    with lanmesh.Peer("PC1", router=router.address) as pc1, lanmesh.Peer("PC2", router=router.address) as pc2:
        serial = pc2.send_acked("PC1", "m")
        for name, message, number in pc1.get("all"):
            assert (name, message, number) == ("PC2", "m", serial)


def test_us_close_stops_collecting_and_open_resumes(router):
    # client.close() / client.open() -> pause() / resume()
    with lanmesh.Peer("PC1", router=router.address) as pc1, lanmesh.Peer("PC2", router=router.address) as pc2:
        pc1.pause()
        for i in range(10):
            pc2.send("PC1", i)
        # Asserting that nothing arrives needs a wait: give the router time to deliver.
        time.sleep(0.3)
        assert (pc1.get("all") or []) == []
        pc1.resume()
        assert [pc1.recv(timeout=5).data for _ in range(10)] == list(range(10))


def test_us_terminate_drops_at_once_and_close_reports(router):
    # client.terminate(); close() leaves gracefully and reports what was not delivered
    pc1 = lanmesh.Peer("PC1", router=router.address, reconnect=False)
    with lanmesh.Peer("PC2", router=router.address) as pc2:
        pc1.terminate()
        eventually(lambda: "PC1" not in pc2.peers(), what="PC1 gone")
        pc2.send("PC1", "late")
        assert [(u.to, u.reason) for u in pc2.close()] == [("PC1", "unknown peer")]


def test_us_handshake_with_encryption_compression_and_a_mesh_key():
    # a handshake "modifiable for encryption and compression": built in, plus a mesh key
    key = lanmesh.keygen()
    with lanmesh.Router("127.0.0.1:0", mesh_key=key, mdns=False) as r:
        with pytest.raises(lanmesh.MeshKeyRefused):
            lanmesh.Peer("stranger", router=r.address)
        with lanmesh.Peer("PC2", router=r.address, mesh_key=key) as pc2:
            assert pc2.status == "connected"


# -- serpy ---------------------------------------------------------------------------------


def test_serpy_server_start():
    # Server(adr, port, nb_conn).start()
    with lanmesh.Router("127.0.0.1:0", mdns=False) as server:
        assert server.running and server.address.startswith("127.0.0.1:")
    assert not server.running


def test_serpy_connection_connect(router):
    # Connection().connect(adr, port)
    host, port = router.address.rsplit(":", 1)
    with lanmesh.Peer("c", router=f"{host}:{port}") as c:
        assert c.status == "connected"


def test_serpy_auto_restart(tmp_path):
    # Connection(auto_restart=True): reconnection is on by default; on_status reports it
    state = tmp_path / "r"
    r = lanmesh.Router("127.0.0.1:0", mdns=False, state_dir=state)
    addr = r.address
    seen = []
    c = lanmesh.Peer("c", router=addr, on_status=lambda s: seen.append(s.state))
    r.stop()
    eventually(lambda: "reconnecting" in seen, what="lost")
    r = lanmesh.Router(addr, mdns=False, state_dir=state)
    eventually(lambda: seen[-1:] == ["connected"], timeout=10, what="back")
    c.close()
    r.stop()


def test_serpy_get_data(router):
    # c.getData()
    with lanmesh.Peer("a", router=router.address) as a, lanmesh.Peer("c", router=router.address) as c:
        threading.Timer(0.1, lambda: a.send("c", "data")).start()
        assert c.recv().data == "data"


def test_serpy_get_data_with_timeout(router):
    # c.getData(timeout=1.0) raises queue.Empty -> recv(timeout=1.0) returns None
    with lanmesh.Peer("c", router=router.address) as c:
        assert c.recv(timeout=0.2) is None


def test_serpy_for_data_in_c(router):
    # for data in c
    with lanmesh.Peer("a", router=router.address) as a, lanmesh.Peer("c", router=router.address) as c:
        for i in range(3):
            a.send_acked("c", i)
        a.close()
        got = []
        for msg in c:
            got.append(msg.data)
            if len(got) == 3:
                break
        assert got == [0, 1, 2]


def test_serpy_readable_connections_is_one_inbox(router):
    # s.readableConnections(): one inbox for every sender; msg.sender says who
    addr = router.address
    with lanmesh.Peer("s", router=addr) as s, lanmesh.Peer("x", router=addr) as x, lanmesh.Peer("y", router=addr) as y:
        x.send_acked("s", 1)
        y.send_acked("s", 2)
        assert sorted((m.sender, m.data) for m in s.get("all")) == [("x", 1), ("y", 2)]


def test_serpy_send_data_mode_0(router):
    # c.sendData(data) (mode 0): at most once
    with lanmesh.Peer("a", router=router.address) as a, lanmesh.Peer("c", router=router.address) as c:
        c.send("a", "mode 0")
        assert a.recv(timeout=5).data == "mode 0"


def test_serpy_send_data_mode_1(router):
    # c.sendData(data, mode=1): wait for the acknowledgement
    with lanmesh.Peer("a", router=router.address) as a, lanmesh.Peer("c", router=router.address) as c:
        c.send_acked("a", "mode 1")
        assert a.get("all")[0].data == "mode 1"  # already in a's inbox when acked


def test_serpy_send_data_mode_2_binary(router):
    # c.sendData(data, mode=2) (base85 for binary): not needed, bytes travel as they are
    with lanmesh.Peer("a", router=router.address) as a, lanmesh.Peer("c", router=router.address) as c:
        c.send_acked("a", bytes(range(256)))
        assert a.recv(timeout=5).data == bytes(range(256))


def test_serpy_send_data_timeout(router):
    # sendData(.., timeout) (queue.Full, False) -> send_acked(timeout=..) raises Timeout
    with lanmesh.Peer("a", router=router.address) as a, lanmesh.Peer("c", router=router.address) as c:
        with pytest.raises(lanmesh.Timeout):
            # An ack from a peer that is gone but still held by the router never comes.
            a.terminate()
            c.send_acked("a", "anyone?", timeout=0.3)


def test_serpy_get_connections_list(router):
    # s.getConnectionsList()
    with lanmesh.Peer("a", router=router.address) as a, lanmesh.Peer("b", router=router.address):
        # b's arrival reaches a a moment after b's connect returns.
        eventually(lambda: a.peers() == ["a", "b"], what="b in a's list")
        assert router.peers() == ["a", "b"]


def test_serpy_get_connection_waits_for_a_new_one(router):
    # s.getConnection() -> on_peer_joined
    joined = threading.Event()
    with lanmesh.Peer("s", router=router.address, on_peer_joined=lambda name: joined.set()):
        with lanmesh.Peer("new", router=router.address):
            assert joined.wait(5)


def test_serpy_close(router):
    # c.close()
    c = lanmesh.Peer("c", router=router.address)
    assert c.close() == [] and c.closed


def test_serpy2_typed_values(router):
    # serpy2 typed values (int, float, str, bytes)
    with lanmesh.Peer("a", router=router.address) as a, lanmesh.Peer("c", router=router.address) as c:
        for value in (7, 7.5, "seven", b"7"):
            c.send("a", value)
            got = a.recv(timeout=5).data
            assert got == value and type(got) is type(value)


def test_serpy2_blobs_in_memory(router):
    # serpy2 blobs (images): in memory, chunked, up to 64 MiB
    import os

    image = os.urandom(5 * 1024 * 1024)
    with lanmesh.Peer("a", router=router.address) as a, lanmesh.Peer("c", router=router.address) as c:
        c.send_acked("a", image)
        assert a.recv(timeout=10).data == image


def test_serpy2_blobs_from_files(router, tmp_path):
    # serpy2 blobs from files -> send_file, save_dir
    src = tmp_path / "image.png"
    src.write_bytes(b"\x89PNG" + bytes(100_000))
    with lanmesh.Peer("nas", router=router.address, save_dir=tmp_path / "in") as nas, lanmesh.Peer(
        "c", router=router.address
    ) as c:
        assert c.send_file("nas", src) == src.stat().st_size
        notice = nas.recv(timeout=5)
        assert open(notice.file["path"], "rb").read() == src.read_bytes()


# -- tinyproto -----------------------------------------------------------------------------


def test_tinyproto_connect_to(router):
    # TinyProtoClient().connect_to(ip, port)
    with lanmesh.Peer("client", router=router.address) as client:
        assert client.status == "connected"


class Echo(lanmesh.Peer):
    """tinyproto's TinyProtoConnection: pre_loop, transmission_received, post_loop."""

    def __init__(self, *args, **kwargs):
        self.log = []
        super().__init__(*args, **kwargs)

    def on_join(self):  # pre_loop()
        self.log.append("pre_loop")

    def on_message(self, msg):  # transmission_received(msg)
        self.log.append(msg.data)
        if msg.data == "QUIT":
            self.close()  # self.shutdown = True
        else:
            self.send(msg.sender, msg.data)

    def on_leave(self, reason):  # post_loop()
        self.log.append("post_loop")


def test_tinyproto_set_conn_handler(router):
    # set_conn_handler(MyConnection) -> a subclass with hook methods
    with Echo("echo", router=router.address) as echo, lanmesh.Peer("c", router=router.address) as c:
        c.send("echo", "x")
        assert c.recv(timeout=5).data == "x"
        assert isinstance(echo, lanmesh.Peer)


def test_tinyproto_pre_loop(router):
    # pre_loop() -> on_join
    with Echo("echo", router=router.address) as echo:
        eventually(lambda: echo.log[:1] == ["pre_loop"], what="on_join")


def test_tinyproto_transmission_received(router):
    # transmission_received(msg) -> on_message (and respond for requests)
    with Echo("echo", router=router.address) as echo, lanmesh.Peer("c", router=router.address) as c:
        echo.respond(lambda req: ["answer", req.data])
        c.send("echo", "m")
        assert c.recv(timeout=5).data == "m"
        assert c.request("echo", "q", timeout=2) == ["answer", "q"]
        assert "m" in echo.log


def test_tinyproto_loop_pass(router):
    # loop_pass(): no polling loop; periodic work is a thread (or timer) beside the peer
    with lanmesh.Peer("board", router=router.address) as board, lanmesh.Peer("c", router=router.address) as c:
        stop = threading.Event()

        def tick():
            n = 0
            while not stop.wait(0.02):
                board.send("c", n)
                n += 1

        t = threading.Thread(target=tick)
        t.start()
        got = [c.recv(timeout=5).data for _ in range(3)]
        stop.set()
        t.join()
        assert got == [0, 1, 2]


def test_tinyproto_post_loop(router):
    # post_loop() -> on_leave, after the last message
    echo = Echo("echo", router=router.address)
    with lanmesh.Peer("c", router=router.address) as c:
        c.send("echo", "last")
        c.send("echo", "QUIT")
        assert echo.wait(timeout=5)
    assert echo.log == ["pre_loop", "last", "QUIT", "post_loop"]


def test_tinyproto_transmit_large(router):
    # transmit(msg) (up to ~4 GB) -> send_acked (64 MiB by default)
    import os

    blob = os.urandom(8 * 1024 * 1024)
    with lanmesh.Peer("a", router=router.address) as a, lanmesh.Peer("c", router=router.address) as c:
        c.send_acked("a", blob)
        assert a.recv(timeout=10).data == blob


def test_tinyproto_transmit_file_sized(router, tmp_path):
    # transmit of a file-sized message -> send_file (streamed, any size)
    import os

    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(20 * 1024 * 1024))
    with lanmesh.Peer("nas", router=router.address, save_dir=tmp_path / "in") as nas, lanmesh.Peer(
        "c", router=router.address
    ) as c:
        assert c.send_file("nas", src) == 20 * 1024 * 1024
        assert nas.recv(timeout=10).file["bytes"] == 20 * 1024 * 1024


def test_tinyproto_receive(router):
    # receive() -> recv(), recv(timeout)
    with lanmesh.Peer("a", router=router.address) as a, lanmesh.Peer("c", router=router.address) as c:
        assert c.recv(timeout=0.05) is None
        a.send("c", "r")
        assert c.recv().data == "r"


def test_tinyproto_shutdown_from_a_handler(router):
    # self.shutdown = True (a connection) -> close(), also from inside a callback
    echo = Echo("echo", router=router.address)
    with lanmesh.Peer("c", router=router.address) as c:
        c.send("echo", "QUIT")
        assert echo.wait(timeout=5) and echo.closed
        eventually(lambda: "echo" not in c.peers(), what="echo gone")


def test_tinyproto_server_add_addr():
    # TinyProtoServer.add_addr(ip, port), several -> Router(listen=[...])
    with lanmesh.Router(["127.0.0.1:0", "127.0.0.1:0"], mdns=False) as r:
        assert len(r.addresses) == 2
        for addr in r.addresses:
            with lanmesh.Peer("p", router=addr) as p:
                assert p.status == "connected"


def test_tinyproto_server_pre_and_post_loop():
    # server pre_loop() / post_loop() -> the router's own peer: on_join / on_leave
    with lanmesh.Router("127.0.0.1:0", name="server", mdns=False) as r:
        life = []
        r.peer.on_join = lambda: life.append("pre_loop")
        r.peer.on_leave = lambda reason: life.append("post_loop")
        eventually(lambda: life == ["pre_loop"], what="on_join")
    eventually(lambda: life == ["pre_loop", "post_loop"], what="on_leave")


def test_tinyproto_conn_init_and_conn_shutdown():
    # conn_init(conn) / conn_shutdown(conn) -> on_peer_joined / on_peer_left
    with lanmesh.Router("127.0.0.1:0", name="server", mdns=False) as r:
        seen = []
        r.peer.on_peer_joined = lambda name: seen.append(("init", name))
        r.peer.on_peer_left = lambda name: seen.append(("shutdown", name))
        with lanmesh.Peer("conn", router=r.address):
            eventually(lambda: seen == [("init", "conn")], what="conn_init")
        eventually(lambda: seen == [("init", "conn"), ("shutdown", "conn")], what="conn_shutdown")


def test_tinyproto_active_connections(router):
    # active_connections -> router.peers(), peer.peers()
    with lanmesh.Peer("a", router=router.address) as a, lanmesh.Peer("b", router=router.address):
        assert router.peers() == ["a", "b"]
        eventually(lambda: a.peers() == ["a", "b"], what="b in a's list")


def test_tinyproto_set_timeout(router):
    # set_timeout(t) -> ack_timeout=, request(.., timeout), recv(timeout)
    with lanmesh.Peer("a", router=router.address, ack_timeout=0.5) as a, lanmesh.Peer(
        "b", router=router.address
    ) as b:
        b.respond(lambda req: time.sleep(1) or "late")
        with pytest.raises(lanmesh.Timeout):
            a.request("b", "?", timeout=0.2)
        assert a.recv(timeout=0.1) is None


def test_tinyproto_server_shutdown():
    # server self.shutdown = True -> router.stop(); peers are told why
    r = lanmesh.Router("127.0.0.1:0", mdns=False)
    c = lanmesh.Peer("c", router=r.address, reconnect=False)
    r.stop()
    with pytest.raises(lanmesh.Disconnected) as e:
        c.recv(timeout=5)
    assert "shutting down" in str(e.value)

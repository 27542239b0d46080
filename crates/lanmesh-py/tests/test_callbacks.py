"""Callbacks, threads, the GIL and Ctrl-C: what a Python user relies on."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

import lanmesh
from conftest import eventually, python


def test_callbacks_run_on_one_thread_in_arrival_order(router):
    threads = set()
    got = []

    def on_message(msg):
        threads.add(threading.get_ident())
        got.append(msg.data)

    with lanmesh.Peer("B", router=router.address, on_message=on_message) as b:
        with lanmesh.Peer("A", router=router.address) as a:
            for i in range(2000):
                a.send("B", i)
        eventually(lambda: len(got) == 2000, what="2000 callbacks")
        assert got == list(range(2000))
        assert len(threads) == 1 and threading.get_ident() not in threads
        # With on_message set, the inbox is the callback's.
        assert b.get("all") is None


def test_an_exception_in_a_callback_is_reported_and_the_peer_carries_on(router, unraisable):
    got = []

    def on_message(msg):
        if msg.data == "boom":
            raise RuntimeError("boom in a callback")
        got.append(msg.data)

    with lanmesh.Peer("B", router=router.address, on_message=on_message):
        with lanmesh.Peer("A", router=router.address) as a:
            for data in ("before", "boom", "after"):
                a.send_acked("B", data)
        eventually(lambda: got == ["before", "after"], what="the message after the exception")
    assert len(unraisable) == 1
    exc_type, text, obj = unraisable[0]
    assert exc_type is RuntimeError and text == "boom in a callback" and obj is on_message


def test_a_callback_may_send_on_its_own_peer_without_deadlock(router):
    def echo(msg):
        # Acked, so the callback waits on the peer it runs on; plus a request back.
        peer.send_acked(msg.sender, ["echo", msg.data])

    with lanmesh.Peer("echo", router=router.address, on_message=echo) as peer:
        with lanmesh.Peer("A", router=router.address) as a:
            a.respond(lambda req: "pong")
            for i in range(200):
                a.send("echo", i)
            got = [a.recv(timeout=5).data for _ in range(200)]
            assert got == [["echo", i] for i in range(200)]

            answers = []
            peer.on_message = lambda msg: answers.append(peer.request(msg.sender, "ping", timeout=5))
            a.send("echo", "ask me")
            eventually(lambda: answers == ["pong"], what="a request from inside a callback")


def test_a_tinyproto_style_subclass_gets_its_whole_life_in_order(router):
    events = []

    class Handler(lanmesh.Peer):
        def __init__(self, name, router):
            self.echoed = 0
            super().__init__(name, router=router)

        def on_join(self):
            events.append(("join", self.peers()))

        def on_peer_joined(self, name):
            events.append(("joined", name))

        def on_message(self, msg):
            events.append(("message", msg.data))
            if msg.data == "QUIT":
                self.close()  # tinyproto's self.shutdown = True, from inside a callback
                return
            self.echoed += 1
            self.send(msg.sender, msg.data)

        def on_peer_left(self, name):
            events.append(("left", name))

        def on_status(self, status):
            events.append(("status", status.state))

        def on_leave(self, reason):
            events.append(("leave", self.echoed))

    h = Handler("handler", router.address)
    # on_join runs on the callback thread and reads the live member list: let it run
    # before the client joins, or the list may already hold the client.
    eventually(lambda: events and events[0][0] == "join", what="handler's on_join")
    with lanmesh.Peer("client", router=router.address) as c:
        eventually(lambda: ("joined", "client") in events, what="client joined")
        c.send("handler", "one")
        assert c.recv(timeout=5).data == "one"
        c.send("handler", "QUIT")
        assert h.wait(timeout=5)
    assert events == [
        ("join", ["handler"]),
        ("joined", "client"),
        ("message", "one"),
        ("message", "QUIT"),
        ("status", "closed"),
        ("leave", 1),
    ]


def test_callbacks_set_later_start_following_then(router):
    with lanmesh.Peer("B", router=router.address) as b, lanmesh.Peer("A", router=router.address) as a:
        a.send_acked("B", "queued before")
        joined = []
        b.on_peer_joined = joined.append
        got = []
        b.on_message = lambda m: got.append(m.data)
        eventually(lambda: got == ["queued before"], what="the waiting message")
        with lanmesh.Peer("C", router=router.address):
            eventually(lambda: joined == ["C"], what="C joined")
        b.on_message = None
        a.send_acked("B", "for recv")
        assert b.recv(timeout=5).data == "for recv"


def test_the_gil_is_released_while_waiting(router):
    with lanmesh.Peer("A", router=router.address) as a:
        counted = [0]
        stop = threading.Event()

        def count():
            while not stop.is_set():
                counted[0] += 1

        t = threading.Thread(target=count)
        t.start()
        before = counted[0]
        assert a.recv(timeout=0.3) is None
        during = counted[0] - before
        stop.set()
        t.join()
    # A thread that could not run while recv waited would not have counted at all.
    assert during > 10_000


SCRIPT = """
import lanmesh, sys, time
r = lanmesh.Router("127.0.0.1:0", mdns=False)
a = lanmesh.Peer("A", router=r.address)
b = lanmesh.Peer("B", router=r.address)
b.pause()  # B takes nothing, so acked sends to it wait
print("ready", flush=True)
try:
    {call}
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(3)
"""


@pytest.mark.parametrize("call", ["a.recv()", "a.send_acked('B', 'x', timeout=60)", "a.wait()", "list(a)"])
def test_ctrl_c_interrupts_a_blocking_call_promptly(call):
    p = subprocess.Popen(
        [sys.executable, "-c", SCRIPT.format(call=call)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
        time.sleep(0.2)  # let it block in the call
        sent = time.monotonic()
        p.send_signal(signal.SIGINT)
        assert p.stdout.readline().strip() == "interrupted"
        latency = time.monotonic() - sent
        assert p.wait(timeout=10) == 3
    finally:
        p.kill()
    # Waits check for signals every 50 ms; a second would mean they do not.
    assert latency < 1.0


def test_interpreter_exit_closes_open_peers_cleanly(cli_router):
    # The script leaves a peer with callbacks, a router and unsent messages open; at exit
    # they are closed gracefully: the messages arrive and the process ends by itself.
    code = f"""
import lanmesh
r = lanmesh.Router("127.0.0.1:0", name="hub", mdns=False)
p = lanmesh.Peer("leaver", router={cli_router!r}, on_message=print, on_peer_joined=print)
for i in range(100):
    p.send("stay", i)
"""
    with lanmesh.Peer("stay", router=cli_router) as stay:
        out = python(code, timeout=20)
        assert out.returncode == 0, out.stderr
        assert "Exception" not in out.stderr and "panicked" not in out.stderr, out.stderr
        got = [stay.recv(timeout=5).data for _ in range(100)]
        assert got == list(range(100))
        eventually(lambda: "leaver" not in stay.peers(), what="the leaver left")

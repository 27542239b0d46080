"""The Python examples (examples/python) run as a user runs them."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import List

from conftest import REPO, eventually

EXAMPLES = REPO / "examples" / "python"


class Script:
    """An example running in its own interpreter, its output read line by line."""

    def __init__(self, *args: str) -> None:
        self.p = subprocess.Popen(
            [sys.executable, str(EXAMPLES / args[0]), *args[1:]],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: List[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))

    def expect(self, text: str, timeout: float = 10.0) -> None:
        eventually(lambda: any(text in line for line in self.lines), timeout, f"{text!r} in {self.lines}")

    def type(self, line: str) -> None:
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def finish(self, timeout: float = 20.0) -> int:
        try:
            return self.p.wait(timeout=timeout)
        finally:
            self.p.kill()


def test_the_sensor_example_answers_and_never_hangs():
    s = Script("sensor.py")
    assert s.finish() == 0, s.lines
    assert sum("[asker] sensor:" in line for line in s.lines) == 3
    assert '[asker] peer "sensor" answers no requests' in s.lines
    assert '[asker] peer "mute" answers no requests' in s.lines


def test_the_hooks_example_runs_its_whole_life():
    s = Script("hooks.py")
    assert s.finish() == 0, s.lines
    # on_join runs on the greeter's callback thread, which may start after the visitor
    # joined: the list has the greeter, and perhaps the visitor already.
    assert s.lines[0] in (
        "[greeter] in the mesh with ['greeter']",
        "[greeter] in the mesh with ['greeter', 'visitor']",
    ), s.lines
    assert "[visitor] welcome, visitor!" in s.lines
    assert "[visitor] {'echo': 'hello'}" in s.lines
    # The greeter's callbacks and the visitor print from different threads: the order of
    # their lines is not fixed, but the greeter's goodbye is there and comes after its
    # first words.
    leaving = [i for i, line in enumerate(s.lines) if line.startswith("[greeter] leaving after 1 echoes")]
    assert leaving and leaving[0] > 0, s.lines


def test_the_pi_sensor_publishes_what_sysfs_says_and_answers_latest(cli_router, tmp_path):
    import lanmesh

    sysfs = tmp_path / "sys"
    (sysfs / "class/thermal/thermal_zone0").mkdir(parents=True)
    (sysfs / "class/thermal/thermal_zone0/temp").write_text("48250\n")
    good = sysfs / "bus/w1/devices/28-0000075a1b2c"
    bad = sysfs / "bus/w1/devices/28-00000badc0de"
    good.mkdir(parents=True)
    bad.mkdir(parents=True)
    (good / "w1_slave").write_text("72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=21500\n")
    (bad / "w1_slave").write_text("72 01 4b 46 7f ff 0e 10 57 : crc=00 NO\n72 01 4b 46 7f ff 0e 10 57 t=85000\n")
    with lanmesh.Peer("collector", router=cli_router) as collector:
        s = Script(
            "pi_sensor.py", "--router", cli_router, "--name", "pi", "--to", "collector",
            "--every", "0.5", "--count", "3", "--sysfs", str(sysfs),
        )
        first = collector.recv(timeout=15)
        assert first is not None, s.lines
        assert first.sender == "pi"
        assert first.data["seq"] == 1
        assert first.data["soc_celsius"] == 48.25
        assert first.data["probes"] == {"28-0000075a1b2c": 21.5}, "the probe with a bad CRC is left out"
        latest = collector.request("pi", "latest?", timeout=5)
        assert latest["sensor"] == "pi" and latest["seq"] >= 1, latest
        seqs = [first.data["seq"]] + [collector.recv(timeout=15).data["seq"] for _ in range(2)]
        assert seqs == [1, 2, 3]
        assert s.finish() == 0, s.lines
    printed = [line for line in s.lines if line.startswith("{")]
    assert len(printed) == 3, s.lines


def test_two_chats_talk_through_a_router(cli_router):
    alice = Script("chat.py", "alice", "--router", cli_router)
    alice.expect("joined as alice")
    bob = Script("chat.py", "bob", "--router", cli_router)
    bob.expect("joined as bob; here: alice")
    alice.expect("* bob joined")
    alice.type("@bob hi bob")
    bob.expect("alice: hi bob")
    bob.type("hello everyone")
    alice.expect("bob (to all): hello everyone")
    alice.type("@nobody are you there?")
    alice.expect('! unknown peer "nobody"')
    alice.type("/peers")
    alice.expect("peers: alice, bob")
    bob.type("/quit")
    assert bob.finish() == 0
    alice.expect("* bob left")
    alice.p.stdin.close()  # the end of input leaves too
    assert alice.finish() == 0


class CuttingProxy:
    """A TCP proxy to `upstream` that can cut every connection through it at once (as a
    Wi-Fi drop would); it keeps accepting, so peers reconnect through it."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = "127.0.0.1:%d" % self.listener.getsockname()[1]
        self.conns: List[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self.lock:
                self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.listener.close()
        self.cut()


def test_the_instrument_stream_rides_out_lost_connections(cli_router):
    proxy = CuttingProxy(cli_router)
    try:
        logger = Script("instrument.py", "log", "--router", cli_router, "--count", "12")
        logger.expect("[logger] logging")
        stream = Script("instrument.py", "stream", "--router", proxy.address, "--count", "12", "--every", "0.05")
        stream.expect("reading 3 confirmed")
        proxy.cut()
        stream.expect("reconnecting")
        stream.expect("reading 7 confirmed")
        proxy.cut()
        assert stream.finish(timeout=60) == 0, stream.lines
        assert logger.finish(timeout=30) == 0, logger.lines
    finally:
        proxy.close()
    numbers = [int(line.split("#")[1].split(":")[0]) for line in logger.lines if "#" in line]
    # Acked readings arrive exactly once and in order across the cuts.
    assert numbers == list(range(12)), logger.lines
    assert sum(" confirmed" in line and "not confirmed" not in line for line in stream.lines) == 12

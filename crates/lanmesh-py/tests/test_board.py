"""The wheel built for a board (`scripts/python.sh --target aarch64 --test`), installed
into Debian's Python for that architecture and run under qemu-user, against an x86
`lanmesh router` process and an x86 Python peer on 127.0.0.1.

$LANMESH_BOARD_PYTHON is that Python (a wrapper that runs it under qemu) and
$LANMESH_BOARD_SITE the directory pip installed the wheel into; scripts/python.sh sets
both. Without them the test says how to run it and skips: building the board's wheel
needs a toolchain of its own and takes minutes, so it is not part of `just python`.
qemu-user translates the board's instructions on this machine's kernel: this shows the
wheel is right for the target and works there, not how a real board performs.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time

import pytest

import lanmesh

BOARD_PYTHON = os.environ.get("LANMESH_BOARD_PYTHON")
BOARD_SITE = os.environ.get("LANMESH_BOARD_SITE")

pytestmark = pytest.mark.skipif(
    not (BOARD_PYTHON and BOARD_SITE),
    reason="no board Python: run `scripts/python.sh --target aarch64 --test` (just python-wheel-aarch64 --test)",
)

# Runs on the board's Python: joins as "pi", tells the laptop what it runs on, and sends
# back what the laptop sends it.
BOARD = textwrap.dedent(
    """
    import json, platform, sys
    import lanmesh
    with lanmesh.Peer("pi", router=sys.argv[1]) as pi:
        pi.send_acked("laptop", {"machine": platform.machine(), "module": lanmesh._native.__file__})
        msg = pi.recv(timeout=60)
        pi.send_acked("laptop", msg.data)
        print(json.dumps({"sender": msg.sender, "kind": msg.kind}))
    """
)


def test_the_board_wheel_joins_an_x86_router_and_exchanges_every_kind(cli_router):
    env = {**os.environ, "PYTHONPATH": BOARD_SITE, "PYTHONDONTWRITEBYTECODE": "1"}
    with lanmesh.Peer("laptop", router=cli_router) as laptop:
        board = subprocess.Popen(
            [BOARD_PYTHON, "-c", BOARD, cli_router],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        try:
            # qemu takes seconds to start the interpreter and import the package; a board
            # that fails (an import error) ends, and says why, sooner.
            deadline = time.monotonic() + 90
            hello = None
            while hello is None and board.poll() is None and time.monotonic() < deadline:
                hello = laptop.recv(timeout=0.5)
            assert hello is not None, board.stderr.read() if board.poll() is not None else "no message from the board"
            assert (hello.sender, hello.kind) == ("pi", "json")
            assert hello.data["machine"] == "aarch64" or hello.data["machine"].startswith("arm")
            assert hello.data["module"].startswith(BOARD_SITE) and hello.data["module"].endswith(".abi3.so")
            # Bytes that are not UTF-8, acked by the board's client, come back as bytes.
            laptop.send_acked("pi", b"\x00\xff from x86", timeout=30)
            echo = laptop.recv(timeout=30)
            assert (echo.sender, echo.kind, echo.data) == ("pi", "bytes", b"\x00\xff from x86")
            out, err = board.communicate(timeout=60)
        finally:
            if board.poll() is None:
                board.kill()
                board.wait()
    assert board.returncode == 0, err
    assert json.loads(out) == {"sender": "laptop", "kind": "bytes"}

"""A soak: 100,000 messages between two Python peers in two processes, none lost, none
doubled, in order, byte for byte.

Not part of CI's run (`just python-soak` runs it, setting LANMESH_SOAK=1)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

import lanmesh

pytestmark = pytest.mark.skipif(os.environ.get("LANMESH_SOAK") != "1", reason="a soak: LANMESH_SOAK=1 (just python-soak)")

COUNT = 100_000

SENDER = """
import hashlib, os, struct, sys, lanmesh
peer = lanmesh.Peer("sender", router=sys.argv[1])
digest = hashlib.sha256()
for i in range(int(sys.argv[2])):
    payload = struct.pack(">I", i) + os.urandom(60)
    digest.update(payload)
    peer.send("receiver", payload)
undelivered = peer.close()
print(len(undelivered), digest.hexdigest())
"""


def test_a_hundred_thousand_messages_between_two_python_processes(cli_router):
    with lanmesh.Peer("receiver", router=cli_router) as receiver:
        sender = subprocess.Popen(
            [sys.executable, "-c", SENDER, cli_router, str(COUNT)], stdout=subprocess.PIPE, text=True
        )
        digest = hashlib.sha256()
        expected = 0
        for msg in receiver:
            assert msg.sender == "sender" and len(msg.data) == 64
            assert int.from_bytes(msg.data[:4], "big") == expected, "lost, doubled or out of order"
            digest.update(msg.data)
            expected += 1
            if expected == COUNT:
                break
        out, _ = sender.communicate(timeout=60)
        assert sender.returncode == 0
    undelivered, sent_digest = out.split()
    assert undelivered == "0"
    assert digest.hexdigest() == sent_digest

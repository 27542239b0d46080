"""`just bench-files`: a file from one Python process to another, over their direct link
and through the router, taking turns, with ``Peer.send_file`` as a user calls it.

The driver starts ``target/release/lanmesh router`` on a loopback port and, for each turn
and each path, a receiver (``save_dir``) and a sender process. The sender brings the
link up before the clock starts (``direct=True``; messages until ``is_direct``), or
stays on the router path (``direct=False``), and times ``send_file``, which returns once
the receiver has written the whole file. The file is incompressible (``os.urandom``);
every saved copy is compared with it byte for byte. Results: bench/results/direct/files.md.
"""

from __future__ import annotations

import datetime
import filecmp
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SIZE = int(os.environ.get("LANMESH_BENCH_FILE_BYTES", 256 << 20))
TURNS = 3


def receiver(router: str, direct: bool, save: str) -> None:
    import lanmesh

    with lanmesh.Peer(f"rx{int(direct)}", router=router, save_dir=save, direct=direct) as p:
        print("ready", flush=True)
        while True:
            m = p.recv(timeout=60)
            if m is None:
                raise SystemExit("no file within 60 s")
            if m.file is not None:
                return
            if m.data == b"hi":  # the sender bringing the link up: answered
                p.send(m.sender, b"hi")


def sender(router: str, direct: bool, path: str) -> None:
    import lanmesh

    with lanmesh.Peer(f"tx{int(direct)}", router=router, direct=direct) as p:
        to = f"rx{int(direct)}"
        deadline = time.monotonic() + 10
        while to not in p.peers() or (direct and not p.is_direct(to)):
            if time.monotonic() > deadline:
                raise SystemExit(f"no {'link' if direct else 'peer'} to {to} within 10 s")
            if to in p.peers():
                p.send(to, b"hi")
            time.sleep(0.01)
            p.get("all")
        started = time.perf_counter()
        size = p.send_file(to, path)
        seconds = time.perf_counter() - started
        print(json.dumps({"bytes": size, "seconds": seconds}), flush=True)


def turn(py: str, router: str, direct: bool, src: Path, work: Path) -> float:
    save = work / f"save-{int(direct)}"
    shutil.rmtree(save, ignore_errors=True)
    save.mkdir()
    me = str(Path(__file__).resolve())
    flag = "1" if direct else "0"
    rx = subprocess.Popen([py, me, "rx", router, flag, str(save)], stdout=subprocess.PIPE, text=True)
    assert rx.stdout is not None and rx.stdout.readline().strip() == "ready"
    out = subprocess.run([py, me, "tx", router, flag, str(src)], capture_output=True, text=True)
    if out.returncode != 0:
        rx.kill()
        raise SystemExit(f"sender failed: {out.stderr}")
    if rx.wait(timeout=60) != 0:
        raise SystemExit("receiver failed")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not filecmp.cmp(src, save / src.name, shallow=False):
        raise SystemExit("the saved file differs from the sent one")
    return result["bytes"] / result["seconds"] / 1e6


def main() -> None:
    binary = REPO / "target" / "release" / "lanmesh"
    work = Path(tempfile.mkdtemp(prefix="lanmesh-bench-files-"))
    try:
        src = work / "file.bin"
        with open(src, "wb") as f:
            for _ in range(SIZE >> 20):
                f.write(os.urandom(1 << 20))
        router = subprocess.Popen(
            [str(binary), "router", "--no-mdns", "--no-http", "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert router.stdout is not None
        addr = ""
        while not addr:
            line = router.stdout.readline()
            if not line:
                raise SystemExit("the router did not start")
            if line.strip().startswith("tcp"):
                addr = line.split()[-1]
        rows = {True: [], False: []}
        try:
            for _ in range(TURNS):
                for direct in (True, False):
                    rows[direct].append(turn(sys.executable, addr, direct, src, work))
        finally:
            router.kill()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()
    cpu = next(
        (l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
        "?",
    )
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    fmt = lambda xs: ", ".join(f"{x:,.0f}" for x in xs)
    best = lambda xs: sorted(xs)[len(xs) // 2]
    text = (
        "# A file between two Python processes: direct link and router\n\n"
        f"{when} · {os.cpu_count()} cores · {cpu} · Linux {platform.release()} · "
        f"load {load[0]:.1f} · {SIZE >> 20} MiB incompressible · `Peer.send_file` "
        f"(release wheel) · {TURNS} turns each, taking turns\n\n"
        "| path | MB/s per turn | median |\n|---|--:|--:|\n"
        f"| direct link | {fmt(rows[True])} | {best(rows[True]):,.0f} |\n"
        f"| via the router | {fmt(rows[False])} | {best(rows[False]):,.0f} |\n\n"
        f"Direct ÷ router (medians): {best(rows[True]) / best(rows[False]):.2f}×; every saved "
        "copy equal to the sent file.\n"
    )
    out = REPO / "bench" / "results" / "direct" / "files.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "rx":
        receiver(sys.argv[2], sys.argv[3] == "1", sys.argv[4])
    elif len(sys.argv) > 1 and sys.argv[1] == "tx":
        sender(sys.argv[2], sys.argv[3] == "1", sys.argv[4])
    else:
        main()

"""A sensor for a Raspberry Pi (or any Linux board), in Python: every few seconds it reads
the board's own temperature and any DS18B20 1-Wire thermometers from sysfs and sends the
reading as one JSON message to a collector, which acknowledges it. A request of
``latest?`` gets the last reading back. The Python twin of ``examples/board`` (Rust).

    lanmesh router                                        # on the laptop
    lanmesh listen --name laptop --json                   # the collector, also there
    python3 pi_sensor.py --name greenhouse --to laptop --every 10        # on the Pi

On the Pi, ``pip install`` the aarch64 (or armv7) wheel that
``scripts/python.sh --target aarch64`` builds. Without ``--router`` it finds the router of
``--mesh`` by mDNS. Without ``--to`` readings are broadcast, unacknowledged.

What it reads (a part the board lacks is left out of the reading):

* ``<sysfs>/class/thermal/thermal_zone0/temp``: the SoC temperature in millidegrees;
* ``<sysfs>/bus/w1/devices/28-*/w1_slave``: DS18B20 probes (``dtoverlay=w1-gpio``), whose
  first line ends in ``YES`` when the CRC is good and whose second holds ``t=`` in
  millidegrees.

A reading that cannot be delivered (collector away, router restarting) is reported on
stderr and the next one is tried on time; the peer reconnects by itself.
"""

import argparse
import json
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, Optional

import lanmesh


def millidegrees(text: str) -> Optional[float]:
    try:
        return int(text.strip()) / 1000.0
    except ValueError:
        return None


def read(sysfs: Path, name: str, seq: int) -> Dict[str, Any]:
    reading: Dict[str, Any] = {"sensor": name, "seq": seq, "unix_ms": int(time.time() * 1000)}
    try:
        soc = millidegrees((sysfs / "class/thermal/thermal_zone0/temp").read_text())
    except OSError:
        soc = None
    if soc is not None:
        reading["soc_celsius"] = soc
    probes = {}
    for slave in sorted((sysfs / "bus/w1/devices").glob("28-*/w1_slave")):
        try:
            lines = slave.read_text().splitlines()
        except OSError:
            continue
        # A bad CRC ("NO") or a torn read: this probe is left out of this reading.
        if len(lines) >= 2 and lines[0].endswith("YES") and "t=" in lines[1]:
            value = millidegrees(lines[1].split("t=", 1)[1])
            if value is not None:
                probes[slave.parent.name] = value
    if probes:
        reading["probes"] = probes
    return reading


def main() -> int:
    ap = argparse.ArgumentParser(description="Publish a Linux board's temperatures on a lanmesh mesh")
    ap.add_argument("--router", help="the router's address; without it, mDNS finds the router of --mesh")
    ap.add_argument("--mesh", default="lanmesh")
    ap.add_argument("--name", default=socket.gethostname(), help="this sensor's name (default: the host name)")
    ap.add_argument("--to", help="who collects the readings (acknowledged); default: broadcast")
    ap.add_argument("--every", type=float, default=10.0, help="seconds between readings")
    ap.add_argument("--count", type=int, help="stop after this many readings")
    ap.add_argument("--sysfs", type=Path, default=Path("/sys"), help="where sysfs is mounted")
    args = ap.parse_args()
    if not args.every > 0:
        ap.error("--every must be a positive number of seconds")

    latest = {"text": None}
    lock = threading.Lock()
    with lanmesh.Peer(args.name, router=args.router, mesh=args.mesh) as peer:

        @peer.respond
        def answer(req: lanmesh.Message) -> Any:
            if req.data == "latest?":
                with lock:
                    return json.loads(latest["text"]) if latest["text"] else None
            return "ask: latest?"

        print(f"{args.name}: publishing every {args.every} s", file=sys.stderr, flush=True)
        seq = 0
        next_at = time.monotonic()
        while args.count is None or seq < args.count:
            seq += 1
            reading = read(args.sysfs, args.name, seq)
            with lock:
                latest["text"] = json.dumps(reading)
            try:
                if args.to:
                    peer.send_acked(args.to, reading)
                else:
                    peer.broadcast(reading)
                print(json.dumps(reading), flush=True)
            except lanmesh.Error as e:
                print(f"{args.name}: reading {seq} not delivered: {e}", file=sys.stderr, flush=True)
            next_at += args.every
            time.sleep(max(0.0, next_at - time.monotonic()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

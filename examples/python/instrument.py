"""An instrument streaming acknowledged readings to a logger, riding out lost
connections (serpy's acked stream with ``Connection(auto_restart=True)``, ported).

    python examples/python/instrument.py log --router 127.0.0.1:7400
    python examples/python/instrument.py stream --router 127.0.0.1:7400 --count 20

``stream`` sends one reading per ``--every`` seconds with ``send_acked``, which returns
once the logger's client has it (serpy's ``sendData(data, mode=1)``). Reconnection is on
by default: when the connection is lost (a Wi-Fi drop, a cable pulled) the peer says so
(``on_status``) and dials again with backoff; the router keeps its place for its grace
period (30 s), and acked readings are delivered exactly once, in order, when it is back.
A reading the logger does not confirm in time is reported and sent again. ``log`` prints
each reading and ends after ``--count`` of them.
"""

import argparse
import random
import sys
import time

import lanmesh


def stream(args: argparse.Namespace) -> int:
    def status(s: lanmesh.Status) -> None:
        print(f"[{args.name}] {s}", flush=True)

    with lanmesh.Peer(args.name, router=args.router, on_status=status) as peer:
        n = 0
        while n < args.count:
            reading = {"n": n, "volts": round(3.3 + random.uniform(-0.05, 0.05), 3), "t": time.time()}
            try:
                peer.send_acked(args.to, reading, timeout=args.timeout)
            except (lanmesh.Timeout, lanmesh.UnknownPeer) as e:
                print(f"[{args.name}] reading {n} not confirmed ({e}); again", flush=True)
                time.sleep(args.every)
                continue
            print(f"[{args.name}] reading {n} confirmed", flush=True)
            n += 1
            time.sleep(args.every)
    return 0


def log(args: argparse.Namespace) -> int:
    with lanmesh.Peer(args.name, router=args.router) as peer:
        print(f"[{args.name}] logging", flush=True)
        seen = set()
        for msg in peer:
            reading = msg.data
            fresh = reading["n"] not in seen
            seen.add(reading["n"])
            print(f"[{args.name}] {msg.sender} #{reading['n']}: {reading['volts']} V{'' if fresh else ' (again)'}",
                  flush=True)
            if len(seen) >= args.count:
                break
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["stream", "log"])
    parser.add_argument("--router", help="host:port of the router (default: mDNS)")
    parser.add_argument("--name", help="default: instrument / logger")
    parser.add_argument("--to", default="logger", help="who the instrument streams to")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--every", type=float, default=0.5, help="seconds between readings")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each ack")
    args = parser.parse_args()
    args.name = args.name or ("instrument" if args.role == "stream" else "logger")
    return stream(args) if args.role == "stream" else log(args)


if __name__ == "__main__":
    sys.exit(main())

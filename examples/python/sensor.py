"""A sensor that answers requests, and a client that asks (RUDP/serpy request-reply,
ported). Without arguments it runs both against a router of its own and ends.

    python examples/python/sensor.py                              # the whole demo, on loopback
    python examples/python/sensor.py serve --router 127.0.0.1:7400 --name board
    python examples/python/sensor.py ask --router 127.0.0.1:7400 --name board

The sensor's ``respond`` handler runs on its callback thread and returns the reading (a
JSON value here); a request to a peer without a handler fails at once with
``NoResponder``, and one that nobody answers in time with ``Timeout`` — never a hang.
"""

import argparse
import math
import sys
import time

import lanmesh


def reading(started: float) -> dict:
    t = time.monotonic() - started
    return {"temp": round(21.0 + math.sin(t), 2), "unit": "C"}


def serve(router: str, name: str, forever: bool = True) -> lanmesh.Peer:
    started = time.monotonic()
    sensor = lanmesh.Peer(name, router=router)

    @sensor.respond
    def answer(req: lanmesh.Message):
        if req.data == "temp?":
            return reading(started)
        return None  # NoResponder for anything else

    print(f"[{name}] answering temp?", flush=True)
    if forever:
        sensor.wait()
    return sensor


def ask(router: str, name: str, times: int = 3) -> None:
    with lanmesh.Peer("asker", router=router) as asker:
        for _ in range(times):
            started = time.perf_counter()
            value = asker.request(name, "temp?", timeout=2)
            print(f"[asker] {name}: {value['temp']} {value['unit']} "
                  f"({(time.perf_counter() - started) * 1e6:.0f} µs)", flush=True)
        try:
            asker.request(name, "humidity?", timeout=2)
        except lanmesh.NoResponder as e:
            print(f"[asker] {e}", flush=True)
        with lanmesh.Peer("mute", router=router):
            try:
                asker.request("mute", "temp?", timeout=2)
            except lanmesh.NoResponder as e:
                print(f"[asker] {e}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", nargs="?", choices=["serve", "ask"])
    parser.add_argument("--router", help="host:port of the router")
    parser.add_argument("--name", default="sensor")
    args = parser.parse_args()
    if args.role == "serve":
        serve(args.router, args.name)
    elif args.role == "ask":
        ask(args.router, args.name)
    else:
        with lanmesh.Router("127.0.0.1:0", mdns=False) as router:
            sensor = serve(router.address, args.name, forever=False)
            ask(router.address, args.name)
            sensor.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A handler written once, called at each point of a peer's life (tinyproto's
``TinyProtoConnection`` with ``pre_loop`` / ``transmission_received`` / ``post_loop``,
ported). It ends by itself.

    python examples/python/hooks.py                          # a router of its own, on loopback
    python examples/python/hooks.py --router 192.168.1.10:7400

A ``greeter`` subclasses ``lanmesh.Peer``: it welcomes newcomers, echoes what it is told,
answers ``uptime?`` requests, and leaves when told ``QUIT`` (tinyproto's
``self.shutdown = True``). A ``visitor`` exercises it. The methods run one at a time on
the greeter's own thread, in order, and may send on the same peer.
"""

import argparse
import sys
import time

import lanmesh


class Greeter(lanmesh.Peer):
    def __init__(self, name: str, router: str) -> None:
        self.started = time.monotonic()
        self.echoed = 0
        super().__init__(name, router=router)
        self.respond(self.on_request)

    def on_join(self) -> None:  # pre_loop()
        print(f"[greeter] in the mesh with {self.peers()}", flush=True)

    def on_peer_joined(self, name: str) -> None:  # a new connection
        print(f"[greeter] welcome, {name}", flush=True)
        self.send(name, f"welcome, {name}!")

    def on_message(self, msg: lanmesh.Message) -> None:  # transmission_received(msg)
        if msg.data == "QUIT":
            self.send(msg.sender, "bye")
            self.close()  # self.shutdown = True
            return
        self.echoed += 1
        self.send(msg.sender, {"echo": msg.data})

    def on_request(self, req: lanmesh.Message):
        if req.data == "uptime?":
            return round(time.monotonic() - self.started, 3)
        return None  # the requester gets NoResponder

    def on_peer_left(self, name: str) -> None:
        print(f"[greeter] {name} left", flush=True)

    def on_leave(self, reason: str) -> None:  # post_loop()
        print(f"[greeter] leaving after {self.echoed} echoes ({reason})", flush=True)


def visit(router: str) -> None:
    with lanmesh.Peer("visitor", router=router) as visitor:
        print(f"[visitor] {visitor.recv(timeout=5).data}", flush=True)
        visitor.send("greeter", "hello")
        print(f"[visitor] {visitor.recv(timeout=5).data}", flush=True)
        print(f"[visitor] uptime: {visitor.request('greeter', 'uptime?', timeout=2)} s", flush=True)
        try:
            visitor.request("greeter", "weather?", timeout=2)
        except lanmesh.NoResponder as e:
            print(f"[visitor] {e}", flush=True)
        visitor.send("greeter", "QUIT")
        print(f"[visitor] {visitor.recv(timeout=5).data}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--router", help="host:port of an existing router (default: one of its own)")
    args = parser.parse_args()
    own = None if args.router else lanmesh.Router("127.0.0.1:0", mdns=False)
    router = args.router or own.address
    greeter = Greeter("greeter", router)
    visit(router)
    greeter.wait(timeout=5)
    if own is not None:
        own.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Chat between laptops (UltraSockets' two-laptop chat, ported).

    lanmesh router                                      # somewhere on the LAN
    python examples/python/chat.py alice                # laptop 1: finds the router by mDNS
    python examples/python/chat.py bob --router 192.168.1.10:7400   # laptop 2: by address

With UltraSockets one laptop had to be the Server and the other connect to it by IP; here
both join the mesh by name. Each line typed is sent: ``@bob hi`` to bob only
(acknowledged, so a typo in the name is reported), anything else to everyone. ``/peers``
lists who is here, ``/quit`` or the end of input leaves. What arrives is printed by the
peer's callbacks while the main thread reads the keyboard.
"""

import argparse
import sys

import lanmesh


def show(msg: lanmesh.Message) -> None:
    to = " (to all)" if msg.is_broadcast else ""
    text = msg.data if isinstance(msg.data, str) else repr(msg.data)
    print(f"{msg.sender}{to}: {text}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--router", help="host:port of the router (default: find it by mDNS)")
    parser.add_argument("--mesh", default="lanmesh")
    args = parser.parse_args()

    with lanmesh.Peer(
        args.name,
        router=args.router,
        mesh=args.mesh,
        on_message=show,
        on_peer_joined=lambda name: print(f"* {name} joined", flush=True),
        on_peer_left=lambda name: print(f"* {name} left", flush=True),
    ) as peer:
        others = [n for n in peer.peers() if n != args.name]
        print(f"joined as {args.name}; here: {', '.join(others)}", flush=True)
        for line in sys.stdin:
            line = line.rstrip("\n")
            if not line:
                continue
            if line == "/quit":
                break
            if line == "/peers":
                print("peers:", ", ".join(peer.peers()), flush=True)
            elif line.startswith("@") and " " in line:
                to, text = line[1:].split(" ", 1)
                try:
                    peer.send_acked(to, text, timeout=5)
                except lanmesh.Error as e:
                    print(f"! {e}", flush=True)
            else:
                peer.broadcast(line)
    print("* left the mesh", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

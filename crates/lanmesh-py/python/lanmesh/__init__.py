"""lanmesh: named, encrypted, compressed messaging between the devices of one LAN.

::

    import lanmesh
    with lanmesh.Peer("PC2", router="127.0.0.1:7400") as peer:
        peer.send_acked("B", {"temp": 21.5})
        print(peer.get("all"))

A :class:`Peer` joins a mesh under a name, through a router it finds by mDNS or is told
(``router="host:port"``); a :class:`Router` runs one in this process. Data may be
``bytes``/``bytearray``/``memoryview`` (sent as they are), ``str`` (text), or anything
JSON encodes; the receiver gets back the same kind. :mod:`lanmesh.aio` has the same peer
for asyncio. Errors are :class:`Error` and its subclasses.

This is the native lanmesh peer and router (Rust) underneath: the same Noise handshake,
encryption, compression, acknowledgements and reconnection as the ``lanmesh`` command.
"""

from __future__ import annotations

import atexit
import os
import weakref
from typing import Any, Callable, Optional, Union

from . import _native
from . import _errors
from ._errors import *  # noqa: F401,F403
from ._errors import Disconnected, Error
from ._native import Message, Status, Undelivered, keygen

__version__: str = _native.__version__

__all__ = [
    "Peer",
    "Router",
    "Message",
    "Status",
    "Undelivered",
    "keygen",
    "JSON_MARK",
    *_errors.__all__,
]

#: What starts the text of a JSON message on the wire (a tab): see the README.
JSON_MARK: str = _native.JSON_MARK

_HOOKS = ("on_message", "on_peer_joined", "on_peer_left", "on_status", "on_join", "on_leave")

#: Peers and routers still open, closed at interpreter exit.
_open_peers: "weakref.WeakSet[Any]" = weakref.WeakSet()
_open_routers: "weakref.WeakSet[Any]" = weakref.WeakSet()


class _Hook:
    """A callback slot: set it on a peer (or define the method in a subclass) and the
    peer's callback thread calls it."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: Optional[type] = None) -> Any:
        if obj is None:
            return self
        return obj.__dict__.get(self.name)

    def __set__(self, obj: Any, value: Optional[Callable[..., Any]]) -> None:
        if value is not None and not callable(value):
            raise TypeError(f"{self.name} must be callable or None, not {type(value).__name__}")
        obj.__dict__[self.name] = value
        obj._refollow()


def _report(error: BaseException, callback: Any) -> None:
    """Reports an exception raised by a callback through sys.unraisablehook."""
    _native.report(error, callback)


class Peer(_native.Peer):
    """A peer of the mesh, joined under ``name``.

    ``router`` is the router's ``"host:port"`` (``"tcp://host:port"`` and
    ``"ws://host:7401/mesh"`` work too); without it a router of ``mesh`` is found on the
    LAN by mDNS, as the command line does. ``mesh_key`` (32 bytes, 64 hex digits, or the
    path of a ``lanmesh keygen`` file) is needed when the mesh has one. The peer's key is
    the user's (``$LANMESH_HOME/identity``, as for the command line) unless ``identity``
    names another key file; the router binds each name to the key that first used it.
    With ``direct`` (the default) messages to another native peer this one can reach go
    over a direct link the router introduced (one hop instead of two); ``direct=False``
    sends everything through the router.

    Received messages wait in an inbox (up to ``inbox_capacity``; then the router holds
    them) for :meth:`recv`, :meth:`get` or iteration — unless ``on_message`` is set, in
    which case they go to it. Callbacks (``on_message(msg)``, ``on_peer_joined(name)``,
    ``on_peer_left(name)``, ``on_status(status)``, ``on_join()``, ``on_leave(reason)``,
    and the :meth:`respond` handler) are keyword arguments, attributes, or methods of a
    subclass; they run one at a time on the peer's own thread, in the order things
    happen. An exception in one is reported through ``sys.unraisablehook`` and the peer
    carries on. A callback may send on the same peer.

    A context manager: leaving the ``with`` block closes the peer. Peers still open at
    interpreter exit are closed then.
    """

    on_message = _Hook()
    on_peer_joined = _Hook()
    on_peer_left = _Hook()
    on_status = _Hook()
    on_join = _Hook()
    on_leave = _Hook()

    def __init__(
        self,
        name: str,
        router: Optional[str] = None,
        *,
        mesh: str = "lanmesh",
        mesh_key: Union[bytes, str, "os.PathLike[str]", None] = None,
        identity: Union[str, "os.PathLike[str]", None] = None,
        ack_timeout: float = 10.0,
        reconnect: bool = True,
        discovery_timeout: float = 3.0,
        interface: Optional[str] = None,
        save_dir: Union[str, "os.PathLike[str]", None] = None,
        max_file_size: Optional[int] = None,
        cipher: str = "chacha20poly1305",
        inbox_capacity: int = 65536,
        direct: bool = True,
        on_message: Optional[Callable[[Message], Any]] = None,
        on_peer_joined: Optional[Callable[[str], Any]] = None,
        on_peer_left: Optional[Callable[[str], Any]] = None,
        on_status: Optional[Callable[[Status], Any]] = None,
        on_join: Optional[Callable[[], Any]] = None,
        on_leave: Optional[Callable[[str], Any]] = None,
    ) -> None:
        self._connect(
            name,
            router,
            mesh=mesh,
            mesh_key=mesh_key,
            identity=identity,
            ack_timeout=ack_timeout,
            reconnect=reconnect,
            discovery_timeout=discovery_timeout,
            interface=interface,
            save_dir=save_dir,
            max_file_size=max_file_size,
            cipher=cipher,
            inbox_capacity=inbox_capacity,
            direct=direct,
        )
        self.__dict__.setdefault("_responder", None)
        self.__dict__["_following"] = None
        self.__dict__["_connected"] = True
        _open_peers.add(self)
        given = {
            "on_message": on_message,
            "on_peer_joined": on_peer_joined,
            "on_peer_left": on_peer_left,
            "on_status": on_status,
            "on_join": on_join,
            "on_leave": on_leave,
        }
        for hook, callback in given.items():
            if callback is not None:
                if not callable(callback):
                    raise TypeError(f"{hook} must be callable, not {type(callback).__name__}")
                self.__dict__[hook] = callback
        self._refollow()
        if self.__dict__["_responder"] is not None:
            self._respond(True)

    # -- callbacks -----------------------------------------------------------------------

    def respond(self, handler: Optional[Callable[[Message], Any]]) -> Optional[Callable[[Message], Any]]:
        """Answers every request that reaches this peer with ``handler(request)``: its
        return value (any kind :meth:`send` takes) is the reply; ``None`` tells the
        requester there is no answer (``NoResponder``). It runs on the callback thread;
        an exception in it is reported and the request declined. ``respond(None)`` stops
        answering. Usable as a decorator."""
        if handler is not None and not callable(handler):
            raise TypeError(f"respond() takes a callable or None, not {type(handler).__name__}")
        self.__dict__["_responder"] = handler
        self._refollow()
        if self.__dict__.get("_connected"):
            self._respond(handler is not None)
        return handler

    def _refollow(self) -> None:
        """Tells the callback thread what to follow now."""
        if not self.__dict__.get("_connected"):
            return  # not connected yet: __init__ starts the thread once it is
        hooks = {h: getattr(self, h, None) is not None for h in _HOOKS}
        wanted = (
            hooks["on_message"],
            hooks["on_peer_joined"] or hooks["on_peer_left"],
            hooks["on_status"],
        )
        needed = any(hooks.values()) or self.__dict__.get("_responder") is not None
        if not needed and self.__dict__.get("_following") is None:
            return
        if wanted == self.__dict__.get("_following"):
            return
        self.__dict__["_following"] = wanted
        self._follow(self._dispatch, messages=wanted[0], membership=wanted[1], status=wanted[2])

    def _dispatch(self, kind: str, arg: Any) -> None:
        """Runs on the callback thread: hands one event to its callback."""
        if kind == "request":
            self._answer(arg)
            return
        callback = getattr(self, "on_" + kind, None)
        if callback is None:
            return
        try:
            if kind == "join":
                callback()
            else:
                callback(arg)
        except BaseException as e:  # noqa: B902 - reported, never lost
            _report(e, callback)

    def _answer(self, request: Message) -> None:
        handler = self.__dict__.get("_responder")
        if handler is None:
            self._decline(request)
            return
        try:
            value = handler(request)
        except BaseException as e:  # noqa: B902
            _report(e, handler)
            self._decline(request)
            return
        try:
            if value is None:
                self._decline(request)
            else:
                self._reply(request, value)
        except Disconnected:
            pass  # closed meanwhile: the requester learns it from its own connection
        except BaseException as e:  # noqa: B902
            _report(e, handler)
            try:
                self._decline(request)
            except Error:
                pass  # the connection is gone: the requester learns it anyway

    # -- conveniences --------------------------------------------------------------------

    def send_json(self, to: str, value: Any) -> int:
        """Sends ``value`` as JSON even when it is a ``str`` (the receiver gets a JSON
        value back). Returns the message id."""
        import json

        return self.send(to, JSON_MARK + json.dumps(value, separators=(",", ":"), ensure_ascii=False))


class Router(_native.Router):
    """A router in this process, listening on ``listen`` (``"host:port"`` or a list;
    default ``"0.0.0.0:7400"``) for ``mesh``.

    With ``name``, the router also joins the mesh as a peer (:attr:`peer`), as
    UltraSockets' server is a client too. ``mesh_key`` keeps out peers without it;
    ``http="0.0.0.0:7401"`` serves the dashboard and browser peers; ``mdns=False`` does not
    advertise on the LAN (routers listening on loopback only never do); ``state_dir``
    keeps the router's key and name bindings across restarts, as ``lanmesh router`` does
    in its state directory. :meth:`stop` (or leaving the ``with`` block) shuts it down;
    routers still running at interpreter exit are stopped then.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._peer: Optional[Peer] = None
        _open_routers.add(self)

    @property
    def peer(self) -> Optional[Peer]:
        """The router's own peer, when it was given a ``name``."""
        if self._peer is None and self.name is not None:
            p = Peer.__new__(Peer)
            p._adopt(self)
            p.__dict__.update(_responder=None, _following=None, _connected=True)
            _open_peers.add(p)
            self._peer = p
        return self._peer

    def stop(self) -> None:
        """Stops the router: its own peer leaves, other peers are disconnected with the
        reason. Safe to call twice."""
        if self._peer is not None:
            self._peer._shutdown(2.0)
        super().stop()


def _close_everything() -> None:
    """At interpreter exit: close the peers (gracefully, briefly) and stop the routers
    before the interpreter goes away under their threads."""
    for peer in list(_open_peers):
        try:
            peer._shutdown(2.0)
        except BaseException:  # noqa: B902 - exiting anyway
            pass
    for router in list(_open_routers):
        try:
            router.stop()
        except BaseException:  # noqa: B902
            pass
    _native._finalizing()


atexit.register(_close_everything)


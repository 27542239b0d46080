"""lanmesh for asyncio: :class:`Peer` with the methods of :class:`lanmesh.Peer` as
coroutines, in any running event loop.

::

    import asyncio, lanmesh.aio

    async def main():
        async with lanmesh.aio.Peer("PC2", router="127.0.0.1:7400") as peer:
            await peer.send_acked("B", {"temp": 21.5})
            async for msg in peer:
                print(msg.sender, msg.data)

    asyncio.run(main())

An operation that can complete at once (a send with room in the send queue, a ``recv``
with a message waiting) does so without suspending; otherwise the native future runs on
lanmesh's own thread and settles an asyncio future of the loop through
``call_soon_threadsafe``. Cancelling an operation (``asyncio.wait_for``, task
cancellation) abandons it; a message that arrived just as its ``recv`` was cancelled is
kept for the next ``recv``. Callbacks may be plain functions or coroutine functions; they
run on the event loop, one at a time, in the order things happen.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import os
from collections import deque
from typing import Any, AsyncIterator, Callable, Deque, List, Optional, Union

from . import _native
from . import _HOOKS, _Hook, _report, _open_peers
from ._errors import Disconnected, Error
from ._native import Message, Status, Undelivered

__all__ = ["Peer"]


def _settle(future: "asyncio.Future[Any]", ok: bool, value: Any, lost: Optional[Callable[[Any], None]]) -> None:
    """Runs on the event loop: completes ``future`` with what the native side produced
    (or hands a message nobody waits for any more to ``lost``)."""
    if future.done():
        if ok and lost is not None and value is not None:
            lost(value)
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


async def _finish(step: "tuple[bool, Any]") -> Any:
    done, value = step
    return value if done else await value


class Peer:
    """A peer of the mesh for asyncio; see :class:`lanmesh.Peer` for the arguments.

    Connect with ``peer = await lanmesh.aio.Peer(...)`` or ``async with
    lanmesh.aio.Peer(...) as peer``. Callbacks (``on_message`` and the others, and
    :meth:`respond`) run on the event loop the peer was connected in.
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
        self._name = name
        self._connect_args = (name, router)
        self._connect_kwargs = dict(
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
        self._native = _native.Peer()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stash: Deque[Message] = deque()
        self.__dict__["_responder"] = None
        self.__dict__["_following"] = None
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

    # -- connecting ----------------------------------------------------------------------

    async def connect(self) -> "Peer":
        """Connects, handshakes and joins (once; later calls return at once)."""
        if self.__dict__.get("_connected"):
            return self
        loop = asyncio.get_running_loop()
        await _finish(
            _native.aio_connect(self._native, loop, *self._connect_args, **self._connect_kwargs)
        )
        self._loop = loop
        self.__dict__["_connected"] = True
        _open_peers.add(self)
        self._refollow()
        if self.__dict__["_responder"] is not None:
            self._native._respond(True)
        return self

    def __await__(self) -> Any:
        return self.connect().__await__()

    async def __aenter__(self) -> "Peer":
        return await self.connect()

    async def __aexit__(self, *exc: Any) -> bool:
        if self.__dict__.get("_connected"):
            await self.close()
        return False

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if not self.__dict__.get("_connected"):
            raise Error("this Peer is not connected: await peer.connect() (or use async with)")
        return asyncio.get_running_loop()

    # -- sending -------------------------------------------------------------------------

    async def send(self, to: str, data: Any) -> int:
        """See :meth:`lanmesh.Peer.send`."""
        return await _finish(_native.aio_send(self._native, self._running_loop(), to, data))

    async def send_acked(self, to: str, data: Any, timeout: Optional[float] = None) -> int:
        """See :meth:`lanmesh.Peer.send_acked`."""
        loop = self._running_loop()
        return await _finish(_native.aio_send_acked(self._native, loop, to, data, timeout))

    async def broadcast(self, data: Any) -> int:
        """See :meth:`lanmesh.Peer.broadcast`."""
        return await _finish(_native.aio_broadcast(self._native, self._running_loop(), data))

    async def request(self, to: str, data: Any, timeout: float = 5.0) -> Any:
        """See :meth:`lanmesh.Peer.request`."""
        loop = self._running_loop()
        return await _finish(_native.aio_request(self._native, loop, to, data, timeout))

    async def send_file(
        self,
        to: str,
        path: Union[str, "os.PathLike[str]"],
        progress: Optional[Callable[[int, int], Any]] = None,
    ) -> int:
        """See :meth:`lanmesh.Peer.send_file`; ``progress`` is called on the event loop."""
        loop = self._running_loop()
        return await _finish(_native.aio_send_file(self._native, loop, to, os.fspath(path), progress))

    async def send_json(self, to: str, value: Any) -> int:
        """See :meth:`lanmesh.Peer.send_json`."""
        import json

        from . import JSON_MARK

        return await self.send(to, JSON_MARK + json.dumps(value, separators=(",", ":"), ensure_ascii=False))

    # -- receiving -----------------------------------------------------------------------

    async def recv(self, timeout: Optional[float] = None) -> Optional[Message]:
        """See :meth:`lanmesh.Peer.recv`: the next message, ``None`` after ``timeout``."""
        if self._stash:
            return self._stash.popleft()
        loop = self._running_loop()
        return await _finish(_native.aio_recv(self._native, loop, timeout, self._stash.append))

    def get(self, n: Union[int, str]) -> Optional[List[Message]]:
        """See :meth:`lanmesh.Peer.get` (it never waits)."""
        taken: List[Message] = []
        if n == "all":
            taken.extend(self._stash)
            self._stash.clear()
        else:
            while self._stash and isinstance(n, int) and len(taken) < n:
                taken.append(self._stash.popleft())
        rest = None
        if n == "all" or (isinstance(n, int) and len(taken) < n):
            rest = self._native.get(n if n == "all" else n - len(taken))
        if rest:
            taken.extend(rest)
        elif not isinstance(n, int) and n != "all":
            self._native.get(n)  # raises the ValueError that names the bad count
        return taken or None

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        try:
            msg = await self.recv()
        except Disconnected:
            raise StopAsyncIteration from None
        assert msg is not None
        return msg

    # -- the rest, as for the blocking peer ----------------------------------------------

    @property
    def name(self) -> str:
        """This peer's name."""
        return self._name

    def peers(self) -> List[str]:
        """See :meth:`lanmesh.Peer.peers`."""
        return self._native.peers()

    def is_direct(self, name: str) -> bool:
        """See :meth:`lanmesh.Peer.is_direct`."""
        return self._native.is_direct(name)

    @property
    def status(self) -> Status:
        """See :attr:`lanmesh.Peer.status`."""
        return self._native.status

    @property
    def pending(self) -> int:
        """Messages waiting to be taken."""
        return self._native.pending + len(self._stash)

    @property
    def closed(self) -> bool:
        """Whether the connection is closed for good."""
        return self._native.closed

    def pause(self) -> None:
        """See :meth:`lanmesh.Peer.pause`."""
        self._native.pause()

    def resume(self) -> None:
        """See :meth:`lanmesh.Peer.resume`."""
        self._native.resume()

    def terminate(self) -> None:
        """See :meth:`lanmesh.Peer.terminate`."""
        self._native.terminate()

    async def close(self) -> List[Undelivered]:
        """See :meth:`lanmesh.Peer.close`: leaves gracefully and returns the undelivered
        sends."""
        report = await _finish(_native.aio_close(self._native, self._running_loop()))
        return report

    async def wait(self, timeout: Optional[float] = None) -> bool:
        """See :meth:`lanmesh.Peer.wait`."""
        return await _finish(_native.aio_wait(self._native, self._running_loop(), timeout))

    # -- callbacks -----------------------------------------------------------------------

    def respond(self, handler: Optional[Callable[[Message], Any]]) -> Optional[Callable[[Message], Any]]:
        """See :meth:`lanmesh.Peer.respond`; ``handler`` may be a coroutine function."""
        if handler is not None and not callable(handler):
            raise TypeError(f"respond() takes a callable or None, not {type(handler).__name__}")
        self.__dict__["_responder"] = handler
        self._refollow()
        if self.__dict__.get("_connected"):
            self._native._respond(handler is not None)
        return handler

    def _refollow(self) -> None:
        if not self.__dict__.get("_connected"):
            return
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
        self._native._follow(self._post, messages=wanted[0], membership=wanted[1], status=wanted[2])

    def _post(self, kind: str, arg: Any) -> None:
        """Runs on the callback thread: runs the event's callback on the event loop and
        waits for it, so callbacks keep their order and the inbox its backpressure."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            done = asyncio.run_coroutine_threadsafe(self._handle(kind, arg), loop)
        except RuntimeError:
            return  # the loop closed meanwhile
        while True:
            try:
                done.result(timeout=1.0)
                return
            except concurrent.futures.TimeoutError:
                if loop.is_closed() or not loop.is_running():
                    done.cancel()
                    return
            except BaseException as e:  # noqa: B902 - _handle reports its own
                _report(e, self._post)
                return

    async def _handle(self, kind: str, arg: Any) -> None:
        if kind == "request":
            await self._answer(arg)
            return
        callback = getattr(self, "on_" + kind, None)
        if callback is None:
            return
        try:
            result = callback() if kind == "join" else callback(arg)
            if inspect.isawaitable(result):
                await result
        except BaseException as e:  # noqa: B902
            _report(e, callback)

    async def _answer(self, request: Message) -> None:
        handler = self.__dict__.get("_responder")
        value = None
        if handler is not None:
            try:
                value = handler(request)
                if inspect.isawaitable(value):
                    value = await value
            except BaseException as e:  # noqa: B902
                _report(e, handler)
                value = None
        try:
            if value is None:
                await _finish(_native.aio_decline(self._native, asyncio.get_running_loop(), request))
            else:
                await _finish(_native.aio_reply(self._native, asyncio.get_running_loop(), request, value))
        except BaseException as e:  # noqa: B902
            _report(e, handler if handler is not None else self._answer)

    def _shutdown(self, timeout: float) -> None:
        """At interpreter exit (see lanmesh._close_everything)."""
        self._native._shutdown(timeout)

    def __repr__(self) -> str:
        if not self.__dict__.get("_connected"):
            return f"<lanmesh.aio.Peer {self._name!r} (not connected)>"
        return f"<lanmesh.aio.Peer {self._name!r} {self._native.status}>"

"""Type stubs of lanmesh._native, the compiled half of lanmesh (use the names that
``lanmesh`` exports: Peer, Router, Message, Status, Undelivered, keygen)."""

import asyncio
import os
from typing import Any, Callable, Iterator, List, Optional, Tuple, Union

__version__: str
JSON_MARK: str

_Path = Union[str, "os.PathLike[str]"]
_Key = Union[bytes, str, "os.PathLike[str]"]
#: What ``send`` and friends take: bytes-likes, ``str``, or a JSON-encodable value.
_Data = Any

class Message:
    """A message received from another peer; also the tuple ``(sender, data, id)``."""

    @property
    def sender(self) -> str:
        """The sender's name (as the router saw it)."""
    @property
    def data(self) -> Any:
        """The payload, of the kind it was sent as: ``bytes``, ``str``, or a JSON value."""
    @property
    def id(self) -> int:
        """The sender's serial number for this message."""
    @property
    def kind(self) -> str:
        """``"bytes"``, ``"text"``, ``"json"`` or ``"file"``."""
    @property
    def is_broadcast(self) -> bool:
        """Whether it was sent to every peer."""
    @property
    def is_request(self) -> bool:
        """Whether it is a request (as ``respond`` handlers see them)."""
    @property
    def file(self) -> Optional[dict]:
        """For the notice of a received file: ``{"file", "bytes", "path"}``."""
    def text(self) -> str:
        """The payload as text (bytes decoded as UTF-8, a JSON value as its JSON)."""
    def json(self) -> Any:
        """The payload as a JSON value (text and bytes parsed)."""
    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...

class Status:
    """Where a peer's connection stands; equal to its ``state`` string."""

    @property
    def state(self) -> str:
        """``"connecting"``, ``"connected"``, ``"reconnecting"`` or ``"closed"``."""
    @property
    def router(self) -> Optional[str]:
        """The router's address, when connected."""
    @property
    def attempt(self) -> Optional[int]:
        """The reconnection attempt under way, when reconnecting."""
    @property
    def reason(self) -> Optional[str]:
        """Why the connection was lost or closed."""

class Undelivered:
    """A message sent with ``send`` that the router could not deliver."""

    @property
    def to(self) -> str:
        """The intended recipient."""
    @property
    def id(self) -> int:
        """The message id ``send`` returned."""
    @property
    def reason(self) -> str:
        """``"unknown peer"``, ``"overloaded"``, ``"too large"``, ..."""

class Peer:
    """The blocking peer; see ``lanmesh.Peer``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None: ...
    def _connect(
        self,
        name: str,
        router: Optional[str] = None,
        *,
        mesh: str = "lanmesh",
        mesh_key: Optional[_Key] = None,
        identity: Optional[_Path] = None,
        ack_timeout: float = 10.0,
        reconnect: bool = True,
        discovery_timeout: float = 3.0,
        interface: Optional[str] = None,
        save_dir: Optional[_Path] = None,
        max_file_size: Optional[int] = None,
        cipher: str = "chacha20poly1305",
        inbox_capacity: int = 65536,
        direct: bool = True,
    ) -> None: ...
    def _adopt(self, router: "Router") -> None: ...
    @property
    def name(self) -> str:
        """This peer's name."""
    def send(self, to: str, data: _Data) -> int:
        """Sends ``data`` to ``to`` at most once; returns the message id."""
    def send_acked(self, to: str, data: _Data, timeout: Optional[float] = None) -> int:
        """Sends and waits until ``to``'s client has the message; returns its id."""
    def broadcast(self, data: _Data) -> int:
        """Sends ``data`` to every other peer; returns the message id."""
    def request(self, to: str, data: _Data, timeout: float = 5.0) -> Any:
        """Sends a request and returns the reply's data."""
    def send_file(
        self, to: str, path: _Path, progress: Optional[Callable[[int, int], Any]] = None
    ) -> int:
        """Streams a file to ``to``; returns its size once ``to`` has all of it."""
    def recv(self, timeout: Optional[float] = None) -> Optional[Message]:
        """The next message; ``None`` when none came within ``timeout`` seconds."""
    def get(self, n: Union[int, str]) -> Optional[List[Message]]:
        """Up to ``n`` waiting messages (``"all"``: every one); ``None`` when none."""
    def __iter__(self) -> Iterator[Message]: ...
    def __next__(self) -> Message: ...
    def is_direct(self, name: str) -> bool:
        """Whether messages to ``name`` go over a direct link now (else through the router)."""
    def peers(self) -> List[str]:
        """The names in the mesh, this peer included, sorted."""
    @property
    def pending(self) -> int:
        """Messages waiting to be taken."""
    @property
    def status(self) -> Status:
        """Where the connection stands."""
    @property
    def closed(self) -> bool:
        """Whether the connection is closed for good."""
    def pause(self) -> None:
        """Stops taking messages from the router (they wait there)."""
    def resume(self) -> None:
        """Takes messages again after ``pause()``."""
    def terminate(self) -> None:
        """Drops the connection at once."""
    def close(self, timeout: Optional[float] = None) -> List[Undelivered]:
        """Leaves gracefully; returns the sends that could not be delivered."""
    def wait(self, timeout: Optional[float] = None) -> bool:
        """Blocks until the peer is closed; returns whether it is."""
    def _follow(self, handler: Callable[[str, Any], None], *, messages: bool, membership: bool, status: bool) -> None: ...
    def _respond(self, on: bool) -> None: ...
    def _reply(self, request: Message, value: _Data) -> int: ...
    def _decline(self, request: Message) -> None: ...
    def _shutdown(self, timeout: float) -> None: ...
    def __enter__(self) -> "Peer": ...
    def __exit__(self, *exc: Any) -> bool: ...

class Router:
    """A router in this process; see ``lanmesh.Router``."""

    def __init__(
        self,
        listen: Union[str, List[str], Tuple[str, ...], None] = None,
        *,
        name: Optional[str] = None,
        mesh: str = "lanmesh",
        mesh_key: Optional[_Key] = None,
        http: Optional[str] = None,
        mdns: bool = True,
        state_dir: Optional[_Path] = None,
        grace: float = 30.0,
        interface: Optional[str] = None,
    ) -> None: ...
    @property
    def address(self) -> Optional[str]:
        """The first TCP address, ``"host:port"``."""
    @property
    def addresses(self) -> List[str]:
        """Every TCP address."""
    @property
    def http_addresses(self) -> List[str]:
        """The gateway's HTTP addresses, when ``http`` was given."""
    @property
    def mesh(self) -> str:
        """The mesh it serves."""
    @property
    def name(self) -> Optional[str]:
        """The name of the router's own peer, if any."""
    @property
    def running(self) -> bool:
        """Whether it is running."""
    def peers(self) -> List[str]:
        """The names in the mesh, sorted."""
    def stop(self) -> None:
        """Stops the router; safe to call twice."""
    def __enter__(self) -> "Router": ...
    def __exit__(self, *exc: Any) -> bool: ...

def keygen() -> str:
    """A new random mesh key: 64 hex digits, as ``lanmesh keygen`` prints."""

def report(error: BaseException, callback: Any) -> None: ...
def _finalizing() -> None: ...

_Step = Tuple[bool, Any]

def aio_connect(peer: Peer, event_loop: asyncio.AbstractEventLoop, name: str, router: Optional[str] = None, **kwargs: Any) -> _Step: ...
def aio_send(peer: Peer, event_loop: asyncio.AbstractEventLoop, to: str, data: _Data) -> _Step: ...
def aio_broadcast(peer: Peer, event_loop: asyncio.AbstractEventLoop, data: _Data) -> _Step: ...
def aio_send_acked(peer: Peer, event_loop: asyncio.AbstractEventLoop, to: str, data: _Data, timeout: Optional[float] = None) -> _Step: ...
def aio_request(peer: Peer, event_loop: asyncio.AbstractEventLoop, to: str, data: _Data, timeout: float = 5.0) -> _Step: ...
def aio_recv(peer: Peer, event_loop: asyncio.AbstractEventLoop, timeout: Optional[float], lost: Callable[[Message], None]) -> _Step: ...
def aio_send_file(peer: Peer, event_loop: asyncio.AbstractEventLoop, to: str, path: _Path, progress: Optional[Callable[[int, int], Any]] = None) -> _Step: ...
def aio_close(peer: Peer, event_loop: asyncio.AbstractEventLoop) -> _Step: ...
def aio_wait(peer: Peer, event_loop: asyncio.AbstractEventLoop, timeout: Optional[float] = None) -> _Step: ...
def aio_reply(peer: Peer, event_loop: asyncio.AbstractEventLoop, request: Message, value: _Data) -> _Step: ...
def aio_decline(peer: Peer, event_loop: asyncio.AbstractEventLoop, request: Message) -> _Step: ...

"""The exceptions of lanmesh.

Every error is a :class:`Error`; ``str(error)`` is the one line the ``lanmesh`` command
line prints for the same failure (after ``lanmesh: ``). Errors about a peer carry its
name as ``error.peer``. Where a standard exception fits too, the class has it as a second
base, so ``except TimeoutError`` or ``except ConnectionError`` also work.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "Error",
    "ConnectFailed",
    "NoRouter",
    "HandshakeFailed",
    "MeshKeyRefused",
    "Refused",
    "NameTaken",
    "RouterKeyChanged",
    "UnknownPeer",
    "NoResponder",
    "Timeout",
    "Overloaded",
    "TooLarge",
    "Disconnected",
    "InvalidArgument",
    "FileUnreadable",
    "FileRefused",
    "FileFailed",
    "RouterFailed",
]


class Error(Exception):
    """Base of every lanmesh error."""

    #: The peer the error is about, when there is one.
    peer: Optional[str] = None


class ConnectFailed(Error, ConnectionError):
    """The router's address could not be reached."""


class NoRouter(ConnectFailed):
    """No router of the mesh answered mDNS discovery in time (pass ``router=``)."""


class HandshakeFailed(Error):
    """The handshake with the router failed."""


class MeshKeyRefused(HandshakeFailed):
    """The router closed the connection during the handshake: a wrong or missing mesh
    key (``mesh_key=``)."""


class Refused(Error):
    """The router refused this peer (another mesh, a name it may not use, ...)."""


class NameTaken(Refused):
    """The name belongs to another peer's key."""


class RouterKeyChanged(Error):
    """The router's key is not the one pinned for its mesh."""


class UnknownPeer(Error, LookupError):
    """No peer of that name is in the mesh."""


class NoResponder(Error):
    """The peer answers no requests (it has no ``respond`` handler)."""


class Timeout(Error, TimeoutError):
    """No acknowledgement or reply came in time."""


class Overloaded(Error):
    """The recipient is not keeping up; the message was refused."""


class TooLarge(Error, ValueError):
    """The message is larger than the limit (64 MiB by default; use ``send_file``)."""


class Disconnected(Error, ConnectionError):
    """The connection is closed."""


class InvalidArgument(Error, ValueError):
    """A name or an argument is invalid."""


class FileUnreadable(Error, OSError):
    """A file to send could not be read."""


class FileRefused(Error):
    """The recipient refused a file (no ``save_dir``, or too large for it)."""


class FileFailed(Error):
    """A file transfer broke off."""


class RouterFailed(Error):
    """A router could not start (an address in use, say)."""

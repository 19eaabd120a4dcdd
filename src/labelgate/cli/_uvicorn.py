"""The HTTP protocol ``labelgate serve --workers N`` gives uvicorn: its own, with Nagle off.

asyncio turns Nagle's algorithm off (``TCP_NODELAY``) on every connection it accepts from a
TCP socket, but it recognises one by ``socket.proto == IPPROTO_TCP``, and the listening
socket uvicorn binds for its worker processes (``Config.bind_socket``) is made with
``proto`` 0, as are the connections accepted from it. They kept Nagle on: a response
written as headers and body in two sends waited for the client's delayed ACK, and every
request on a multi-worker server took ~44 ms instead of ~2 ms (a single process listens
on sockets asyncio made itself, with the protocol set). This protocol sets the option
itself when a connection opens.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

try:  # what uvicorn's "auto" picks: httptools when installed, else h11
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Protocol
except ImportError:
    from uvicorn.protocols.http.h11_impl import (  # type: ignore[assignment]
        H11Protocol as _Protocol,
    )

__all__ = ["NoDelayProtocol"]


class NoDelayProtocol(_Protocol):
    """uvicorn's HTTP protocol, with ``TCP_NODELAY`` set on every connection."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):  # not a TCP socket after all: nothing to do
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)

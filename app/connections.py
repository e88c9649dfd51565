"""Connections that never send a whole request head are closed, not held for good.

uvicorn keeps a connection open as long as its client does: one that connects and sends
nothing, or half a request line, holds a socket and its buffers until the client goes away,
and a client that lost its network never says so. Behind nginx or an ingress, the balancer's
own header timeout protects the server; run directly (``make serve``, one container), this
does: a connection gets ``seconds`` to deliver a request's head, counted from when it opened
or from the end of its previous answer, and is closed otherwise. Once the head is in, the
body has :class:`app.limits.BodyReadDeadline`'s limit.

Two parts meet through the ASGI scope's ``server`` and ``client`` addresses, which name one
TCP connection: :func:`timed_protocol` wraps uvicorn's HTTP protocol (through asyncio's
public ``Protocol`` interface only) and starts a connection's timer; :class:`RequestHeadTimer`,
the outermost ASGI middleware, stops it while a request is being served and starts it again
after.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from app.limits import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

#: The open connections of this process still timed, by (server address, client address).
_timed: dict[tuple[Any, Any], TimedConnection] = {}


class TimedConnection(asyncio.Protocol):
    """uvicorn's protocol for one connection (``inner``), and the timer on its next request's head."""

    inner_class: type[asyncio.Protocol]
    seconds: float

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.inner = self.inner_class(*args, **kwargs)
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.key: tuple[Any, Any] | None = None

    def start(self) -> None:
        self.stop()
        if self.transport is not None and not self.transport.is_closing():  # not after the connection is gone
            self.timer = asyncio.get_running_loop().call_later(self.seconds, self._expire)

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expire(self) -> None:
        self.timer = None
        if self.transport is not None and not self.transport.is_closing():
            log.info("closing a connection from %s: no request head within %g s", self.key and self.key[1],
                     self.seconds)
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass
        server, client = transport.get_extra_info("sockname"), transport.get_extra_info("peername")
        if isinstance(server, tuple) and isinstance(client, tuple):  # TCP; requests can find it by address
            self.key = (tuple(server[:2]), tuple(client[:2]))
            _timed[self.key] = self
            self.start()
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop()
        if self.key is not None and _timed.get(self.key) is self:
            del _timed[self.key]
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)  # type: ignore[attr-defined]

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def timed_protocol(http: str | type[asyncio.Protocol], seconds: float) -> type[TimedConnection]:
    """uvicorn's protocol class named by ``http`` ("auto", "httptools", "h11" or a class), timed."""
    if isinstance(http, str):
        from uvicorn.config import HTTP_PROTOCOLS
        from uvicorn.importer import import_from_string

        http = import_from_string(HTTP_PROTOCOLS.get(http, http))
    return type("TimedConnection", (TimedConnection,), {"inner_class": http, "seconds": seconds})


class RequestHeadTimer:
    """Stops a connection's timer while the application serves a request on it; starts it after.

    A no-op for a connection :func:`timed_protocol` does not time (another server, a test client).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server, client = scope.get("server"), scope.get("client")
        conn = _timed.get((tuple(server), tuple(client))) if server and client else None  # none: lifespan
        if conn is None:
            await self.app(scope, receive, send)
            return
        conn.stop()
        try:
            await self.app(scope, receive, send)
        finally:
            conn.start()  # the next request's head must come within the limit too

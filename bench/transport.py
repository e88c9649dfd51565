"""A lean HTTP/1.1 keep-alive transport for :class:`httpx.AsyncClient` (plain ``http://``).

Why not httpx's default transport: httpcore 1.0.x's connection pool rescans every
connection, several times, on every request start and every response end
(``AsyncConnectionPool._assign_requests_to_connections``; the "surplus idle connection"
check even rebuilds a list of all connections for each idle one), so its CPU cost per
request grows with the square of the pool size. An open-loop generator is exactly the
client that holds many connections: against a server answering in 500 ms at 100 req/s
(~50 connections) the stock pool was measured at ~20 ms of CPU per request, so the
generator, not the server, became the bottleneck and fell seconds behind schedule.

This transport keeps the httpx client API (requests, responses, exceptions) but manages
connections itself in O(1): a LIFO stack of idle keep-alive connections, a new
connection whenever none is idle (the load generator caps in-flight requests with its
own semaphore), and HTTP/1.1 framing by :mod:`h11` (already a dependency of httpx).

Limits, by design: ``http://`` only (no TLS, no proxies, no HTTP/2), no per-phase
timeouts (the caller wraps each request in :func:`asyncio.timeout`), no retries. A
connection is dropped after any error or cancellation, or when it sat idle longer than
``keepalive_expiry`` (kept below uvicorn's default 5 s keep-alive, so the client never reuses a
connection the server is closing).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from dataclasses import dataclass

import h11
import httpx

log = logging.getLogger(__name__)

_READ_CHUNK = 65_536


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    h11: h11.Connection
    idle_since: float = 0.0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()

    def usable(self) -> bool:
        return not (self.writer.is_closing() or self.reader.at_eof())


class KeepAliveTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over plain TCP with an O(1) idle-connection stack (see module docstring)."""

    def __init__(self, keepalive_expiry: float = 4.0) -> None:
        self.keepalive_expiry = keepalive_expiry
        self._idle: dict[tuple[str, int], collections.deque[_Connection]] = {}
        self.opened = 0  # connections opened so far (for reports and tests)

    async def _acquire(self, host: str, port: int) -> _Connection:
        stack = self._idle.setdefault((host, port), collections.deque())
        now = time.monotonic()
        while stack:
            conn = stack.pop()
            if conn.usable() and now - conn.idle_since < self.keepalive_expiry:
                return conn
            conn.close()
        reader, writer = await asyncio.open_connection(host, port)
        self.opened += 1
        return _Connection(reader, writer, h11.Connection(our_role=h11.CLIENT))

    def _release(self, key: tuple[str, int], conn: _Connection) -> None:
        if conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE:
            conn.h11.start_next_cycle()
            conn.idle_since = time.monotonic()
            stack = self._idle[key]
            stack.append(conn)
            # LIFO reuse leaves the stalest connections at the bottom: prune them there.
            while stack and conn.idle_since - stack[0].idle_since > self.keepalive_expiry:
                stack.popleft().close()
        else:
            conn.close()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on an idle or new connection; return the fully read response."""
        url = request.url
        if url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"{url.scheme!r} is not supported", request=request)
        host = url.host
        port = url.port or 80
        body = await request.aread()
        try:
            conn = await self._acquire(host, port)
        except OSError as exc:
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}", request=request) from exc
        try:
            status, headers, content, reason = await self._exchange(conn, request, body)
        except BaseException as exc:  # also cancellation: the connection state is unknown
            conn.close()
            if isinstance(exc, h11.RemoteProtocolError):
                raise httpx.RemoteProtocolError(str(exc), request=request) from exc
            if isinstance(exc, OSError):
                raise httpx.ReadError(f"{type(exc).__name__}: {exc}", request=request) from exc
            raise
        self._release((host, port), conn)
        return httpx.Response(
            status,
            headers=headers,
            content=content,
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    @staticmethod
    async def _exchange(
        conn: _Connection, request: httpx.Request, body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, bytes]:
        headers = list(request.headers.raw)
        out = conn.h11.send(
            h11.Request(method=request.method, target=request.url.raw_path, headers=headers)
        )
        if body:
            out += conn.h11.send(h11.Data(data=body))
        out += conn.h11.send(h11.EndOfMessage())
        conn.writer.write(out)
        await conn.writer.drain()
        status, reason = 0, b""
        resp_headers: list[tuple[bytes, bytes]] = []
        parts: list[bytes] = []
        while True:
            event = conn.h11.next_event()
            if event is h11.NEED_DATA:
                conn.h11.receive_data(await conn.reader.read(_READ_CHUNK))
            elif isinstance(event, h11.Response):
                status, reason = event.status_code, event.reason
                resp_headers = list(event.headers)
            elif isinstance(event, h11.Data):
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return status, resp_headers, b"".join(parts), reason
            elif isinstance(event, h11.ConnectionClosed):
                raise h11.RemoteProtocolError("server closed the connection mid-response")
            # h11.InformationalResponse (1xx): keep reading

    async def aclose(self) -> None:
        """Close every idle connection (in-use ones are closed by their own requests)."""
        for stack in self._idle.values():
            while stack:
                stack.pop().close()

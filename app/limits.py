"""Limits on a request's body, enforced before any parsing (pure ASGI middleware).

:class:`BodySizeLimit` caps its size; :class:`BodyReadDeadline` caps the time it may take to arrive.

FastAPI reads and parses a JSON body before a route can look at its size, so an oversized
body would cost its full read and parse. Here a ``Content-Length`` over the cap is refused at
once (one within it goes straight through: the HTTP server delivers exactly the declared
bytes), and a body streamed without one (chunked) is counted as it arrives and refused as
soon as it passes the cap; only then does the application see it (replayed from the buffer).

The 413 goes out at once, but the connection is only closed after the rest of the upload is
read and discarded (up to ``drain_bytes``, for up to ``drain_s``): closing a socket with
unread data in it resets the connection, and a client still sending would lose the 413.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, drain_bytes: int | None = None, drain_s: float = 2.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_bytes = drain_bytes if drain_bytes is not None else max(4 * max_bytes, 4 << 20)
        self.drain_s = drain_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            declared = int(length) if length.isdigit() else None
            drain = declared is not None and declared <= self.drain_bytes
            await self._refuse(send, declared, receive if drain else None)
            return
        if length is not None:  # declared and within the cap: the HTTP server delivers exactly that many bytes
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away before sending it all
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send, None, receive if message.get("more_body", False) else None)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, length: int | None, drain_from: Receive | None) -> None:
        """Send the 413; with ``drain_from``, read the rest of the upload before the response ends."""
        said = f"{length} bytes" if length is not None else "more bytes than that"
        body = json.dumps({"detail": f"request body too large: {said}; the limit is {self.max_bytes}"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        if drain_from is None:
            await send({"type": "http.response.body", "body": body})
            return
        # The whole answer is on its way (its Content-Length is set); the response ends, and the
        # server closes the connection, once the client has finished sending.
        await send({"type": "http.response.body", "body": body, "more_body": True})
        await self._drain(drain_from)
        await send({"type": "http.response.body", "body": b""})

    async def _drain(self, receive: Receive) -> None:
        deadline, read = time.monotonic() + self.drain_s, 0
        while read <= self.drain_bytes:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                message = await asyncio.wait_for(receive(), left)
            except TimeoutError:
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            read += len(message.get("body", b""))


class BodyReadTimeout(Exception):
    """The request's body did not arrive within its deadline (raised from ``receive``)."""


class BodyReadDeadline:
    """A request's body must arrive within ``seconds`` of its headers; 408 and a closed connection otherwise.

    The HTTP server waits for a declared body as long as the connection stays open, so a
    client that stalls mid-upload without closing (a laptop that lost its network) would
    hold a task and a connection for good. Only the body's arrival is timed: once it is
    in, ``receive`` passes straight through (the route watches it for a hang-up).
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.seconds
        body_in = False
        response = "none"  # -> "started" -> "sent"

        async def timed_receive() -> Message:
            nonlocal body_in
            if body_in:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyReadTimeout from None
            body_in = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal response
            if message["type"] == "http.response.start":
                response = "started"
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                response = "sent"
            await send(message)

        try:
            await self.app(scope, timed_receive, watched_send)
        except BodyReadTimeout:
            if response == "started":  # an answer already on its way (a 413 draining the upload): end it
                await send({"type": "http.response.body", "body": b""})
            elif response == "none":
                body = json.dumps({"detail": f"request body not received within {self.seconds:g} s"}).encode()
                await send({"type": "http.response.start", "status": 408,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
                await send({"type": "http.response.body", "body": body})

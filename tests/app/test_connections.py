"""Connections that never send a whole request head are closed after ``READ_TIMEOUT_S``; a
request being served is never cut, however long it takes, and the limit starts again after it."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.__main__ import build_server
from app.main import create_app
from tests.app.conftest import _free_port, tiny_settings, wait_http_ready

LIMIT_S = 0.5


@pytest.fixture(scope="module")
def port(tiny_models: dict[str, Path]) -> Iterator[int]:
    """The app served as ``python -m app`` serves it (:func:`build_server`), with a slow route added."""
    port = _free_port()
    app = create_app(tiny_settings(tiny_models, port=port, read_timeout_s=LIMIT_S, drain_grace_s=0))

    async def slow() -> dict[str, str]:
        await asyncio.sleep(3 * LIMIT_S)
        return {"status": "done"}

    app.add_api_route("/slow", slow, methods=["GET"])
    server = build_server(app.state.server.settings, app)
    thread = threading.Thread(target=server.run, name="timed-uvicorn", daemon=True)
    thread.start()
    try:
        wait_http_ready(f"http://127.0.0.1:{port}", 60, alive=thread.is_alive)
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def closed_after(conn: socket.socket) -> float:
    """Seconds until the server closes ``conn`` (reading and dropping anything it sends)."""
    start = time.monotonic()
    while conn.recv(4096):
        pass
    return time.monotonic() - start


@pytest.mark.parametrize("sent", [b"", b"GET /readyz HTT", b"GET /readyz HTTP/1.1\r\nHost: x\r\n"],
                         ids=["nothing", "half a request line", "headers without their end"])
def test_a_connection_without_a_whole_request_head_is_closed(port: int, sent: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(sent)
        assert LIMIT_S * 0.8 <= closed_after(conn) <= LIMIT_S + 2


def test_a_request_longer_than_the_limit_is_answered_and_the_limit_starts_again_after_it(port: int) -> None:
    request = b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        for _ in range(2):  # the second on the same connection: the limit restarted after the first
            conn.sendall(request)
            reply = b""
            while not reply.endswith(b"}") and (chunk := conn.recv(4096)):
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b'{"status":"done"}'), reply
        # Idle after its answer: closed at the limit, before uvicorn's 5-s keep-alive would.
        assert closed_after(conn) <= LIMIT_S + 2

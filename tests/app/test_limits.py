"""The body's limits. Size: refused before the application sees the body, and the refusal reaches
a client that is still sending (the rest of its upload is read, so the close is clean). Time: a
body that stops arriving is answered 408 and its connection closed, not waited for."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from app.limits import BodyReadDeadline, BodySizeLimit
from tests.app.conftest import wait_http_ready

ROOT = Path(__file__).resolve().parents[2]


class Upload:
    """An ASGI ``receive`` replaying ``chunks``; records what was read and when, against ``sent``."""

    def __init__(self, chunks: list[bytes], sent: list[dict]) -> None:
        self.chunks, self.sent, self.reads = list(chunks), sent, []

    async def __call__(self) -> dict:
        self.reads.append(len(self.sent))  # how many messages had been sent when this read happened
        if not self.chunks:
            return {"type": "http.disconnect"}
        chunk = self.chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}


async def run(middleware: BodySizeLimit, headers: list[tuple[bytes, bytes]], chunks: list[bytes]):
    sent: list[dict] = []
    upload = Upload(chunks, sent)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "headers": headers}
    await middleware(scope, upload, send)
    return sent, upload


async def never_called(scope, receive, send):  # the application behind the cap
    raise AssertionError("the application must not see an oversized body")


def test_a_declared_oversize_is_answered_first_then_the_upload_is_read_to_its_end():
    cap = BodySizeLimit(never_called, max_bytes=100)
    sent, upload = asyncio.run(run(cap, [(b"content-length", b"1000")], [b"x" * 250] * 4))
    assert sent[0]["status"] == 413 and upload.reads[0] >= 2  # start and the whole body went out before any read
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert json.loads(body)["detail"].endswith("the limit is 100")
    assert dict(sent[0]["headers"])[b"content-length"] == str(len(body)).encode()
    assert upload.chunks == [] and sent[-1].get("more_body", False) is False  # drained, then the response ended


def test_a_huge_declared_body_is_refused_without_reading_it():
    cap = BodySizeLimit(never_called, max_bytes=100, drain_bytes=1000)
    sent, upload = asyncio.run(run(cap, [(b"content-length", b"50000000")], [b"x" * 1000] * 5))
    assert sent[0]["status"] == 413 and upload.reads == [] and len(upload.chunks) == 5


def test_a_streamed_oversize_is_refused_when_it_passes_the_cap_and_drained():
    cap = BodySizeLimit(never_called, max_bytes=100)
    sent, upload = asyncio.run(run(cap, [], [b"x" * 60] * 6))
    assert sent[0]["status"] == 413 and upload.chunks == []
    assert upload.reads[:2] == [0, 0]  # two chunks passed the cap before anything was sent
    assert all(n >= 2 for n in upload.reads[2:])  # the rest was read after the whole 413 went out


def test_draining_stops_at_its_byte_budget():
    cap = BodySizeLimit(never_called, max_bytes=100, drain_bytes=300)
    sent, upload = asyncio.run(run(cap, [(b"content-length", b"300")], [b"x" * 100] * 8))
    assert sent[0]["status"] == 413 and 0 < len(upload.chunks) < 8 and sent[-1].get("more_body", False) is False


class StalledUpload:
    """An ASGI ``receive`` giving ``chunks`` and then nothing, ever (a client gone quiet mid-upload)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)

    async def __call__(self) -> dict:
        if not self.chunks:
            await asyncio.Event().wait()
        return {"type": "http.request", "body": self.chunks.pop(0), "more_body": True}


async def call(app, receive) -> list[dict]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    await app({"type": "http", "method": "POST", "headers": []}, receive, send)
    return sent


async def reads_the_body(scope, receive, send):  # an application that reads its body, then answers
    while (await receive()).get("more_body", False):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_a_body_that_stops_arriving_is_answered_408_and_the_connection_closed():
    sent = asyncio.run(asyncio.wait_for(call(BodyReadDeadline(reads_the_body, 0.2), StalledUpload([b'{"te'])), 5))
    assert sent[0]["status"] == 408 and (b"connection", b"close") in sent[0]["headers"]
    assert json.loads(sent[1]["body"]) == {"detail": "request body not received within 0.2 s"}


def test_only_the_bodys_arrival_is_timed():
    """A body in time goes through; later reads (the route watching for a hang-up) wait as long as they must."""

    async def reads_then_waits(scope, receive, send):
        assert (await receive())["body"] == b"{}"
        assert (await receive())["type"] == "http.disconnect"  # after the deadline has passed
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    messages = [{"type": "http.request", "body": b"{}", "more_body": False}, {"type": "http.disconnect"}]

    async def receive() -> dict:
        if len(messages) == 1:
            await asyncio.sleep(0.3)
        return messages.pop(0)

    sent = asyncio.run(call(BodyReadDeadline(reads_then_waits, 0.1), receive))
    assert [m.get("status") for m in sent] == [200, None]


def test_a_413_still_draining_its_upload_at_the_deadline_ends_cleanly():
    """The cap answered first (a streamed oversize) and the upload then stalls: the 413 is ended, nothing raised."""
    app = BodyReadDeadline(BodySizeLimit(never_called, max_bytes=100, drain_s=10), 0.2)
    sent = asyncio.run(asyncio.wait_for(call(app, StalledUpload([b"x" * 150])), 5))
    assert sent[0]["status"] == 413
    assert sent[-1] == {"type": "http.response.body", "body": b""}


def test_a_client_still_uploading_reads_its_413_from_the_real_server(tiny_models, tmp_path):
    """Over TCP: a 1 MB body against a 64 kB cap, sent in full; the reply is the 413, not a reset.
    A client that goes quiet halfway through its body gets a 408 and a closed connection; the
    server answers the next client as before."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXTWORD_")}
    env.update(NEXTWORD_MODELS=f"gru={tiny_models['gru']}", NEXTWORD_PORT=str(port), NEXTWORD_THREADS="1",
               NEXTWORD_MAX_BODY_BYTES=str(64 * 1024), NEXTWORD_LOG_LEVEL="warning", NEXTWORD_DRAIN_GRACE_S="0",
               NEXTWORD_READ_TIMEOUT_S="1")
    with (tmp_path / "server.log").open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http_ready(f"http://127.0.0.1:{port}", 90, alive=lambda: proc.poll() is None)
        body = b'{"text": "' + b"a" * (1 << 20) + b'"}'
        head = (f"POST /v1/complete HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                conn.sendall(head + body)  # a reset while sending raises here
                reply = b""
                while chunk := conn.recv(65536):
                    reply += chunk
            assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
            assert b"the limit is 65536" in reply
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(head.replace(str(len(body)).encode(), b"40") + b'{"text": "Thanks for')
            reply = b""
            while chunk := conn.recv(65536):  # b"" once the server closes it
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        assert b"request body not received within 1 s" in reply
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/complete", json={"text": "Thanks for "}, timeout=10)
        assert answer.status_code == 200
    finally:
        proc.terminate()
        proc.wait(30)

"""A client that hangs up mid-request: its work is dropped, nothing is sent, the server goes on."""

from __future__ import annotations

import asyncio
import json

from tests.app.test_engine import LONG_TEXT, wait_until


def complete_scope(body: bytes) -> dict:
    """The ASGI scope of ``POST /v1/complete`` with a JSON body of ``body``'s length."""
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": "/v1/complete", "raw_path": b"/v1/complete", "query_string": b"",
            "root_path": "", "headers": [(b"content-type", b"application/json"),
                                         (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {}}


async def test_a_client_that_hangs_up_has_its_work_dropped(start_app, make_settings):
    # One token per context read and no cache: the long text needs over a thousand model calls.
    settings = make_settings(prefill_chunk=1, cache_bytes=0, context_pieces=0, batching=False)
    async with start_app(settings) as client:
        app, engine = client.app, client.engine("gru")
        body = json.dumps({"text": LONG_TEXT, "model": "gru"}).encode()
        hang_up = asyncio.Event()
        sent: list[dict] = []
        delivered = False

        async def receive() -> dict:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await hang_up.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = complete_scope(body)
        call = asyncio.create_task(app(scope, receive, send))
        await wait_until(lambda: engine.iterations >= 5)
        hang_up.set()
        await asyncio.wait_for(call, timeout=10)
        await wait_until(lambda: engine.in_flight == 0)
        stopped_at = engine.iterations
        await asyncio.sleep(0.05)
        assert engine.iterations == stopped_at, "no model calls for a request nobody waits for"
        assert stopped_at < 1000, "the request was dropped, not run to completion"
        assert not any(m.get("status") == 200 for m in sent)
        # The server goes on answering.
        r = await client.post("/v1/complete", json={"text": "I think the ", "model": "gru"})
        assert r.status_code == 200
        metrics = (await client.get("/metrics")).text
        assert 'nextword_http_responses_total{backend="gru",code="499"} 1.0' in metrics


async def test_a_body_in_several_messages_is_read_whole(start_app, make_settings):
    async with start_app(make_settings()) as client:
        body = json.dumps({"text": "I think the movie was ", "model": "gru", "k": 2}).encode()
        parts = [body[:7], body[7:20], body[20:]]
        sent: list[dict] = []

        async def receive() -> dict:
            if parts:
                return {"type": "http.request", "body": parts.pop(0), "more_body": bool(parts)}
            await asyncio.sleep(3600)  # the client stays connected
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = complete_scope(body)
        await asyncio.wait_for(client.app(scope, receive, send), timeout=30)
        assert sent[0]["status"] == 200
        answer = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
        assert len(answer["suggestions"]) == 2

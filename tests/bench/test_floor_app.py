"""bench.floor_app: the served app with a constant /v1/complete, everything else as served."""

from __future__ import annotations

import json

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from bench.floor_app import BODY, floor_app
from bench.uvicorn_floor_app import UvicornFloor


@pytest.mark.asyncio
async def test_the_floor_answers_the_constant_body_without_an_engine() -> None:
    app = floor_app(Settings(models="gru=/nonexistent/gru.pt"))  # no lifespan: no model is loaded
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.post("/v1/complete", json={"text": "anything at all", "k": 99})
        health = await client.get("/healthz")
    assert r.status_code == 200 and r.content == BODY
    assert json.loads(BODY)["suggestions"]  # shaped like an answer
    assert health.status_code == 200  # the other routes are the served app's


@pytest.mark.asyncio
async def test_the_uvicorn_floor_answers_before_the_app_and_hands_it_the_rest() -> None:
    app = UvicornFloor(create_app(Settings(models="gru=/nonexistent/gru.pt", max_body_bytes=1024)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        # Past the app's body cap: only a route the app never sees can answer it with 200.
        r = await client.post("/v1/complete", json={"text": "x" * 2000})
        capped = await client.post("/v1/other", json={"text": "x" * 2000})
        health = await client.get("/healthz")
    assert r.status_code == 200 and r.content == BODY
    assert r.headers["content-length"] == str(len(BODY))
    assert capped.status_code == 413  # the app's middleware, for anything else
    assert health.status_code == 200

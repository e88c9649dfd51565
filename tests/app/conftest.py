"""Fixtures for the serving tests: settings over the tiny models, in-process apps, a live server.

* ``make_settings(**overrides)`` -- :class:`app.config.Settings` pointing at the tiny GRU/LSTM
  artifacts of ``tests/conftest.py`` (no ``.env`` file read, phrase threshold 0, one torch
  thread, a generous deadline and queue-age limit so a busy test machine does not turn answers
  into 504s or 503s).
* ``start_app(settings=None, loader=None, ready=True)`` -- an async context manager: builds a
  fresh app, runs its lifespan, (unless ``ready=False``) waits for ``/readyz`` 200 and yields an
  :class:`AppClient` (an ``httpx.AsyncClient`` on ``ASGITransport`` that also carries the app).
  By default the app's loader hands out the session's already loaded tiny models.
* ``client`` -- a client of ``shared_app``: one app with the default test settings, started once
  per session, for tests that neither count requests nor change settings.
* ``live_server_url`` (session) -- the real app (real loader) served by uvicorn on 127.0.0.1 in a
  thread, for the browser test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from app.config import Settings
from app.engine import InferenceEngine
from app.main import Loader, create_app
from app.state import ServerState
from model.artifact import LanguageModel, load_artifact

READY_TIMEOUT_S = 60.0


def tiny_settings(tiny_models: dict[str, Path], **overrides: Any) -> Settings:
    """Settings for the tiny test models; ``overrides`` win."""
    values: dict[str, Any] = {
        "models": f"gru={tiny_models['gru']},lstm={tiny_models['lstm']}",
        "completion_threshold": 0.0,
        "threads": 1,
        "deadline_ms": 30_000.0,
        "max_queue_wait_ms": 10_000.0,  # admission by queue age is tested on its own, with its own value
        "cors_origins": [],
        "log_level": "warning",
    }
    values.update(overrides)
    # Hermetic: neither a .env file nor NEXTWORD_* variables of the calling shell leak in.
    saved = {key: os.environ.pop(key) for key in list(os.environ) if key.upper().startswith("NEXTWORD_")}
    try:
        return Settings(_env_file=None, **values)
    finally:
        os.environ.update(saved)


@pytest.fixture
def make_settings(tiny_models: dict[str, Path]) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        return tiny_settings(tiny_models, **overrides)

    return make


class AppClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` talking to one in-process app, with handles on that app."""

    def __init__(self, app: FastAPI) -> None:
        super().__init__(transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=60.0)
        self.app = app
        self.lifespan = contextlib.AsyncExitStack()

    async def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        await wait_ready(self, timeout)

    async def shutdown(self) -> None:
        """Run the app's shutdown now (the client keeps working: the app then drains)."""
        await self.lifespan.aclose()

    @property
    def state(self) -> ServerState:
        return self.app.state.server

    def engine(self, name: str = "gru") -> InferenceEngine:
        return self.state.engines[name]


async def wait_ready(client: httpx.AsyncClient, timeout: float = READY_TIMEOUT_S) -> None:
    """Poll ``/readyz`` until 200; fail fast if loading failed."""
    deadline = time.monotonic() + timeout
    while True:
        r = await client.get("/readyz")
        if r.status_code == 200:
            return
        status = r.json().get("status", "")
        if status.startswith("failed"):
            raise AssertionError(f"model loading failed: {status}")
        if time.monotonic() > deadline:
            raise AssertionError(f"app not ready after {timeout} s: {r.status_code} {r.text}")
        await asyncio.sleep(0.02)


@pytest.fixture(scope="session")
def preloaded_loader(tiny_models: dict[str, Path], gru_lm: LanguageModel, lstm_lm: LanguageModel) -> Loader:
    """A loader that hands out the session's already loaded tiny models (saves a load per app).

    Any other path goes through the real :func:`model.artifact.load_artifact`.
    """
    loaded = {(tiny_models["gru"], "gru"): gru_lm, (tiny_models["lstm"], "lstm"): lstm_lm}

    def load(path: Path, name: str) -> LanguageModel:
        lm = loaded.get((Path(path), name))
        return lm if lm is not None else load_artifact(path, name)

    return load


@pytest.fixture
def start_app(make_settings: Callable[..., Settings], preloaded_loader: Loader):
    """Factory: ``async with start_app(settings, loader) as client: ...`` (lifespan runs around it).

    A fresh app per call: its own engines, metrics and cache. ``ready=False`` skips waiting
    for ``/readyz``; ``client.shutdown()`` runs the app's shutdown early.
    """

    @contextlib.asynccontextmanager
    async def start(
        settings: Settings | None = None, loader: Loader | None = None, *, ready: bool = True
    ) -> AsyncIterator[AppClient]:
        app = create_app(settings if settings is not None else make_settings(), loader or preloaded_loader)
        async with AppClient(app) as client, client.lifespan:
            await client.lifespan.enter_async_context(app.router.lifespan_context(app))
            if ready:
                await client.wait_ready()
            yield client

    return start


class _BackgroundLifespan:
    """Runs an app's lifespan on its own event loop in a thread, for apps shared between tests.

    Nothing the app keeps after startup is bound to that loop (each request's future belongs
    to the loop that serves the request), so clients in the tests' own loops can use it.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="shared-app-lifespan", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            try:
                async with self.app.router.lifespan_context(self.app):
                    state: ServerState = self.app.state.server
                    deadline = time.monotonic() + READY_TIMEOUT_S
                    while not state.ready and state.load_error is None and time.monotonic() < deadline:
                        await asyncio.sleep(0.01)
                    self._started.set()
                    await self._stop.wait()
            except BaseException as exc:  # report to the fixture instead of dying silently
                self._error = exc
                self._started.set()

        self._loop.run_until_complete(main())
        self._loop.close()

    def __enter__(self) -> FastAPI:
        self._thread.start()
        self._started.wait(READY_TIMEOUT_S + 5)
        state: ServerState = self.app.state.server
        if self._error is not None or not state.ready:
            self.__exit__()
            raise RuntimeError(f"shared app failed to start: {self._error or state.load_error}")
        return self.app

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=15)


@pytest.fixture(scope="session")
def shared_app(tiny_models: dict[str, Path], preloaded_loader: Loader) -> Iterator[FastAPI]:
    """One app with the default test settings, started once for every test that only reads it.

    Tests that count requests, change settings or stop the app use ``start_app`` instead.
    """
    with _BackgroundLifespan(create_app(tiny_settings(tiny_models), preloaded_loader)) as app:
        yield app


@pytest.fixture
async def client(shared_app: FastAPI) -> AsyncIterator[AppClient]:
    """A client of the shared app (default test settings, both models ready)."""
    async with AppClient(shared_app) as c:
        yield c


# --------------------------------------------------------------------------- live server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_server_url(tiny_models: dict[str, Path]) -> Iterator[str]:
    """The real app (tiny models) served by uvicorn in a background thread."""
    app = create_app(tiny_settings(tiny_models))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="live-uvicorn", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if not thread.is_alive():
                raise RuntimeError("uvicorn exited before the app became ready")
            with contextlib.suppress(httpx.TransportError):
                r = httpx.get(url + "/readyz", timeout=2.0)
                if r.status_code == 200:
                    break
                if r.json().get("status", "").startswith("failed"):
                    raise RuntimeError(f"live server: {r.json()['status']}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"live server not ready after {READY_TIMEOUT_S} s")
            time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def wait_http_ready(url: str, timeout: float = 60.0, alive: Callable[[], bool] | None = None) -> None:
    """Poll ``url``/readyz until it answers 200 (a server in another thread or process)."""
    deadline = time.monotonic() + timeout
    while True:
        assert alive is None or alive(), "the server exited while starting"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        assert time.monotonic() < deadline, f"{url} not ready after {timeout} s"
        time.sleep(0.05)

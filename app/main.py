"""The app factory and its lifespan.

``create_app(settings)`` builds an independent app (own metrics registry, own engines), so
tests build apps with their own settings and models. Models load in the background after
startup: the process answers ``/healthz`` at once and ``/readyz`` turns 200 only when every
configured backend is loaded, warmed up and its engine is running. On shutdown the app
drains: ``/readyz`` says 503, queued work is refused, in-flight work finishes.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from app.config import Settings
from app.connections import RequestHeadTimer
from app.engine import EngineConfig, InferenceEngine
from app.limits import BodyReadDeadline, BodySizeLimit
from app.routers import complete, demo, health, models, observability
from app.scheduler import SchedulerConfig
from app.state import ServerState
from app.young_gc import YoungCollector
from model.artifact import LanguageModel, load_artifact
from model.batching import drive
from model.suggest import DecodeOptions, suggest

log = logging.getLogger("app")

Loader = Callable[[Path, str], LanguageModel]
WARMUP_TEXTS = ("", "Thanks for the update. I will send you the rep", "The movie was ",
                "One of the best films I have seen in years, and")


def engine_config(settings: Settings, backends: int = 1) -> EngineConfig:
    """The engine's and decoder's options, all from the one settings object.

    ``cache_bytes`` bounds the prefix caches of all ``backends`` together, so adding a model
    does not add memory: each backend's engine gets an even share.
    """
    return EngineConfig(
        scheduler=SchedulerConfig(
            batching=settings.batching,
            max_batch=settings.max_batch,
            max_batch_rows=settings.max_batch_rows,
            max_wait_ms=settings.max_wait_ms,
            queue_limit=settings.queue_limit,
            max_queue_wait_ms=settings.max_queue_wait_ms,
        ),
        deadline_ms=settings.deadline_ms,
        cache_bytes=settings.cache_bytes // max(1, backends),
        decode=decode_options(settings),
    )


def decode_options(settings: Settings) -> DecodeOptions:
    return DecodeOptions(
        beam=settings.beam,
        phrase_beam=settings.phrase_beam,
        prefill_chunk=settings.prefill_chunk,
        completion_threshold=settings.completion_threshold,
        context_pieces=settings.context_pieces,
        known_words=settings.known_words,
    )


def warm_up(lm: LanguageModel, options: DecodeOptions) -> None:
    """Run a few requests of different shapes so TorchScript's first-call work happens now."""
    for _ in range(2):
        gens = [suggest(lm, t, 3, 3, None, options) for t in WARMUP_TEXTS]
        drive(lm.module, gens)


async def load_models(state: ServerState, loader: Loader) -> None:
    settings = state.settings
    torch.set_num_threads(settings.threads)
    name = ""
    try:
        paths = settings.model_paths()
        cfg = engine_config(settings, len(paths))
        collector = YoungCollector(settings.gc_interval_ms)  # one for all engines: the heap is the process's
        for name, path in paths.items():
            lm = await asyncio.to_thread(loader, Path(path), name)
            await asyncio.to_thread(warm_up, lm, cfg.decode)
            observer = state.metrics.for_backend(name, settings.stats_window_s)
            engine = InferenceEngine(lm, cfg, observer, collector)
            engine.start()
            state.engines[name], state.observers[name] = engine, observer
            log.info("loaded %s from %s (%s parameters, %s)", name, path, lm.card.get("parameters"), lm.precision)
        name = ""
        if not state.engines:
            raise RuntimeError("no models configured (NEXTWORD_MODELS is empty)")
        # Everything loaded so far lives as long as the server: keep the cyclic GC from
        # rescanning it on every collection (fewer multi-millisecond pauses on the hot path).
        gc.freeze()
        state.ready = True
    except Exception as exc:
        # The probe names the backend and the kind of failure; paths and details stay in the log.
        what = f"backend {name!r} could not be loaded" if name else "no models configured"
        state.load_error = f"{what} ({type(exc).__name__}; see the server log)"
        log.exception("model loading failed")


class _MetricsExporter:
    """prometheus-client's own HTTP server on a separate port, plus a gauge refresher."""

    def __init__(self, state: ServerState, port: int) -> None:
        from prometheus_client import start_http_server

        self.server, self.thread = start_http_server(port, addr=state.settings.host, registry=state.metrics.registry)
        self.stop = threading.Event()
        self.refresher = threading.Thread(target=self._refresh, args=(state,), name="metrics-gauges", daemon=True)
        self.refresher.start()

    def _refresh(self, state: ServerState) -> None:
        while not self.stop.wait(1.0):
            observability.refresh_gauges(state)

    def shutdown(self) -> None:
        self.stop.set()
        self.server.shutdown()


def start_metrics_port(state: ServerState, port: int) -> _MetricsExporter:
    return _MetricsExporter(state, port)


def create_app(settings: Settings | None = None, loader: Loader | None = None) -> FastAPI:
    settings = settings or Settings()
    loader = loader or (lambda path, name: load_artifact(path, name, settings.precision))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state: ServerState = app.state.server
        loading = asyncio.create_task(load_models(state, loader))
        exporter = None
        if settings.metrics_port is not None:
            # Operators scrape a port of their own; the gauges are refreshed each second for it.
            exporter = start_metrics_port(state, settings.metrics_port)
        try:
            yield
        finally:
            state.draining = state.stopped = True
            loading.cancel()
            if exporter is not None:
                exporter.shutdown()
            for engine in state.engines.values():
                await asyncio.to_thread(engine.stop)

    app = FastAPI(
        title="nextword",
        version="0.1.0",
        description="Next-word and phrase autocomplete from GRU and LSTM language models.",
        lifespan=lifespan,
        # Metrics are Prometheus's (/metrics); FastAPI's OpenTelemetry hooks would only cost a
        # provider lookup per request unless an operator turns them on.
        telemetry=None if settings.otel else {"tracing": False, "metrics": False, "logs": False},
    )
    app.state.server = ServerState(settings=settings)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(BodyReadDeadline, seconds=settings.read_timeout_s)  # outside: it times BodySizeLimit's reads too
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["*"])
    app.add_middleware(RequestHeadTimer)  # outermost: a connection's timer stops while any request is served
    for router in (complete.router, models.router, health.router, observability.router, demo.router):
        app.include_router(router)
    if settings.metrics_port is None:
        app.include_router(observability.metrics_router)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI echoes each bad input back whole: a 100,000-character field would come back too.
        errors = [{k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a bug
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    return app

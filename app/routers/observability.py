"""GET /metrics (Prometheus) and GET /v1/stats (exact recent percentiles per backend)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.deps import get_state
from app.state import ServerState

router = APIRouter(tags=["observability"])
metrics_router = APIRouter(tags=["observability"])  # left out when /metrics has a port of its own


def refresh_gauges(state: ServerState) -> None:
    for name, engine in state.engines.items():
        state.observers[name].refresh_gauges(engine)


@metrics_router.get("/metrics", include_in_schema=False)
async def metrics(state: ServerState = Depends(get_state)) -> Response:
    refresh_gauges(state)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/stats")
async def stats(state: ServerState = Depends(get_state)) -> dict:
    backends = {}
    for name, engine in sorted(state.engines.items()):
        snap = state.observers[name].window.snapshot()
        snap.update(
            queue_depth=engine.queue_depth,
            in_flight=engine.in_flight,
            max_batch_seen=engine.max_batch_seen,
            cache_hits=engine.cache.hits,
            cache_misses=engine.cache.misses,
            cache_entries=len(engine.cache),
        )
        backends[name] = snap
    return {"backends": backends, "window_seconds": state.settings.stats_window_s}

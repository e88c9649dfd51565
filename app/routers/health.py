"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from app.deps import get_state
from app.state import ServerState

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(state: ServerState = Depends(get_state)) -> JSONResponse:
    """The process is alive: 200, unless a backend's worker died (503, so an orchestrator restarts it)."""
    dead = sorted(name for name, engine in state.engines.items() if engine.dead is not None)
    if dead:
        return JSONResponse({"status": "dead", "backends": dead}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/readyz")
async def readyz(state: ServerState = Depends(get_state)) -> JSONResponse:
    """200 once every configured model is loaded and its engine runs; 503 while loading or draining."""
    engines_ok = bool(state.engines) and all(e.running for e in state.engines.values())
    if state.ready and not state.draining and engines_ok:
        return JSONResponse({"status": "ready", "models": sorted(state.engines)})
    dead = sorted(name for name, engine in state.engines.items() if engine.dead is not None)
    if dead:
        status = "failed: backend down: " + ", ".join(dead)
    elif state.load_error:
        status = f"failed: {state.load_error}"
    else:
        status = "draining" if state.draining else "loading"
    return JSONResponse({"status": status}, status_code=503, headers={"Retry-After": "1"})

"""POST /v1/complete: the autocomplete endpoint (HTTP in, engine call, HTTP out)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse

from app.deps import get_state, require_api_key
from app.engine import DeadlineExceeded, EngineDead, EngineResult, EngineStopped, ModelFault, Overloaded
from app.schemas import CompleteRequest, CompleteResponse, ErrorResponse
from app.state import ServerState

router = APIRouter(prefix="/v1", tags=["complete"], dependencies=[Depends(require_api_key)])
BACKSTOP_MARGIN_S = 1.0

ERRORS = {
    401: {"model": ErrorResponse, "description": "An API key is required (NEXTWORD_API_KEYS is set)"},
    404: {"model": ErrorResponse, "description": "Unknown or not loaded model"},
    413: {"model": ErrorResponse, "description": "Text longer than the configured limit"},
    500: {"model": ErrorResponse, "description": "The model failed on this request (an error id to quote)"},
    503: {"model": ErrorResponse, "description": "Overloaded, loading, draining or backend down; see Retry-After"},
    504: {"model": ErrorResponse, "description": "The request's deadline passed"},
}


async def _await_unless_disconnected(request: Request, future: asyncio.Future[EngineResult]) -> EngineResult | None:
    """The engine's answer, or None if the client hung up first (its work is then dropped)."""

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        done, _ = await asyncio.wait({future, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if future in done:
        return future.result()
    return None


SESSION_HEADER = "X-Session-Id"


@router.post("/complete", response_model=CompleteResponse, responses=ERRORS)
async def complete(
    body: CompleteRequest,
    request: Request,
    state: ServerState = Depends(get_state),
    session: str | None = Header(
        None, alias=SESSION_HEADER, min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$",
        description="the client's session (one per editor tab); the prefix cache is private to it, and a request"
        " without one uses no cache",
    ),
):
    name = body.model or state.default_model
    backend = name if name in state.model_names else "unknown"  # bounded label values
    try:
        response = await _complete(body, request, state, session, name)
    except HTTPException as exc:
        state.metrics.responses.labels(backend, str(exc.status_code)).inc()
        raise
    state.metrics.responses.labels(backend, "200").inc()
    return response


async def _complete(body: CompleteRequest, request: Request, state: ServerState, session: str | None,
                    name: str) -> JSONResponse:
    settings = state.settings
    if len(body.text) > settings.max_text_chars:
        raise HTTPException(413, f"text is {len(body.text)} characters; the limit is {settings.max_text_chars}")
    if name not in state.model_names:
        available = ", ".join(state.model_names) or "none"
        shown = name if len(name) <= 64 else name[:64] + "..."
        raise HTTPException(404, f"unknown model {shown!r}; available: {available}")
    if not state.ready or state.stopped:
        why = "shutting down" if state.stopped else "models are loading"
        raise HTTPException(503, f"not ready: {why}", headers={"Retry-After": "1"})
    engine = state.engines[name]
    try:
        req = engine.submit(body.text, body.k, body.max_words, session)
    except Overloaded as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": str(max(1, round(exc.retry_after)))}) from exc
    except (EngineStopped, EngineDead) as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from exc
    try:
        # The backstop: whatever happens to the engine, this request waits no longer than its deadline + 1 s.
        answer = await asyncio.wait_for(_await_unless_disconnected(request, req.future),
                                        settings.deadline_ms / 1000 + BACKSTOP_MARGIN_S)
    except (DeadlineExceeded, TimeoutError) as exc:
        raise HTTPException(504, f"deadline passed ({settings.deadline_ms:.0f} ms)") from exc
    except (EngineStopped, EngineDead) as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from exc
    except ModelFault as exc:
        raise HTTPException(500, str(exc)) from exc
    finally:
        req.cancel()  # harmless once finished; drops queued work if we are leaving early
    if answer is None:  # client went away: nobody reads this response
        raise HTTPException(499, "client closed request")
    return _encode(name, answer)


def _encode(name: str, answer: EngineResult) -> JSONResponse:
    """The response body, serialised once.

    The body is exactly :class:`CompleteResponse` (``tests/app/test_api.py`` validates every
    answer against that schema), built as plain data: returning a ``Response`` skips
    FastAPI's second pass, which would re-validate the model against ``response_model`` and
    serialise it again on every request of the hot path.
    """
    result, timing = answer.result, answer.timing
    completion = {"text": result.completion[0], "confidence": result.completion[1]} if result.completion else None
    body = {
        "model": name,
        "fragment": result.fragment,
        "suggestions": [{"word": w, "prob": p} for w, p in result.suggestions],
        "completion": completion,
        "timing_ms": {
            "queue": round(timing.queue_ms, 3),
            "compute": round(timing.compute_ms, 3),
            "total": round(timing.total_ms, 3),
        },
        "cache_hit": result.cache_hit,
        "typed_word_prob": result.typed_word_prob,
    }
    return JSONResponse(body)

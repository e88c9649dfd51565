"""POST /v1/complete: the autocomplete endpoint (HTTP in, engine call, HTTP out).

The hot path of the service, so it parses its own request: the body is read as JSON and
validated by :class:`CompleteRequest`, and the two headers are read by hand, instead of
FastAPI's per-request dependency solving (see ``docs/http_path.md`` for what that cost). The
contract is unchanged and still documented from the same models: the OpenAPI operation
declares the body, the header and every error, and a bad body or header gets the same 422 as
any FastAPI route.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from pydantic_core import to_json
from starlette.requests import ClientDisconnect

from app.deps import check_api_key
from app.engine import DeadlineExceeded, EngineDead, EngineResult, EngineStopped, ModelFault, Overloaded
from app.schemas import CompleteRequest, CompleteResponse, ErrorResponse, ValidationErrorResponse
from app.state import ServerState


class DirectRoute(APIRoute):
    """An APIRoute whose endpoint takes the ``Request`` and builds its ``Response`` itself.

    FastAPI documents the operation as usual (``response_model``, ``responses``,
    ``openapi_extra``), but each request goes straight to the endpoint: no dependency solving,
    no parameter introspection and no response re-validation on the hot path.
    """

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        return self.endpoint


router = APIRouter(prefix="/v1", tags=["complete"], route_class=DirectRoute)
BACKSTOP_MARGIN_S = 1.0
#: A request still unanswered after this long has its connection watched for a hang-up.
WATCH_AFTER_S = 0.02

SESSION_HEADER = "X-Session-Id"
SESSION_MAX = 128
_SESSION_PATTERN = r"^[\x21-\x7e]+$"
_SESSION_RE = re.compile(_SESSION_PATTERN)

ERRORS = {
    401: {"model": ErrorResponse, "description": "An API key is required (NEXTWORD_API_KEYS is set)"},
    404: {"model": ErrorResponse, "description": "Unknown or not loaded model"},
    408: {"model": ErrorResponse, "description": "The body did not arrive within NEXTWORD_READ_TIMEOUT_S of the head"},
    413: {"model": ErrorResponse, "description": "Text longer than the configured limit"},
    422: {"model": ValidationErrorResponse, "description": "The body or the session header is malformed"},
    500: {"model": ErrorResponse, "description": "The model failed on this request (an error id to quote)"},
    503: {"model": ErrorResponse, "description": "Overloaded, loading, draining or backend down; see Retry-After"},
    504: {"model": ErrorResponse, "description": "The request's deadline passed"},
}

#: The parts of the operation FastAPI would derive from typed parameters, stated once here.
OPENAPI = {
    "parameters": [{
        "name": SESSION_HEADER, "in": "header", "required": False,
        "description": "the client's session (one per editor tab); the prefix cache is private to it, and a"
                       " request without one uses no cache",
        "schema": {"type": "string", "minLength": 1, "maxLength": SESSION_MAX, "pattern": _SESSION_PATTERN},
    }],
    "requestBody": {"required": True, "content": {"application/json": {"schema": CompleteRequest.model_json_schema()}}},
}


def parse_body(raw: bytes) -> CompleteRequest:
    """The request body, validated as FastAPI would (JSON, then the model); a 422 in its format otherwise.

    The stdlib's JSON reader, not pydantic-core's: it keeps a lone surrogate, which the model
    then refuses with a message that says so.
    """
    try:
        data = json.loads(raw)
    except ValueError as exc:
        where = getattr(exc, "pos", 0)
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body", where),
                                       "msg": f"JSON decode error: {getattr(exc, 'msg', exc)}"}]) from None
    try:
        return CompleteRequest.model_validate(data)
    except ValidationError as exc:
        # The app's 422 handler keeps type, loc and msg of each (the input is not echoed).
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def parse_session(value: str | None) -> str | None:
    """The ``X-Session-Id`` header: absent, or 1-128 printable ASCII characters without spaces (422 otherwise)."""
    if value is None or (len(value) <= SESSION_MAX and _SESSION_RE.match(value)):
        return value
    raise RequestValidationError([{"type": "string_pattern_mismatch", "loc": ("header", SESSION_HEADER),
                                   "msg": f"must be 1-{SESSION_MAX} printable ASCII characters, no spaces"}])


async def read_body(request: Request) -> bytes:
    """The request body: usually one ``http.request`` message, read without Starlette's stream."""
    chunks: list[bytes] = []
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _await_answer(request: Request, future: asyncio.Future[EngineResult], backstop_s: float
                        ) -> EngineResult | None:
    """The engine's answer; None if the client hung up first (its work is then dropped).

    Most answers come within milliseconds, so the connection is only watched for a hang-up
    (by a task reading it) once ``WATCH_AFTER_S`` has passed without one, and the backstop
    is a timer: the common path costs two timer handles, not a task and a timeout scope.
    After ``backstop_s`` the wait ends with :class:`TimeoutError`, whatever the engine does.
    """
    loop = asyncio.get_running_loop()
    why: list[str] = []  # what cancelled the future: "hung up" or "backstop"
    watcher: list[asyncio.Task[None]] = []

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        stop("hung up")

    def stop(reason: str) -> None:
        if not future.done():
            why.append(reason)
            future.cancel()

    def start_watching() -> None:
        if not future.done():
            watcher.append(loop.create_task(watch()))

    timers = (loop.call_later(WATCH_AFTER_S, start_watching), loop.call_later(backstop_s, stop, "backstop"))
    try:
        return await future
    except asyncio.CancelledError:
        if why == ["hung up"]:
            return None  # the client went away: nobody reads this response
        if why == ["backstop"]:
            raise TimeoutError from None
        raise  # this task itself was cancelled (shutdown)
    finally:
        for timer in timers:
            timer.cancel()
        for task in watcher:
            task.cancel()


@router.post("/complete", response_model=CompleteResponse, responses=ERRORS, openapi_extra=OPENAPI)
async def complete(request: Request) -> Response:
    state: ServerState = request.app.state.server
    check_api_key(request)
    body = parse_body(await read_body(request))
    session = parse_session(request.headers.get(SESSION_HEADER))
    name = body.model or state.default_model
    backend = name if name in state.model_names else "unknown"  # bounded label values
    try:
        response = await _complete(body, request, state, session, name)
    except HTTPException as exc:
        state.metrics.response(backend, str(exc.status_code))
        raise
    state.metrics.response(backend, "200")
    return response


async def _complete(body: CompleteRequest, request: Request, state: ServerState, session: str | None,
                    name: str) -> Response:
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
        req = engine.submit(body.text, body.k, body.max_words, session, body.subject)
    except Overloaded as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": str(max(1, round(exc.retry_after)))}) from exc
    except (EngineStopped, EngineDead) as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from exc
    try:
        # The backstop: whatever happens to the engine, this request waits no longer than its deadline + 1 s.
        answer = await _await_answer(request, req.future, settings.deadline_ms / 1000 + BACKSTOP_MARGIN_S)
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


def _encode(name: str, answer: EngineResult) -> Response:
    """The response body, serialised once by pydantic-core.

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
        "suggestions": [
            {"word": w, "prob": p, "text": t} for (w, p), t in zip(result.suggestions, result.insertions, strict=True)
        ],
        "completion": completion,
        "timing_ms": {
            "queue": round(timing.queue_ms, 3),
            "compute": round(timing.compute_ms, 3),
            "total": round(timing.total_ms, 3),
        },
        "cache_hit": result.cache_hit,
        "typed_word_prob": result.typed_word_prob,
        "fragment_prob": result.fragment_prob,
        "subject_read": result.subject_read,
    }
    return Response(to_json(body), media_type="application/json")

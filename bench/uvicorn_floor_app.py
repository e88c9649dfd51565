"""uvicorn's floor: ``POST /v1/complete`` answered with a constant body before FastAPI sees it.

    python -m bench.uvicorn_floor_app      # settings from NEXTWORD_*, as python -m app

The same process as ``python -m app`` (uvicorn with the same HTTP implementation and event
loop, the app factory with its lifespan, models loaded, metrics), but the completion route is
answered by a bare ASGI callable in front of the app (no Starlette routing, no middleware, no
FastAPI) and connections are uvicorn's own (no head timer, ``app.connections``). Beside
:mod:`bench.floor_app` (the same constant answer through the whole stack) in one interleaved
``bench.ab`` run, it splits what the stack costs a request into uvicorn's share and the
framework's (``--arm floor=.@bench.floor_app --arm uvicorn=.@bench.uvicorn_floor_app``).
"""

from __future__ import annotations

import logging
from typing import Any

import uvicorn

from app.config import Settings
from app.main import create_app
from bench.floor_app import BODY

HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


class UvicornFloor:
    """An ASGI app that answers ``POST /v1/complete`` itself and hands everything else to ``inner``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/v1/complete":
            while (await receive()).get("more_body", False):  # read the body, as any endpoint must
                pass
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            await send({"type": "http.response.body", "body": BODY})
            return
        await self.inner(scope, receive, send)  # lifespan, /readyz, /metrics: the app's own


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper())
    app = UvicornFloor(create_app(settings))
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level, access_log=False,
                http=settings.http, loop=settings.loop)


if __name__ == "__main__":
    main()

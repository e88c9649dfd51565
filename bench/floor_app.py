"""The HTTP stack's floor: the served app with ``POST /v1/complete`` answering a constant body.

    python -m bench.floor_app          # settings from NEXTWORD_*, as python -m app

Same process as ``python -m app`` (uvicorn with the same options, the app factory, its
middleware, models loaded, metrics), but the endpoint neither validates nor calls an engine:
it returns a fixed body of the usual size. Its server CPU per request under the load
generator (``bench.ab --arm floor=.@bench.floor_app``) is what the stack costs before any of
the endpoint's own work, so the endpoint's overhead above it can be read off.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.routing import Route

from app.__main__ import build_server
from app.config import Settings
from app.main import create_app

#: A typical answer, serialised once.
BODY = (b'{"model":"gru","fragment":"","suggestions":[{"word":"the","prob":0.1,"text":"the"},'
        b'{"word":"a","prob":0.05,"text":"a"},{"word":"it","prob":0.02,"text":"it"}],"completion":null,"timing_ms":{"queue":0.1,"compute":6.0,"total":6.1},'
        b'"cache_hit":false,"typed_word_prob":0.0,"fragment_prob":1.0,"subject_read":false}')


async def constant(request: Request) -> Response:
    await request.body()  # read it, as any endpoint must
    return Response(BODY, media_type="application/json")


def floor_app(settings: Settings) -> FastAPI:
    app = create_app(settings)
    routes = [r for r in app.router.routes if getattr(r, "path", None) != "/v1/complete"]
    app.router.routes = [Route("/v1/complete", constant, methods=["POST"]), *routes]
    return app


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper())
    build_server(settings, floor_app(settings)).run()


if __name__ == "__main__":
    main()

"""``python -m app``: serve the configured models (settings come from NEXTWORD_* only).

SIGTERM drains the way a balancer needs: ``/readyz`` turns 503 "draining" at once while
requests are still answered for ``NEXTWORD_DRAIN_GRACE_S`` (time for the balancer to stop
sending); then uvicorn stops accepting, finishes in-flight requests within
``NEXTWORD_GRACEFUL_TIMEOUT_S``, the engines answer or refuse (503) what is still queued, and
the process exits 0. A second signal, or SIGINT, skips the grace.

``NEXTWORD_RUNNER=granian`` runs the same app factory under granian (a Rust HTTP server)
instead; its SIGTERM finishes in-flight requests and runs the lifespan's shutdown, without
the readiness grace.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import uvicorn
from fastapi import FastAPI

from app.config import Settings
from app.connections import timed_protocol
from app.main import create_app
from app.state import ServerState

log = logging.getLogger("app")


class DrainingServer(uvicorn.Server):
    """uvicorn, with SIGTERM starting a drain (readiness off, grace, then a graceful stop)."""

    def __init__(self, config: uvicorn.Config, state: ServerState, grace_s: float) -> None:
        super().__init__(config)
        self.state = state
        self.grace_s = grace_s
        self._drain_started = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not recorded in _captured_signals: uvicorn would re-raise it after the shutdown and the
        # process would exit 143 instead of 0 after a clean drain.
        if sig == signal.SIGTERM and not self._drain_started and self.grace_s > 0:
            self._drain_started = True
            self.state.draining = True
            log.info("SIGTERM: draining (readiness 503), still answering for %.1f s", self.grace_s)
            timer = threading.Timer(self.grace_s, self._stop)
            timer.daemon = True
            timer.start()
            return
        self.state.draining = True
        self._stop()

    def _stop(self) -> None:
        log.info("stopping: no new connections; finishing in-flight requests")
        self.should_exit = True


def build_server(settings: Settings, app: FastAPI | None = None) -> DrainingServer:
    app = app or create_app(settings)
    # proxy_headers off: a request's client address stays its connection's, which is how the
    # connection timer finds it (app/connections.py); nothing here reads client addresses.
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                            access_log=False, timeout_graceful_shutdown=int(settings.graceful_timeout_s),
                            http=timed_protocol(settings.http, settings.read_timeout_s), loop=settings.loop,
                            proxy_headers=False)
    return DrainingServer(config, app.state.server, settings.drain_grace_s)


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.runner == "granian":
        run_granian(settings)
    else:
        build_server(settings).run()


def run_granian(settings: Settings) -> None:
    """One granian worker serving ``create_app()`` (settings again from NEXTWORD_*)."""
    from granian.constants import Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server import Server

    loop = Loops.uvloop if settings.loop in ("auto", "uvloop") else Loops.asyncio
    Server("app.main:create_app", address=settings.host, port=settings.port, interface=Interfaces.ASGI,
           workers=1, loop=loop, factory=True, log_access=False, log_level=LogLevels(settings.log_level),
           workers_kill_timeout=int(settings.graceful_timeout_s),
           # A request's head within the read limit too (granian times it from its first byte).
           http1_settings=HTTP1Settings(header_read_timeout=max(1, round(settings.read_timeout_s * 1000)))).serve()


if __name__ == "__main__":
    main()

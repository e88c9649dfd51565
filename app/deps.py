"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from fastapi import Request

from app.state import ServerState


def get_state(request: Request) -> ServerState:
    return request.app.state.server

"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from fastapi import Request

from app.state import ServerState


async def get_state(request: Request) -> ServerState:
    # async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a thread
    # hop on every request for what is one attribute read.
    return request.app.state.server

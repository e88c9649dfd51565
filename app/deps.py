"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from app.state import ServerState


async def get_state(request: Request) -> ServerState:
    # async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a thread
    # hop on every request for what is one attribute read.
    return request.app.state.server


def check_api_key(request: Request) -> None:
    """With ``NEXTWORD_API_KEYS`` set, a request must carry ``Authorization: Bearer <key>`` (401 otherwise)."""
    keys = request.app.state.server.settings.api_keys
    if not keys:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not any(hmac.compare_digest(given.strip().encode(), k.encode()) for k in keys):
        raise HTTPException(401, "missing or unknown API key", headers={"WWW-Authenticate": "Bearer"})

"""GET /: the demo page (one static file, no build step, works offline)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

router = APIRouter(include_in_schema=False)
PAGE = Path(__file__).resolve().parent.parent / "static" / "index.html"


@router.get("/")
async def demo_page() -> FileResponse:
    return FileResponse(PAGE, media_type="text/html")

"""GET /v1/models: the loaded backends and their model cards."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.deps import get_state
from app.schemas import ModelInfo, ModelsResponse
from app.state import ServerState

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/models", response_model=ModelsResponse)
async def list_models(state: ServerState = Depends(get_state)) -> ModelsResponse:
    models = [
        ModelInfo(name=name, card=engine.lm.card, precision=engine.lm.precision)
        for name, engine in sorted(state.engines.items())
    ]
    return ModelsResponse(models=models, default=state.default_model)

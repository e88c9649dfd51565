"""GET /v1/models: the loaded backends and their model cards."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends

from app.deps import get_state
from app.schemas import ModelInfo, ModelsResponse
from app.state import ServerState
from model.decoder import BOUNDARY_CALIBRATION_KEY, INSIDE_CALIBRATION_KEY

router = APIRouter(prefix="/v1", tags=["models"])


#: What a model card may tell a client: what the model is, what it learnt from and how it scores.
#: Commands, local paths and training configurations stay in the file.
PUBLIC_CARD_KEYS = ("name", "format_version", "config", "parameters", "vocab_size", "checksum", "evaluation",
                    BOUNDARY_CALIBRATION_KEY, INSIDE_CALIBRATION_KEY, "training_hardware", "lexicon")


def public_card(card: dict) -> dict:
    public = {k: card[k] for k in PUBLIC_CARD_KEYS if k in card}
    public["reads_subject"] = bool(card.get("reads_subject"))  # whether a request's subject is read (or ignored)
    data = card.get("data") or {}
    public["data"] = {"source": Path(str(data.get("source") or "")).name or None,
                      "train": data.get("train"), "valid": data.get("valid")}
    training = card.get("training") or {}
    public["training"] = {k: training.get(k) for k in ("tokens_seen", "steps", "wall_seconds") if k in training}
    lineage = card.get("lineage")
    if lineage:
        public["lineage"] = {k: lineage.get(k) for k in ("base", "data", "tokens", "minutes", "recipe")}
        base = dict(lineage.get("base") or {})
        if base.get("data"):
            base["data"] = Path(str(base["data"])).name
        public["lineage"]["base"] = base
        public["lineage"]["machine"] = {k: (lineage.get("machine") or {}).get(k) for k in ("cpus", "torch")}
    return public


@router.get("/models", response_model=ModelsResponse)
async def list_models(state: ServerState = Depends(get_state)) -> ModelsResponse:
    models = [
        ModelInfo(name=name, card=public_card(engine.lm.card), precision=engine.lm.precision)
        for name, engine in sorted(state.engines.items())
    ]
    return ModelsResponse(models=models, default=state.default_model)

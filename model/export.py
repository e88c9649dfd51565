"""Export a training checkpoint as the server's self-describing TorchScript artifact.

    python -m model.export --checkpoint runs/gru/best.pt --out model/artifacts/gru.pt

The checkpoint is a plain dictionary (weights, model config, tokenizer bytes, training
summary), so this module needs nothing from ``training/``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import torch

from model.artifact import load_artifact, model_from_checkpoint, update_card, write_artifact

log = logging.getLogger("model.export")


def training_summary(ckpt: dict[str, Any]) -> dict[str, Any]:
    """What the card says about how the model was trained."""
    corpus = ckpt.get("corpus_summary", {})
    return {
        "training": {
            "command": ckpt.get("command"),
            "tokens_seen": ckpt.get("tokens_seen"),
            "steps": ckpt.get("step"),
            "wall_seconds": round(float(ckpt.get("wall_seconds", 0.0)), 1),
            "val_loss": ckpt.get("val_loss"),
            "config": ckpt.get("train_config"),
            # Set when the run continued from trained weights: tokens_seen then counts those too,
            # wall_seconds only this run.
            "init_from": ckpt.get("init_from"),
        },
        "data": {
            "source": corpus.get("spec", {}).get("path"),
            "train": corpus.get("train"),
            "valid": corpus.get("valid"),
        },
    }


def export_checkpoint(checkpoint: str | Path, out: str | Path, evaluation: dict | None = None) -> dict:
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model, config = model_from_checkpoint(ckpt)
    extra = training_summary(ckpt)
    if evaluation:
        extra["evaluation"] = evaluation
    card = write_artifact(model, config, ckpt["tokenizer"], out, extra)
    load_artifact(out)  # verify what was written round-trips
    return card


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--checkpoint", help="training checkpoint (e.g. runs/gru/best.pt)")
    parser.add_argument("--out", required=True, help="artifact path (e.g. model/artifacts/gru.pt)")
    parser.add_argument("--evaluation", help="JSON file of evaluation figures to put in the card")
    args = parser.parse_args(argv)
    evaluation = json.loads(Path(args.evaluation).read_text()) if args.evaluation else None
    if args.checkpoint:
        card = export_checkpoint(args.checkpoint, args.out, evaluation)
    elif evaluation is not None:
        card = update_card(args.out, {"evaluation": evaluation})
    else:
        parser.error("give --checkpoint, or --evaluation to update an existing artifact's card")
    size = Path(args.out).stat().st_size
    log.info("wrote %s (%.1f MB, %d parameters)", args.out, size / 1e6, card["parameters"])


if __name__ == "__main__":
    main()

"""Export a training checkpoint as the server's self-describing TorchScript artifact.

    python -m model.export --checkpoint runs/gru/best.pt --out model/artifacts/gru.pt
    python -m model.export --rescript old.pt --out new.pt   # same weights and card, current network code

The checkpoint is a plain dictionary (weights, model config, tokenizer bytes, training
summary), so this module needs nothing from ``training/``. This is the one place that scripts
:mod:`model.network`; the server only loads what it wrote (:mod:`model.artifact`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch

from model.artifact import CARD_FILE, LEXICON_FILE, TOKENIZER_FILE, lexicon_card, load_artifact, sealed, update_card
from model.lexicon import Lexicon
from model.network import ModelConfig, RNNLanguageModel, count_parameters, rebuild_eager

log = logging.getLogger("model.export")


def script_model(model: torch.nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return torch.jit.script(model.eval())


def write_artifact(
    model: RNNLanguageModel, config: ModelConfig, tokenizer_bytes: bytes, path: str | Path,
    card_extra: dict[str, Any] | None = None, lexicon: Lexicon | None = None,
    lexicon_about: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Script ``model`` (serving form included) and save it with its tokenizer, card and lexicon; return the card."""
    model = model.eval()
    card_extra = {k: v for k, v in (card_extra or {}).items() if k != "lexicon"}
    if lexicon is not None:
        card_extra["lexicon"] = lexicon_card(lexicon, **(lexicon_about or {}))
    card = sealed({
        "config": config.to_dict(),
        "vocab_size": config.vocab_size,
        "parameters": count_parameters(model),
        **(card_extra or {}),
    }, tokenizer_bytes, model.state_dict())
    scripted = script_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {TOKENIZER_FILE: tokenizer_bytes, CARD_FILE: json.dumps(card, indent=2, sort_keys=True)}
    if lexicon is not None:
        extra[LEXICON_FILE] = lexicon.to_bytes()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.jit.save(scripted, str(path), _extra_files=extra)
    return card


def model_from_checkpoint(ckpt: dict[str, Any]) -> tuple[RNNLanguageModel, ModelConfig]:
    """Rebuild the eager network from a training checkpoint dictionary."""
    config = ModelConfig(**ckpt["model_config"])
    return rebuild_eager(config, ckpt["model"]), config


def rescript(source: str | Path, out: str | Path) -> dict[str, Any]:
    """Re-export an artifact's verified weights, tokenizer and card with the current network code."""
    lm = load_artifact(source)
    config = ModelConfig(**lm.card["config"])
    extra = {k: v for k, v in lm.card.items() if k not in ("config", "vocab_size", "parameters", "checksum",
                                                           "format_version")}
    # Lineage that names the source file (an adapted model's base) still finds its weights.
    extra["rescripted_from"] = {"sha256": hashlib.sha256(Path(source).read_bytes()).hexdigest(),
                                "checksum": lm.card.get("checksum")}
    about = {k: v for k, v in (lm.card.get("lexicon") or {}).items() if k not in ("words", "sha256")}
    card = write_artifact(rebuild_eager(config, lm.module.state_dict()), config, lm.tokenizer.model_proto, out, extra,
                          lm.lexicon, about)
    load_artifact(out, precision="fp16")  # verify the serving form round-trips
    return card


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
    load_artifact(out, precision="fp16")  # verify what was written round-trips, serving form included
    return card


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--checkpoint", help="training checkpoint (e.g. runs/gru/best.pt)")
    parser.add_argument("--rescript", metavar="ARTIFACT", help="an artifact to re-export with the current network code")
    parser.add_argument("--out", required=True, help="artifact path (e.g. model/artifacts/gru.pt)")
    parser.add_argument("--evaluation", help="JSON file of evaluation figures to put in the card")
    args = parser.parse_args(argv)
    evaluation = json.loads(Path(args.evaluation).read_text()) if args.evaluation else None
    if args.checkpoint:
        card = export_checkpoint(args.checkpoint, args.out, evaluation)
    elif args.rescript:
        card = rescript(args.rescript, args.out)
    elif evaluation is not None:
        card = update_card(args.out, {"evaluation": evaluation})
    else:
        parser.error("give --checkpoint, or --evaluation to update an existing artifact's card")
    size = Path(args.out).stat().st_size
    log.info("wrote %s (%.1f MB, %d parameters)", args.out, size / 1e6, card["parameters"])


if __name__ == "__main__":
    main()

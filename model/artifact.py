"""Self-describing TorchScript artifacts: write them, load and verify them.

One ``.pt`` file per backend carries everything the server needs and nothing of the
training code: the scripted network (``init_state`` / ``prefill`` / ``step``), the
SentencePiece model and a JSON model card, the last two embedded with ``_extra_files``.
The card holds a SHA-256 over the tokenizer bytes and every parameter; loading recomputes
it and refuses a file whose weights or tokenizer do not match their card.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from model.network import ModelConfig, RNNLanguageModel, count_parameters, rebuild_eager
from model.packing import packed
from model.tokenizer import PieceTokenizer

TOKENIZER_FILE = "tokenizer.model"
CARD_FILE = "card.json"
FORMAT_VERSION = 1


class ArtifactError(ValueError):
    """The file is not a valid nextword artifact (missing parts, checksum mismatch)."""


def checksum(tokenizer_bytes: bytes, state_dict: dict[str, Tensor]) -> str:
    """SHA-256 over the tokenizer and the parameters in name order."""
    digest = hashlib.sha256(tokenizer_bytes)
    for name in sorted(state_dict):
        digest.update(name.encode())
        digest.update(state_dict[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def script_model(model: torch.nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return torch.jit.script(model.eval())


def write_artifact(
    model: RNNLanguageModel, config: ModelConfig, tokenizer_bytes: bytes, path: str | Path,
    card_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Script ``model`` and save it with its tokenizer and card; return the card."""
    model = model.eval()
    card: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "vocab_size": config.vocab_size,
        "parameters": count_parameters(model),
        **(card_extra or {}),
        "checksum": checksum(tokenizer_bytes, model.state_dict()),
    }
    scripted = script_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {TOKENIZER_FILE: tokenizer_bytes, CARD_FILE: json.dumps(card, indent=2, sort_keys=True)}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.jit.save(scripted, str(path), _extra_files=extra)
    return card


@dataclass
class LanguageModel:
    """A loaded artifact: scripted network, tokenizer, card and the zero start state."""

    name: str
    module: Any  # torch.jit.ScriptModule with init_state/prefill/step
    tokenizer: PieceTokenizer
    card: dict[str, Any]
    path: Path | None = None
    precision: str = "fp32"  # weights as served: "fp32" (as stored) or "fp16" (packed at load)
    zero_state: Tensor = field(init=False)

    def __post_init__(self) -> None:
        with torch.no_grad():
            self.zero_state = self.module.init_state(1)

    @property
    def eos_id(self) -> int:
        return self.tokenizer.eos_id


def load_artifact(path: str | Path, name: str | None = None, precision: str = "fp32") -> LanguageModel:
    """Load and verify an artifact written by :func:`write_artifact`.

    ``precision="fp16"`` serves the same verified weights packed for fast small-batch CPU
    inference (:mod:`model.packing`); the file itself is always fp32.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such model file")
    extra = {TOKENIZER_FILE: b"", CARD_FILE: b""}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:  # torch raises bare RuntimeErrors for any bad file
        raise ArtifactError(f"{path}: not a TorchScript artifact ({exc})") from exc
    if not extra[TOKENIZER_FILE] or not extra[CARD_FILE]:
        raise ArtifactError(f"{path}: missing embedded {TOKENIZER_FILE} or {CARD_FILE}")
    card = json.loads(extra[CARD_FILE])
    tokenizer_bytes = bytes(extra[TOKENIZER_FILE])
    actual = checksum(tokenizer_bytes, module.state_dict())
    if actual != card.get("checksum"):
        raise ArtifactError(f"{path}: checksum mismatch (card {card.get('checksum')}, file {actual})")
    module.eval()
    tokenizer = PieceTokenizer(tokenizer_bytes)
    if tokenizer.vocab_size != card["vocab_size"]:
        raise ArtifactError(f"{path}: tokenizer has {tokenizer.vocab_size} pieces, card says {card['vocab_size']}")
    if precision != "fp32":
        eager = rebuild_eager(ModelConfig(**card["config"]), module.state_dict())
        module = script_model(packed(eager, precision))
    return LanguageModel(name or card["config"]["cell"], module, tokenizer, card, path, precision)


def update_card(path: str | Path, updates: dict[str, Any]) -> dict[str, Any]:
    """Rewrite an artifact with ``updates`` merged into its card (e.g. evaluation figures)."""
    lm = load_artifact(path)
    card = {**lm.card, **updates}
    extra = {TOKENIZER_FILE: lm.tokenizer.model_proto, CARD_FILE: json.dumps(card, indent=2, sort_keys=True)}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.jit.save(lm.module, str(path), _extra_files=extra)
    return card


def model_from_checkpoint(ckpt: dict[str, Any]) -> tuple[RNNLanguageModel, ModelConfig]:
    """Rebuild the eager network from a training checkpoint dictionary."""
    config = ModelConfig(**ckpt["model_config"])
    return rebuild_eager(config, ckpt["model"]), config

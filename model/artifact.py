"""Self-describing TorchScript artifacts: write them, load and verify them.

One ``.pt`` file per backend carries everything the server needs and nothing of the
training code: the scripted network (``init_state`` / ``prefill`` / ``step``), the
SentencePiece model and a JSON model card, the last two embedded with ``_extra_files``.
The card holds a SHA-256 over the tokenizer bytes, every parameter and the rest of the card
itself (format 2); loading recomputes it and refuses, with a one-line reason, a file that is
truncated, whose weights, tokenizer or card were changed, whose weights are not the shape its
card describes, or that is served under the other cell's name.
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

from model.decoder import PhraseCalibration
from model.network import ModelConfig, RNNLanguageModel, count_parameters, rebuild_eager
from model.packing import packed
from model.tokenizer import PieceTokenizer

TOKENIZER_FILE = "tokenizer.model"
CARD_FILE = "card.json"
FORMAT_VERSION = 2  # 2: the checksum covers the card too (1: tokenizer and weights only)
CELLS = ("gru", "lstm")


class ArtifactError(ValueError):
    """The file is not a valid nextword artifact (missing parts, checksum mismatch)."""


def checksum(tokenizer_bytes: bytes, state_dict: dict[str, Tensor], card: dict[str, Any] | None = None) -> str:
    """SHA-256 over the tokenizer, the parameters in name order and the card (its checksum left out)."""
    digest = hashlib.sha256(tokenizer_bytes)
    for name in sorted(state_dict):
        digest.update(name.encode())
        digest.update(state_dict[name].detach().cpu().contiguous().numpy().tobytes())
    if card is not None:
        body = {k: v for k, v in card.items() if k != "checksum"}
        digest.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()


def sealed(card: dict[str, Any], tokenizer_bytes: bytes, state_dict: dict[str, Tensor]) -> dict[str, Any]:
    """``card`` (format 2) with the checksum over tokenizer, weights and card."""
    card = {**card, "format_version": FORMAT_VERSION}
    card.pop("checksum", None)
    return {**card, "checksum": checksum(tokenizer_bytes, state_dict, card)}


def check_shapes(card: dict[str, Any], state_dict: dict[str, Tensor]) -> None:
    """The weights are the network the card describes (a GRU's gates are 3 x hidden, an LSTM's 4 x)."""
    config = card.get("config") or {}
    cell, hidden = config.get("cell"), config.get("hidden_dim")
    if cell not in CELLS or not isinstance(hidden, int):
        raise ArtifactError(f"card config names no known cell and hidden size ({cell!r}, {hidden!r})")
    gates = {"gru": 3, "lstm": 4}[cell]
    recurrent = [v for k, v in state_dict.items() if "weight_hh" in k]
    if not recurrent:
        raise ArtifactError("no recurrent weights in the file")
    rows, width = recurrent[0].shape
    found = next((c for c in CELLS if rows == {"gru": 3, "lstm": 4}[c] * width), "network of unknown shape")
    if recurrent[0].shape != (gates * hidden, hidden):
        raise ArtifactError(f"card says {cell} with hidden {hidden}, the weights are a {found} "
                            f"({tuple(recurrent[0].shape)})")


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
    phrase_calibration: PhraseCalibration = field(init=False)

    def __post_init__(self) -> None:
        with torch.no_grad():
            self.zero_state = self.module.init_state(1)
        self.phrase_calibration = PhraseCalibration.from_card(self.card)

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
    except Exception as exc:  # torch raises bare RuntimeErrors for any bad file (truncated, not a zip, ...)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(f"{path.name}: not a readable TorchScript artifact ({first_line[:160]})") from exc
    if not extra[TOKENIZER_FILE] or not extra[CARD_FILE]:
        raise ArtifactError(f"{path.name}: missing embedded {TOKENIZER_FILE} or {CARD_FILE}")
    try:
        card = json.loads(extra[CARD_FILE])
        if not isinstance(card, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise ArtifactError(f"{path.name}: malformed card ({str(exc).splitlines()[0][:120]})") from None
    tokenizer_bytes = bytes(extra[TOKENIZER_FILE])
    state_dict = module.state_dict()
    covered = card if int(card.get("format_version") or 1) >= 2 else None
    actual = checksum(tokenizer_bytes, state_dict, covered)
    if actual != card.get("checksum"):
        raise ArtifactError(f"{path.name}: checksum mismatch: weights, tokenizer or card changed since export")
    check_shapes(card, state_dict)
    if name is not None:
        claimed = [c for c in CELLS if c in name.lower().replace("_", "-").split("-")]
        if claimed and claimed[0] != card["config"]["cell"]:
            raise ArtifactError(f"{path.name}: served as {name!r} but it is a {card['config']['cell']} model")
    module.eval()
    tokenizer = PieceTokenizer(tokenizer_bytes)
    if tokenizer.vocab_size != card.get("vocab_size"):
        raise ArtifactError(f"{path.name}: tokenizer has {tokenizer.vocab_size} pieces, card says "
                            f"{card.get('vocab_size')}")
    if precision != "fp32":
        eager = rebuild_eager(ModelConfig(**card["config"]), module.state_dict())
        module = script_model(packed(eager, precision))
    return LanguageModel(name or card["config"]["cell"], module, tokenizer, card, path, precision)


def update_card(path: str | Path, updates: dict[str, Any]) -> dict[str, Any]:
    """Rewrite an artifact with ``updates`` merged into its card (e.g. evaluation figures)."""
    lm = load_artifact(path)
    card = sealed({**lm.card, **updates}, lm.tokenizer.model_proto, lm.module.state_dict())
    extra = {TOKENIZER_FILE: lm.tokenizer.model_proto, CARD_FILE: json.dumps(card, indent=2, sort_keys=True)}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.jit.save(lm.module, str(path), _extra_files=extra)
    return card


def model_from_checkpoint(ckpt: dict[str, Any]) -> tuple[RNNLanguageModel, ModelConfig]:
    """Rebuild the eager network from a training checkpoint dictionary."""
    config = ModelConfig(**ckpt["model_config"])
    return rebuild_eager(config, ckpt["model"]), config

"""Self-describing TorchScript artifacts: write them, load and verify them.

One ``.pt`` file per backend carries everything the server needs and nothing of the
training code: the scripted network (``init_state`` / ``prefill`` / ``step``, and
``pack_fp16`` for its fp16 serving form), the SentencePiece model, a JSON model card and,
optionally, the lexicon of words it may propose (:mod:`model.lexicon`), the last three
embedded with ``_extra_files``. Loading runs the TorchScript as exported: this
module never imports the network's Python source (writing artifacts is :mod:`model.export`).
The card holds a SHA-256 over the tokenizer bytes, every parameter and the rest of the card
itself (format 2); loading recomputes it and refuses, with a one-line reason, a file that is
truncated, whose weights, tokenizer, card or lexicon (the card holds its SHA-256) were
changed, whose weights are not the shape its card describes, or that is served under the
other cell's name.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from model.decoder import PhraseCalibration
from model.lexicon import Lexicon, lexicon_digest
from model.tokenizer import PieceTokenizer

TOKENIZER_FILE = "tokenizer.model"
CARD_FILE = "card.json"
LEXICON_FILE = "lexicon.txt.gz"
# Loaded lexicons by digest: models from one corpus (a GRU and an LSTM) share one set, 13 MB
# for the e-mail models' 156 k words, instead of holding a copy each.
_LEXICONS: weakref.WeakValueDictionary[str, Lexicon] = weakref.WeakValueDictionary()
# 3: the scripted module carries its fp16 serving form (pack_fp16); 2: the checksum covers the
# card too; 1: tokenizer and weights only.
FORMAT_VERSION = 3
CELLS = ("gru", "lstm")
PRECISIONS = ("fp32", "fp16")


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


def sealed(card: dict[str, Any], tokenizer_bytes: bytes, state_dict: dict[str, Tensor],
           version: int = FORMAT_VERSION) -> dict[str, Any]:
    """``card`` (format ``version`` >= 2) with the checksum over tokenizer, weights and card."""
    card = {**card, "format_version": version}
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


@dataclass
class LanguageModel:
    """A loaded artifact: scripted network, tokenizer, card and the zero start state."""

    name: str
    module: Any  # torch.jit.ScriptModule with init_state/prefill/step
    tokenizer: PieceTokenizer
    card: dict[str, Any]
    path: Path | None = None
    precision: str = "fp32"  # weights as served: "fp32" (as stored) or "fp16" (the module's pack_fp16)
    lexicon: Lexicon | None = None  # the words it may propose; None: any string the pieces spell
    zero_state: Tensor = field(init=False)
    phrase_calibration: PhraseCalibration = field(init=False)  # ghost text at a word boundary
    phrase_calibration_inside: PhraseCalibration = field(init=False)  # ghost text that completes a fragment

    def __post_init__(self) -> None:
        with torch.no_grad():
            self.zero_state = self.module.init_state(1)
        self.phrase_calibration = PhraseCalibration.from_card(self.card)
        self.phrase_calibration_inside = PhraseCalibration.from_card(self.card, inside=True)

    @property
    def eos_id(self) -> int:
        return self.tokenizer.eos_id

    @property
    def reads_subject(self) -> bool:
        """Whether it learnt to read an e-mail's subject line before the text (its card says so)."""
        return bool(self.card.get("reads_subject"))


def load_artifact(path: str | Path, name: str | None = None, precision: str = "fp32") -> LanguageModel:
    """Load and verify an artifact written by :func:`model.export.write_artifact`.

    ``precision="fp16"`` serves the same verified weights through the module's own
    ``pack_fp16`` (fbgemm's packed fp16 kernels, fp32 arithmetic); the file is always fp32.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such model file")
    extra = {TOKENIZER_FILE: b"", CARD_FILE: b"", LEXICON_FILE: b""}
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
    lexicon = _verified_lexicon(path.name, card, bytes(extra[LEXICON_FILE]))
    module.eval()
    tokenizer = PieceTokenizer(tokenizer_bytes)
    if tokenizer.vocab_size != card.get("vocab_size"):
        raise ArtifactError(f"{path.name}: tokenizer has {tokenizer.vocab_size} pieces, card says "
                            f"{card.get('vocab_size')}")
    if precision == "fp16":
        if not hasattr(module, "pack_fp16"):
            raise ArtifactError(f"{path.name}: exported without its fp16 serving form; re-export it with "
                                "python -m model.export --rescript (or serve it with precision fp32)")
        module.pack_fp16()
    return LanguageModel(name or card["config"]["cell"], module, tokenizer, card, path, precision, lexicon)


def _verified_lexicon(file_name: str, card: dict[str, Any], data: bytes) -> Lexicon | None:
    """The embedded lexicon, if the card describes one; its bytes must be the ones the card names."""
    described = card.get("lexicon")
    if not described:
        if data:
            raise ArtifactError(f"{file_name}: carries a lexicon its card does not describe")
        return None
    if not data:
        raise ArtifactError(f"{file_name}: its card names a lexicon that is missing")
    digest = lexicon_digest(data)
    if digest != described.get("sha256"):
        raise ArtifactError(f"{file_name}: lexicon changed since export (SHA-256 differs from the card's)")
    lexicon = _LEXICONS.get(digest)
    if lexicon is None:
        try:
            lexicon = Lexicon.from_bytes(data)
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"{file_name}: unreadable lexicon ({exc})") from None
        _LEXICONS[digest] = lexicon
    return lexicon


def lexicon_card(lexicon: Lexicon, **about: Any) -> dict[str, Any]:
    """The card's description of ``lexicon`` (its digest seals the file): size, and ``about`` (sources)."""
    return {**about, "words": len(lexicon), "sha256": lexicon_digest(lexicon.to_bytes())}


def update_card(path: str | Path, updates: dict[str, Any], lexicon: Lexicon | None = None,
                lexicon_about: dict[str, Any] | None = None) -> dict[str, Any]:
    """Rewrite an artifact with ``updates`` merged into its card (e.g. evaluation figures).

    ``lexicon`` replaces the embedded lexicon (described in the card with ``lexicon_about``);
    without it the artifact keeps the one it has.
    """
    lm = load_artifact(path)
    version = FORMAT_VERSION if hasattr(lm.module, "pack_fp16") else 2  # the module is saved as it was
    if lexicon is not None:
        updates = {**updates, "lexicon": lexicon_card(lexicon, **(lexicon_about or {}))}
    else:
        lexicon = lm.lexicon
    card = sealed({**lm.card, **updates}, lm.tokenizer.model_proto, lm.module.state_dict(), version)
    extra = {TOKENIZER_FILE: lm.tokenizer.model_proto, CARD_FILE: json.dumps(card, indent=2, sort_keys=True)}
    if lexicon is not None:
        extra[LEXICON_FILE] = lexicon.to_bytes()
    # Written beside it and renamed: a reader never sees half an artifact, a crash leaves the old one.
    partial = Path(path).with_name(Path(path).name + ".partial")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.jit.save(lm.module, str(partial), _extra_files=extra)
    os.replace(partial, path)
    return card

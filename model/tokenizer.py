"""SentencePiece wrapper plus the per-piece tables the next-word decoder needs.

The decoder reasons about *surface text*: which pieces start a new word (``▁`` prefix),
which only continue a word, which end one. Those facts are computed once per tokenizer
as boolean masks over the vocabulary, so a beam step filters 8k pieces with one tensor op.
"""

from __future__ import annotations

import bisect
from functools import lru_cache

import numpy as np
import sentencepiece as spm
import torch

from model.text import WORD_CHARS

SPACE = "\u2581"  # SentencePiece's visible space
#: Contexts up to this long are cached by :meth:`PieceTokenizer.encode`; a served context is at most
#: 3,072 characters with the default 128-piece window and 16-character pieces (``model.suggest.text_tail``).
ENCODE_CACHE_CHARS = 4096


class PieceTokenizer:
    """Encode/decode text and expose word-structure masks over the piece vocabulary."""

    def __init__(self, model_proto: bytes) -> None:
        self.model_proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        self.vocab_size = self.sp.get_piece_size()
        self.eos_id = self.sp.eos_id()
        surfaces: list[str] = []
        word_start = torch.zeros(self.vocab_size, dtype=torch.bool)
        continuation = torch.zeros(self.vocab_size, dtype=torch.bool)
        for i in range(self.vocab_size):
            special = self.sp.is_control(i) or self.sp.is_unknown(i) or self.sp.is_byte(i)
            text = "" if special else self.sp.id_to_piece(i).replace(SPACE, " ")
            surfaces.append(text)
            if not text:
                continue
            body = text[1:] if text.startswith(" ") else text
            if not all(ch in WORD_CHARS for ch in body):
                continue
            if text.startswith(" "):
                word_start[i] = True  # " movie", or the lone " " before a split word
            else:
                continuation[i] = True  # "ing", "'s", "7"
        #: Surface text of each piece ("" for control/byte pieces).
        self.surfaces = surfaces
        self.max_piece_chars = max(map(len, surfaces))  # the most text one piece spans (model.suggest.text_tail)
        #: Pieces that begin a new word: leading space, then word characters only.
        self.word_start = word_start
        #: Pieces that can only continue the current word.
        self.continuation = continuation
        #: The same two facts as Python lists, for filtering a few ids without a tensor op.
        self.starts_word: list[bool] = word_start.tolist()
        self.continues_word: list[bool] = continuation.tolist()
        #: Pieces after which the current word is over (anything not continuing it).
        self.boundary = ~continuation
        #: ``boundary`` as 0/1 weights: P(word ends) for many rows is one matrix-vector product.
        self.boundary_weights = self.boundary.to(torch.float32)
        self.boundary_weights_np = self.boundary_weights.numpy()
        #: Ids of the pieces that continue a word, ascending.
        self.continuation_ids = continuation.nonzero().flatten().numpy()
        #: Ids of the pieces whose text starts with a space, ascending: all that may follow a typed space.
        self.space_led_ids = np.array([i for i, s in enumerate(surfaces) if s.startswith(" ")], dtype=np.int64)
        #: How many characters of a word each piece types (its surface without the leading space).
        self.word_chars = torch.tensor([len(s.lstrip(" ")) for s in surfaces]).numpy()
        #: Pieces with visible text (not control or byte pieces): what a phrase may contain.
        self.printable = torch.tensor([bool(s) for s in surfaces])
        #: Pieces that end a sentence (contain . ! or ?): a phrase stops after one.
        self.sentence_end = torch.tensor([any(c in ".!?" for c in s) for s in surfaces])
        order = sorted(range(self.vocab_size), key=lambda i: surfaces[i])
        self._sorted_ids = order
        self._sorted_surfaces = [surfaces[i] for i in order]

    # ------------------------------------------------------------------ text
    def encode(self, text: str) -> list[int]:
        if len(text) > ENCODE_CACHE_CHARS:  # only a server reading whole texts (CONTEXT_PIECES=0) sends these
            return list(self.sp.encode(text))
        return list(self._encode_cached(text)) if text else []

    # While typing, one context is encoded for many keystrokes. 256 contexts of at most
    # ENCODE_CACHE_CHARS characters (and their ids) bound it to ~8 MB per model.
    @lru_cache(maxsize=256)  # noqa: B019
    def _encode_cached(self, text: str) -> tuple[int, ...]:
        return tuple(self.sp.encode(text))

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode(ids)

    # ------------------------------------------------------------------ masks
    # One tokenizer per artifact, living as long as it: 256 masks of vocabulary bytes (2 MB at 8k
    # pieces). Small on purpose: the short fragments that recur stay in it, and a long-tail
    # fragment's mask costs tens of microseconds to rebuild, less than the memory it would hold.
    @lru_cache(maxsize=256)  # noqa: B019
    def consistent_with(self, needed: str) -> torch.Tensor:
        """Mask of pieces whose surface agrees with the ``needed`` text that must come next.

        A piece agrees if it starts with all of ``needed`` (``" movie"`` for ``" mo"``) or is
        a prefix of it (``" m"``); the latter keep the remaining characters still needed.
        """
        mask = torch.zeros(self.vocab_size, dtype=torch.bool)
        mask[list(self.consistent_ids(needed))] = True
        return mask

    # Lists of ids, small unless ``needed`` is a character or two: 1,024 of them stay well under 1 MB.
    @lru_cache(maxsize=1024)  # noqa: B019
    def consistent_ids(self, needed: str) -> tuple[int, ...]:
        """The pieces of :meth:`consistent_with`, as ids in ascending order (found by bisection)."""
        found: list[int] = []
        lo = bisect.bisect_left(self._sorted_surfaces, needed)
        for j in range(lo, len(self._sorted_surfaces)):
            if not self._sorted_surfaces[j].startswith(needed):
                break
            found.append(self._sorted_ids[j])
        for end in range(1, len(needed)):
            prefix = needed[:end]
            j = bisect.bisect_left(self._sorted_surfaces, prefix)
            while j < len(self._sorted_surfaces) and self._sorted_surfaces[j] == prefix:
                found.append(self._sorted_ids[j])
                j += 1
        return tuple(sorted(set(found)))

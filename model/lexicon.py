"""The words a model may propose: a lexicon that travels inside the artifact.

A subword model can spell strings that are not words. Asked to complete "off" it ranks
"office" first, but its third guess may be "officeing"; after a name it has not seen it
invents one ("Armstro" -> "Armstrom"). On held-out e-mail such strings were about one in
fourteen of the proposals inside a word and were almost never what the writer typed next
(docs/models.md, "Known words"). The decoder therefore proposes, and puts into ghost text,
only words of the lexicon: the words of the text the model was trained on (and, once
adapted, the user's own mail), case-folded.

Stored as sorted, newline-separated, gzip-compressed UTF-8 (deterministic bytes, so the
card can carry its SHA-256 and the artifact's checksum covers it).
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable


class Lexicon:
    """A case-insensitive set of words (``WORD_RE`` matches)."""

    def __init__(self, words: Iterable[str]) -> None:
        self._words = frozenset(w.lower() for w in words)
        self._bytes: bytes | None = None  # stored form, built once: the card's digest and the file share it

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word.lower() in self._words

    def __len__(self) -> int:
        return len(self._words)

    def __or__(self, other: Lexicon) -> Lexicon:
        return Lexicon(self._words | other._words)

    def to_bytes(self) -> bytes:
        if self._bytes is None:
            self._bytes = gzip.compress("\n".join(sorted(self._words)).encode("utf-8"), mtime=0)
        return self._bytes

    @classmethod
    def from_bytes(cls, data: bytes) -> Lexicon:
        text = gzip.decompress(data).decode("utf-8")
        lexicon = cls(text.split("\n") if text else [])
        lexicon._bytes = data  # what the card's digest was checked against: written back as is
        return lexicon


def lexicon_digest(data: bytes) -> str:
    """The SHA-256 the card records for a lexicon's stored bytes."""
    return hashlib.sha256(data).hexdigest()

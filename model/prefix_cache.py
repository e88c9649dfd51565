"""An LRU cache, bounded in bytes, from a token prefix to the RNN state after it.

While someone types, each request's context (the text up to the last word boundary)
usually equals or extends the previous request's. Caching the state (and the next-piece
log-probs) after each context turns a keystroke into zero model work (same context) or
a one- or two-token prefill (one more word), instead of re-reading the whole text.

Lookup finds the *longest* cached prefix of the ids in one pass: rolling hashes of every
prefix are computed incrementally (O(n)), probed from the longest down, and a hit is
confirmed by comparing the stored ids, so a hash collision can never return a wrong state.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class CacheEntry:
    ids: tuple[int, ...]
    state: Tensor  # [1, layers, width]
    logp: Tensor  # [1, vocab]

    @property
    def nbytes(self) -> int:
        tensors = self.state.numel() * self.state.element_size() + self.logp.numel() * self.logp.element_size()
        return tensors + 8 * len(self.ids) + 200


def _prefix_hashes(ids: list[int]) -> list[int]:
    """hashes[i] identifies ids[:i + 1]."""
    out: list[int] = []
    h = 0
    for t in ids:
        h = hash((h, t))
        out.append(h)
    return out


class PrefixStateCache:
    """Thread-safe byte-bounded LRU; ``hits``/``misses`` count lookups."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[int, int], CacheEntry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def lookup(self, ids: list[int]) -> CacheEntry | None:
        """The entry for the longest cached prefix of ``ids`` (possibly all of it)."""
        if self.max_bytes <= 0 or not ids:
            return None
        hashes = _prefix_hashes(ids)
        with self._lock:
            for n in range(len(ids), 0, -1):
                key = (n, hashes[n - 1])
                entry = self._entries.get(key)
                if entry is not None and list(entry.ids) == ids[:n]:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return entry
            self.misses += 1
            return None

    def insert(self, ids: list[int], state: Tensor, logp: Tensor) -> None:
        if self.max_bytes <= 0 or not ids:
            return
        entry = CacheEntry(tuple(ids), state.detach().clone(), logp.detach().clone())
        if entry.nbytes > self.max_bytes:
            return
        key = (len(ids), _prefix_hashes(ids)[-1])
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._entries[key] = entry
            self._bytes += entry.nbytes
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

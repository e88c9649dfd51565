"""An LRU cache, bounded in bytes, from a token prefix to the RNN state after it.

While someone types, each request's context (the text up to the last word boundary)
usually equals or extends the previous request's. Caching the state (and the next-piece
log-probs) after each context turns a keystroke into zero model work (same context) or
a one- or two-token prefill (one more word), instead of re-reading the whole text.

Lookup finds the *longest* cached prefix of the ids in one pass: the hashes of every prefix
come from one vectorised prefix sum (a polynomial hash mod 2**64), are probed from the
longest down, and a hit is confirmed by comparing the stored ids, so a hash collision can
never return a wrong state. (A Python loop over the ids would cost time on every keystroke
of a long text.)

Entries are scoped: every method takes a ``scope`` (the server passes the client's session
key), and a lookup only ever finds entries created in its own scope, so no client can hit,
or time, a prefix that another session typed. The byte budget is one bound over all scopes.

The decoder's beam expansions are prefixes too (the context plus a few pieces), so it
memoises them here (:class:`StepMemo`): the next keystroke of the same word, or the next
context once the word is typed, finds them instead of running the network again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from torch import Tensor

#: Bytes counted for an entry's ``notes``: the decoder keeps at most a few short lists there.
NOTES_BYTES = 2048


@dataclass(frozen=True)
class CacheEntry:
    ids: tuple[int, ...]
    state: Tensor  # [1, layers, width]
    logp: Tensor  # [1, vocab]
    # What the decoder derived from ``logp`` (a word-end probability, the best allowed pieces),
    # kept so the next keystroke that reaches this prefix does not scan the vocabulary again.
    notes: dict = field(default_factory=dict, compare=False, repr=False)
    nbytes: int = field(init=False, compare=False)  # read on every size check and on eviction

    def __post_init__(self) -> None:
        tensors = self.state.numel() * self.state.element_size() + self.logp.numel() * self.logp.element_size()
        # Set once here: a cached_property takes a lock on first read, a cost on every insert.
        object.__setattr__(self, "nbytes", tensors + 8 * len(self.ids) + 200 + NOTES_BYTES)


_MOD = 1 << 64
_BASE = 0x100000001B3  # odd (the FNV prime): powers mod 2**64 never vanish
_powers = np.ones(1, dtype=np.uint64)  # _BASE**i mod 2**64, grown on demand


def _base_powers(n: int) -> np.ndarray:
    global _powers
    powers = _powers  # one read: another engine thread may swap in a longer table meanwhile
    if len(powers) < n:
        size = max(n, 2 * len(powers))
        powers = np.ones(size, dtype=np.uint64)
        # uint64 products wrap around: exactly arithmetic mod 2**64.
        np.cumprod(np.full(size - 1, _BASE, dtype=np.uint64), out=powers[1:])
        _powers = powers  # published only once complete
    return powers[:n]


def extend_hash(h: int, position: int, token: int) -> int:
    """The hash of a prefix of length ``position`` (hash ``h``; 0 when empty) extended by ``token``.

    hash(ids) = sum((ids[i] + 1) * BASE**i) mod 2**64, so extending needs the position.
    """
    return (h + (token + 1) * pow(_BASE, position, _MOD)) % _MOD


def _prefix_hashes(ids: list[int] | tuple[int, ...]) -> tuple[int, ...]:
    """hashes[i] identifies ids[:i + 1] (equal to folding :func:`extend_hash` over them).

    One request asks for its context's hashes up to three times (the lookup, the insert after
    its prefill, the step memo): a small cache keyed by the ids computes them once.
    """
    return _prefix_hashes_of(tuple(ids))


@lru_cache(maxsize=64)
def _prefix_hashes_of(ids: tuple[int, ...]) -> tuple[int, ...]:
    if not ids:
        return ()
    terms = (np.asarray(ids, dtype=np.uint64) + np.uint64(1)) * _base_powers(len(ids))
    return tuple(np.cumsum(terms, dtype=np.uint64).tolist())


class PrefixStateCache:
    """Thread-safe byte-bounded LRU; ``hits``/``misses`` count lookups."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, int, int], CacheEntry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def lookup(self, ids: list[int], scope: str = "") -> CacheEntry | None:
        """The entry for the longest cached prefix of ``ids`` (possibly all of it) in ``scope``."""
        if self.max_bytes <= 0 or not ids:
            return None
        hashes = _prefix_hashes(ids)
        with self._lock:
            for n in range(len(ids), 0, -1):
                key = (scope, n, hashes[n - 1])
                entry = self._entries.get(key)
                if entry is not None and list(entry.ids) == ids[:n]:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return entry
            self.misses += 1
            return None

    def get(self, ids: tuple[int, ...], ids_hash: int, scope: str = "") -> CacheEntry | None:
        """The entry for exactly ``ids`` (whose rolling hash is ``ids_hash``), or None.

        O(1) plus one tuple comparison: for callers that extend a known prefix's hash
        (:class:`StepMemo`). Not counted in ``hits``/``misses``, which describe contexts.
        """
        if self.max_bytes <= 0:
            return None
        key = (scope, len(ids), ids_hash)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.ids != ids:
                return None
            self._entries.move_to_end(key)
            return entry

    def insert(self, ids: list[int] | tuple[int, ...], state: Tensor, logp: Tensor,
               ids_hash: int | None = None, scope: str = "") -> CacheEntry | None:
        """Store the state after ``ids``; returns the entry, or None when the cache cannot hold it."""
        if self.max_bytes <= 0 or not ids:
            return None
        entry = CacheEntry(tuple(ids), state.clone(), logp.clone())  # rows of a batch: own their bytes
        if entry.nbytes > self.max_bytes:
            return None
        key = (scope, len(ids), ids_hash if ids_hash is not None else _prefix_hashes(ids)[-1])
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._entries[key] = entry
            self._bytes += entry.nbytes
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes
        return entry

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


class StepMemo:
    """The cached model results of pieces tried after one context (the decoder's beam steps).

    ``get(pieces)`` / ``put(pieces, ...)`` address the cache entry of ``context + pieces``;
    hashes extend the context's incrementally, so a lookup costs O(len(pieces)) hashing plus
    one comparison, whatever the context's length.
    """

    def __init__(self, cache: PrefixStateCache, context: list[int], scope: str = "") -> None:
        self.cache = cache
        self.context = tuple(context)
        self.scope = scope
        self._hashes: dict[tuple[int, ...], int] = {(): _prefix_hashes(context)[-1] if context else 0}

    def _hash(self, pieces: tuple[int, ...]) -> int:
        h = self._hashes.get(pieces)
        if h is None:
            h = extend_hash(self._hash(pieces[:-1]), len(self.context) + len(pieces) - 1, pieces[-1])
            self._hashes[pieces] = h
        return h

    def get(self, pieces: tuple[int, ...]) -> CacheEntry | None:
        return self.cache.get(self.context + pieces, self._hash(pieces), self.scope)

    def put(self, pieces: tuple[int, ...], state: Tensor, logp: Tensor) -> CacheEntry | None:
        return self.cache.insert(self.context + pieces, state, logp, self._hash(pieces), self.scope)

"""Word n-gram baseline: interpolated modified Kneser-Ney with a fast top-k ``predict``.

Why it exists: the neural models need an honest, cheap peer. A Kneser-Ney trigram over the
same words (:func:`model.text.words`) and the same train/validation split is the classic
one; if a GRU/LSTM cannot beat it on next-word accuracy or keystroke savings, it is not
earning its cost.

Model (KenLM-style, Chen & Goodman 1998):

* Each document is ``<s> w1 ... wn </s>`` (one ``<s>``: the first word is predicted from the
  bigram level, like KenLM; no sentence splitting).
* The highest order uses raw counts; lower orders use continuation counts (number of
  distinct left extensions), except n-grams that start with ``<s>``, which cannot be
  extended to the left and keep their raw counts.
* Three discounts per order (counts 1, 2, 3+) from the count-of-counts; the unigram level is
  interpolated with a uniform distribution over words + ``<unk>`` + ``</s>``, so every
  token has a finite probability.
* Words rarer than ``min_count`` become ``<unk>`` during counting, which gives ``<unk>`` a
  probability learned from data (the mass of all unseen words together).

Storage is numpy, not Python dicts: word ids are assigned in *string order*, so "words that
start with the typed fragment" is one contiguous id range. An n-gram of order ``n`` is the
int64 key ``history_index * K + word`` (``K`` = number of token ids, ``history_index`` = the
row of the (n-1)-gram history in the order-(n-1) table), and every table is sorted by key.
So a history's continuations restricted to a fragment are one ``searchsorted`` slice, and
each row stores its full interpolated probability, precomputed at fit time.

``predict`` is exact, not a heuristic: if ``w`` is in the true top-k of the interpolated
probability ``f``, and ``m`` is the highest order where ``(history_m, w)`` was seen, then
``w`` is among the top-k of order ``m``'s own probabilities in the fragment range (any word
that beats it there also beats it under ``f``, because ``f(w') >= gammas * P_m(w')``). So
the candidates are the top-k of each order's slice plus the top-k unigrams with the
fragment, scored exactly and merged (with an early stop once nothing lower can win).

Speed (``predict`` runs on every keystroke): the per-call work is Python on small tuples,
because each small numpy call costs microseconds. The best words of every big history are
ranked at fit time and stored; the best words of every common prefix (unigram fallback) at
load time; a history's rows become cached Python tuples on first use (big ones only once
they are reused), and a big fragment span in a history is ranked once and memoised. The
caches are bounded (``cache_rows``) and dropped wholesale when full.
"""

from __future__ import annotations

import argparse
import bisect
import gzip
import heapq
import logging
import math
import os
import resource
import sys
import time
from array import array
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from model.text import WORD_RE, words

log = logging.getLogger(__name__)

BOS = "<s>"
EOS = "</s>"
UNK = "<unk>"
FORMAT_VERSION = 1
#: Sorts after every character a word can hold, so ``[frag, frag + _MAX_CHAR)`` is a prefix.
_MAX_CHAR = "\U0010ffff"
#: How many characters of context to scan first when looking for the last words.
_TAIL_CHARS = 64
_TAIL_CACHE_MAX = 500_000
#: Slices up to this size are ranked (and views built) in Python; bigger ones with numpy.
_PY_RANK_MAX = 64
#: A big history's rows become Python tuples on its this-many-th use.
_PROMOTE_HITS = 32
_RANGE_CACHE_MAX = 1_000_000

Chain = tuple[tuple[int, int], ...]
Pair = tuple[int, float]  # (word id, probability)
HistTop = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
_second = itemgetter(1)


class _View:
    """One history's word continuations, shaped for the per-keystroke hot path.

    ``ids`` (sorted word ids, so string order) and ``probs`` are its rows ``start..`` of the
    order-``n`` table; ``gamma`` is its backoff weight; ``memo`` maps a fragment to the
    best ``top_cache`` ``(word id, P)`` of its span, best first, filled on first use for spans
    bigger than ``big_range`` (the frequent histories are asked about again and again);
    ``memo[""]`` comes precomputed from the file.

    Why two shapes: small numpy calls cost microseconds, so ``ids``/``probs`` are Python
    tuples (``bisect`` and indexing in ~0.1 us; tuples rather than lists because the
    garbage collector stops tracking tuples of numbers, and these caches are big).
    Converting a history with thousands of rows costs far more than one query, though, so
    big ones start as numpy slices (which ``bisect`` and indexing also accept, only slower)
    and become tuples once reused (:meth:`promote`, on the ``_PROMOTE_HITS``-th use).
    """

    __slots__ = ("gamma", "hits", "ids", "memo", "n", "probs", "start")

    def __init__(
        self,
        n: int,
        start: int,
        gamma: float,
        ids: tuple[int, ...] | np.ndarray,
        probs: tuple[float, ...] | np.ndarray,
        memo: dict[str, Sequence[Pair]],
    ) -> None:
        self.n, self.start, self.gamma = n, start, gamma
        self.ids, self.probs, self.memo = ids, probs, memo
        self.hits = 0

    def cost(self) -> int:
        """Cache budget units held: a tuple row ~100 bytes, a numpy-backed row 8, memo pairs."""
        rows = len(self.ids) if isinstance(self.ids, tuple) else len(self.ids) // 8
        return rows + sum(len(top) for top in self.memo.values())

    def promote(self) -> int:
        """Turn numpy rows into Python tuples; returns how many rows that took."""
        if not isinstance(self.ids, np.ndarray):
            return 0
        self.ids = tuple(self.ids.tolist())
        self.probs = tuple(np.asarray(self.probs).tolist())
        return len(self.ids)


def _fallback_discounts(reason: str, order: int) -> np.ndarray:
    log.debug("order %d: default discounts (%s)", order, reason)
    return np.array([0.0, 0.5, 1.0, 1.5])


def modified_kn_discounts(counts: np.ndarray, order: int = 0) -> np.ndarray:
    """``[0, D1, D2, D3+]`` from the count-of-counts (Chen & Goodman's estimates).

    Tiny corpora can lack counts of 1..4 (or give a discount outside ``(0, c)``); then a
    fixed ``0.5 / 1.0 / 1.5`` is used so that every seen n-gram keeps positive mass.
    """
    n = [int(np.count_nonzero(counts == c)) for c in range(1, 5)]
    if min(n) == 0:
        return _fallback_discounts(f"count-of-counts {n}", order)
    y = n[0] / (n[0] + 2 * n[1])
    d = [1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2]]
    if not all(0.0 < d[i] < i + 1 for i in range(3)):
        return _fallback_discounts(f"estimates {d} out of range", order)
    return np.array([0.0, *d])


class NgramModel:
    """Word n-gram next-word model (interpolated modified Kneser-Ney); see the module doc.

    ``top_cache`` is how many candidates the precomputed top lists keep (a ``predict`` with a
    larger ``k`` computes its lists on the fly, still exactly); ``big_range`` is the slice
    size above which a history or a prefix gets such a list; ``cache_rows`` bounds the
    continuation rows kept as Python tuples for fast repeated queries (~100 bytes a row, so
    ~200 MB at the default; the evaluator's millions of calls profit, a server may want less).
    """

    def __init__(self, top_cache: int = 16, big_range: int = 16, cache_rows: int = 2_000_000) -> None:
        if top_cache < 1 or big_range < 1:
            raise ValueError("top_cache and big_range must be positive")
        self.top_cache = top_cache
        self.big_range = big_range
        self.cache_rows = cache_rows
        self.order = 0
        self.min_count = 0
        self.stats: dict[str, Any] = {}
        self.discounts: dict[int, list[float]] = {}
        self._words: list[str] = []  # sorted; id i < V is self._words[i]
        self._V = 0  # number of real words
        self._K = 0  # number of token ids: words, then <unk>, </s>, <s>
        self._p1 = np.zeros(0)  # unigram probability per token id (<s>: 0)
        self._keys: dict[int, np.ndarray] = {}  # order n >= 2 -> sorted int64 keys
        self._prob: dict[int, np.ndarray] = {}  # order n -> interpolated P per key
        self._gamma: dict[int, np.ndarray] = {}  # order n -> backoff weight per history
        # order n -> (history ids with > big_range word rows, offsets, best words, their P)
        self._hist_top: dict[int, HistTop] = {}
        self._build_lookup()
        self._build_index()

    # ------------------------------------------------------------------ ids

    @property
    def vocab_size(self) -> int:
        """Number of distinct words (without ``<unk>``, ``</s>``, ``<s>``)."""
        return self._V

    @property
    def unk_id(self) -> int:
        return self._V

    @property
    def eos_id(self) -> int:
        return self._V + 1

    @property
    def bos_id(self) -> int:
        return self._V + 2

    def _build_lookup(self) -> None:
        self._word_id: dict[str, int] = {w: i for i, w in enumerate(self._words)}
        self._ctx_id = dict(self._word_id)
        self._ctx_id[BOS] = self.bos_id  # context tails use "<s>" for the document start

    def token_id(self, token: str) -> int:
        """Id of a word, of ``</s>``/``<unk>``; anything unknown is ``<unk>``."""
        if token == EOS:
            return self.eos_id
        return self._word_id.get(token, self.unk_id)

    def tokens(self) -> list[str]:
        """Every token id's string: the words (sorted), then ``<unk>``, ``</s>``, ``<s>``."""
        return [*self._words, UNK, EOS, BOS]

    # ------------------------------------------------------------------ fit

    def fit(
        self,
        docs: Iterable[str],
        order: int = 3,
        min_count: int = 2,
        progress: bool = False,
    ) -> NgramModel:
        """Count ``order``-grams over ``words(doc)`` of every document and estimate the model.

        Words seen fewer than ``min_count`` times are counted as ``<unk>``. One pass over
        ``docs`` (an iterator is fine); ``progress`` shows a tqdm bar over documents.
        Returns ``self``.
        """
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        t0 = time.perf_counter()
        self._keys, self._prob, self._gamma, self._hist_top = {}, {}, {}, {}
        provisional: dict[str, int] = {}
        stream = array("i")  # provisional ids; -1 = <s>, -2 = </s>
        n_docs = 0
        if progress:
            from tqdm import tqdm

            docs = tqdm(docs, desc="count", unit="doc", mininterval=2.0)
        for doc in docs:
            ws = words(doc)
            stream.append(-1)
            stream.extend([provisional.setdefault(w, len(provisional)) for w in ws])
            stream.append(-2)
            n_docs += 1
        if n_docs == 0:
            raise ValueError("no documents to fit on")
        t_read = time.perf_counter() - t0
        prov = np.frombuffer(stream, dtype=np.int32)
        word_counts = np.bincount(prov[prov >= 0], minlength=len(provisional))
        by_prov = list(provisional)
        kept = sorted(w for w, i in provisional.items() if word_counts[i] >= min_count)
        del provisional
        self._words = kept
        self._V = len(kept)
        self._K = self._V + 3
        self.order = order
        self.min_count = min_count
        final = {w: i for i, w in enumerate(kept)}
        # remap table, indexed by provisional id + 2: [</s>, <s>, words...]
        table = np.array(
            [self.eos_id, self.bos_id, *(final.get(w, self.unk_id) for w in by_prov)],
            dtype=np.int64,
        )
        del by_prov, final
        t = table[prov.astype(np.int64) + 2]
        del prov, stream, table
        n_words = int(np.count_nonzero(t < self.unk_id))
        n_unk = int(np.count_nonzero(t == self.unk_id))
        self._estimate(t)
        self._build_lookup()
        self._build_index()
        fit_s = time.perf_counter() - t0
        self.stats = {
            "docs": n_docs,
            "tokens": int(t.size),
            "word_types_seen": len(word_counts),
            "vocab": self._V,
            "word_tokens": n_words + n_unk,
            "unk_tokens": n_unk,
            "ngrams": {n: int(self._keys[n].size) for n in sorted(self._keys)},
            "read_s": round(t_read, 2),
            "fit_s": round(fit_s, 2),
        }
        log.info(
            "fit: %d docs, %d words (%d -> <unk>, %.2f%%), %d word types, vocab %d (min_count %d)",
            n_docs,
            n_words + n_unk,
            n_unk,
            100.0 * n_unk / max(1, n_words + n_unk),
            len(word_counts),
            self._V,
            min_count,
        )
        for n in sorted(self._keys):
            log.info(
                "fit: order %d: %d n-gram types, discounts %s",
                n,
                self._keys[n].size,
                [round(d, 3) for d in self.discounts[n]],
            )
        log.info("fit: reading+tokenising %.1fs, total %.1fs", t_read, fit_s)
        return self

    def _estimate(self, t: np.ndarray) -> None:
        """All counts, discounts and interpolated probabilities from the token stream ``t``."""
        K, order = self._K, self.order
        L = t.size
        ar = np.arange(L, dtype=np.int64)
        # distance of each position from its document's <s>
        d = ar - np.maximum.accumulate(np.where(t == self.bos_id, ar, 0))
        del ar
        counts: dict[int, np.ndarray] = {}
        suffix: dict[int, np.ndarray] = {}
        starts_bos: dict[int, np.ndarray] = {}
        idx_prev = t  # index of the order-(n-1) n-gram ending at each position (order 1: id)
        for n in range(2, order + 1):
            pos = np.flatnonzero(d >= n - 1)
            keys = idx_prev[pos - 1] * K + t[pos]
            uniq, first, inv, cnt = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
            del keys
            rep = pos[first]
            suffix[n] = idx_prev[rep]  # the (n-1)-gram ending at the same position
            starts_bos[n] = d[rep] == n - 1
            idx_n = np.full(L, -1, dtype=np.int64)
            idx_n[pos] = inv
            del pos, inv, first, rep
            self._keys[n] = uniq
            counts[n] = cnt
            idx_prev = idx_n
        del idx_prev
        # adjusted counts: raw at the top order and for n-grams starting with <s>
        adj: dict[int, np.ndarray] = {}
        for n in range(order, 1, -1):
            if n == order:
                adj[n] = counts[n]
            else:
                cont = np.bincount(suffix[n + 1], minlength=counts[n].size)
                adj[n] = np.where(starts_bos[n], counts[n], cont)
        if order == 1:
            a1 = np.bincount(t[d >= 1], minlength=K)
        else:
            a1 = np.bincount(suffix[2], minlength=K)
        a1[self.bos_id] = 0
        del d
        # unigram: discounted continuation counts + uniform over every predictable token
        disc = modified_kn_discounts(a1[a1 > 0], 1)
        self.discounts = {1: disc[1:].tolist()}
        d1 = np.where(a1 > 0, disc[np.minimum(a1, 3)], 0.0)
        total = float(a1.sum())
        gamma1 = float(d1.sum()) / total
        p1 = (a1 - d1) / total + gamma1 / (K - 1)
        p1[self.bos_id] = 0.0
        self._p1 = p1
        lower = p1
        for n in range(2, order + 1):
            keys, a = self._keys[n], adj[n]
            hist = keys // K
            w = keys - hist * K
            n_hist = K if n == 2 else self._keys[n - 1].size
            disc = modified_kn_discounts(a, n)
            self.discounts[n] = disc[1:].tolist()
            dn = disc[np.minimum(a, 3)]
            s = np.bincount(hist, weights=a, minlength=n_hist)
            dsum = np.bincount(hist, weights=dn, minlength=n_hist)
            gamma = np.divide(dsum, s, out=np.ones(n_hist), where=s > 0)
            low = lower[w] if n == 2 else lower[suffix[n]]
            prob = (a - dn) / s[hist] + gamma[hist] * low
            self._gamma[n] = gamma.astype(np.float32)
            self._prob[n] = prob.astype(np.float32)
            lower = prob
            del s, dsum, low
            self._hist_top[n] = self._history_tops(hist, w, self._prob[n])
            del hist, w

    def _history_tops(self, hist: np.ndarray, w: np.ndarray, prob: np.ndarray) -> HistTop:
        """Best ``top_cache`` words of every history with more than ``big_range`` of them.

        Why: an empty fragment after a frequent history is the most common query, and
        ranking thousands of continuations on first use would make cold queries slow. One
        lexsort at fit time. Returns (history ids, offsets, word ids, probabilities), each
        history's words best first.
        """
        words_only = np.flatnonzero(w < self._V)
        h = hist[words_only]
        first = np.flatnonzero(np.r_[True, h[1:] != h[:-1]])
        sizes = np.diff(np.r_[first, h.size])
        big = sizes > self.big_range
        keep_hist = h[first[big]]
        # rows grouped by history (ascending), best first within each
        order = np.lexsort((-prob[words_only], h))
        group_start = np.repeat(first, sizes)  # per sorted position: its group's first
        rank = np.arange(h.size) - group_start
        sel = words_only[order[(rank < self.top_cache) & np.repeat(big, sizes)]]
        counts = np.minimum(sizes[big], self.top_cache)
        offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)
        return keep_hist.astype(np.int64), offsets, w[sel].astype(np.int32), prob[sel]

    # ------------------------------------------------------------------ index

    def _top_of(self, seg: np.ndarray, offset: int, m: int = 0) -> list[int]:
        """Offsets (+``offset``) of the ``m`` (or ``top_cache``) largest of ``seg``, best first."""
        m = min(m or self.top_cache, seg.size)
        idx = seg.argpartition(seg.size - m)[seg.size - m :]
        idx = idx[np.argsort(-seg[idx], kind="stable")]
        return (idx + offset).tolist()

    def _build_index(self) -> None:
        """Per-prefix top lists for the unigram fallback, and empty per-history caches.

        Why: ``predict`` runs on every keystroke, and small numpy calls cost microseconds
        each, so the hot path works on Python tuples. Prefixes whose word range is bigger
        than ``big_range`` (a few thousand: "", "t", "th", ...) get their best
        ``top_cache`` words precomputed; smaller ranges are ranked on the fly.
        """
        words_, p1, big = self._words, self._p1, self.big_range
        self._p1_list: list[float] = p1.tolist()
        self._prefix_top: dict[str, Sequence[Pair]] = {}
        p1_list = self._p1_list
        stack = [("", 0, self._V)]
        while stack:
            p, lo, hi = stack.pop()
            if hi - lo <= big:
                continue
            self._prefix_top[p] = tuple((w, p1_list[w]) for w in self._top_of(p1[lo:hi], lo))
            depth, j = len(p), lo
            if len(words_[j]) == depth:  # the word equal to the prefix sorts first
                j += 1
            while j < hi:
                child = words_[j][: depth + 1]
                end = bisect.bisect_left(words_, child + _MAX_CHAR, j, hi)
                stack.append((child, j, end))
                j = end
        self._clear_caches()

    def _clear_caches(self) -> None:
        self._tail_cache: dict[tuple[str, ...], tuple[_View, ...]] = {}
        self._view_cache: dict[tuple[int, int], _View] = {}
        self._cached_rows = 0
        self._range_cache: dict[str, tuple[int, int]] = {"": (0, self._V)}

    def _shrink_caches(self) -> None:
        """Drop the caches but keep the views used often since the last shrink.

        A cheap stand-in for LRU: the hot histories ("of the", "the") cost the most to
        rebuild and are the likeliest to be asked about again. Use counts are halved, so
        a view has to stay in use to survive the next shrink.
        """
        hot = {key: v for key, v in self._view_cache.items() if v.hits >= _PROMOTE_HITS}
        rows = sum(v.cost() for v in hot.values())
        self._clear_caches()
        if rows <= self.cache_rows // 2:
            for view in hot.values():
                view.hits //= 2
            self._view_cache = hot
            self._cached_rows = rows

    # ------------------------------------------------------------------ context

    def _context_tail(self, context: str) -> tuple[str, ...]:
        """The last ``order - 1`` words of ``context``, led by ``<s>`` if it has fewer.

        Scans only the end of the string (widening as needed): the evaluator passes the whole
        review so far, and a regex over all of it on every keystroke would dominate.
        """
        need = self.order - 1
        if need <= 0:
            return ()
        window = _TAIL_CHARS
        n = len(context)
        while True:
            if window >= n:
                ws = WORD_RE.findall(context)
                return tuple(ws[-need:]) if len(ws) >= need else (BOS, *ws)
            ws = WORD_RE.findall(context, n - window)
            if len(ws) > need:  # the first match may be cut; the last `need` are whole
                return tuple(ws[-need:])
            window *= 4

    def _lookup(self, n: int, hist: int, word: int) -> int:
        """Row of the order-``n`` n-gram (``hist`` row of order n-1, ``word``), or -1."""
        keys = self._keys[n]
        key = hist * self._K + word
        i = int(keys.searchsorted(key))
        return i if i < keys.size and int(keys[i]) == key else -1

    def _chain(self, tail: tuple[str, ...]) -> Chain:
        """``((n, history row at order n), ...)`` for every order whose history was seen."""
        ids = [self._ctx_id.get(w, self.unk_id) for w in tail]
        out: list[tuple[int, int]] = []
        for n in range(2, self.order + 1):
            if len(ids) < n - 1:
                break
            h = ids[-(n - 1)]
            for j in range(2, n):
                h = self._lookup(j, h, ids[-(n - 1) + j - 1])
                if h < 0:
                    break
            if h < 0:
                break
            out.append((n, h))
        return tuple(out)

    def _view(self, n: int, h: int) -> _View:
        """The (cached) :class:`_View` of history row ``h`` at order ``n``."""
        view = self._view_cache.get((n, h))
        if view is None:
            keys, base = self._keys[n], h * self._K
            s, e = keys.searchsorted((base, base + self._V)).tolist()  # word rows only
            ids: tuple[int, ...] | np.ndarray
            probs: tuple[float, ...] | np.ndarray
            if e - s < _PY_RANK_MAX:  # a numpy subtraction costs more than this loop
                ids = tuple([key - base for key in keys[s:e].tolist()])
                probs = tuple(self._prob[n][s:e].tolist())
            else:
                ids = keys[s:e] - base
                probs = self._prob[n][s:e]
            memo: dict[str, Sequence[Pair]] = {}
            if e - s > self.big_range:
                hist_ids, offsets, top_ids, top_probs = self._hist_top[n]
                x = int(hist_ids.searchsorted(h))
                a, b = offsets[x : x + 2].tolist()
                memo[""] = tuple(zip(top_ids[a:b].tolist(), top_probs[a:b].tolist(), strict=True))
            view = _View(n, s, float(self._gamma[n][h]), ids, probs, memo)
            self._cached_rows += view.cost()
            self._view_cache[(n, h)] = view
        return view

    def _views(self, tail: tuple[str, ...]) -> tuple[_View, ...]:
        """Views of the history at every order (lowest first) for a context tail, cached.

        Once the caches hold ``cache_rows`` rows they are shrunk (:meth:`_shrink_caches`), so
        memory stays bounded while the frequent histories stay warm. Not thread-safe: one
        model per thread, or a lock around ``predict``.
        """
        views = self._tail_cache.get(tail)
        if views is None:
            if self._cached_rows > self.cache_rows or len(self._tail_cache) > _TAIL_CACHE_MAX:
                self._shrink_caches()
            views = tuple(self._view(n, h) for n, h in self._chain(tail))
            self._tail_cache[tail] = views
        for view in views:
            view.hits += 1
            if view.hits == _PROMOTE_HITS:
                self._cached_rows += view.promote()
        return views

    def _score(self, chain: Chain, ids: np.ndarray) -> np.ndarray:
        """Interpolated probability of each token id in ``ids`` after the history ``chain``."""
        f = self._p1[ids]
        K = self._K
        for n, h in chain:
            keys = self._keys[n]
            q = h * K + ids
            pos = np.minimum(keys.searchsorted(q), keys.size - 1)
            f = np.where(keys[pos] == q, self._prob[n][pos], self._gamma[n][h] * f)
        return f

    # ------------------------------------------------------------------ queries

    def fragment_range(self, fragment: str) -> tuple[int, int]:
        """Word ids ``[lo, hi)`` of the words that start with ``fragment`` (case-sensitive)."""
        span = self._range_cache.get(fragment)
        if span is None:
            lo = bisect.bisect_left(self._words, fragment)
            span = lo, bisect.bisect_left(self._words, fragment + _MAX_CHAR, lo)
            if len(self._range_cache) >= _RANGE_CACHE_MAX:
                self._range_cache.clear()
            self._range_cache[fragment] = span
        return span

    def _view_top(self, view: _View, fragment: str, i: int, j: int, k: int) -> Sequence[Pair]:
        """``(word id, P)`` of the ``k`` most probable among ``view`` rows ``[i, j)``, best first.

        ``[i, j)`` is ``fragment``'s span in ``view``; spans bigger than ``big_range`` are
        ranked once per (history, fragment) and memoised in the view.
        """
        memoise = j - i > self.big_range and k <= self.top_cache
        if memoise:
            top = view.memo.get(fragment)
            if top is not None:
                return top[:k]
        want = self.top_cache if memoise else k
        ids, probs = view.ids, view.probs
        if j - i <= _PY_RANK_MAX:
            if isinstance(probs, tuple):
                span = zip(ids[i:j], probs[i:j], strict=True)
            else:
                span = zip(ids[i:j].tolist(), probs[i:j].tolist(), strict=True)
            top: Sequence[Pair] = tuple(sorted(span, key=_second, reverse=True)[:want])
        else:
            rows = self._top_of(self._prob[view.n][view.start + i : view.start + j], i, want)
            if isinstance(probs, tuple):
                top = tuple([(ids[x], probs[x]) for x in rows])
            else:
                top = tuple(zip(ids[rows].tolist(), probs[rows].tolist(), strict=True))
        if memoise:
            view.memo[fragment] = top
            self._cached_rows += len(top)
        return top[:k]

    def _unigram_top(self, fragment: str, lo: int, hi: int, k: int) -> Sequence[Pair]:
        """``(word id, P1)`` of the ``k`` best unigrams in the fragment's range, best first."""
        p1 = self._p1_list
        if k <= self.top_cache:
            top = self._prefix_top.get(fragment)
            if top is not None:
                return top[:k]
        if hi - lo <= _PY_RANK_MAX:
            rows: Iterable[int] = sorted(range(lo, hi), key=p1.__getitem__, reverse=True)[:k]
        else:
            rows = self._top_of(self._p1[lo:hi], lo, k)
        return [(w, p1[w]) for w in rows]

    def predict(self, context: str, fragment: str, k: int) -> list[tuple[str, float]]:
        """The ``k`` most probable next words that complete ``fragment``, best first.

        As the neural decoder (``model.decoder``) does, a word equal to the typed fragment
        is not proposed: it would insert nothing and take a slot. So the exact top-``k + 1``
        of the words starting with it is ranked and the fragment itself dropped.
        """
        if not fragment:
            return self._top_starting_with(context, fragment, k)
        ranked = self._top_starting_with(context, fragment, k + 1)
        return [pair for pair in ranked if pair[0] != fragment][:k]

    def _top_starting_with(self, context: str, fragment: str, k: int) -> list[tuple[str, float]]:
        """The ``k`` most probable next words that start with ``fragment``, best first.

        ``context`` is all text before the word (its last ``order - 1`` words are used;
        fewer words means the document start). Probabilities are the model's interpolated
        ``P(word | history)`` (not renormalised over the fragment). Exact top-k: see the
        module docstring for why the per-order candidate lists suffice. Never suggests
        ``<unk>``/``</s>``; an empty list when no known word starts with ``fragment``.

        Orders are visited from the highest down. A candidate of order ``m`` only needs a
        look-up in the orders above ``m``, and the visit stops as soon as nothing left can
        beat the current k-th score: a word first seen at order ``m`` scores
        ``G_m * P_m(w)`` (``G_m``: product of the backoff weights above ``m``), and
        ``P_m(w) <= U_m = max(top P_m in the span, gamma_m * U_{m-1})``.
        """
        if k <= 0:
            return []
        lo, hi = self.fragment_range(fragment)
        if lo >= hi:
            return []
        views = self._views(self._context_tail(context))
        top = self._unigram_top(fragment, lo, hi, k)
        lists = [top]  # per level (0 = unigrams), best first
        bound = top[0][1]  # U_level: the most any word in the range has at that level
        bounds = [bound]
        spans: list[tuple[_View, int, int]] = []  # each order's view and fragment span
        full = lo == 0 and hi == self._V
        for view in views:
            ids = view.ids
            if full:
                i, j = 0, len(ids)
            elif isinstance(ids, tuple):
                i = bisect.bisect_left(ids, lo)
                j = bisect.bisect_left(ids, hi, i)
            else:
                i, j = ids.searchsorted((lo, hi)).tolist()
            spans.append((view, i, j))
            bound *= view.gamma
            if j > i:
                top = self._view_top(view, fragment, i, j, k)
                if top[0][1] > bound:
                    bound = top[0][1]
            else:
                top = ()
            lists.append(top)
            bounds.append(bound)
        best: dict[int, float] = {}
        kth = -1.0  # the k-th best score so far (-1 until there are k)
        heap: list[float] = []
        bisect_left = bisect.bisect_left
        g_level = 1.0  # product of the backoff weights above the current level
        for level in range(len(views), -1, -1):
            if g_level * bounds[level] <= kth:
                break  # nothing at this level or below can enter the top k
            above = spans[level:][::-1]  # the orders above this one, highest first
            for w, p in lists[level]:
                f = g_level * p
                if f <= kth:
                    break
                if w in best:
                    continue
                g = 1.0
                for v, a, b in above:
                    ids = v.ids
                    y = bisect_left(ids, w, a, b)
                    if y < b and ids[y] == w:
                        f = g * float(v.probs[y])
                        break
                    g *= v.gamma
                best[w] = f
                if kth >= 0.0:
                    if f > kth:
                        heapq.heapreplace(heap, f)
                        kth = heap[0]
                else:
                    heapq.heappush(heap, f)
                    if len(heap) == k:
                        kth = heap[0]
            if level:
                g_level *= views[level - 1].gamma
        words_ = self._words
        return [(words_[w], f) for w, f in sorted(best.items(), key=_second, reverse=True)[:k]]

    def token_probs(self, context: str) -> dict[str, float]:
        """The whole next-token distribution (words, ``<unk>``, ``</s>``); sums to 1.

        For tests and inspection; slow on a big vocabulary compared to :meth:`predict`.
        """
        chain = self._chain(self._context_tail(context))
        ids = np.arange(self._K - 1)  # every id but <s>
        f = self._score(chain, ids)
        toks = self.tokens()
        return {toks[i]: float(p) for i, p in zip(ids.tolist(), f.tolist(), strict=True)}

    def word_log_prob(self, context: str, word: str) -> float:
        """Natural log of ``P(word | context)``; ``"</s>"`` is the end of the document.

        A word outside the vocabulary gets the whole ``<unk>`` mass (finite, but optimistic
        for perplexity comparisons: it is the probability of *some* unseen word).
        """
        chain = self._chain(self._context_tail(context))
        f = self._score(chain, np.array([self.token_id(word)], dtype=np.int64))
        return math.log(float(f[0]))

    def sequence_probs(self, token_ids: Sequence[int]) -> np.ndarray:
        """``P(t_j | t_<j)`` for ``j >= 1`` of a token-id sequence that starts with ``<s>``.

        Vectorised over positions: the history row of order ``n+1`` at ``j`` is the row found
        at order ``n`` for position ``j - 1``, so each order is one ``searchsorted``.
        """
        t = np.asarray(token_ids, dtype=np.int64)
        tgt = t[1:]
        f = self._p1[tgt]
        hist = t[:-1]
        valid = np.ones(tgt.size, dtype=bool)
        K = self._K
        for n in range(2, self.order + 1):
            keys = self._keys[n]
            if keys.size == 0:
                break
            h = np.where(valid, hist, 0)
            q = h * K + tgt
            pos = np.minimum(keys.searchsorted(q), keys.size - 1)
            found = valid & (keys[pos] == q)
            gamma = self._gamma[n][h]
            f = np.where(found, self._prob[n][pos], np.where(valid, gamma * f, f))
            hist = np.r_[-1, pos[:-1]]
            valid = np.r_[False, found[:-1]]
        return f

    def doc_nll(self, doc: str) -> tuple[float, int]:
        """(total negative log-likelihood in nats, tokens predicted): every word + ``</s>``."""
        ids = [self.bos_id, *(self.token_id(w) for w in words(doc)), self.eos_id]
        probs = self.sequence_probs(ids)
        return float(-np.log(probs).sum()), int(probs.size)

    # ------------------------------------------------------------------ persistence

    def nbytes(self) -> int:
        """Bytes held by the numpy tables (the bulk of the model's memory)."""
        arrays = [self._p1, *self._keys.values(), *self._prob.values(), *self._gamma.values()]
        arrays += [a for tops in self._hist_top.values() for a in tops]
        return int(sum(a.nbytes for a in arrays))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Gzip'd pickle of the tables; keys are delta-encoded (sorted, so it compresses well).

        The vocabulary prefix index is rebuilt on load rather than stored.
        """
        import pickle

        state = {
            "format": FORMAT_VERSION,
            "order": self.order,
            "min_count": self.min_count,
            "top_cache": self.top_cache,
            "big_range": self.big_range,
            "stats": self.stats,
            "discounts": self.discounts,
            "words": self._words,
            "p1": self._p1,
            "keys_delta": {n: np.diff(k, prepend=0) for n, k in self._keys.items()},
            "prob": self._prob,
            "gamma": self._gamma,
            "hist_top": self._hist_top,
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with gzip.open(tmp, "wb", compresslevel=3) as fh:
            pickle.dump(state, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NgramModel:
        """Inverse of :meth:`save` (only load files you trust: it is a pickle)."""
        import pickle

        with gzip.open(path, "rb") as fh:
            state = pickle.load(fh)
        if state.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported n-gram file format {state.get('format')!r}")
        model = cls(top_cache=state["top_cache"], big_range=state["big_range"])
        model.order = state["order"]
        model.min_count = state["min_count"]
        model.stats = state["stats"]
        model.discounts = state["discounts"]
        model._words = state["words"]
        model._V = len(model._words)
        model._K = model._V + 3
        model._p1 = state["p1"]
        model._keys = {n: np.cumsum(k) for n, k in state["keys_delta"].items()}
        model._prob = state["prob"]
        model._gamma = state["gamma"]
        model._hist_top = state["hist_top"]
        model._build_lookup()
        model._build_index()
        return model


# ---------------------------------------------------------------------- CLI


def _rss_mib() -> float:
    """Resident memory now (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _eval_docs(corpus: str, n_docs: int) -> list[str]:
    """Held-out documents: the aclImdb test split, else the validation docs."""
    from training.data import detect_format, is_validation, iter_documents

    if detect_format(Path(corpus)) == "aclimdb":
        return list(islice(iter_documents(corpus, split="test"), n_docs))
    return list(islice((d for d in iter_documents(corpus) if is_validation(d)), n_docs))


def _rounded(value: Any) -> Any:
    """Floats to 4 significant digits, recursively (for readable log lines)."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def _latency(wall: list[float], cpu: list[float]) -> dict[str, float]:
    """Wall-clock mean/p50/p99 and CPU-time mean, in microseconds.

    Both, because on a shared machine the wall clock also counts time spent waiting for a
    core; the CPU time is the cost of the call itself.
    """
    arr = np.array(wall) * 1e6
    if not arr.size:
        return {"n": 0}
    return {
        "n": int(arr.size),
        "mean_us": float(arr.mean()),
        "p50_us": float(np.percentile(arr, 50)),
        "p99_us": float(np.percentile(arr, 99)),
        "cpu_mean_us": float(np.mean(cpu) * 1e6),
    }


def evaluate(model: NgramModel, docs: list[str], n_queries: int = 20_000, k: int = 5) -> dict[str, Any]:
    """``predict`` latency, then top-1 next-word accuracy and perplexity over ``docs``.

    Latency replays keystrokes the way the evaluator does, from the model's state right
    after loading: for each word of each doc in order, the context before it and every
    prefix of the word (length 0 .. len-1), up to ``n_queries`` calls, timed separately for
    empty and non-empty fragments. Context strings are built before timing, so only
    ``predict`` is timed. Top-1 uses the empty fragment and ``k=1``; perplexity is over
    words + ``</s>`` with the ``<unk>`` mass for unknown words.
    """
    from tqdm import tqdm

    queries: list[tuple[str, str]] = []
    for doc in docs:
        for m in WORD_RE.finditer(doc):
            context, word = doc[: m.start()], m.group(0)
            queries.extend((context, word[:j]) for j in range(len(word)))
            if len(queries) >= n_queries:
                break
        if len(queries) >= n_queries:
            break
    wall: dict[str, list[float]] = {"empty": [], "fragment": []}
    cpu: dict[str, list[float]] = {"empty": [], "fragment": []}
    clock, cpu_clock = time.perf_counter, time.process_time
    for context, fragment in queries[:n_queries]:
        c0, t0 = cpu_clock(), clock()
        model.predict(context, fragment, k)
        t1, c1 = clock(), cpu_clock()
        kind = "fragment" if fragment else "empty"
        wall[kind].append(t1 - t0)
        cpu[kind].append(c1 - c0)
    hits = total = n_tok = 0
    nll = 0.0
    for doc in tqdm(docs, desc="top-1", unit="doc", mininterval=2.0):
        for m in WORD_RE.finditer(doc):
            pred = model.predict(doc[: m.start()], "", 1)
            hits += bool(pred) and pred[0][0] == m.group(0)
            total += 1
        d_nll, d_n = model.doc_nll(doc)
        nll += d_nll
        n_tok += d_n
    return {
        "top1": hits / max(1, total),
        "words": total,
        "ppl": math.exp(nll / max(1, n_tok)),
        "latency_all": _latency(wall["empty"] + wall["fragment"], cpu["empty"] + cpu["fragment"]),
        "latency_empty": _latency(wall["empty"], cpu["empty"]),
        "latency_fragment": _latency(wall["fragment"], cpu["fragment"]),
    }


def main(argv: list[str] | None = None) -> int:
    """Fit on the non-validation train docs of ``--corpus`` and save; optionally evaluate."""
    parser = argparse.ArgumentParser(prog="python -m training.ngram", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--corpus", required=True, nargs="+",
                        help="corpus path(s) (any training.data format); several are fitted on together")
    parser.add_argument("--out", default="runs/ngram/trigram.pkl.gz", help="model file")
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument("--min-count", type=int, default=2, help="rarer words become <unk>")
    parser.add_argument("--max-docs", type=int, default=None, help="fit on at most N docs")
    parser.add_argument("--load", action="store_true", help="skip fitting: load --out")
    parser.add_argument(
        "--eval-docs",
        type=int,
        default=0,
        help="then report top-1 accuracy/latency on N held-out docs",
    )
    parser.add_argument("--eval-queries", type=int, default=20_000)
    parser.add_argument("--eval-k", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out = Path(args.out)
    if args.load:
        rss0 = _rss_mib()
        t0 = time.perf_counter()
        model = NgramModel.load(out)
        log.info(
            "loaded %s in %.1fs (+%.0f MiB RSS, tables %.0f MiB)",
            out,
            time.perf_counter() - t0,
            _rss_mib() - rss0,
            model.nbytes() / 2**20,
        )
    else:
        from training.data import is_validation, iter_documents

        docs: Iterator[str] = (d for corpus in args.corpus for d in iter_documents(corpus, split="train")
                               if not is_validation(d))
        if args.max_docs is not None:
            docs = islice(docs, args.max_docs)
        model = NgramModel().fit(docs, order=args.order, min_count=args.min_count, progress=True)
        t0 = time.perf_counter()
        model.save(out)
        log.info(
            "saved %s (%.1f MiB) in %.1fs; tables %.0f MiB, peak RSS %.0f MiB",
            out,
            out.stat().st_size / 2**20,
            time.perf_counter() - t0,
            model.nbytes() / 2**20,
            _peak_rss_mib(),
        )
    if args.eval_docs > 0:
        docs_eval = _eval_docs(args.corpus[0], args.eval_docs)
        res = evaluate(model, docs_eval, n_queries=args.eval_queries, k=args.eval_k)
        log.info("eval on %d held-out docs (k=%d): %s", len(docs_eval), args.eval_k, _rounded(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())

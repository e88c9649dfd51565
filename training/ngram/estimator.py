"""The n-gram estimator: documents to interpolated modified Kneser-Ney tables, and their file.

Why a module of its own: fitting is a batch job over the whole corpus (numpy over millions of
positions), while the query side (:mod:`training.ngram.query`) answers one keystroke at a
time; they share only the tables built here.

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
"""

from __future__ import annotations

import gzip
import logging
import os
import time
from array import array
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Self

import numpy as np

from model.text import words

log = logging.getLogger(__name__)

BOS = "<s>"
EOS = "</s>"
UNK = "<unk>"
FORMAT_VERSION = 1

HistTop = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


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


class NgramEstimator:
    """Fits and stores the tables of a word n-gram model; see the module doc.

    ``top_cache`` and ``big_range`` shape the per-history top lists precomputed at fit time
    (the best ``top_cache`` words of every history with more than ``big_range`` of them).
    :class:`training.ngram.query.NgramModel` adds the queries.
    """

    def __init__(self, top_cache: int = 16, big_range: int = 16) -> None:
        if top_cache < 1 or big_range < 1:
            raise ValueError("top_cache and big_range must be positive")
        self.top_cache = top_cache
        self.big_range = big_range
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
        self._tables_ready()

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

    def tokens(self) -> list[str]:
        """Every token id's string: the words (sorted), then ``<unk>``, ``</s>``, ``<s>``."""
        return [*self._words, UNK, EOS, BOS]

    def _tables_ready(self) -> None:
        """Called whenever the tables are replaced (construction, fit, load).

        The estimator itself needs nothing more; the query side builds its indexes here.
        """

    # ------------------------------------------------------------------ fit

    def fit(
        self,
        docs: Iterable[str],
        order: int = 3,
        min_count: int = 2,
        progress: bool = False,
    ) -> Self:
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
        self._tables_ready()
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
    def load(cls, path: str | os.PathLike[str]) -> Self:
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
        model._tables_ready()
        return model


"""The n-gram query side: exact top-k next words by typed fragment, and token probabilities.

Why a module of its own: it answers one keystroke at a time from the tables that
:mod:`training.ngram.estimator` fits and loads (see there for the model and the table
layout), so everything here is shaped for per-call speed.

``predict`` is exact, not a heuristic: if ``w`` is in the true top-k of the interpolated
probability ``f``, and ``m`` is the highest order where ``(history_m, w)`` was seen, then
``w`` is among the top-k of order ``m``'s own probabilities in the fragment range (any word
that beats it there also beats it under ``f``, because ``f(w') >= gammas * P_m(w')``). So
the candidates are the top-k of each order's slice plus the top-k unigrams with the
fragment, scored exactly and merged (with an early stop once nothing lower can win).

Speed: the per-call work is Python on small tuples, because each small numpy call costs
microseconds. The best words of every big history are ranked at fit time and stored; the
best words of every common prefix (unigram fallback) at load time; a history's rows become
cached Python tuples on first use (big ones only once they are reused), and a big fragment
span in a history is ranked once and memoised. The caches are bounded (``cache_rows``) and
dropped wholesale when full.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Iterable, Sequence
from operator import itemgetter

import numpy as np

from model.text import WORD_RE, words
from training.ngram.estimator import BOS, EOS, NgramEstimator

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



class NgramModel(NgramEstimator):
    """Word n-gram next-word model (interpolated modified Kneser-Ney); see the module doc.

    ``top_cache`` is how many candidates the precomputed top lists keep (a ``predict`` with a
    larger ``k`` computes its lists on the fly, still exactly); ``big_range`` is the slice
    size above which a history or a prefix gets such a list; ``cache_rows`` bounds the
    continuation rows kept as Python tuples for fast repeated queries (~100 bytes a row, so
    ~200 MB at the default; the evaluator's millions of calls profit, a server may want less).
    Fitting, saving and loading are :class:`NgramEstimator`'s.
    """

    def __init__(self, top_cache: int = 16, big_range: int = 16, cache_rows: int = 2_000_000) -> None:
        self.cache_rows = cache_rows
        super().__init__(top_cache=top_cache, big_range=big_range)

    def _tables_ready(self) -> None:
        """Word look-ups, the prefix index and empty caches for the new tables."""
        self._build_lookup()
        self._build_index()

    # ------------------------------------------------------------------ ids

    def _build_lookup(self) -> None:
        self._word_id: dict[str, int] = {w: i for i, w in enumerate(self._words)}
        self._ctx_id = dict(self._word_id)
        self._ctx_id[BOS] = self.bos_id  # context tails use "<s>" for the document start

    def token_id(self, token: str) -> int:
        """Id of a word, of ``</s>``/``<unk>``; anything unknown is ``<unk>``."""
        if token == EOS:
            return self.eos_id
        return self._word_id.get(token, self.unk_id)

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

"""The prefix-state cache: longest-prefix lookup, byte-bounded LRU, and no effect on results."""

from __future__ import annotations

import math

import torch

from model.batching import drive
from model.prefix_cache import PrefixStateCache, StepMemo
from model.suggest import suggest


def _entry(width: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(1, 1, width), torch.zeros(1, 10)


def test_longest_cached_prefix_is_found() -> None:
    cache = PrefixStateCache(1_000_000)
    cache.insert([1, 2], *_entry())
    cache.insert([1, 2, 3, 4], *_entry())
    assert cache.lookup([1, 2, 3, 4, 5, 6]).ids == (1, 2, 3, 4)
    assert cache.lookup([1, 2, 3]).ids == (1, 2)
    assert cache.lookup([1, 2, 3, 4]).ids == (1, 2, 3, 4)
    assert cache.lookup([9, 1, 2]) is None
    assert (cache.hits, cache.misses) == (3, 1)


def test_lru_eviction_keeps_within_byte_budget() -> None:
    one = _entry()
    size = PrefixStateCache(10**9)
    size.insert([1], *one)
    per_entry = size.nbytes
    cache = PrefixStateCache(3 * per_entry + 10)
    for i in range(3):
        cache.insert([i], *one)
    cache.lookup([0])  # 0 is now most recently used
    cache.insert([3], *one)
    assert cache.nbytes <= cache.max_bytes and len(cache) == 3
    assert cache.lookup([1]) is None  # the least recently used went first
    assert cache.lookup([0]) is not None and cache.lookup([3]) is not None


def test_disabled_cache_stores_nothing() -> None:
    cache = PrefixStateCache(0)
    cache.insert([1, 2], *_entry())
    assert cache.lookup([1, 2]) is None and len(cache) == 0


def test_cached_and_uncached_results_are_identical(gru_lm, lstm_lm) -> None:
    typed = "I think the movie was wonderful. Honestly the story was great"
    for lm in (gru_lm, lstm_lm):
        cache = PrefixStateCache(64 * 1024 * 1024)
        prefilled_with_cache = 0
        for end in range(1, len(typed) + 1):
            text = typed[:end]
            cached = drive(lm.module, [suggest(lm, text, 3, 2, cache)])[0]
            plain = drive(lm.module, [suggest(lm, text, 3, 2, None)])[0]
            prefilled_with_cache += cached.prefilled_tokens
            assert [w for w, _ in cached.suggestions] == [w for w, _ in plain.suggestions], text
            for (_, p1), (_, p2) in zip(cached.suggestions, plain.suggestions, strict=True):
                assert abs(math.log(p1) - math.log(p2)) < 1e-5
            assert (cached.completion is None) == (plain.completion is None)
            if cached.completion and plain.completion:
                assert cached.completion[0] == plain.completion[0]
        assert cache.hits > 0
        # Typing reads each context token about once instead of once per keystroke.
        assert prefilled_with_cache < 2 * len(lm.tokenizer.encode(typed))


def test_step_memo_entries_are_prefixes_of_their_context() -> None:
    # A beam step memoised after a context is an ordinary prefix entry: the next context
    # (the word typed, then a space) finds it by the usual longest-prefix lookup.
    cache = PrefixStateCache(1_000_000)
    memo = StepMemo(cache, [0, 5, 6])
    assert memo.get((7,)) is None
    memo.put((7,), *_entry())
    memo.put((7, 8), *_entry())
    assert memo.get((7, 8)) is not None and memo.get((8,)) is None
    assert cache.lookup([0, 5, 6, 7, 9]).ids == (0, 5, 6, 7)
    assert cache.lookup([0, 5, 6, 7, 8]).ids == (0, 5, 6, 7, 8)
    assert StepMemo(cache, [0, 5]).get((6, 7)) is not None  # same ids, another split
    assert StepMemo(cache, [1, 5, 6]).get((7,)) is None


def test_long_contexts_memo_and_lookup_agree() -> None:
    # Contexts far longer than any seen before (whole reviews): the vectorised prefix hashes of
    # a lookup and the step-by-step hashes of the memo must still address the same entries.
    context = [(i * 7919) % 8000 for i in range(9000)]
    cache = PrefixStateCache(10_000_000)
    StepMemo(cache, context).put((11, 12), *_entry())
    assert cache.lookup([*context, 11, 12, 13]).ids == (*context, 11, 12)
    assert cache.lookup([*context[:-1], 5, 11, 12]) is None  # one id differs: no false hit
    assert StepMemo(cache, [*context, 11]).get((12,)) is not None


def test_a_repeated_request_costs_no_model_call(gru_lm, lstm_lm) -> None:
    for lm in (gru_lm, lstm_lm):
        cache = PrefixStateCache(64 * 1024 * 1024)
        for text in ("The movie was really", "The movie was really go", "I liked it "):
            first = drive(lm.module, [suggest(lm, text, 3, 2, cache)])[0]
            again = suggest(lm, text, 3, 2, cache)
            try:
                call = next(again)
            except StopIteration as stop:  # answered from the cache alone
                assert stop.value.suggestions == first.suggestions
                assert stop.value.completion == first.completion
            else:
                raise AssertionError(f"{text!r}: a repeated request still ran the network ({call.rows} rows)")

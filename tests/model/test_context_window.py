"""The bounded context read: cut at a word, at most a window long, cache-friendly as text grows."""

from __future__ import annotations

import itertools

import torch

from model.batching import drive
from model.prefix_cache import PrefixStateCache
from model.suggest import DecodeOptions, context_window, prompt_parts, suggest, text_tail

EOS = 0


def starts(n: int, every: int = 3) -> torch.Tensor:
    """A vocabulary where every ``every``-th id begins a word."""
    mask = torch.zeros(n, dtype=torch.bool)
    mask[::every] = True
    return mask


def test_a_short_context_is_read_whole_and_zero_means_no_bound():
    ids = [EOS, *range(1, 20)]
    assert context_window(ids, starts(100), 64) == ids
    assert context_window([EOS, *range(1, 90)], starts(100), 0) == [EOS, *range(1, 90)]


def test_a_long_context_keeps_its_eos_and_at_most_a_window_starting_at_a_word():
    word_start = starts(1000)
    for length in range(65, 400):
        ids = [EOS, *range(1, length)]
        cut = context_window(ids, word_start, 64)
        body = cut[1:]
        assert cut[0] == EOS and body == ids[len(ids) - len(body):]  # the text's end, unchanged
        if length - 1 > 64:  # cut: half a window to a window, from a word's first piece
            assert 32 - 3 <= len(body) <= 64 and bool(word_start[body[0]])


def test_consecutive_contexts_share_their_start_between_moves():
    """Typing on extends the same window (prefix-cache hits) until it moves, half a window at a time."""
    word_start = starts(1000)
    windows = [context_window([EOS, *range(1, n)], word_start, 64) for n in range(100, 300)]
    moves = sum(1 for a, b in itertools.pairwise(windows) if b[: len(a)] != a)
    assert 5 <= moves <= 8  # 200 more pieces in steps of 32


def test_the_network_reads_exactly_the_window(gru_lm):
    """Bounded, a long text is read as its last window alone: same state as prefilling just it."""
    text = "I think the movie was great and the acting was good, but the ending was weak. " * 6 + "The "
    options = DecodeOptions(context_pieces=24)
    ids, _, _, _ = prompt_parts(gru_lm, text, 0)
    cut, _, _, _ = prompt_parts(gru_lm, text, 24)
    # Of a text this long only the end is tokenised (text_tail); the window is cut from its ids.
    tail_ids, _, _, _ = prompt_parts(gru_lm, text_tail(text, 24 * gru_lm.tokenizer.max_piece_chars), 0)
    assert cut == context_window(tail_ids, gru_lm.tokenizer.word_start, 24)
    assert len(cut) < len(ids)
    cache = PrefixStateCache(1 << 24)
    [bounded] = drive(gru_lm.module, [suggest(gru_lm, text, 3, 0, cache, options)])
    assert bounded.context_tokens == bounded.prefilled_tokens == len(cut)
    entry = cache.lookup(cut)
    assert entry is not None and list(entry.ids) == cut
    with torch.no_grad():
        logp, state = gru_lm.module.prefill(torch.tensor([cut]), torch.tensor([len(cut)]), gru_lm.zero_state)
    assert torch.allclose(entry.logp, logp, atol=1e-5) and torch.allclose(entry.state, state, atol=1e-5)
    # Typing on inside the window: the cache answers from the same prefix, nothing is read again.
    [again] = drive(gru_lm.module, [suggest(gru_lm, text + "m", 3, 0, cache, options)])
    assert again.cache_hit and again.prefilled_tokens == 0


def test_a_long_text_is_read_from_its_tail_cut_at_whitespace_in_steps():
    """An editor sends the whole e-mail: only the end the window reads is normalised and tokenised."""
    text = "".join(f"word{i} " for i in range(3000))  # 22,890 characters
    keep = 16 * 64  # 64 pieces of at most 16 characters
    tail = text_tail(text, keep)
    assert text.endswith(tail) and keep <= len(tail) <= keep * 3 // 2 and tail[0] == " "
    assert text_tail(text[: keep * 3 // 2], keep) == text[: keep * 3 // 2]  # short enough: whole
    assert text_tail(text, 0) == text
    # Typing on moves the cut half of `keep` at a time, so consecutive keystrokes share their start.
    starts = {len(text[:n]) - len(text_tail(text[:n], keep)) for n in range(15_000, 20_000)}
    assert len(starts) <= 5000 // (keep // 2) + 2  # the first start, then a move every keep // 2 characters


def test_a_long_texts_window_is_the_same_text_end(gru_lm):
    assert gru_lm.tokenizer.max_piece_chars == max(len(s) for s in gru_lm.tokenizer.surfaces) > 1
    text = "I think the movie was great and the acting was good, but the ending was weak. " * 300 + "The mo"
    cut, fragment, _, _ = prompt_parts(gru_lm, text, 24)
    whole, same_fragment, _, _ = prompt_parts(gru_lm, text, 0)
    assert fragment == same_fragment == "mo"
    assert len(cut) <= 25 and cut[0] == gru_lm.eos_id and whole[-(len(cut) - 1):] == cut[1:]

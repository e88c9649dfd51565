"""The next-word decoder: exact word scores, fragment constraints, phrase completion."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from model.batching import drive
from model.decoder import PhraseCalibration, _Hyp, complete_phrase, next_words
from model.lexicon import Lexicon
from model.prefix_cache import PrefixStateCache, StepMemo
from model.suggest import DecodeOptions, insertion_text, suggest
from model.text import WORD_RE
from model.tokenizer import PieceTokenizer

SHOW_ANY_PHRASE = DecodeOptions(completion_threshold=0.0)  # the phrase's shape is under test, not the threshold


class BigramModule:
    """A stand-in network whose next-piece distribution depends on the last piece only."""

    def __init__(self, vocab: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.table = torch.log_softmax(torch.randn(vocab, vocab, generator=g) * 3, dim=-1)

    def step(self, tokens: torch.Tensor, state: torch.Tensor):
        return self.table[tokens], tokens.view(-1, 1, 1).float()

    def prefill(self, tokens: torch.Tensor, lengths: torch.Tensor, state: torch.Tensor):
        last = tokens[torch.arange(tokens.size(0)), lengths - 1]
        return self.step(last, state)


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> PieceTokenizer:
    from training.corpus import train_tokenizer

    path = tmp_path_factory.mktemp("sp") / "sp.model"
    docs = ["the movie was great", "the moment was magic", "a most moving film", "more movies", "mo"] * 40
    train_tokenizer(docs, 290, path)
    return PieceTokenizer(path.read_bytes())


def brute_force_word_logp(tok: PieceTokenizer, module: BigramModule, start: int, word: str) -> float:
    """log P(word) summed over every segmentation of " word" into pieces, times P(boundary)."""
    target = " " + word
    total = -math.inf

    def walk(prev: int, pos: int, score: float, first: bool) -> None:
        nonlocal total
        if pos == len(target):
            end = float(torch.logsumexp(module.table[prev][tok.boundary], 0))
            total = float(torch.logaddexp(torch.tensor(total), torch.tensor(score + end)))
            return
        for i, surface in enumerate(tok.surfaces):
            allowed = tok.word_start[i] if first else tok.continuation[i]
            if surface and allowed and target.startswith(surface, pos):
                walk(i, pos + len(surface), score + float(module.table[prev][i]), False)

    walk(start, 0, 0.0, True)
    return total


def brute_force_prefix_logp(tok: PieceTokenizer, module: BigramModule, start: int, fragment: str) -> float:
    """log P(the continuation's text starts with " fragment"), summed over every way pieces type it."""
    target = " " + fragment
    terms: list[float] = []

    def walk(prev: int, pos: int, score: float, first: bool) -> None:
        rest = target[pos:]
        for i, surface in enumerate(tok.surfaces):
            allowed = tok.word_start[i] if first else tok.continuation[i]
            if not surface or not allowed:
                continue
            if surface.startswith(rest):
                terms.append(score + float(module.table[prev][i]))
            elif rest.startswith(surface):
                walk(i, pos + len(surface), score + float(module.table[prev][i]), False)

    walk(start, 0, 0.0, True)
    return float(torch.logsumexp(torch.tensor(terms), 0))


def run(module: BigramModule, gen):
    """Drive a decoder generator with ``module``, one call at a time."""
    result = None
    try:
        call = next(gen)
        while True:
            logp, state = module.step(torch.tensor([t[0] for t in call.tokens]), call.state)
            call = gen.send((logp, state))
    except StopIteration as stop:
        result = stop.value
    return result


@pytest.mark.parametrize("fragment", ["", "mo", "m", "movi"])
def test_word_scores_are_exact_over_all_segmentations(tok: PieceTokenizer, fragment: str) -> None:
    module = BigramModule(tok.vocab_size)
    start = tok.eos_id
    logp, state = module.step(torch.tensor([start]), torch.zeros(1, 1, 1))
    result = run(module, next_words(tok, logp, state, fragment, True, k=5, beam=tok.vocab_size, max_pieces=12,
                                    prune=False))
    found = result.words
    assert found, "exhaustive search finds words"
    for word, score in found:
        assert word.startswith(fragment) and len(word) > len(fragment) and WORD_RE.fullmatch(word)
        assert score == pytest.approx(brute_force_word_logp(tok, module, start, word), abs=1e-4)
    scores = [s for _, s in found]
    assert scores == sorted(scores, reverse=True)
    # The typed text itself is not proposed, but its probability of being the whole word is exact.
    if fragment:
        assert result.typed_logp == pytest.approx(brute_force_word_logp(tok, module, start, fragment), abs=1e-4)
    else:
        assert result.typed_logp is None
    # What the completions are conditioned on, exact when the beam spans everything: P(the text
    # starts with " " + fragment); with no fragment, P(it starts with the typed space). Every word and
    # the typed text fit inside it.
    space = float(torch.logsumexp(logp[0][[i for i, s in enumerate(tok.surfaces) if s.startswith(" ")]], 0))
    expected = brute_force_prefix_logp(tok, module, start, fragment) if fragment else space
    assert result.fragment_logp == pytest.approx(expected, abs=1e-4)
    assert result.outside_logp == pytest.approx(space, abs=1e-4)
    inside = [s for _, s in found] + ([result.typed_logp] if result.typed_logp is not None else [])
    assert float(torch.logsumexp(torch.tensor(inside), 0)) <= result.fragment_logp + 1e-5
    assert result.fragment_logp <= result.outside_logp + 1e-5


def rows_of(module: BigramModule, gen) -> tuple[object, int]:
    """``run``, also counting the rows the decoder asked the network for."""
    rows = 0
    try:
        call = next(gen)
        while True:
            rows += call.rows
            logp, state = module.step(torch.tensor([t[0] for t in call.tokens]), call.state)
            call = gen.send((logp, state))
    except StopIteration as stop:
        return stop.value, rows


@pytest.mark.parametrize("fragment", ["", "mo", "m", "movi"])
@pytest.mark.parametrize("beam", [6, 40])
def test_pruning_keeps_the_words_and_their_order(tok: PieceTokenizer, fragment: str, beam: int) -> None:
    # A pair that alone cannot reach the k shown is not followed: the same words come back in the
    # same order, each missing at most the mass of a segmentation the search no longer follows.
    module = BigramModule(tok.vocab_size)
    logp, state = module.step(torch.tensor([tok.eos_id]), torch.zeros(1, 1, 1))
    full, full_rows = rows_of(module, next_words(tok, logp, state, fragment, True, k=3, beam=beam, prune=False))
    pruned, pruned_rows = rows_of(module, next_words(tok, logp, state, fragment, True, k=3, beam=beam))
    assert [w for w, _ in pruned.words] == [w for w, _ in full.words]
    for (_, a), (_, b) in zip(pruned.words, full.words, strict=True):
        assert a <= b + 1e-6 and a == pytest.approx(b, abs=0.01)
    assert pruned_rows <= full_rows
    if fragment == "mo":  # here the full search follows pairs that cannot reach the three shown
        assert pruned_rows < full_rows


def flat_beam_next_words(tok: PieceTokenizer, module: BigramModule, start: int, fragment: str, k: int,
                         beam: int) -> list[tuple[str, float]]:
    """The beam search written plainly: each step ranks every (hypothesis, piece) pair at once."""
    from model.decoder import _allowed, _is_whole_word, _log_boundary_mass, _mask_key

    logp, _ = module.step(torch.tensor([start]), torch.zeros(1, 1, 1))
    hyps: list[tuple[str, float, int]] = [("", 0.0, start)]  # text, score, last piece
    finals: dict[str, float] = {}
    for _ in range(10):
        for i, (text, score, _) in enumerate(hyps):
            word = text.lstrip(" ")
            if word and len(word) > len(fragment) and _is_whole_word(word, fragment):
                end = float(_log_boundary_mass(tok, logp[i : i + 1])[0])
                finals[word] = float(torch.logaddexp(torch.tensor(finals.get(word, -math.inf)),
                                                     torch.tensor(score + end)))
        masks = torch.stack([_allowed(tok, *_mask_key(_Hyp(t, s), fragment, True)) for t, s, _ in hyps])
        scores = (torch.tensor([s for _, s, _ in hyps]).unsqueeze(1) + logp).masked_fill(~masks, -math.inf)
        top = torch.topk(scores.flatten(), beam)
        keep = [(v, j) for v, j in zip(top.values.tolist(), top.indices.tolist(), strict=True) if v > -math.inf]
        if not keep or (len(finals) >= k and keep[0][0] <= sorted(finals.values(), reverse=True)[k - 1]):
            break
        rows_pieces = [(divmod(j, tok.vocab_size), v) for v, j in keep]
        hyps = [(hyps[r][0] + tok.surfaces[p], v, p) for (r, p), v in rows_pieces]
        logp, _ = module.step(torch.tensor([p for _, _, p in hyps]), torch.zeros(len(hyps), 1, 1))
    return sorted(finals.items(), key=lambda kv: kv[1], reverse=True)[:k]


@pytest.mark.parametrize("beam", [2, 5])
@pytest.mark.parametrize("fragment", ["", "m", "mo", "mov"])
def test_each_beam_step_keeps_the_best_of_all_pairs(tok: PieceTokenizer, fragment: str, beam: int) -> None:
    # The decoder takes each hypothesis's own best pieces and merges them (and notes them on the
    # cached prefix for later keystrokes); that must keep exactly what ranking every pair keeps,
    # with the cache or without it.
    module = BigramModule(tok.vocab_size, seed=3)
    start = tok.eos_id
    expected = flat_beam_next_words(tok, module, start, fragment, k=3, beam=beam)
    cache = PrefixStateCache(16 * 1024 * 1024)
    logp, state = module.step(torch.tensor([start]), torch.zeros(1, 1, 1))
    cache.insert([start], state, logp)
    for memo in (None, StepMemo(cache, [start]), StepMemo(cache, [start])):  # the last one reads notes
        found = run(module, next_words(tok, logp, state, fragment, True, k=3, beam=beam, memo=memo)).words
        assert [w for w, _ in found] == [w for w, _ in expected]
        assert [s for _, s in found] == pytest.approx([s for _, s in expected], abs=1e-5)


def test_consistent_ids_are_the_mask_as_a_list(tok: PieceTokenizer) -> None:
    for needed in (" m", " mo", "vie", "s", " most"):
        assert list(tok.consistent_ids(needed)) == tok.consistent_with(needed).nonzero().flatten().tolist()
        assert all(tok.surfaces[i].startswith(needed) or needed.startswith(tok.surfaces[i])
                   for i in tok.consistent_ids(needed))


def test_a_fragment_that_is_a_word_is_completed_not_repeated(gru_lm) -> None:
    """Typed "the": "the" itself would insert nothing; the slots go to "there", "them", ..."""
    for text in ["I saw the", "It was a", "I"]:
        fragment = text.split()[-1]
        result = drive(gru_lm.module, [suggest(gru_lm, text, k=5)])[0]
        assert result.fragment == fragment
        assert len(result.suggestions) == 5, text
        assert all(w.startswith(fragment) and w != fragment for w, _ in result.suggestions), result.suggestions
    # The model's favourite next word, typed out without its space, is completed, not echoed;
    # the probability that it is already whole is reported instead: before typing it was `prob`,
    # and given that its letters are typed it is higher by exactly P(those letters come next).
    for context in ["I saw ", "The movie was ", "This is "]:
        [(best, prob)] = drive(gru_lm.module, [suggest(gru_lm, context, k=1)])[0].suggestions
        typed = drive(gru_lm.module, [suggest(gru_lm, context + best, k=5)])[0]
        assert typed.fragment == best
        assert all(w.startswith(best) and w != best for w, _ in typed.suggestions), (best, typed.suggestions)
        assert typed.fragment_prob < 1.0
        assert typed.typed_word_prob * typed.fragment_prob == pytest.approx(prob, rel=1e-3)
        assert typed.typed_word_prob > prob
    untyped = drive(gru_lm.module, [suggest(gru_lm, "I saw ", k=3)])[0]
    assert untyped.typed_word_prob == 0.0 and untyped.fragment_prob == 1.0


def test_fragment_suggestions_all_start_with_fragment(gru_lm) -> None:
    for text in ["I think the mo", "Honestly the f", "My friends said the movie was b", "I really felt the s"]:
        result = drive(gru_lm.module, [suggest(gru_lm, text, k=5)])[0]
        assert result.fragment == text.split()[-1]
        assert result.suggestions, text
        assert all(w.startswith(result.fragment) for w, _ in result.suggestions)


def test_single_piece_and_multi_piece_words_are_found(gru_lm) -> None:
    from tests.conftest import ADJECTIVES, NOUNS

    vocab = ADJECTIVES + NOUNS
    pieces = {w: len(gru_lm.tokenizer.encode(" " + w)) for w in vocab}
    multi = max(vocab, key=lambda w: pieces[w])
    assert pieces[multi] > 2
    single = [w for w in ["the", "was", *vocab] if len(gru_lm.tokenizer.encode(" " + w)) == 1]
    assert single, "the tiny tokenizer keeps some words whole"
    for word, context in ((single[0], "I think the movie "), (multi, "I think the movie was ")):
        text = context + word[: max(1, len(word) - 2)]
        words = [w for w, _ in drive(gru_lm.module, [suggest(gru_lm, text, k=10)])[0].suggestions]
        assert word in words, (text, words)


@pytest.mark.parametrize("attached", [True, False])
def test_a_word_keeps_the_spacing_it_is_likelier_with(tok: PieceTokenizer, attached: bool) -> None:
    """After text ending without a space ("Mr.", "john@") a word may take a space or attach; the
    client inserts what the decoder found likelier, so that is what a suggestion's text carries."""
    pairs = [(a, b) for a, sa in enumerate(tok.surfaces) for b, sb in enumerate(tok.surfaces)
             if tok.starts_word[a] and tok.continues_word[b] and sa == " " + sb and WORD_RE.fullmatch(sb)]
    spaced_id, attached_id = pairs[0]
    word = tok.surfaces[attached_id]
    module = BigramModule(tok.vocab_size)
    start = tok.eos_id
    row = torch.full((tok.vocab_size,), -20.0)
    row[attached_id if attached else spaced_id] = 0.0
    row[spaced_id if attached else attached_id] = -1.0  # the same word, the other spelling: less likely
    module.table[start] = torch.log_softmax(row, -1)
    for piece in (spaced_id, attached_id):  # both end the word at once
        module.table[piece] = torch.log_softmax(torch.where(tok.boundary, 0.0, -20.0), -1)
    logp, state = module.step(torch.tensor([start]), torch.zeros(1, 1, 1))
    found = run(module, next_words(tok, logp, state, "", False, k=3, beam=8))
    assert found.words[0][0] == word
    assert found.words[0][1] == pytest.approx(math.log(math.exp(0.0) + math.exp(-1.0)) - math.log(
        math.exp(0.0) + math.exp(-1.0) + (tok.vocab_size - 2) * math.exp(-20.0)), abs=1e-3)  # both spellings count
    assert (word in found.spaced) is not attached
    assert insertion_text(word, "", False, word in found.spaced) == (word if attached else " " + word)
    # After a space, or inside a word, the spacing is already typed: the text never adds one.
    assert insertion_text(word, "", True, True) == word
    assert insertion_text("report", "rep", False, True) == "ort"


def test_suggestion_texts_complete_what_is_typed(gru_lm) -> None:
    for text in ["I think the ", "I think the mo", "I think (", "I think the movie."]:
        result = drive(gru_lm.module, [suggest(gru_lm, text, k=5)])[0]
        assert len(result.insertions) == len(result.suggestions) > 0, text
        for (word, _), inserted in zip(result.suggestions, result.insertions, strict=True):
            assert inserted.lstrip(" ") == word[len(result.fragment):], (text, word, inserted)
            assert not inserted.startswith(" ") or not (text.endswith(" ") or result.fragment), (text, inserted)


def test_word_must_follow_a_space_unless_attached(gru_lm) -> None:
    spaced = drive(gru_lm.module, [suggest(gru_lm, "I think the ", k=5)])[0]
    assert spaced.suggestions
    attached = drive(gru_lm.module, [suggest(gru_lm, "I think (", k=5)])[0]
    assert attached.fragment == "" and all(WORD_RE.fullmatch(w) for w, _ in attached.suggestions)


def test_phrase_completion_stops_at_punctuation_or_word_budget(gru_lm) -> None:
    for max_words in (1, 2, 5):
        prompt = "I think the movie was "
        result = drive(gru_lm.module, [suggest(gru_lm, prompt, 3, max_words, options=SHOW_ANY_PHRASE)])[0]
        assert result.completion is not None
        text, confidence = result.completion
        assert 0 < confidence <= 1
        n_words = len(WORD_RE.findall(text))
        assert 1 <= n_words <= max_words
        # It stops at a word's end or right after sentence punctuation, never inside a word or after
        # a space, and nothing follows a sentence end.
        assert text == text.rstrip() and (text[-1].isalnum() or text[-1] in ".!?'"), text
        for mark in ".!?":
            if mark in text[:-1]:
                assert not WORD_RE.search(text[text.index(mark) :]), text


def test_phrase_completion_continues_the_typed_fragment(gru_lm) -> None:
    result = drive(gru_lm.module, [suggest(gru_lm, "I think the mo", 3, 3, options=SHOW_ANY_PHRASE)])[0]
    assert result.completion is not None
    full = "mo" + result.completion[0]
    first_word = WORD_RE.match(full).group(0)
    assert first_word.startswith("mo") and len(first_word) > 2  # the typed word is completed, not repeated
    assert not result.completion[0].startswith(" ")  # the fragment's word continues first


def test_phrase_search_returns_none_without_finished_hypotheses(tok: PieceTokenizer) -> None:
    module = BigramModule(tok.vocab_size)
    logp, state = module.step(torch.tensor([tok.eos_id]), torch.zeros(1, 1, 1))
    out = run(module, complete_phrase(tok, logp, state, "zzzq", True, 2, 2, None, PhraseCalibration(), 0.0))
    assert out is None  # no piece can spell the fragment: nothing to propose


def test_phrase_confidence_is_the_calibrated_sequence_probability(tok: PieceTokenizer) -> None:
    """With the identity calibration the shown phrase's confidence is exactly P(its pieces, then its end)."""
    from model.decoder import phrase_candidates

    module = BigramModule(tok.vocab_size, seed=3)
    logp, state = module.step(torch.tensor([tok.eos_id]), torch.zeros(1, 1, 1))
    candidates = run(module, phrase_candidates(tok, logp, state, "", True, 2, 4))
    assert candidates
    for c in candidates:
        assert c.words <= 2 and c.logp <= 0
    best = max(candidates, key=lambda c: (math.exp(c.logp) * (c.inserted - 1), c.words, c.sentence_end, c.logp))
    text, conf = run(module, complete_phrase(tok, logp, state, "", True, 2, 4, None, PhraseCalibration(), 0.0))
    assert text == best.text and conf == pytest.approx(math.exp(best.logp), rel=1e-6)
    # A threshold no candidate reaches prunes every hypothesis early: nothing to show.
    assert max(math.exp(c.logp) for c in candidates) < 0.999
    assert run(module, complete_phrase(tok, logp, state, "", True, 2, 4, None, PhraseCalibration(), 0.999)) is None


@pytest.mark.parametrize("fragment", ["mo", "m"])
def test_mid_word_ghost_text_is_conditioned_like_the_suggestions(tok: PieceTokenizer, fragment: str) -> None:
    """Inside a word, a one-word phrase and the same word's suggestion carry one probability.

    The phrase search conditions on the next-word search's ``fragment_logp``; exhaustive searches
    (beam over the whole vocabulary) make both exact, so they must agree to rounding.
    """
    from model.decoder import phrase_candidates

    module = BigramModule(tok.vocab_size, seed=5)
    logp, state = module.step(torch.tensor([tok.eos_id]), torch.zeros(1, 1, 1))
    words = run(module, next_words(tok, logp, state, fragment, True, k=5, beam=tok.vocab_size, max_pieces=12))
    candidates = run(module, phrase_candidates(tok, logp, state, fragment, True, 1, tok.vocab_size,
                                               given=words.fragment_logp))
    by_text = {c.text.strip(): c.logp for c in candidates if not c.sentence_end}
    for word, score in words.words:
        assert by_text[word] == pytest.approx(score - words.fragment_logp, abs=1e-4), word
    # Conditioned on the looser first-piece mass instead, every probability is at most as high.
    loose = run(module, phrase_candidates(tok, logp, state, fragment, True, 1, tok.vocab_size))
    assert all(c.logp <= by_text.get(c.text.strip(), math.inf) + 1e-9 for c in loose if not c.sentence_end)


@pytest.mark.parametrize(("fragment", "require_space"), [("", True), ("mo", True), ("", False)])
def test_a_candidate_counts_what_its_tab_inserts(tok: PieceTokenizer, fragment: str, require_space: bool) -> None:
    """What the phrase choice weighs is what the server inserts: the text less the fragment and a typed space."""
    from model.decoder import phrase_candidates, typed_part_removed

    module = BigramModule(tok.vocab_size, seed=5)
    logp, state = module.step(torch.tensor([tok.eos_id]), torch.zeros(1, 1, 1))
    candidates = run(module, phrase_candidates(tok, logp, state, fragment, require_space, 2, 8))
    assert candidates
    for c in candidates:
        assert c.inserted == len(typed_part_removed(c.text, fragment, require_space)), c.text


@pytest.mark.parametrize("fragment", ["", "mo"])
def test_with_a_lexicon_only_its_words_are_proposed_in_the_models_order(tok: PieceTokenizer, fragment: str) -> None:
    """A lexicon removes strings that are not words; the words it keeps come in the same order."""
    module = BigramModule(tok.vocab_size, seed=7)
    logp, state = module.step(torch.tensor([tok.eos_id]), torch.zeros(1, 1, 1))
    ranked = [w for w, _ in run(module, next_words(tok, logp, state, fragment, True, k=40, beam=64)).words]
    assert len(ranked) >= 12
    lexicon = Lexicon(ranked[1::2])  # the model's favourite is not a word, nor every second one after it
    found = run(module, next_words(tok, logp, state, fragment, True, k=3, beam=64, lexicon=lexicon))
    assert [w for w, _ in found.words] == ranked[1:7:2]
    # The typed fragment's own probability does not depend on the lexicon.
    plain = run(module, next_words(tok, logp, state, fragment, True, k=3, beam=64))
    assert found.typed_logp == plain.typed_logp


def test_with_a_lexicon_no_phrase_holds_another_string(tok: PieceTokenizer) -> None:
    from model.decoder import phrase_candidates

    module = BigramModule(tok.vocab_size, seed=3)
    logp, state = module.step(torch.tensor([tok.eos_id]), torch.zeros(1, 1, 1))
    everything = run(module, phrase_candidates(tok, logp, state, "", True, 2, 8))
    seen = sorted({w for c in everything for w in WORD_RE.findall(c.text)})
    lexicon = Lexicon(seen[::2])
    kept = run(module, phrase_candidates(tok, logp, state, "", True, 2, 8, lexicon=lexicon))
    assert kept == [c for c in everything if all(w in lexicon for w in WORD_RE.findall(c.text))]
    assert 0 < len(kept) < len(everything)


def test_the_server_keeps_to_the_models_lexicon_unless_told_not_to(gru_lm) -> None:
    text = "I think the movie was "
    free = drive(gru_lm.module, [suggest(gru_lm, text, k=6)])[0]  # the tiny model carries no lexicon
    words = [w for w, _ in free.suggestions]
    with_lexicon = dataclasses.replace(gru_lm, lexicon=Lexicon(words[1:]))
    kept = drive(with_lexicon.module, [suggest(with_lexicon, text, k=3)])[0]
    assert [w for w, _ in kept.suggestions] == words[1:4]
    anything = drive(with_lexicon.module, [suggest(with_lexicon, text, k=3,
                                                   options=DecodeOptions(known_words=False))])[0]
    assert [w for w, _ in anything.suggestions] == words[:3]


def test_with_a_lexicon_negligible_words_are_not_searched_for(tok: PieceTokenizer) -> None:
    """Known words under a thousandth of the likeliest finished string are not worth a slot."""
    from model.decoder import NEGLIGIBLE_LOGP

    module = BigramModule(tok.vocab_size, seed=7)
    logp, state = module.step(torch.tensor([tok.eos_id]), torch.zeros(1, 1, 1))
    ranked = run(module, next_words(tok, logp, state, "", True, k=60, beam=64)).words
    best = ranked[0][1]
    faint = [w for w, score in ranked if score < best + NEGLIGIBLE_LOGP - 2.0]
    assert faint
    found = run(module, next_words(tok, logp, state, "", True, k=3, beam=64, lexicon=Lexicon(faint)))
    assert found.words == []

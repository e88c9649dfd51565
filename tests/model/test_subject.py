"""An e-mail's subject, read before its text by a model that learnt to read one."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from model.artifact import load_artifact
from model.batching import drive
from model.decoder import PhraseCalibration, complete_phrase, next_words
from model.prefix_cache import PrefixStateCache, StepMemo
from model.suggest import (
    HEADER_WORDS,
    SUBJECT_PIECES,
    DecodeOptions,
    context_state,
    context_window,
    header_ids,
    prompt_parts,
    suggest,
    text_tail,
    unread_header_words,
)
from model.text import subject_line


@pytest.fixture(scope="module")
def reader(gru_lm):
    """The tiny GRU with a card that says it reads subjects."""
    return dataclasses.replace(gru_lm, card={**gru_lm.card, "reads_subject": True})


def test_the_subject_line_is_normalised_and_empty_when_there_is_none():
    assert subject_line("  Re:\tlunch  tomorrow\n") == "Subject: lunch tomorrow"
    assert subject_line("") == subject_line(" \n ") == subject_line("RE: ") == ""


def test_reply_and_forward_markers_are_left_out_as_the_corpus_left_them_out():
    assert subject_line("RE: FW: Lunch tomorrow") == subject_line("Fwd:Lunch tomorrow") == "Subject: Lunch tomorrow"
    assert subject_line("re : fw: Lunch") == "Subject: Lunch"
    assert subject_line("Refund: status") == "Subject: Refund: status"  # a word, not a marker
    assert subject_line("Lunch, re: tomorrow") == "Subject: Lunch, re: tomorrow"  # only at the start


def test_only_a_model_that_reads_subjects_gets_the_subject_line(gru_lm, reader):
    assert not gru_lm.reads_subject and reader.reads_subject
    assert header_ids(gru_lm, "Budget") == [gru_lm.eos_id]
    line = reader.tokenizer.encode("Subject: Budget")
    assert header_ids(reader, "Budget") == [reader.eos_id, *line, reader.eos_id]
    assert header_ids(reader, "   ") == [reader.eos_id]
    long = header_ids(reader, "the movie was great " * 100)
    assert len(long) == SUBJECT_PIECES + 2 and long[-1] == reader.eos_id


def test_a_long_text_is_cut_but_its_subject_is_kept(reader):
    text = "I think the movie was great and the acting was good, but the ending was weak. " * 8
    head = header_ids(reader, "Weekend plans")
    ids, _, _, _ = prompt_parts(reader, text, 24, head)
    assert ids[: len(head)] == head
    assert len(ids) - len(head) <= 24
    read = text_tail(text, 24 * reader.tokenizer.max_piece_chars).strip()  # what is read of a text this long: its end
    assert text.rstrip().endswith(read) and len(read) < len(text.strip())
    assert ids == context_window([*head, *reader.tokenizer.encode(read)], reader.tokenizer.word_start, 24, len(head))


def test_the_subject_changes_what_a_reader_proposes_and_nothing_for_others(gru_lm, reader):
    text = "I think the "
    plain, ignored = drive(gru_lm.module, [suggest(gru_lm, text, 5), suggest(gru_lm, text, 5, subject="Acting")])
    assert plain.suggestions == ignored.suggestions and not ignored.subject_read
    without, with_subject = drive(reader.module, [suggest(reader, text, 5), suggest(reader, text, 5,
                                                                                     subject="Acting")])
    assert with_subject.subject_read and not without.subject_read
    assert with_subject.context_tokens > without.context_tokens
    assert with_subject.suggestions != without.suggestions  # another state: other probabilities


def test_keystrokes_under_one_subject_reuse_its_cached_context_and_another_subject_does_not(reader):
    cache = PrefixStateCache(1 << 24)
    options = DecodeOptions()

    def ask(text: str, subject: str):
        return drive(reader.module, [suggest(reader, text, 3, 0, cache, options, subject=subject)])[0]

    first = ask("I think the movie was ", "Plot")
    again = ask("I think the movie was ", "Plot")
    other = ask("I think the movie was ", "Ending")
    assert not first.cache_hit and again.cache_hit and again.suggestions == first.suggestions
    assert not other.cache_hit


def test_a_word_ruled_out_is_never_proposed_and_the_rest_are_renormalised(gru_lm):
    """The decoder's ``exclude``: what a subject reader needs at the start of a text sent without one."""
    logp, state = drive(gru_lm.module, [context_state(gru_lm, [gru_lm.eos_id], None)])[0][:2]

    def search(exclude: frozenset[str], k: int = 6):
        return drive(gru_lm.module, [next_words(gru_lm.tokenizer, logp, state, "", True, k, 8, exclude=exclude)])[0]

    full = search(frozenset())
    top, p_top = full.words[0][0], math.exp(full.words[0][1])
    ruled = search(frozenset({top}))
    assert top not in dict(ruled.words)
    # Conditioned on the start of a text (its first piece starts with a space) less the ruled-out word.
    assert full.fragment_logp == full.outside_logp < 0.0
    assert ruled.fragment_logp == pytest.approx(math.log(math.exp(full.fragment_logp) - p_top))
    assert ruled.outside_logp == ruled.fragment_logp  # with no fragment, all that is left
    # With a fragment, what the fragment is conditioned on is the same whole mass (found, and
    # noted on the context's cache entry, by a search without the fragment).
    cache = PrefixStateCache(1 << 24)
    memo = StepMemo(cache, [gru_lm.eos_id])
    cache.insert([gru_lm.eos_id], state, logp)
    typed = drive(gru_lm.module, [next_words(gru_lm.tokenizer, logp, state, top[0], True, 3, 8, memo=memo,
                                             exclude=frozenset({top}))])[0]
    assert typed.outside_logp == pytest.approx(ruled.fragment_logp)
    assert memo.get(()).notes[("outside", frozenset({top}))] == typed.outside_logp
    for word, logp_word in ruled.words[:3]:
        assert logp_word == pytest.approx(dict(full.words)[word])  # the same words, conditioned anew below
    phrase = drive(gru_lm.module, [complete_phrase(gru_lm.tokenizer, logp, state, "", True, 3, 4, None,
                                                   PhraseCalibration(), 0.0, ruled.fragment_logp, None,
                                                   frozenset({top}))])[0]
    assert phrase is not None and phrase[0].strip() != top and phrase[0].split()[0] != top


def test_only_the_start_of_a_text_without_a_subject_rules_out_the_subject_line(gru_lm, reader):
    assert unread_header_words(reader, [reader.eos_id]) == HEADER_WORDS == frozenset({"Subject"})
    assert unread_header_words(gru_lm, [gru_lm.eos_id]) == frozenset()
    assert unread_header_words(reader, [reader.eos_id, *reader.tokenizer.encode("Hi")]) == frozenset()
    assert unread_header_words(reader, header_ids(reader, "Budget")) == frozenset()


BUNDLED = Path(__file__).resolve().parents[2] / "model" / "artifacts"


@pytest.mark.parametrize("name", ["gru-email", "lstm-email"])
def test_the_e_mail_models_never_open_an_e_mail_with_the_subject_line(name):
    """Without the rule, an empty e-mail with no subject got "Subject" first (65% GRU, 86% LSTM), and as ghost text."""
    if not (BUNDLED / f"{name}.pt").is_file():
        pytest.skip("bundled artifact not present")
    lm = load_artifact(BUNDLED / f"{name}.pt")
    assert lm.reads_subject
    empty, typed_s = drive(lm.module, [suggest(lm, "", 5, 5), suggest(lm, "S", 5, 5)])
    for result in (empty, typed_s):
        assert "Subject" not in [w for w, _ in result.suggestions]
        assert result.completion is None or not result.completion[0].strip().startswith("Subject")
    assert empty.fragment_prob == 1.0 and sum(p for _, p in empty.suggestions) < 1.0
    assert {"I", "Hi"} & {w for w, _ in empty.suggestions}
    assert 0 < typed_s.fragment_prob < 0.2  # P(an e-mail starts with "S"), not the subject line's 65%

"""An e-mail's subject, read before its text by a model that learnt to read one."""

from __future__ import annotations

import dataclasses

import pytest

from model.batching import drive
from model.prefix_cache import PrefixStateCache
from model.suggest import SUBJECT_PIECES, DecodeOptions, context_window, header_ids, prompt_parts, suggest
from model.text import subject_line


@pytest.fixture(scope="module")
def reader(gru_lm):
    """The tiny GRU with a card that says it reads subjects."""
    return dataclasses.replace(gru_lm, card={**gru_lm.card, "reads_subject": True})


def test_the_subject_line_is_normalised_and_empty_when_there_is_none():
    assert subject_line("  Re:\tlunch  tomorrow\n") == "Subject: Re: lunch tomorrow"
    assert subject_line("") == subject_line(" \n ") == ""


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
    assert ids == context_window([*head, *reader.tokenizer.encode(text.rstrip())], reader.tokenizer.word_start, 24,
                                 len(head))


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


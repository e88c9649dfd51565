"""Text typed with curly apostrophes (as many editors substitute them) is read as the models learnt
it, with "'", and answered in the writer's style, with "’"; emoji are read as the spaces they stand for."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.artifact import load_artifact
from model.batching import drive
from model.suggest import suggest

BUNDLED = Path(__file__).resolve().parents[2] / "model" / "artifacts"


def test_a_curly_apostrophe_gets_the_straight_ones_answers_in_its_own_style(gru_lm):
    straight, curly = drive(gru_lm.module, [suggest(gru_lm, "I don'", 5, 4), suggest(gru_lm, "I don’", 5, 4)])
    assert curly.fragment == "don’"
    assert [p for _, p in curly.suggestions] == [p for _, p in straight.suggestions]
    assert [w for w, _ in curly.suggestions] == [w.replace("'", "’") for w, _ in straight.suggestions]
    assert curly.insertions == [t.replace("'", "’") for t in straight.insertions]
    assert curly.typed_word_prob == straight.typed_word_prob and curly.fragment_prob == straight.fragment_prob
    assert (curly.completion is None) == (straight.completion is None)
    if curly.completion is not None:
        assert curly.completion == (straight.completion[0].replace("'", "’"), straight.completion[1])


@pytest.mark.parametrize("name", ["gru-email", "lstm-email"])
def test_the_e_mail_models_read_curly_apostrophes(name):
    """Before the fold, "I don’t " got "and" first from gru-email (the "’" read as rare bytes), not "know"."""
    if not (BUNDLED / f"{name}.pt").is_file():
        pytest.skip("bundled artifact not present")
    lm = load_artifact(BUNDLED / f"{name}.pt")
    straight, curly, inside = drive(lm.module, [suggest(lm, "I don't ", 3), suggest(lm, "I don’t ", 3),
                                                suggest(lm, "I’ll be out of the office. I", 5)])
    assert curly.suggestions == straight.suggestions and curly.suggestions[0][0] == "know"
    assert "’m" in inside.insertions and not any("'" in t for t in inside.insertions)


def test_an_emoji_is_read_as_a_space_and_a_word_after_one_gets_its_space(gru_lm):
    spaced, emoji, after = drive(gru_lm.module, [suggest(gru_lm, "Sounds good ", 5, 4),
                                                 suggest(gru_lm, "Sounds good 👍🏽 ", 5, 4),
                                                 suggest(gru_lm, "Sounds good 👍🏽", 5, 4)])
    assert emoji.suggestions == spaced.suggestions == after.suggestions
    assert emoji.insertions == spaced.insertions and spaced.insertions
    assert after.insertions == [" " + t for t in spaced.insertions]  # the writer typed no space after it
    if spaced.completion is not None:
        assert after.completion == (" " + spaced.completion[0], spaced.completion[1])


@pytest.mark.parametrize("name", ["gru-email", "lstm-email"])
def test_the_e_mail_models_keep_the_thread_past_emoji(name):
    """Read as bytes, "🎉🎂" made gru-email's first word "experience" (12%) instead of "holiday" (21%)."""
    if not (BUNDLED / f"{name}.pt").is_file():
        pytest.skip("bundled artifact not present")
    lm = load_artifact(BUNDLED / f"{name}.pt")
    plain, emoji = drive(lm.module, [suggest(lm, "Happy birthday Hope you have a great ", 3),
                                     suggest(lm, "Happy birthday 🎉🎂 Hope you have a great ", 3)])
    assert emoji.suggestions == plain.suggestions
    assert {"holiday", "weekend", "birthday", "day", "time"} & {w for w, _ in emoji.suggestions}

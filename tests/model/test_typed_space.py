"""A space typed after a word is evidence: what cannot follow a space ("-", ",", "'s") is not counted
against the next word's probability, nor against the ghost text's confidence."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from model.artifact import load_artifact
from model.batching import drive
from model.decoder import next_words, space_logp
from model.suggest import DecodeOptions, context_state, prompt_parts, suggest

BUNDLED = Path(__file__).resolve().parents[2] / "model" / "artifacts"


def test_after_a_typed_space_the_words_are_conditioned_on_it(gru_lm):
    text = "the movie was "
    ids, _, require_space, _ = prompt_parts(gru_lm, text, DecodeOptions.context_pieces)
    logp, state = drive(gru_lm.module, [context_state(gru_lm, ids, None)])[0][:2]
    tok = gru_lm.tokenizer
    space = float(logp[0][[i for i, s in enumerate(tok.surfaces) if s.startswith(" ")]].logsumexp(0))
    assert require_space and space < -1e-3  # the tiny model gives some mass to what cannot follow a space
    unconditional = drive(gru_lm.module, [next_words(tok, logp, state, "", True, 5, 6, lexicon=gru_lm.lexicon)])[0]
    result = drive(gru_lm.module, [suggest(gru_lm, text, 5)])[0]
    assert [w for w, _ in result.suggestions] == [w for w, _ in unconditional.words]
    for (_, prob), (_, score) in zip(result.suggestions, unconditional.words, strict=True):
        assert prob == pytest.approx(math.exp(score - space), rel=1e-5)
    assert result.fragment_prob == 1.0
    # No space typed ("(" ends the context): every piece stays open, nothing to condition on.
    assert space_logp(tok, None, False) == 0.0  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["gru-email", "lstm-email"])
def test_follow_then_a_space_is_followed_by_up(name):
    """The context a network reads ends at "follow" (the space belongs to the next piece), where it
    expects "-up" (85% for gru-email): counted against "up", a typed space left it 7% and no ghost text."""
    if not (BUNDLED / f"{name}.pt").is_file():
        pytest.skip("bundled artifact not present")
    lm = load_artifact(BUNDLED / f"{name}.pt")
    spaced = drive(lm.module, [suggest(lm, "Thanks for the follow ", 3, 3)])[0]
    assert spaced.suggestions[0][0] == "up" and spaced.suggestions[0][1] > 0.5
    assert spaced.completion is not None and spaced.completion[0].split()[0] == "up"

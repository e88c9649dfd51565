"""Typing with the ghost text: the simulation's accounting by hand, and the served decoder's run."""

from __future__ import annotations

from model.batching import drive
from model.suggest import DecodeOptions
from training.ghost_typing import GhostScore, at_least, evaluate, takes, type_document


def _ghosts(shown: dict[str, str]):
    """An ``ask`` that shows ``shown[text]`` after ``text`` (nothing elsewhere), as the model's would."""
    def ask(text: str):
        return shown.get(text, "")
        yield  # a generator, like the served decoder

    return ask


def test_a_ghost_is_taken_only_when_the_text_goes_on_with_exactly_it():
    assert takes("you soon", "you soon.")
    assert takes(" if you", " if you have")
    assert not takes("you", "yours truly")  # it would cut the word
    assert not takes("your", "you soon")
    assert not takes("", "anything")


def test_one_tab_types_the_ghost_and_a_wrong_one_costs_nothing_but_a_look():
    doc = "see you soon"
    score = drive(None, [type_document(doc, _ghosts({"see": " them", "see ": "you soon"}))])[0]
    # s, e, e (ghost " them" shown, wrong), space, then Tab inserts "you soon".
    assert score == GhostScore(chars=12, keystrokes=5, shown=2, tabs=1, tab_chars=8)

    nothing = drive(None, [type_document(doc, _ghosts({}))])[0]
    assert nothing == GhostScore(chars=12, keystrokes=12)
    cut = drive(None, [type_document("see yours", _ghosts({"see ": "you"}))])[0]
    assert (cut.keystrokes, cut.shown, cut.tabs) == (9, 1, 0)


def test_the_served_ghost_accounts_for_every_character(gru_lm):
    docs = ["I think the movie was great and the acting was good.", "The film is a fine one."]
    shown = evaluate(gru_lm, docs, DecodeOptions(completion_threshold=0.0))
    # Every character is typed or inserted by a Tab; a Tab is one keystroke.
    assert shown["keystrokes"] - shown["tabs"] + shown["tab_chars"] == shown["chars"] == sum(map(len, docs))
    assert shown["shown"] > 0 and 0.0 <= shown["ghost_ksr"] < 1.0

    never = evaluate(gru_lm, docs, DecodeOptions(completion_threshold=1.01))  # no confidence reaches it
    assert never["shown"] == never["tabs"] == 0 and never["keystrokes"] == never["chars"]
    assert never["ghost_ksr"] == 0.0


def test_a_one_character_ghost_saves_nothing():
    """Its Tab costs the keystroke it saves: hiding such ghosts leaves the keystrokes as they were."""
    doc = "see you soon."
    ghosts = _ghosts({"see ": "you soon", "see you soon": ".", "se": "x"})
    every = drive(None, [type_document(doc, ghosts)])[0]
    longer = drive(None, [type_document(doc, at_least(ghosts, 2))])[0]
    assert (every.keystrokes, every.shown, every.tabs) == (6, 3, 2)
    assert (longer.keystrokes, longer.shown, longer.tabs) == (6, 1, 1)

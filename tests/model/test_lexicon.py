"""The lexicon: what the decoder may propose, stored deterministically inside the artifact."""

from __future__ import annotations

from model.lexicon import Lexicon, lexicon_digest


def test_membership_ignores_case() -> None:
    lexicon = Lexicon(["Office", "don't"])
    assert "office" in lexicon and "OFFICE" in lexicon and "Don't" in lexicon
    assert "officeing" not in lexicon and 3 not in lexicon
    assert len(lexicon) == 2


def test_bytes_round_trip_and_do_not_depend_on_order() -> None:
    a, b = Lexicon(["b", "a", "Ünïcödé"]), Lexicon(["ünïcödé", "a", "b", "A"])
    assert a.to_bytes() == b.to_bytes()  # the card's digest names the words, not how they were gathered
    assert lexicon_digest(a.to_bytes()) == lexicon_digest(b.to_bytes())
    back = Lexicon.from_bytes(a.to_bytes())
    assert len(back) == 3 and "ÜNÏCÖDÉ" in back
    assert len(Lexicon.from_bytes(Lexicon([]).to_bytes())) == 0


def test_union() -> None:
    assert len(Lexicon(["a", "b"]) | Lexicon(["B", "c"])) == 3

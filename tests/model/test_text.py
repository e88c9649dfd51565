"""Text conventions shared by the evaluator and the server: prompts, fragments, words."""

from __future__ import annotations

import random
import re

import pytest

from model.text import WORD_PATTERN, ends_in_pictograph, normalize_prompt, split_fragment, typed_apostrophe, words


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the mo", ("the ", "mo")),
        ("the ", ("the ", "")),
        ("", ("", "")),
        ("I don't", ("I ", "don't")),
        ("I don'", ("I ", "don'")),
        ("x'y'z", ("x'", "y'z")),
        ("(hello", ("(", "hello")),
        ("it's 20", ("it's ", "20")),
        ("well-ma", ("well-", "ma")),
        ("end.", ("end.", "")),
    ],
)
def test_split_fragment(text: str, expected: tuple[str, str]) -> None:
    assert split_fragment(text) == expected


def test_split_fragment_is_the_trailing_fragment_pattern_on_any_text() -> None:
    # The fast path (searching only the trailing word characters) must agree with the
    # definition, the leftmost match of the fragment pattern that reaches the end.
    definition = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]*)?$")
    rng = random.Random(0)
    for _ in range(20_000):
        text = "".join(rng.choice("ab1' .-'xZ") for _ in range(rng.randint(0, 12)))
        match = definition.search(text)
        expected = (text, "") if match is None else (text[: match.start()], match.group(0))
        assert split_fragment(text) == expected, text


def test_normalize_prompt_keeps_one_trailing_space() -> None:
    assert normalize_prompt("The  movie<br />was ") == "The movie was "
    assert normalize_prompt("The movie\twas\n") == "The movie was "
    assert normalize_prompt("  ") == ""


def test_typographic_punctuation_is_read_as_the_ascii_the_models_learnt() -> None:
    """Editors type curly apostrophes and quotes, dashes and ellipses; the training text has "'", '"', "-"."""
    assert normalize_prompt("I don’t “know” – see… ") == 'I don\'t "know" - see... '
    assert normalize_prompt("wait—what ‘this’") == "wait--what 'this'"
    assert split_fragment(normalize_prompt("I don’")) == ("I ", "don'")
    assert normalize_prompt("\ufeffHi John,\u200b I\u00ad ") == "Hi John, I "  # editors' invisible characters
    assert normalize_prompt("Thanks \u200b") == "Thanks "
    assert normalize_prompt("Café ") == "Café "  # other non-ASCII text stays as typed
    assert typed_apostrophe("I don’t ") == "’"
    assert typed_apostrophe("I don't, or don’t") == "'"  # mixed: the straight one
    assert typed_apostrophe("Café ") == typed_apostrophe("plain ") == "'"


def test_pictographs_separate_words_and_compatibility_letters_are_ascii() -> None:
    """Emoji are read as the spaces they stand for; ligatures, full-width letters and the acute accent
    typed for an apostrophe as the ASCII the training text has; other symbols stay as typed."""
    assert normalize_prompt("Happy birthday 🎉🎂 Hope you") == "Happy birthday Hope you"
    assert normalize_prompt("Sounds good 👍🏽") == "Sounds good "  # a skin tone goes with its emoji
    assert normalize_prompt("Done ✅ thanks ❤️ ") == "Done thanks "  # dingbats; the variation selector
    assert normalize_prompt("the ﬁnal ＲＥＰＯＲＴ，ok") == "the final REPORT,ok"
    assert normalize_prompt("I don´t ") == "I don't "
    assert typed_apostrophe("I don´t ") == "´"
    assert normalize_prompt("25°F © ™ ≥ 5 → ") == "25°F © ™ ≥ 5 → "
    assert ends_in_pictograph("Sounds good 👍🏽") and ends_in_pictograph("ok 🙂\u200d")
    assert not ends_in_pictograph("Sounds good 👍 ") and not ends_in_pictograph("ok") and not ends_in_pictograph("")


def test_words_follow_the_metric_pattern() -> None:
    assert WORD_PATTERN == r"[A-Za-z0-9]+(?:'[A-Za-z]+)?"
    assert words("I don't like 2 films' endings.") == ["I", "don't", "like", "2", "films", "endings"]

"""training.lexicon: the words a model may propose, counted from its training text into the artifact."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.artifact import load_artifact
from training.lexicon import main as lexicon_main


def test_words_seen_often_enough_are_written_into_the_artifact(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    corpus = tmp_path / "mail.txt"
    corpus.write_text("Thanks Anna, see you Monday.\nanna: the report is late.\nThanks, Bob\nTypoo once\n")
    model = tmp_path / "gru.pt"
    model.write_bytes(tiny_models["gru"].read_bytes())
    lexicon_main(["--model", str(model), "--corpus", str(corpus), "--min-count", "2"])
    lm = load_artifact(model)
    assert {"thanks", "anna"} <= {w for w in ("thanks", "anna", "bob", "typoo", "monday") if w in lm.lexicon}
    assert "Bob" not in lm.lexicon and "typoo" not in lm.lexicon  # seen once
    assert lm.card["lexicon"]["words"] == 2 and lm.card["lexicon"]["min_count"] == 2
    assert lm.card["lexicon"]["sources"] == ["mail.txt"]
    lexicon_main(["--model", str(model), "--corpus", str(corpus), "--min-count", "1"])
    assert "Typoo" in load_artifact(model).lexicon


def test_a_min_count_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        lexicon_main(["--model", str(tmp_path / "m.pt"), "--corpus", str(tmp_path / "c.txt"), "--min-count", "0"])

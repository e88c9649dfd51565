"""The evaluator: hand-checked metrics, and train -> export -> load -> evaluate end to end."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch

from model.artifact import load_artifact
from training.evaluate import (
    DocScore,
    balanced_shards,
    document_queries,
    evaluate_path,
    evaluate_predictor,
    main,
    piece_nll,
)


class ScriptedPredictor:
    """Always proposes the same words for a word start; "sat" once an "s" is typed."""

    def predict(self, context: str, fragment: str, k: int) -> list[tuple[str, float]]:
        if fragment == "":
            return [("the", 0.5), ("cat", 0.3), ("dog", 0.1)][:k]
        if "sat".startswith(fragment):
            return [("sat", 0.9)]
        return []

    def doc_nll(self, doc: str) -> tuple[float, int]:
        return 6.0, 4


def _simulate(doc: str, predictor: ScriptedPredictor) -> tuple[DocScore, list[tuple[str, str]]]:
    queries = document_queries(doc)
    asked = []
    try:
        query = next(queries)
        while True:
            asked.append((query.context, query.fragment))
            query = queries.send([w for w, _ in predictor.predict(query.context, query.fragment, 3)])
    except StopIteration as stop:
        return stop.value, asked


def test_keystroke_savings_on_a_hand_checked_document() -> None:
    doc = "the cat sat."
    score, asked = _simulate(doc, ScriptedPredictor())
    # "the": proposed at its start -> 1 keystroke accepts "the " (4 chars).
    # "cat": second proposal -> 1 keystroke accepts "cat ".
    # "sat": not proposed; type "s" (1), then accepted (1); "." typed by hand (1).
    assert asked == [("", ""), ("the ", ""), ("the cat ", ""), ("the cat ", "s")]
    assert (score.words, score.top1, score.top3) == (3, 1, 2)
    assert score.keystrokes == 5 and score.chars == 12
    result = evaluate_predictor("scripted", ScriptedPredictor(), [doc])
    assert result["top1"] == round(1 / 3, 4) and result["top3"] == round(2 / 3, 4)
    assert result["ksr"] == round(1 - 5 / 12, 4)
    # word_ppl = exp(NLL / (whitespace tokens + 1 per document)) = exp(6 / (3 + 1))
    assert result["word_ppl"] == round(math.exp(6 / 4), 2)


def test_words_follow_the_regex_and_punctuation_is_typed() -> None:
    score, asked = _simulate("Don't stop, 2 cats!", ScriptedPredictor())
    assert score.words == 4  # Don't, stop, 2, cats
    assert asked[0] == ("", "")
    assert ("Don't stop, ", "") in asked
    assert score.keystrokes == len("Don't stop, 2 cats!")  # nothing proposed right: all typed


def test_train_export_load_evaluate_end_to_end(tiny_models: dict[str, Path], tiny_corpus: Path) -> None:
    docs = tiny_corpus.read_text().splitlines()[:6]
    for cell, path in tiny_models.items():
        result = evaluate_path(str(path), docs, batch_docs=4)
        assert result["docs"] == 6 and result["words"] > 50
        assert 0.2 < result["top3"] <= 1.0, (cell, result)  # the patterned corpus is learnable
        assert result["top1"] <= result["top3"]
        assert 0.0 < result["ksr"] < 1.0
        assert 1.0 < result["word_ppl"] < 1e5  # finite; the tiny LSTM is barely trained


def test_ngram_scored_by_the_same_evaluator(tmp_path: Path, tiny_corpus: Path) -> None:
    from training.ngram import NgramModel

    docs = tiny_corpus.read_text().splitlines()
    path = tmp_path / "tri.pkl.gz"
    NgramModel().fit(docs[100:], order=3).save(path)
    result = evaluate_path(str(path), docs[:6])
    assert result["model"].startswith("ngram") and 0.2 < result["top3"] <= 1.0


def test_cli_prints_json(tmp_path: Path, tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "docs.txt"
    text.write_text("I think the movie was good.\nHonestly the film was bad.\n")
    main(["--model", str(tiny_models["gru"]), "--text", str(text), "--json", "--no-ksr"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"docs", "words", "top1", "top3", "word_ppl", "ksr", "model"} <= out.keys()
    assert out["docs"] == 2 and out["ksr"] is None


def test_shards_merge_to_the_whole_set(tmp_path: Path, tiny_models: dict[str, Path], tiny_corpus: Path) -> None:
    """Evaluating in disjoint shards (e.g. one process per core) gives the same figures as one run."""
    text = tmp_path / "docs.txt"
    text.write_text("\n".join(tiny_corpus.read_text().splitlines()[:5]) + "\n")
    model = str(tiny_models["gru"])
    whole = tmp_path / "whole.json"
    main(["--model", model, "--text", str(text), "--out", str(whole)])
    parts = []
    for index in range(2):
        part = tmp_path / f"part{index}.json"
        main(["--model", model, "--text", str(text), "--shard", f"{index}/2", "--out", str(part)])
        parts.append(str(part))
    assert [json.loads(Path(p).read_text())["docs"] for p in parts] == [3, 2]
    merged = tmp_path / "merged.json"
    main(["--merge", *parts, "--out", str(merged)])
    expected, got = json.loads(whole.read_text()), json.loads(merged.read_text())
    for key in ("docs", "words", "top1", "top3", "ksr", "queries"):
        assert got[key] == expected[key], key
    assert got["word_ppl"] == pytest.approx(expected["word_ppl"], rel=1e-4)


def test_jobs_split_the_work_over_processes_and_merge_exactly(
    tmp_path: Path, tiny_models: dict[str, Path], tiny_corpus: Path
) -> None:
    text = tmp_path / "docs.txt"
    text.write_text("\n".join(tiny_corpus.read_text().splitlines()[:5]) + "\n")
    model = str(tiny_models["lstm"])
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    main(["--model", model, "--text", str(text), "--out", str(one)])
    main(["--model", model, "--text", str(text), "--jobs", "2", "--out", str(two)])
    expected, got = json.loads(one.read_text()), json.loads(two.read_text())
    assert got["source"]["shard"] is None and got["docs"] == 5
    assert got["sums"]["words"] == expected["sums"]["words"] > 0
    for key in ("top1", "top3", "ksr", "queries"):
        assert got[key] == expected[key], key
    assert got["word_ppl"] == pytest.approx(expected["word_ppl"], rel=1e-4)
    with pytest.raises(SystemExit):
        main(["--model", model, "--text", str(text), "--jobs", "0"])


def test_beam_is_a_flag_recorded_with_the_result(
    tmp_path: Path, tiny_models: dict[str, Path], tiny_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A figure says which search made it; shards searched differently do not merge."""
    text = tmp_path / "docs.txt"
    text.write_text("\n".join(tiny_corpus.read_text().splitlines()[:3]) + "\n")
    model = str(tiny_models["gru"])
    narrow, wide = tmp_path / "narrow.json", tmp_path / "wide.json"
    main(["--model", model, "--text", str(text), "--no-ksr", "--out", str(narrow)])
    main(["--model", model, "--text", str(text), "--no-ksr", "--beam", "12", "--out", str(wide)])
    assert json.loads(narrow.read_text())["beam"] == 6  # the server's default
    assert json.loads(wide.read_text())["beam"] == 12
    with pytest.raises(SystemExit):
        main(["--merge", str(narrow), str(wide)])
    assert "disagree on beam" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--model", model, "--text", str(text), "--beam", "0"])


def test_balanced_shards_partition_by_length() -> None:
    # Long and short reviews alternate: every-other-document shards would be 300 vs 3 characters.
    docs = ["x" * n for n in (100, 1, 100, 1, 100, 1)]
    parts = balanced_shards(docs, 2)
    assert sorted(d for part in parts for d in part) == sorted(docs)  # disjoint, nothing lost
    loads = [sum(map(len, part)) for part in parts]
    assert max(loads) - min(loads) <= 100  # within one document of even


def test_bad_shard_is_a_clear_error(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    text = tmp_path / "docs.txt"
    text.write_text("one document\n")
    with pytest.raises(SystemExit):
        main(["--model", str(tiny_models["gru"]), "--text", str(text), "--shard", "2/2"])


def test_piece_nll_reads_in_windows_exactly_as_step_by_step(tiny_models: dict[str, Path]) -> None:
    lm = load_artifact(tiny_models["gru"])
    docs = ["I think the movie was good.", "Bad.", "Honestly the film was long and slow, but the end was fine."]
    expected = 0.0
    with torch.no_grad():  # as the evaluator and the server run the module
        for doc in docs:
            ids = [lm.eos_id, *lm.tokenizer.encode(doc), lm.eos_id]
            state = lm.zero_state
            for current, following in itertools.pairwise(ids):
                logp, state = lm.module.step(torch.tensor([current]), state)
                expected -= float(logp[0, following])
    # Windows shorter than the documents, and documents of different lengths in one batch.
    assert piece_nll(lm, docs, batch=2, window=3) == pytest.approx(expected, rel=1e-5)
    assert piece_nll(lm, docs) == pytest.approx(expected, rel=1e-5)

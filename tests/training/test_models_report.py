"""The models report prints what the result files say, and n/a for what is missing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from model.artifact import load_artifact, update_card
from training.report import main


def _report_dirs(tmp_path: Path, tiny_models: dict[str, Path]) -> tuple[Path, Path]:
    """(results, artifacts) folders, the artifacts being copies of the tiny trained models."""
    results, artifacts = tmp_path / "results", tmp_path / "artifacts"
    results.mkdir()
    artifacts.mkdir()
    for name, path in tiny_models.items():
        shutil.copy(path, artifacts / f"{name}.pt")
    return results, artifacts


def test_tables_come_from_result_files(tmp_path: Path, tiny_models: dict[str, Path],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    results, artifacts = _report_dirs(tmp_path, tiny_models)
    (results / "imdb500_gru.json").write_text(json.dumps(
        {"docs": 3, "words": 40, "top1": 0.25, "top3": 0.5, "word_ppl": 99.5, "ksr": None}))
    (results / "step_latency.json").write_text(json.dumps({"gru@1thr": {"step_b1": {"mean_ms": 0.5}},
                                                           "gru@1thr@fp16": {"step_b1": {"mean_ms": 0.25}}}))
    main(["--results", str(results), "--artifacts", str(artifacts)])
    out = capsys.readouterr().out
    assert "| gru | IMDB test (imdb500) | 3 | 40 | fp32 | 25.0% | 50.0% | 99.5 | n/a |" in out
    assert "0.50 / 0.25 ms" in out and "| lstm |" in out
    assert "lstm | IMDB" not in out  # no file, no row


def test_a_continued_run_reports_its_whole_training(tmp_path: Path, tiny_models: dict[str, Path],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    results, artifacts = _report_dirs(tmp_path, tiny_models)
    card = load_artifact(artifacts / "gru.pt").card
    update_card(artifacts / "gru.pt", {"training": {**card["training"], "tokens_seen": 3_000, "wall_seconds": 240.0,
                                                    "init_from": {"path": "a.pt", "tokens_seen": 1_000,
                                                                  "wall_seconds": 360.0}}})
    main(["--results", str(results), "--artifacts", str(artifacts)])
    assert "| 3,000 | 10 min |" in capsys.readouterr().out  # 4 min of this run + 6 of the one it continued


def test_personal_table_sets_each_sender_s_model_beside_its_base(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "personal"
    results.mkdir()
    lineage = {"lineage": {"minutes": 0.8, "tokens": 307200, "data": {"train": {"docs": 805}}}}
    (results / "gru-lee-a.lineage.json").write_text(json.dumps(lineage))
    for name, top1 in (("gru-email", 0.25), ("gru-lee-a", 0.27)):
        (results / f"lee-a_{name}.json").write_text(json.dumps(
            {"top1": top1, "top3": 0.4, "word_ppl": 150.0, "ksr": 0.57}))
        (results / f"email300_{name}.json").write_text(json.dumps({"top1": 0.22, "word_ppl": 346.0}))
    (results / "lee-a_phrases_gru-lee-a.json").write_text(json.dumps(
        {"at_default": {"coverage": 0.19, "exact_match": 0.65, "ece": 0.04}}))
    main(["--personal", str(results)])
    out = capsys.readouterr().out
    assert ("| lee-a (805) | `gru-email` | base | 25.0% | 40.0% | 150.0 | 57.0% | n/a / n/a / n/a | "
            "22.0% / 346.0 |") in out  # its ghost-text file is missing: n/a, not a number
    assert "| lee-a (805) | `gru-lee-a` | 0.8 min, 307,200 tokens | 27.0% |" in out
    assert "19.0% / 65.0% / 0.04 |" in out
    # A personal model adapted from another shared model is set beside that one, named by its card.
    lineage["lineage"]["base"] = {"file": "gru-email-without-lee-a.pt"}
    (results / "gru-lee-a.lineage.json").write_text(json.dumps(lineage))
    (results / "lee-a_gru-email-without-lee-a.json").write_text(json.dumps({"top1": 0.2, "top3": 0.3}))
    main(["--personal", str(results)])
    out = capsys.readouterr().out
    assert "| lee-a (805) | `gru-email-without-lee-a` | base | 20.0% | 30.0% |" in out and "`gru-email` |" not in out


def test_the_email_table_sets_a_subject_reader_s_row_with_its_subject_beside_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    email = tmp_path / "email"
    email.mkdir()
    for name, top1 in (("gru-email_test", 0.2225), ("gru-email_test_subject", 0.2236)):
        (email / f"{name}.json").write_text(json.dumps({"top1": top1, "top3": 0.35, "word_ppl": 380.0}))
    main(["--email", str(email)])
    out = capsys.readouterr().out
    assert out.index("| GRU e-mail | 22.2% |") < out.index("| GRU e-mail, with the subject | 22.4% |")
    assert "LSTM e-mail" not in out  # no file, no row

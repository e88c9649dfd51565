"""Staging the GPU job's inputs: the prepared corpus travels intact, the eval sets are the evaluator's samples."""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import pytest

from model.artifact import load_artifact
from training.corpus import CorpusSpec, prepare_corpus
from training.evaluate import load_docs
from training.stage import main, stage


def test_stage_copies_the_corpus_and_writes_the_evaluators_samples(
    tmp_path: Path, tiny_models: dict[str, Path], tiny_corpus: Path
) -> None:
    data_dir = tiny_models["gru"].parent / "data"
    out = tmp_path / "stage"
    stage(data_dir, str(tiny_corpus), out, sizes=(20, 5))
    with lzma.open(out / "train.npy.xz") as fh:
        assert fh.read() == (data_dir / "train.npy").read_bytes()
    for size in (20, 5):
        lines = (out / f"imdb-test-{size}.jsonl").read_text().splitlines()
        assert [json.loads(line)["text"] for line in lines] == load_docs(None, str(tiny_corpus), "test", size, 0)
    # Read back through the evaluator as a JSONL corpus: the same documents, same order.
    assert load_docs(None, str(out / "imdb-test-20.jsonl"), "test", None, 0) == load_docs(
        None, str(tiny_corpus), "test", 20, 0
    )


def test_stage_prepares_or_checks_the_corpus_for_an_artifacts_tokenizer(
    tmp_path: Path, tiny_models: dict[str, Path], tiny_corpus: Path
) -> None:
    artifact = tiny_models["gru"]
    fresh = tmp_path / "fresh"
    stage(fresh, str(tiny_corpus), tmp_path / "stage", sizes=(5,), tokenizer_from=artifact)
    assert (fresh / "tokenizer.model").read_bytes() == load_artifact(artifact).tokenizer.model_proto
    assert (tmp_path / "stage" / "train.npy.xz").exists()
    # Preparing again reuses the folder; one tokenised by another tokenizer is refused.
    stage(fresh, str(tiny_corpus), tmp_path / "stage2", sizes=(5,), tokenizer_from=artifact)
    other = tmp_path / "other"
    prepare_corpus(CorpusSpec(path=str(tiny_corpus), vocab_size=300), other)
    with pytest.raises(ValueError, match="another tokenizer"):
        stage(other, str(tiny_corpus), tmp_path / "stage3", sizes=(5,), tokenizer_from=artifact)


def test_a_corpus_smaller_than_the_evaluation_set_is_a_clear_error(
    tmp_path: Path, tiny_models: dict[str, Path], tiny_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tiny_models["gru"].parent / "data"
    have = len(load_docs(None, str(tiny_corpus), "test", None, 0))
    with pytest.raises(ValueError, match=f"has {have} test documents"):
        stage(data_dir, str(tiny_corpus), tmp_path / "stage", sizes=(have + 1, 5))
    assert not (tmp_path / "stage").exists(), "checked before the slow copy: nothing half-staged"
    with pytest.raises(SystemExit):  # the default sizes (2000, 200) on a tiny corpus: a usage error
        main(["--data-dir", str(data_dir), "--corpus", str(tiny_corpus), "--out", str(tmp_path / "s2")])
    assert "pass smaller --sizes" in capsys.readouterr().err
    main(["--data-dir", str(data_dir), "--corpus", str(tiny_corpus), "--out", str(tmp_path / "s3"), "--sizes", "9,3"])
    assert len((tmp_path / "s3" / "imdb-test-9.jsonl").read_text().splitlines()) == 9

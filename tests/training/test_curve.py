"""The learning curve: snapshots scored one at a time (e.g. on spare cores while training), then drawn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.curve import main


def test_points_scored_per_snapshot_then_drawn(tmp_path: Path, tiny_models: dict[str, Path], tiny_corpus: Path) -> None:
    root = tiny_models["gru"].parent
    snapshots = sorted((root / "gru" / "snapshots").glob("tokens_*.pt"))
    assert len(snapshots) >= 2
    points_dir = tmp_path / "points"
    for snapshot in snapshots:  # as the GPU job does: one process per new snapshot
        main(["--snapshots", str(snapshot), "--tokenizer", str(root / "data" / "tokenizer.model"),
              "--corpus", str(tiny_corpus), "--max-docs", "3", "--points-dir", str(points_dir)])
    points = sorted(points_dir.glob("*.json"))
    assert len(points) == len(snapshots)
    main(["--points", *map(str, points), "--out", str(tmp_path / "curve")])
    curve = json.loads((tmp_path / "curve.json").read_text())
    tokens = [p["tokens_seen"] for p in curve["curves"]["gru"]]
    assert tokens == sorted(tokens) and len(tokens) == len(snapshots)
    assert all(0.0 <= p["top1"] <= p["top3"] <= 1.0 for p in curve["curves"]["gru"])
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_snapshots_need_somewhere_to_write(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--snapshots", "x.pt", "--tokenizer", "t.model", "--corpus", "c.txt"])


def test_adaptation_curve_keeps_the_validation_points_in_minutes(tmp_path: Path) -> None:
    from training.curve import curve_points, log_curves

    lines = ['{"step": 250, "wall_seconds": 186.0, "val_loss": 4.18, "val_word_ppl": 1217.3}',
             '{"step": 300, "wall_seconds": 200.0, "train_loss": 4.0}',  # no validation on this line
             "",
             '{"step": 500, "wall_seconds": 447.3, "val_loss": 4.11, "val_word_ppl": 1074.2}']
    assert curve_points(lines) == [
        {"minutes": 3.1, "step": 250, "val_loss": 4.18, "val_word_ppl": 1217.3},
        {"minutes": 7.46, "step": 500, "val_loss": 4.11, "val_word_ppl": 1074.2},
    ]
    log = tmp_path / "gru-email" / "log.jsonl"
    log.parent.mkdir()
    log.write_text("\n".join(lines))
    assert log_curves([f"email={log}"])["email"] == curve_points(lines)
    assert list(log_curves([str(log)])) == ["gru-email"]  # unnamed: the run folder's name

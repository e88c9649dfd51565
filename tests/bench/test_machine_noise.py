"""bench.machine_noise: one sample per request and gap, ratios against the first gap."""

from __future__ import annotations

import json

from bench.machine_noise import main, measure
from model.suggest import DecodeOptions


def test_measure_interleaves_every_gap_over_the_same_texts(gru_lm) -> None:
    texts = ["I think the movie ", "The plot was ", "Honestly the acting", "It was a gr"]
    out = measure(gru_lm, texts, [0.0, 1.0], rounds=2, options=DecodeOptions())
    assert set(out) == {"0", "1"}
    assert all(g["n"] == len(texts) and 0 < g["p50_ms"] <= g["p99_ms"] <= g["max_ms"] for g in out.values())
    assert all(0 <= g["stalls_over_25ms"] <= len(texts) for g in out.values())
    assert out["0"]["p50_vs_first_gap"] == 1.0


def test_cli_writes_its_report(tiny_models, tmp_path, capsys) -> None:
    out = tmp_path / "noise.json"
    assert main(["--model", str(tiny_models["gru"]), "--requests", "4", "--rounds", "2", "--gaps-ms", "0,1",
                 "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["gaps"]) == {"0", "1"} and report["requests_per_gap"] == 4
    assert report["command"].startswith("python -m bench.machine_noise --model")

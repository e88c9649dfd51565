"""bench.report: REPORT.md and its plots from a tiny hand-made sweep result (no server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import report
from bench.report import render


def test_report_builds_with_tables_plots_and_provenance(tiny_sweep: dict, tmp_path: Path) -> None:
    (tmp_path / "sweep.json").write_text(json.dumps(tiny_sweep))
    out = tmp_path / "REPORT.md"
    assert report.main(["--results", str(tmp_path / "sweep.json"), "--out", str(out)]) == 0
    text = out.read_text()
    for needle in ("## Bars", "| P1 |", "| P2 |", "| P3 |", "| P4 |", "| P5 |", "| Overload |",
                   "Test CPU 9000", "`abc1234`", "2026-11-27T06:00:00", "python -m bench.sweep --out",
                   "python -m bench.report --results", "## GRU vs LSTM", "## Model alone", "## Overload",
                   "max_batch_size=32", "not measured", "shorter than the issue's 60 s"):
        assert needle in text, needle
    # GRU vs LSTM: three common rates, top-1 from the card or n/a, file size.
    gvl = text.split("## GRU vs LSTM")[1].split("##")[0]
    assert "p50 / p99 at 10 req/s" in gvl and "p50 / p99 at 40 req/s" in gvl
    assert "| gru | 5.0 / 12.0 ms |" in gvl and "0.2345" in gvl and "11.7 MB" in gvl
    lstm_row = next(line for line in gvl.splitlines() if line.startswith("| lstm"))
    assert "n/a" in lstm_row and "≥40.0 req/s" in lstm_row
    for png in ("report_max_rate.png", "report_latency_cold.png", "report_latency_typing.png"):
        path = tmp_path / png
        assert path.is_file() and 1_000 < path.stat().st_size < 200_000, png
        assert f"]({png})" in text


def test_report_on_empty_results_says_not_measured(tmp_path: Path) -> None:
    text = render({"meta": {}, "configs": []}, tmp_path / "REPORT.md", "x.json")
    assert "not measured" in text and "## Bars" in text


def test_model_facts_fall_back_to_the_artifacts(tiny_sweep: dict, tmp_path: Path) -> None:
    without = {k: v for k, v in tiny_sweep.items() if k != "models"}
    text = render(without, tmp_path / "REPORT.md", "x.json")
    gvl = text.split("## GRU vs LSTM")[1].split("##")[0]
    assert "artifact read at report time" in gvl and " MB" in gvl


def test_analysis_is_included_and_named_in_the_commands(tiny_sweep: dict, tmp_path: Path) -> None:
    from bench.report import main

    fixture = tmp_path / "sweep.json"
    fixture.write_text(json.dumps(tiny_sweep))
    analysis = tmp_path / "ANALYSIS.md"
    analysis.write_text("P2 misses because the model alone gains only 2.5x from batching.\n")
    out = tmp_path / "REPORT.md"
    main(["--results", str(fixture), "--out", str(out), "--analysis", str(analysis)])
    text = out.read_text()
    assert "## Why the misses (analysis)" in text and "gains only 2.5x" in text
    assert f"--analysis {analysis}" in text


def test_top1_evaluated_after_the_sweep_is_taken_only_from_the_same_model(tiny_sweep: dict, tmp_path: Path) -> None:
    from bench.provenance import model_facts

    now = model_facts(["gru"])["gru"]["card"]
    if not now or now.get("top1") is None:
        pytest.skip("the bundled GRU carries no evaluation")
    for checksum, expected in ((now["checksum"], f"{now['top1']:.4f}"), ("another-model", "n/a")):
        card = {"checksum": checksum, "top1": None}
        models = {**tiny_sweep.get("models", {}), "gru": {"file_bytes": 1, "card": card}}
        text = render({**tiny_sweep, "models": models}, tmp_path / "REPORT.md", "x.json")
        gru_row = next(line for line in text.split("## GRU vs LSTM")[1].splitlines() if line.startswith("| gru"))
        assert f"| {expected} |" in gru_row


def test_overload_section_names_the_saturation_probe(tiny_sweep: dict, tmp_path: Path) -> None:
    probed = json.loads(json.dumps(tiny_sweep))
    ov = probed["overload"]["gru"]
    ov.update({"base_kind": "saturating", "max_rate_at_slo": 13.75,
               "saturation_probe": {"offered_rps": 480.0, "ok_rps": 150.5, "status_counts": {"200": 750, "503": 1650},
                                    "seconds": 5.0, "generator_behind_schedule": False}})
    (tmp_path / "sweep.json").write_text(json.dumps(probed))
    assert report.main(["--results", str(tmp_path / "sweep.json"), "--out", str(tmp_path / "REPORT.md")]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    assert "saturation probe: 480.0 req/s offered" in text and "150.5 req/s answered 200" in text
    assert "(3x the saturating rate," in text


@pytest.mark.parametrize(
    ("typing_start", "says"),
    [("prefix", "after a 5-40-word prefix"), ("empty", "from an empty text box in every document"),
     (None, "from an empty text box (sweeps before")],
)
def test_report_says_where_typists_start(tiny_sweep: dict, tmp_path: Path, typing_start: str | None, says: str) -> None:
    # P5 depends on how long the typists' contexts are: the report names the workload it measured.
    run = {k: v for k, v in tiny_sweep["meta"].get("run", {}).items() if k != "typing_start"}
    if typing_start is not None:
        run["typing_start"] = typing_start
    text = render({**tiny_sweep, "meta": {**tiny_sweep["meta"], "run": run}}, tmp_path / "REPORT.md", "x.json")
    assert "Typing workload: typists start " + says in text


def test_profiles_are_tabulated_by_part_and_named_in_the_commands(tiny_sweep: dict, tmp_path: Path) -> None:
    from bench.profile import PARTS
    from bench.report import main

    fixture = tmp_path / "sweep.json"
    fixture.write_text(json.dumps(tiny_sweep))
    shares = {"model calls": 0.6, "decoder": 0.2, "HTTP path": 0.2}
    prof = {
        "command": "python -m bench.profile --backend gru --rate 40",
        "backend": "gru", "rate": 40.0,
        "load": {"ok_rps": 39.8, "latency_ms_ok": {"p50": 15.0, "p99": 40.0}},
        "profile": {"busy_fraction_of_wall": 0.45,
                    "parts": {p: {"share_of_busy": shares.get(p, 0.0) if p != "waiting" else None} for p in PARTS}},
    }
    path = tmp_path / "profile_gru_40.json"
    path.write_text(json.dumps(prof))
    out = tmp_path / "REPORT.md"
    main(["--results", str(fixture), "--out", str(out), "--profile", str(path)])
    text = out.read_text()
    assert "## Where the server's core goes (py-spy)" in text
    assert "| part | GRU, 40 req/s |" in text
    assert "| model calls | 60.0% |" in text and "| decoder | 20.0% |" in text
    assert "| **core busy** (busy samples / wall) | 45% |" in text
    assert "39.8; 15.0 / 40.0 ms" in text
    assert f"--profile {path}" in text and "python -m bench.profile --backend gru --rate 40" in text


def test_no_profile_section_without_profiles(tiny_sweep: dict, tmp_path: Path) -> None:
    assert "Where the server's core goes" not in render(tiny_sweep, tmp_path / "REPORT.md", "sweep.json")


@pytest.mark.parametrize("joined", [True, False])
def test_report_says_how_typists_join(tiny_sweep: dict, tmp_path: Path, joined: bool) -> None:
    # Sweeps before typists joined over the warm-up started them all within one keystroke gap.
    run = {k: v for k, v in tiny_sweep["meta"].get("run", {}).items() if k != "typing_warmup"}
    if joined:
        run |= {"warmup": 1.0, "typing_warmup": 3.0}
    text = render({**tiny_sweep, "meta": {**tiny_sweep["meta"], "run": run}}, tmp_path / "REPORT.md", "x.json")
    assert ("they join at random times over the warm-up." in text) == joined
    assert ("1.0 s warm-up (typing 3.0 s) + " in text) == joined
    assert "150-300 ms apart" in text

"""bench.report: REPORT.md and its plots from a tiny hand-made sweep result (no server)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench import report
from bench.report import Bounded, bars, max_rate, render, verdict_ratio

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_sweep.json"


@pytest.fixture(scope="module")
def results() -> dict:
    return json.loads(FIXTURE.read_text())


def _row(rows: list[dict], bar: str, what_prefix: str) -> dict:
    matches = [r for r in rows if r["bar"] == bar and r["what"].startswith(what_prefix)]
    assert len(matches) == 1, (bar, what_prefix, rows)
    return matches[0]


def test_bars_verdicts_from_fixture(results: dict) -> None:
    # Targets chosen for the fixture's numbers, so each verdict path is exercised.
    rows = bars(results, {**report.BARS, "P2": 2.0, "P3": 1.0, "P4": 0.5, "P5": 1.2})
    p1 = _row(rows, "P1", "gru cold p50")
    assert (p1["verdict"], p1["measured"], p1["margin"]) == ("PASS", "5.0 ms", "3.0 ms under")
    assert "n=200" in p1["what"]
    assert _row(rows, "P1", "lstm cold p99")["verdict"] == "MISS"
    p2 = _row(rows, "P2", "gru")
    assert p2["verdict"] == "PASS" and "= 3.00x" in p2["measured"] and p2["margin"].startswith("+50%")
    p3 = _row(rows, "P3", "gru")
    assert p3["verdict"] == "PASS" and "60.0 / 30.0 = 2.00x" in p3["measured"]
    p4 = _row(rows, "P4", "gru")
    assert p4["verdict"] == "MISS" and "0.30x" in p4["measured"] and p4["margin"].startswith("-40%")
    assert _row(rows, "P5", "gru")["verdict"] == "PASS"
    # LSTM: no batching-off, no LitServe, no typing runs -> not measured, never invented.
    for bar in ("P2", "P3", "P5"):
        assert _row(rows, bar, "lstm")["verdict"] == "not measured"
    # A lower-bound numerator under the bar cannot decide a MISS.
    assert _row(rows, "P4", "lstm")["verdict"] == "INCONCLUSIVE"
    overload = [r for r in rows if r["bar"] == "Overload"]
    assert [r["verdict"] for r in overload if r["what"].startswith("gru")] == ["PASS", "PASS", "PASS"]
    assert any(r["what"].startswith("lstm") and r["verdict"] == "not measured" for r in overload)


def test_report_builds_with_tables_plots_and_provenance(results: dict, tmp_path: Path) -> None:
    shutil.copy(FIXTURE, tmp_path / "sweep.json")
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


def test_bar_override(results: dict) -> None:
    rows = bars(results, {**report.BARS, "P4": 0.25})
    assert _row(rows, "P4", "gru")["verdict"] == "PASS"


def test_bounded_ratios_and_verdicts() -> None:
    assert (Bounded(60) / Bounded(20)) == Bounded(3.0)
    assert (Bounded(40, "lower") / Bounded(20)) == Bounded(2.0, "lower")
    assert (Bounded(40) / Bounded(10, "upper")) == Bounded(4.0, "lower")
    assert (Bounded(40, "upper") / Bounded(20)) == Bounded(2.0, "upper")
    assert (Bounded(40, "lower") / Bounded(20, "lower")) is None
    assert verdict_ratio(Bounded(3.0, "lower"), 2.0)[0] == "PASS"
    assert verdict_ratio(Bounded(1.0, "upper"), 2.0)[0] == "MISS"
    assert verdict_ratio(Bounded(1.0, "lower"), 2.0)[0] == "INCONCLUSIVE"
    assert verdict_ratio(None, 2.0)[0] == "not measured"


def test_max_rate_kinds(results: dict) -> None:
    by_key = {c["key"]: c for c in results["configs"]}
    assert max_rate(by_key["nextword-gru-batch-on-cache-on-cold"]) == Bounded(60.0)
    assert max_rate(by_key["nextword-lstm-batch-on-cache-on-cold"]) == Bounded(40.0, "lower")
    failed_first = {"points": [{"rate": 10.0}, {"rate": 5.0}], "search_status": "first_point_failed",
                    "max_rate_at_slo": None}
    assert max_rate(failed_first) == Bounded(5.0, "upper")
    assert max_rate({"error": "boom", "points": []}) is None
    assert max_rate(None) is None


def test_model_facts_fall_back_to_the_artifacts(results: dict, tmp_path: Path) -> None:
    without = {k: v for k, v in results.items() if k != "models"}
    text = render(without, tmp_path / "REPORT.md", "x.json")
    gvl = text.split("## GRU vs LSTM")[1].split("##")[0]
    assert "artifact read at report time" in gvl and " MB" in gvl


def test_model_alone_is_interpolated_at_the_servers_batch_size() -> None:
    from bench.report import alone_at_server_batch

    alone = {"batch_sizes": {"1": {"requests_per_s": 100.0}, "8": {"requests_per_s": 240.0},
                             "64": {"requests_per_s": 400.0}}}
    config = {"search_status": "boundary", "max_rate_at_slo": 50.0,
              "points": [{"rate": 50.0, "measured": 100, "server": {"mean_batch_requests": 4.5}}]}
    value, batch = alone_at_server_batch(alone, config)
    assert batch == 4.5 and value == 170.0  # halfway between batch 1 and batch 8
    assert alone_at_server_batch(alone, {**config, "search_status": "first_point_failed"}) is None


def test_analysis_is_included_and_named_in_the_commands(results: dict, tmp_path: Path) -> None:
    from bench.report import main

    fixture = tmp_path / "sweep.json"
    fixture.write_text(json.dumps(results))
    analysis = tmp_path / "ANALYSIS.md"
    analysis.write_text("P2 misses because the model alone gains only 2.5x from batching.\n")
    out = tmp_path / "REPORT.md"
    main(["--results", str(fixture), "--out", str(out), "--analysis", str(analysis)])
    text = out.read_text()
    assert "## Why the misses (analysis)" in text and "gains only 2.5x" in text
    assert f"--analysis {analysis}" in text


def test_top1_evaluated_after_the_sweep_is_taken_only_from_the_same_model(results: dict, tmp_path: Path) -> None:
    from bench.sweep import model_facts

    now = model_facts(["gru"])["gru"]["card"]
    if not now or now.get("top1") is None:
        pytest.skip("the bundled GRU carries no evaluation")
    for checksum, expected in ((now["checksum"], f"{now['top1']:.4f}"), ("another-model", "n/a")):
        models = {**results.get("models", {}), "gru": {"file_bytes": 1, "card": {"checksum": checksum, "top1": None}}}
        text = render({**results, "models": models}, tmp_path / "REPORT.md", "x.json")
        gru_row = next(line for line in text.split("## GRU vs LSTM")[1].splitlines() if line.startswith("| gru"))
        assert f"| {expected} |" in gru_row


def test_overload_names_its_base_and_the_saturation_probe(results: dict, tmp_path: Path) -> None:
    probed = json.loads(json.dumps(results))
    ov = probed["overload"]["gru"]
    ov.update({"base_kind": "saturating", "max_rate_at_slo": 13.75,
               "saturation_probe": {"offered_rps": 480.0, "ok_rps": 150.5, "status_counts": {"200": 750, "503": 1650},
                                    "seconds": 5.0, "generator_behind_schedule": False}})
    rows = bars(probed, report.BARS)
    assert "3x saturating rate" in _row(rows, "Overload", "gru: 3x")["what"]
    assert "3x max rate at SLO" in _row(bars(results, report.BARS), "Overload", "gru: 3x")["what"]  # older files
    (tmp_path / "sweep.json").write_text(json.dumps(probed))
    assert report.main(["--results", str(tmp_path / "sweep.json"), "--out", str(tmp_path / "REPORT.md")]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    assert "saturation probe: 480.0 req/s offered" in text and "150.5 req/s answered 200" in text


def test_recovery_bar_is_the_time_back_to_normal(results: dict) -> None:
    timed = json.loads(json.dumps(results))
    timed["overload"]["gru"].update({"recovery_s": 0.7, "recovery_normal_ms": 50.0})
    row = _row(bars(timed, report.BARS), "Overload", "gru: after load drops")
    assert (row["verdict"], row["measured"], row["target"]) == ("PASS", "0.70 s", "≤ 2 s")
    timed["overload"]["gru"]["recovery_s"] = None
    assert _row(bars(timed, report.BARS), "Overload", "gru: after load drops")["verdict"] == "MISS"


@pytest.mark.parametrize(
    ("typing_start", "says"),
    [("prefix", "after a 5-40-word prefix"), ("empty", "from an empty text box in every document"),
     (None, "from an empty text box (sweeps before")],
)
def test_report_says_where_typists_start(results: dict, tmp_path: Path, typing_start: str | None, says: str) -> None:
    # P5 depends on how long the typists' contexts are: the report names the workload it measured.
    run = {k: v for k, v in results["meta"].get("run", {}).items() if k != "typing_start"}
    if typing_start is not None:
        run["typing_start"] = typing_start
    text = render({**results, "meta": {**results["meta"], "run": run}}, tmp_path / "REPORT.md", "x.json")
    assert "Typing workload: typists start " + says in text


def test_profiles_are_tabulated_by_part_and_named_in_the_commands(results: dict, tmp_path: Path) -> None:
    from bench.profile import PARTS
    from bench.report import main

    fixture = tmp_path / "sweep.json"
    fixture.write_text(json.dumps(results))
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


def test_no_profile_section_without_profiles(results: dict, tmp_path: Path) -> None:
    assert "Where the server's core goes" not in render(results, tmp_path / "REPORT.md", "sweep.json")

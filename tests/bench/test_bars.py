"""bench.bars: every bar's verdict from a tiny hand-made sweep result, bounds included."""

from __future__ import annotations

import json

from bench.bars import alone_at_batch, bars, verdict_ratio
from bench.report import BARS
from bench.sweep_results import Bounded


def _row(rows: list[dict], bar: str, what_prefix: str) -> dict:
    matches = [r for r in rows if r["bar"] == bar and r["what"].startswith(what_prefix)]
    assert len(matches) == 1, (bar, what_prefix, rows)
    return matches[0]


def test_bars_verdicts_from_fixture(tiny_sweep: dict) -> None:
    # Targets chosen for the fixture's numbers, so each verdict path is exercised.
    rows = bars(tiny_sweep, {**BARS, "P2": 2.0, "P3": 1.0, "P4": 0.5, "P5": 1.2})
    # P1 is a measured figure with its breakdown, not a verdict against a target.
    p1 = _row(rows, "P1", "gru cold")
    assert p1["verdict"] == "measured" and "n=200" in p1["what"]
    assert p1["measured"] == ("round trip p50 5.0 / p99 12.0 ms; in the server: model 3.0 ms + queue and engine"
                              " 0.4 ms; HTTP and client 2.1 ms (means)")
    assert _row(rows, "P1", "lstm cold")["measured"].startswith("round trip p50")
    p2 = _row(rows, "P2", "gru")
    assert p2["verdict"] == "PASS" and "= 3.00x" in p2["measured"] and p2["margin"].startswith("+50%")
    p3 = _row(rows, "P3", "gru")
    assert p3["verdict"] == "PASS" and "60.0 / 30.0 = 2.00x" in p3["measured"]
    # P4: 70 req/s answered at 3x capacity over the model alone at the server's mean batch of 22
    # (interpolated between batch 1 at 60 and batch 64 at 200 req/s: 106.67).
    p4 = _row(rows, "P4", "gru")
    assert p4["verdict"] == "PASS" and "= 0.66x" in p4["measured"] and "(22.0)" in p4["what"]
    assert _row(rows, "P5", "gru")["verdict"] == "PASS"
    # LSTM: no batching-off, no LitServe, no typing runs -> not measured, never invented.
    for bar in ("P2", "P3", "P5"):
        assert _row(rows, bar, "lstm")["verdict"] == "not measured"
    # No overload run for the LSTM: its saturation throughput is not measured.
    assert _row(rows, "P4", "lstm")["verdict"] == "not measured"
    overload = [r for r in rows if r["bar"] == "Overload"]
    assert [r["verdict"] for r in overload if r["what"].startswith("gru")] == ["PASS", "PASS", "PASS"]
    assert any(r["what"].startswith("lstm") and r["verdict"] == "not measured" for r in overload)


def test_bar_override(tiny_sweep: dict) -> None:
    rows = bars(tiny_sweep, {**BARS, "P4": 0.8})
    assert _row(rows, "P4", "gru")["verdict"] == "MISS"


def test_ratio_verdicts_respect_the_bound() -> None:
    assert verdict_ratio(Bounded(3.0, "lower"), 2.0)[0] == "PASS"
    assert verdict_ratio(Bounded(1.0, "upper"), 2.0)[0] == "MISS"
    assert verdict_ratio(Bounded(1.0, "lower"), 2.0)[0] == "INCONCLUSIVE"
    assert verdict_ratio(None, 2.0)[0] == "not measured"


def test_model_alone_is_interpolated_at_the_servers_batch_size() -> None:
    alone = {"batch_sizes": {"1": {"requests_per_s": 100.0}, "8": {"requests_per_s": 240.0},
                             "64": {"requests_per_s": 400.0}}}
    value, batch = alone_at_batch(alone, 4.5)
    assert batch == 4.5 and value == 170.0  # halfway between batch 1 and batch 8
    assert alone_at_batch(alone, 100.0) == (400.0, 100.0)  # past the largest measured batch: its figure
    assert alone_at_batch(alone, None) is None and alone_at_batch(None, 4.0) is None


def test_overload_bar_names_its_base(tiny_sweep: dict) -> None:
    probed = json.loads(json.dumps(tiny_sweep))
    probed["overload"]["gru"].update({"base_kind": "saturating"})
    assert "3x saturating rate" in _row(bars(probed, BARS), "Overload", "gru: 3x")["what"]
    assert "3x max rate at SLO" in _row(bars(tiny_sweep, BARS), "Overload", "gru: 3x")["what"]  # older files


def test_recovery_bar_is_the_time_back_to_normal(tiny_sweep: dict) -> None:
    timed = json.loads(json.dumps(tiny_sweep))
    timed["overload"]["gru"].update({"recovery_s": 0.7, "recovery_normal_ms": 50.0})
    row = _row(bars(timed, BARS), "Overload", "gru: after load drops")
    assert (row["verdict"], row["measured"], row["target"]) == ("PASS", "0.70 s", "≤ 2 s")
    timed["overload"]["gru"]["recovery_s"] = None
    assert _row(bars(timed, BARS), "Overload", "gru: after load drops")["verdict"] == "MISS"

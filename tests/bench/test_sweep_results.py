"""bench.sweep_results: max rates at SLO as bounded values, read from a sweep's results."""

from __future__ import annotations

from bench.sweep_results import Bounded, max_rate


def test_bounded_ratios() -> None:
    assert (Bounded(60) / Bounded(20)) == Bounded(3.0)
    assert (Bounded(40, "lower") / Bounded(20)) == Bounded(2.0, "lower")
    assert (Bounded(40) / Bounded(10, "upper")) == Bounded(4.0, "lower")
    assert (Bounded(40, "upper") / Bounded(20)) == Bounded(2.0, "upper")
    assert (Bounded(40, "lower") / Bounded(20, "lower")) is None
    assert Bounded(40, "lower").fmt() == "≥40.0" and Bounded(4, "upper").fmt(2, "x") == "≤4.00x"


def test_max_rate_kinds(tiny_sweep: dict) -> None:
    by_key = {c["key"]: c for c in tiny_sweep["configs"]}
    assert max_rate(by_key["nextword-gru-batch-on-cache-on-cold"]) == Bounded(60.0)
    assert max_rate(by_key["nextword-lstm-batch-on-cache-on-cold"]) == Bounded(40.0, "lower")
    failed_first = {"points": [{"rate": 10.0}, {"rate": 5.0}], "search_status": "first_point_failed",
                    "max_rate_at_slo": None}
    assert max_rate(failed_first) == Bounded(5.0, "upper")
    assert max_rate({"error": "boom", "points": []}) is None
    assert max_rate(None) is None

"""bench.runs: how long a sweep run lasts and the compact record the sweep keeps of it."""

from __future__ import annotations

from bench.runs import RunSettings, point_summary
from bench.slo import Slo


def _loadgen_result(workload: str = "cold", measured: int = 200, ok: int = 199, p99: float = 30.0) -> dict:
    return {
        "config": {"workload": workload, "typists": 9, "seed": 3, "duration": 5.0, "warmup": 1.0},
        "requests": {"measured": measured, "ok": ok},
        "throughput": {"offered_rps": 40.0, "ok_rps": 39.8},
        "status_counts": {"200": ok, "503": measured - ok},
        "latency_ms_ok": {"count": ok, "p50": 10.0, "p90": 20.0, "p99": p99, "p99.9": 50.0, "max": 60.0},
        "server_timing_ms": {"queue": {"p50": 1.0, "p99": 3.0}, "compute": {"p50": 4.0}},
        "behind_schedule": False,
        "behind_schedule_reasons": [],
        "generator_cpu": {"cpu_fraction_of_core": 0.2},
        "schedule_lag_ms": {"p50": 0.1, "p99": 0.9},
    }


def test_low_rates_run_long_enough_for_the_minimum_sample() -> None:
    rs = RunSettings(duration=5.0, min_samples=100)
    assert rs.duration_for(10.0) == 10 and rs.duration_for(40.0) == 5.0 and rs.duration_for(0.0) == 5.0


def test_point_summary_keeps_the_verdict_and_what_decided_it() -> None:
    point = point_summary(_loadgen_result(), 40.0, "ladder", Slo(), {"settle_s": 0.3})
    assert (point["passed"], point["reason"]) == (True, "ok")
    assert point["error_fraction"] == 0.005 and point["typists"] is None
    assert point["latency_ms_ok"] == {"count": 199, "p50": 10.0, "p90": 20.0, "p99": 30.0, "max": 60.0}
    assert point["server_timing_ms"] == {"queue": 1.0, "compute": 4.0}
    assert (point["seed"], point["duration_s"], point["settle_s"]) == (3, 5.0, 0.3)
    slow = point_summary(_loadgen_result("typing", p99=80.0), 40.0, "search", Slo())
    assert (slow["passed"], slow["reason"], slow["typists"]) == (False, "p99", 9)

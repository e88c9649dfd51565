"""bench.overload: the verdict of an overload run and when the low-rate stream is back to normal."""

from __future__ import annotations

from bench.overload import recovery_seconds, summarize_overload


def _run(counts: dict, n503_ra: int, p99: float | None, samples: dict | None = None, rate: float = 10.0) -> dict:
    return {
        "config": {"rate": rate},
        "status_counts": counts,
        "overload": {"503": counts.get("503", 0), "503_with_retry_after": n503_ra,
                     "retry_after_values": {"1": n503_ra}},
        "throughput": {"offered_rps": rate, "ok_rps": rate},
        "latency_ms_ok": {"p50": 10.0, "p99": p99},
        "behind_schedule": False,
        "behind_schedule_reasons": [],
        "generator_cpu": {"cpu_fraction_of_core": 0.1},
        "samples": samples,
    }


def test_summarize_overload() -> None:
    # Low stream: intended every 0.5 s over 6 s; overload ends at 4 s; window [4, 6).
    times = [i * 0.5 for i in range(12)]
    lat = [900.0] * 8 + [40.0, 30.0, 20.0, 10.0]
    low = _run({"200": 12}, 0, 900.0, {"intended_s": times, "latency_ms": lat, "status": ["200"] * 12})
    over = _run({"200": 50, "503": 150}, 150, 700.0, rate=300.0)
    out = summarize_overload(over, low, overload_s=4.0, deadline_ms=1000.0, over_rate=300.0, base_rate=100.0,
                             factor=3.0)
    assert out["only_200_or_503_retry_after"] and out["accepted_p99_within_deadline"]
    assert out["status_counts"] == {"200": 62, "503": 150}
    assert (out["recovery_requests"], out["recovery_ok"], out["recovery_p99_ms"]) == (4, 4, 40.0)
    assert out["recovery_s"] == 0.0 and out["recovery_normal_ms"] == 50.0
    assert out["low_during_overload_p99_ms"] == 900.0
    assert out["low_after_drop"] == [[0.0, 40.0, "200"], [0.5, 30.0, "200"], [1.0, 20.0, "200"], [1.5, 10.0, "200"]]
    bad = summarize_overload(_run({"200": 10, "503": 5, "504": 1}, 4, 1200.0), low, 4.0, 1000.0, 30.0, 10.0, 3.0)
    assert not bad["only_200_or_503_retry_after"] and not bad["accepted_p99_within_deadline"]


def test_recovery_seconds_is_when_the_low_stream_settles_for_good() -> None:
    drop = 4.0
    times = [3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5]
    slow_then_normal = {"intended_s": times, "latency_ms": [900.0, 300.0, 80.0, 20.0, 60.0, 20.0, 15.0],
                        "status": ["200"] * 7}
    assert recovery_seconds(slow_then_normal, drop, 50.0) == 2.0  # the 60 ms at 5.5 s resets it
    assert recovery_seconds({**slow_then_normal, "latency_ms": [900.0] + [10.0] * 6}, drop, 50.0) == 0.0
    assert recovery_seconds({**slow_then_normal, "status": ["200"] * 6 + ["503"]}, drop, 50.0) is None

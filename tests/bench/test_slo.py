"""bench.slo: the SLO judge and the max-rate search, against fake measurements with a known boundary."""

from __future__ import annotations

import pytest

from bench.slo import Slo, judge, ladder_rates, search_max_rate, typing_snap
from bench.workloads import MEAN_KEYSTROKE_GAP_S


def _result(measured: int = 100, ok: int = 100, p99: float | None = 20.0, behind: bool = False) -> dict:
    return {"requests": {"measured": measured, "ok": ok}, "latency_ms_ok": {"p99": p99}, "behind_schedule": behind}


def test_judge() -> None:
    slo = Slo(p99_ms=50.0, max_error_fraction=0.01)
    assert judge(_result(), slo) == (True, "ok")
    assert judge(_result(p99=50.0), slo) == (True, "ok")
    assert judge(_result(p99=50.1), slo) == (False, "p99")
    assert judge(_result(measured=1000, ok=991), slo) == (True, "ok")  # 0.9% errors
    assert judge(_result(measured=100, ok=99), slo) == (False, "errors")  # 1% is not < 1%
    assert judge(_result(behind=True), slo) == (False, "generator")
    assert judge(_result(measured=0, ok=0, p99=None), slo) == (False, "errors")


def test_ladder_rates() -> None:
    assert ladder_rates(10, 2, 80) == [10, 20, 40, 80]
    assert ladder_rates(10, 2, 100) == [10, 20, 40, 80, 100]
    with pytest.raises(ValueError):
        ladder_rates(10, 1, 100)


def _fake(boundary: float):  # p99 grows with rate and crosses 50 ms exactly at ``boundary``
    calls: list[float] = []

    def measure(rate: float) -> float:
        calls.append(rate)
        return 5.0 + 45.0 * rate / boundary

    return measure, calls


@pytest.mark.parametrize("boundary", [13.0, 55.0, 180.0, 333.0, 1000.0])
def test_search_finds_the_boundary(boundary: float) -> None:
    measure, calls = _fake(boundary)
    out = search_max_rate(measure, ladder_rates(10, 2, 1280), lambda p99: p99 <= 50.0, rel_tol=0.01, max_steps=20)
    assert out.status == "boundary"
    assert out.max_rate is not None and out.first_fail is not None
    assert out.max_rate <= boundary < out.first_fail
    assert (out.first_fail - out.max_rate) / out.max_rate <= 0.01
    assert [r for r, _ in out.points] == calls  # every measurement is recorded, in order
    ladder_part = [r for r in calls if r in ladder_rates(10, 2, 1280)]
    assert max(ladder_part) >= boundary  # the ladder went past saturation


def test_search_respects_the_step_budget() -> None:
    measure, calls = _fake(180.0)
    out = search_max_rate(measure, ladder_rates(10, 2, 1280), lambda p99: p99 <= 50.0, rel_tol=0.0, max_steps=3)
    # ladder 10..160 pass, 320 fails; then 240 F, 200 F, 180 P.
    assert calls == [10, 20, 40, 80, 160, 320, 240, 200, 180]
    assert (out.max_rate, out.first_fail) == (180, 200)


def test_search_never_saturating_and_first_point_failing() -> None:
    top = search_max_rate(lambda r: 1.0, [10, 20, 40], lambda p99: p99 <= 50.0)
    assert (top.status, top.max_rate, top.first_fail) == ("ladder_top", 40, None)
    # Fails at 10, passes at 5 (one step down), then bisects 5..10.
    measure, calls = _fake(7.0)
    low = search_max_rate(measure, [10, 20], lambda p99: p99 <= 50.0, rel_tol=0.0, max_steps=1)
    assert calls == [10, 5, 7.5]
    assert (low.status, low.max_rate, low.first_fail) == ("boundary", 5, 7.5)
    # Fails even one step down: not measured below.
    measure, calls = _fake(1.0)
    none = search_max_rate(measure, [10, 20], lambda p99: p99 <= 50.0)
    assert calls == [10, 5]
    assert (none.status, none.max_rate, none.first_fail) == ("first_point_failed", None, 5)


def test_search_with_typing_snap_uses_whole_typists() -> None:
    boundary = 60.0  # req/s; typists are ~4.44 req/s each
    measure, calls = _fake(boundary)
    out = search_max_rate(measure, ladder_rates(10, 2, 640), lambda p99: p99 <= 50.0, rel_tol=0.0,
                          max_steps=20, snap=typing_snap)
    per_typist = 1 / MEAN_KEYSTROKE_GAP_S
    assert all(abs(r / per_typist - round(r / per_typist)) < 1e-9 for r in calls)
    assert len(calls) == len(set(calls))
    assert out.max_rate <= boundary < out.first_fail
    assert round((out.first_fail - out.max_rate) / per_typist) == 1  # adjacent typist counts


def test_a_run_whose_generator_fell_behind_is_measured_again() -> None:
    """A hiccup on the load generator's core must not end the ladder: that rate is run again."""
    behind = {40.0: 1, 80.0: 5}  # runs at this rate that come back "generator behind"
    calls: list[float] = []

    def measure(rate: float) -> tuple[float, bool]:
        calls.append(rate)
        late = behind.get(rate, 0) > 0
        behind[rate] = behind.get(rate, 0) - 1
        return 5.0 + 45.0 * rate / 100.0, late  # (p99, generator behind); the server's boundary is 100

    out = search_max_rate(measure, [10, 20, 40, 80, 160], lambda m: m[0] <= 50.0 and not m[1], rel_tol=0.0,
                          max_steps=0, remeasure=lambda m: m[1], max_remeasures=2)
    # 40 passes on its second run; 80 is behind three times, the budget, and counts as failed.
    assert calls == [10, 20, 40, 40, 80, 80, 80]
    assert [r for r, _ in out.points] == calls  # every run is kept
    assert (out.max_rate, out.first_fail) == (40, 80)
    # A failure the server caused is not re-run.
    measure_p99, p99_calls = _fake(30.0)
    search_max_rate(measure_p99, [10, 20, 40], lambda p99: p99 <= 50.0, rel_tol=0.0, max_steps=0,
                    remeasure=lambda p99: False)
    assert p99_calls == [10, 20, 40]

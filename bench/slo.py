"""The SLO and the search for the highest offered rate that meets it (like perf_analyzer's).

A load run **passes** when the p99 latency of its 200 responses is <= ``Slo.p99_ms``, fewer
than ``Slo.max_error_fraction`` of its measured requests got anything but 200 (503, 504,
timeouts, ... all count), and the generator was not behind schedule (bench.loadgen's
``behind_schedule``). The **max rate at SLO** is the highest *offered* rate that passed:
a geometric rate ladder (e.g. 10, 20, 40, ... req/s) up to the first rate that fails, then
a binary search between the last pass and that failure. A run that failed only because the
generator fell behind is run again (twice at most): it measured the generator's core, not the
server. Kept apart from the sweep that
runs it so the search can be checked against a fake server whose boundary is known.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Slo:
    p99_ms: float = 50.0
    #: A run fails when this fraction or more of its measured requests are not 200.
    max_error_fraction: float = 0.01


def judge(result: Mapping[str, Any], slo: Slo) -> tuple[bool, str]:
    """(passed, reason) for one bench.loadgen result: "ok", "generator", "errors" or "p99"."""
    if result.get("behind_schedule"):
        return False, "generator"
    measured = result["requests"]["measured"]
    if measured == 0:
        return False, "errors"
    not_ok = measured - result["requests"]["ok"]
    if not_ok / measured >= slo.max_error_fraction:
        return False, "errors"
    p99 = result["latency_ms_ok"]["p99"]
    if p99 is None or p99 > slo.p99_ms:
        return False, "p99"
    return True, "ok"


def ladder_rates(start: float, factor: float, max_rate: float) -> list[float]:
    """``start, start*factor, ...`` up to and including the first value >= ``max_rate`` (capped)."""
    if start <= 0 or factor <= 1:
        raise ValueError("need start > 0 and factor > 1")
    rates = [start]
    while rates[-1] < max_rate:
        rates.append(min(rates[-1] * factor, max_rate))
    return rates


@dataclass
class SearchOutcome:
    #: (rate, measurement) in the order measured.
    points: list[tuple[float, Any]] = field(default_factory=list)
    #: Highest rate that passed (None: not even the first).
    max_rate: float | None = None
    #: Lowest rate that failed above ``max_rate`` (None: the ladder never failed).
    first_fail: float | None = None
    #: "boundary" (bracketed), "ladder_top" (never failed: at least max_rate),
    #: "first_point_failed" (below the lowest rate tried).
    status: str = "boundary"


def search_max_rate(
    measure: Callable[[float], Any],
    rates: Sequence[float],
    passes: Callable[[Any], bool],
    rel_tol: float = 0.1,
    max_steps: int = 3,
    snap: Callable[[float], float] = lambda r: r,
    max_descend: int = 1,
    descend_factor: float = 2.0,
    remeasure: Callable[[Any], bool] = lambda m: False,
    max_remeasures: int = 2,
) -> SearchOutcome:
    """Ladder up ``rates`` to the first failure, then bisect between the last pass and it.

    ``measure(rate)`` runs one load test; ``passes(measurement)`` says whether it met the
    SLO. Bisection (arithmetic midpoints, ``snap``-ped to what can be offered, e.g. a
    whole number of typists) stops after ``max_steps`` measurements, when
    ``(hi - lo) / lo <= rel_tol``, or when the snapped midpoint is no longer strictly
    between the bounds. When even the first rate fails, up to ``max_descend`` lower rates
    (each ``descend_factor`` times lower) are tried first. Assumes that passing is
    monotone in rate (it is, up to noise).

    A failed measurement for which ``remeasure(measurement)`` holds (the load generator fell
    behind: it says nothing about the server) is run again, up to ``max_remeasures`` times
    per rate; every run is kept in ``points``, and the rate's last run decides.
    """
    out = SearchOutcome()

    def measure_at(rate: float) -> Any:
        for _ in range(max_remeasures + 1):
            m = measure(rate)
            out.points.append((rate, m))
            if passes(m) or not remeasure(m):
                break
        return m

    lo: float | None = None
    hi: float | None = None
    seen: set[float] = set()
    for raw in rates:
        rate = snap(raw)
        if rate in seen:
            continue
        seen.add(rate)
        m = measure_at(rate)
        if passes(m):
            lo = rate
        else:
            hi = rate
            break
    if lo is None and hi is not None:
        # Even the first rate failed: step down (a slow machine) before giving up.
        rate = hi
        for _ in range(max_descend):
            rate = snap(rate / descend_factor)
            if rate in seen or rate <= 0:
                break
            seen.add(rate)
            m = measure_at(rate)
            if passes(m):
                lo = rate
                break
            hi = rate
    if lo is None:
        out.status = "first_point_failed"
        out.first_fail = hi
        return out
    if hi is None:
        out.status = "ladder_top"
        out.max_rate = lo
        return out
    steps = 0
    while steps < max_steps and (hi - lo) / lo > rel_tol:
        mid = snap((lo + hi) / 2)
        if not lo < mid < hi:
            break
        m = measure_at(mid)
        steps += 1
        if passes(m):
            lo = mid
        else:
            hi = mid
    out.max_rate, out.first_fail = lo, hi
    return out


def typing_snap(rate: float) -> float:
    """The typing workload's rate for the typist count nearest ``rate`` (at least one)."""
    from bench.workloads import MEAN_KEYSTROKE_GAP_S, typists_for_rate

    return typists_for_rate(rate) / MEAN_KEYSTROKE_GAP_S

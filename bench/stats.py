"""Exact latency statistics for the load generator.

Percentiles use the **nearest-rank** definition: for ``0 < q <= 100`` over ``n`` samples
sorted ascending, the q-th percentile is the sample at 1-based rank ``ceil(q/100 * n)``;
``q == 0`` gives the minimum. Why nearest-rank rather than linear interpolation:

* every reported value is a latency that was really observed (an interpolated p99.9
  between a 40 ms and a 900 ms sample would describe no request at all);
* it never reports a tail lower than the samples that fall at or above it, which is the
  conservative direction for latency; HdrHistogram (and so wrk2) report this way too.

The rank is computed with exact rational arithmetic (``q`` is read through its decimal
string), so ``p99.9`` of 1000 samples is rank 999, not 1000 through floating-point error.

Everything here is pure and works on plain sequences: no numpy, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from fractions import Fraction

#: The percentiles every latency summary reports.
DEFAULT_QUANTILES: tuple[float, ...] = (50, 90, 99, 99.9)


def _key(q: float) -> str:
    """``50`` -> ``"p50"``, ``99.9`` -> ``"p99.9"`` (the JSON keys of a summary)."""
    text = f"{q:g}"
    return f"p{text}"


def nearest_rank(q: float, n: int) -> int:
    """The 1-based nearest rank of percentile ``q`` (0..100) among ``n`` sorted samples."""
    if n <= 0:
        raise ValueError("no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q!r} is outside 0..100")
    exact = Fraction(str(q)) * n / 100
    return max(1, math.ceil(exact))


def percentiles(samples: Iterable[float], qs: Sequence[float]) -> dict[float, float]:
    """Exact nearest-rank percentiles of ``samples`` for each ``q`` in ``qs`` (0..100).

    Returns ``{q: value}``. Raises :class:`ValueError` on an empty sample set or a ``q``
    outside 0..100: an empty run has no percentiles, and saying 0 ms would be a lie.
    """
    ordered = sorted(samples)
    n = len(ordered)
    if n == 0:
        raise ValueError("no samples")
    return {q: ordered[nearest_rank(q, n) - 1] for q in qs}


def summarize(samples: Iterable[float], qs: Sequence[float] = DEFAULT_QUANTILES) -> dict:
    """``{"count", "p50", "p90", "p99", "p99.9", "max", "mean", "min"}`` of ``samples``.

    An empty sample set gives ``count == 0`` and ``None`` for every statistic, so a
    JSON report stays well-formed when, say, no request succeeded.
    """
    values = list(samples)
    out: dict = {"count": len(values)}
    if not values:
        out.update({_key(q): None for q in qs})
        out.update({"max": None, "mean": None, "min": None})
        return out
    for q, v in percentiles(values, qs).items():
        out[_key(q)] = v
    out["max"] = max(values)
    out["min"] = min(values)
    out["mean"] = math.fsum(values) / len(values)
    return out


def rounded(summary: dict, digits: int = 3) -> dict:
    """A copy of a :func:`summarize` result with floats rounded for the JSON report."""
    return {k: round(v, digits) if isinstance(v, float) else v for k, v in summary.items()}

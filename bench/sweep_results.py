"""Reading a sweep's results file: lookups by configuration and rate, and bounded max rates.

A max rate at SLO is not always a number: when the ladder never failed (or the failure
was the generator's) the server can do *at least* that rate, and when even the lowest
rate failed it can do *less*. :class:`Bounded` keeps that kind with the value, so a ratio
of two max rates (a bar) is a bound too and is never read as more certain than it is.
What a results file does not hold is written as :data:`NOT_MEASURED`, never estimated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Bounded:
    """A number that is exact, a lower bound (true >= value) or an upper bound (true <= value)."""

    value: float
    kind: str = "exact"  # "exact" | "lower" | "upper"

    def fmt(self, digits: int = 1, unit: str = "") -> str:
        prefix = {"exact": "", "lower": "≥", "upper": "≤"}[self.kind]
        return f"{prefix}{self.value:.{digits}f}{unit}"

    def __truediv__(self, other: Bounded) -> Bounded | None:
        if other.value == 0:
            return None
        value = self.value / other.value
        if self.kind == other.kind == "exact":
            return Bounded(value)
        # A bigger-than-shown numerator or smaller-than-shown denominator: the ratio is at
        # least this; the reverse: at most this.
        at_least = self.kind == "lower" or other.kind == "upper"
        at_most = self.kind == "upper" or other.kind == "lower"
        if at_least and at_most:
            return None  # the bounds point both ways: nothing can be said
        return Bounded(value, "lower" if at_least else "upper")


def max_rate(config: Mapping[str, Any] | None) -> Bounded | None:
    """A configuration's max rate at SLO as a :class:`Bounded` (None: not measured)."""
    if not config or config.get("error") or not config.get("points"):
        return None
    status = config.get("search_status")
    if status == "first_point_failed":
        lowest = min(p["rate"] for p in config["points"])
        return Bounded(lowest, "upper")
    value = config.get("max_rate_at_slo")
    if value is None:
        return None
    if status == "ladder_top" or config.get("limited_by") == "generator":
        return Bounded(value, "lower")
    return Bounded(value)


def configs_by_key(results: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["key"]: c for c in results.get("configs", [])}


def nw_key(backend: str, batching: bool, cache: bool, workload: str) -> str:
    onoff = {True: "on", False: "off"}
    return f"nextword-{backend}-batch-{onoff[batching]}-cache-{onoff[cache]}-{workload}"


def point_at(config: Mapping[str, Any] | None, rate: float, tol: float = 0.05) -> dict[str, Any] | None:
    """The measured point of ``config`` at ``rate`` (within ``tol`` relative), the longest if several."""
    if not config:
        return None
    pts = [p for p in config.get("points", []) if abs(p["rate"] - rate) <= tol * rate]
    return max(pts, key=lambda p: p["measured"]) if pts else None


def fmt(v: Any, digits: int = 1, unit: str = "") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}{unit}"
    return f"{v}{unit}"


def backends_of(results: Mapping[str, Any]) -> list[str]:
    seen: list[str] = []
    for c in results.get("configs", []):
        if c["backend"] not in seen:
            seen.append(c["backend"])
    for b in results.get("models", {}):
        if b not in seen:
            seen.append(b)
    return seen

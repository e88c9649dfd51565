"""The bars: each target of the load-testing issue, judged from a sweep's results.

P1 is the round trip at low load with its breakdown, a measured figure without a verdict;
P2, P3 and P5 are ratios of max rates at SLO (batching on/off, nextword/LitServe, typing cache
on/off); P4 is the saturation throughput (answered req/s when offered 3x capacity, from the
overload stage) over the model alone's at the same mean batch size; the overload bars are the
statuses, the accepted p99 against the deadline, and the time back to normal. The targets
are passed in (:data:`bench.report.BARS`, which ``--bar`` overrides). Ratios of bounded
max rates are bounds too (:class:`bench.sweep_results.Bounded`), and a bar is PASS/MISS
only when the bound allows it, else INCONCLUSIVE.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from bench.sweep_results import (
    NOT_MEASURED,
    Bounded,
    backends_of,
    configs_by_key,
    fmt,
    max_rate,
    nw_key,
    point_at,
)


def verdict_ratio(ratio: Bounded | None, bar: float) -> tuple[str, str]:
    """(verdict, by how much) of a ratio against a ``>= bar`` target."""
    if ratio is None:
        return NOT_MEASURED, ""
    margin = f"{(ratio.value / bar - 1) * 100:+.0f}% vs bar"
    if ratio.value >= bar and ratio.kind in ("exact", "lower"):
        return "PASS", margin
    if ratio.value < bar and ratio.kind in ("exact", "upper"):
        return "MISS", margin
    return "INCONCLUSIVE", margin + " (bound on the wrong side)"


def verdict_max(value: float | None, target: float, unit: str = " ms") -> tuple[str, str]:
    """(verdict, by how much) of a measured value against a ``<= target`` limit."""
    if value is None:
        return NOT_MEASURED, ""
    diff = target - value
    return ("PASS" if value <= target else "MISS"), f"{abs(diff):.1f}{unit} {'under' if diff >= 0 else 'over'}"


def bars(results: Mapping[str, Any], targets: Mapping[str, float]) -> list[dict[str, str]]:
    """Every bar's row: name, comparison, measured, target, verdict, margin."""
    cfg = configs_by_key(results)
    rows: list[dict[str, str]] = []
    ma = (results.get("model_alone") or {}).get("results") or {}
    for b in backends_of(results):
        # P1: a measured figure at low load with its breakdown, not a pass/fail.
        p = point_at(cfg.get(nw_key(b, True, True, "cold")), targets["P1_rate"])
        rows.append(p1_row(b, p, targets["P1_rate"]))
        # P2: batching on/off.
        on, off = max_rate(cfg.get(nw_key(b, True, True, "cold"))), max_rate(cfg.get(nw_key(b, False, True, "cold")))
        rows.append(_ratio_row("P2", f"{b} cold: batching on / off (max rate at SLO)", on, off, targets["P2"]))
        # P3: nextword vs LitServe.
        ls = max_rate(cfg.get(f"litserve-{b}-cold"))
        rows.append(_ratio_row("P3", f"{b} cold: nextword / LitServe (max rate at SLO)", on, ls, targets["P3"]))
        # P4: what the server answers when saturated, against the model alone at the same batch size.
        ov = (results.get("overload") or {}).get(b) or {}
        same = alone_at_batch(ma.get(b), ((ov.get("server") or {}).get("mean_batch_requests")))
        saturated = ov.get("overload_ok_rps")
        what = "saturation throughput (answered req/s at 3x capacity) / model alone at the same mean batch"
        rows.append(_ratio_row("P4", f"{b} cold: {what}" + (f" ({same[1]:.1f})" if same else ""),
                               Bounded(saturated) if saturated else None, Bounded(same[0]) if same else None,
                               targets["P4"]))
        # P5: typing cache on/off (batching on).
        con = max_rate(cfg.get(nw_key(b, True, True, "typing")))
        coff = max_rate(cfg.get(nw_key(b, True, False, "typing")))
        rows.append(_ratio_row("P5", f"{b} typing: cache on / off (max rate at SLO, batching on)", con, coff,
                               targets["P5"]))
    for b, ov in (results.get("overload") or {}).items():
        rows.extend(_overload_rows(b, ov, targets))
    return rows


def p1_row(backend: str, point: Mapping[str, Any] | None, rate: float) -> dict[str, str]:
    """P1: the round trip at low load, split into the model's time in the server, the server's
    queueing and overhead, and what the HTTP path and the client add (means of the 200s)."""
    lat = (point or {}).get("latency_ms_ok") or {}
    timing = (point or {}).get("server_timing_ms") or {}
    what = f"{backend} cold at {rate:g} req/s" + (f" (n={lat['count']})" if lat.get("count") else "")
    if not lat.get("p50"):
        return {"bar": "P1", "what": what, "measured": NOT_MEASURED, "target": "measured, no bar",
                "verdict": NOT_MEASURED, "margin": ""}
    parts = [f"round trip p50 {lat['p50']:.1f} / p99 {lat['p99']:.1f} ms"]
    compute, total, mean = timing.get("compute"), timing.get("total"), lat.get("mean")
    if compute is not None and total is not None:
        parts.append(f"in the server: model {compute:.1f} ms + queue and engine {total - compute:.1f} ms")
        if mean is not None:
            parts.append(f"HTTP and client {mean - total:.1f} ms (means)")
    return {"bar": "P1", "what": what, "measured": "; ".join(parts), "target": "measured, no bar",
            "verdict": "measured", "margin": ""}


def alone_at_batch(alone: Mapping[str, Any] | None, batch: float | None) -> tuple[float, float] | None:
    """(model-alone requests/s interpolated at mean batch size ``batch``, that batch), or None."""
    if not alone:
        return None
    sizes = sorted((int(k), v["requests_per_s"]) for k, v in (alone.get("batch_sizes") or {}).items())
    if batch is None or not sizes:
        return None
    if batch <= sizes[0][0]:
        return sizes[0][1], batch
    for (b0, r0), (b1, r1) in itertools.pairwise(sizes):
        if b0 <= batch <= b1:
            return r0 + (r1 - r0) * (batch - b0) / (b1 - b0), batch
    return sizes[-1][1], batch


def _ratio_row(name: str, what: str, a: Bounded | None, b: Bounded | None, bar: float) -> dict[str, str]:
    if a is None or b is None:
        missing = [label for label, v in (("numerator", a), ("denominator", b)) if v is None]
        return {"bar": name, "what": what, "measured": f"{NOT_MEASURED} ({' and '.join(missing)})",
                "target": f"≥ {bar:g}x", "verdict": NOT_MEASURED, "margin": ""}
    ratio = a / b
    v, m = verdict_ratio(ratio, bar) if ratio else ("INCONCLUSIVE", "bounds point both ways")
    measured = f"{a.fmt()} / {b.fmt()} = " + (ratio.fmt(2, "x") if ratio else "undetermined")
    return {"bar": name, "what": what, "measured": measured, "target": f"≥ {bar:g}x", "verdict": v, "margin": m}


def overload_base(ov: Mapping[str, Any]) -> str:
    """What the overload rate is a multiple of (older results: the max rate at SLO)."""
    return "saturating rate" if ov.get("base_kind") == "saturating" else "max rate at SLO"


def _overload_rows(backend: str, ov: Mapping[str, Any], targets: Mapping[str, float]) -> list[dict[str, str]]:
    if not ov or ov.get("error"):
        why = (ov or {}).get("error", "")
        return [{"bar": "Overload", "what": f"{backend}: overload check", "measured": f"{NOT_MEASURED} {why}".strip(),
                 "target": "", "verdict": NOT_MEASURED, "margin": ""}]
    secs = ov["overload_seconds"]
    flag = "" if secs >= 60 else f" ({secs:g} s, issue asks 60 s)"
    others = {k: v for k, v in ov["status_counts"].items() if k not in ("200", "503")}
    missing_ra = ov["503"] - ov["503_with_retry_after"]
    statuses = ", ".join(f"{k}: {v}" for k, v in ov["status_counts"].items())
    rows = [{
        "bar": "Overload",
        "what": f"{backend}: {ov['factor']:g}x {overload_base(ov)} ({ov['overload_rate']:.0f} req/s){flag}: "
                "only 200 or 503+Retry-After",
        "measured": statuses + (f"; {missing_ra} 503 without Retry-After" if missing_ra else ""),
        "target": "0 other",
        "verdict": "PASS" if ov["only_200_or_503_retry_after"] else "MISS",
        "margin": f"{sum(others.values()) + missing_ra} other" if not ov["only_200_or_503_retry_after"] else "",
    }]
    v, m = verdict_max(ov.get("accepted_p99_ms"), ov["deadline_ms"])
    rows.append({"bar": "Overload", "what": f"{backend}: accepted (200) p99 during overload vs deadline",
                 "measured": fmt(ov.get("accepted_p99_ms"), 1, " ms"), "target": f"≤ {ov['deadline_ms']:g} ms",
                 "verdict": v, "margin": m})
    if "recovery_s" in ov:
        # Back to normal *within* the window: from some moment before its end on, every
        # low-stream request is answered under the normal latency (the SLO).
        window, normal = ov["recovery_window_s"], ov.get("recovery_normal_ms", targets["overload_recovery_p99_ms"])
        rec = ov["recovery_s"]
        v, m = verdict_max(rec, window, " s") if rec is not None else ("MISS", "")
        rows.append({"bar": "Overload",
                     "what": f"{backend}: after load drops, time until every request ({ov['low_rate']:g} req/s) "
                             f"is back under {normal:g} ms (p99 of the first {window:g} s: "
                             f"{fmt(ov.get('recovery_p99_ms'), 1, ' ms')})",
                     "measured": fmt(rec, 2, " s") if rec is not None else "never, within the run",
                     "target": f"≤ {window:g} s", "verdict": v, "margin": m})
        return rows
    v, m = verdict_max(ov.get("recovery_p99_ms"), targets["overload_recovery_p99_ms"])
    rows.append({"bar": "Overload",
                 "what": f"{backend}: p99 in the {ov['recovery_window_s']:g} s after load drops "
                         f"({ov['low_rate']:g} req/s, n={ov.get('recovery_ok')})",
                 "measured": fmt(ov.get("recovery_p99_ms"), 1, " ms"),
                 "target": f"≤ {targets['overload_recovery_p99_ms']:g} ms", "verdict": v, "margin": m})
    return rows

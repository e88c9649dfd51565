"""Overload: drive a server far past what it can answer, then judge what it answered.

Per backend (nextword, batching on, cache on, cold): first a short **saturation probe**
far above capacity, whose answered throughput is the server's saturating rate; then
``factor`` x that rate (or x the max rate at SLO, if higher) for ``overload_s`` seconds,
with a low-rate stream running throughout and for some seconds after. The verdict: every
request must get 200 or 503 + Retry-After, the accepted requests' p99 is compared to the
server's deadline, and the low stream's latencies after the overload stops show how long
the server takes to recover.

The max rate at SLO is a latency bound, not a throughput one: a multiple of it can still
be under capacity (and then nothing is rejected), which is why the base is what the server
actually answers per second when offered far more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from bench.loadgen import run_load
from bench.openloop import LoadConfig
from bench.run_summary import merged_status_counts
from bench.runs import RunSettings
from bench.stats import rounded, summarize


def default_deadline_ms() -> float:
    """The server's default per-request deadline (app.config.Settings; light import, no torch)."""
    from app.config import Settings

    return float(Settings.model_fields["deadline_ms"].default)


async def saturation_probe(url: str, backend: str, rate: float, seconds: float, rs: RunSettings,
                           docs: Sequence[str]) -> dict[str, Any]:
    """Offer ``rate`` cold req/s for ``seconds``: what the server answers is its saturating rate."""
    cfg = LoadConfig(url=url, model=backend, workload="cold", rate=rate, duration=seconds,
                     warmup=1.0, arrivals=rs.arrivals, seed=rs.seed + 3000, corpus=rs.corpus,
                     max_docs=rs.max_docs, timeout=rs.timeout, keep_samples=False)
    r = await run_load(cfg, docs)
    return {"offered_rps": r["throughput"]["offered_rps"], "ok_rps": r["throughput"]["ok_rps"],
            "status_counts": r["status_counts"], "behind_schedule": r["behind_schedule"]}


async def overload_runs(url: str, backend: str, over_rate: float, overload_s: float, low_rate: float,
                        recovery_s: float, rs: RunSettings,
                        docs: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The overload run and, at the same time, the low-rate stream that outlasts it (with samples)."""
    common = {"url": url, "model": backend, "workload": "cold", "warmup": 0.0, "arrivals": rs.arrivals,
              "corpus": rs.corpus, "max_docs": rs.max_docs, "timeout": rs.timeout}
    over = LoadConfig(rate=over_rate, duration=overload_s, seed=rs.seed + 1000, keep_samples=False,
                      **common)
    low = LoadConfig(rate=low_rate, duration=overload_s + recovery_s,
                     seed=rs.seed + 2000, keep_samples=True, **common)
    return tuple(await asyncio.gather(run_load(over, docs), run_load(low, docs)))  # type: ignore[return-value]


def recovery_seconds(samples: Mapping[str, Any], overload_s: float, normal_ms: float) -> float | None:
    """Seconds after the overload stops until the low stream is back to normal for good.

    The intended send time (relative to the drop) of the first request from which on every
    low-stream request was answered 200 within ``normal_ms``; 0 if none after the drop was
    slow; None if it never settled before the run ended.
    """
    after = [(t, lat, st) for t, lat, st in zip(samples["intended_s"], samples["latency_ms"], samples["status"],
                                                 strict=True) if t >= overload_s]
    if not after:
        return None
    settled_from = None
    for t, lat, st in reversed(after):
        if st != "200" or lat is None or lat > normal_ms:
            break
        settled_from = t
    return None if settled_from is None else round(settled_from - overload_s, 3)


def summarize_overload(over: Mapping[str, Any], low: Mapping[str, Any], overload_s: float, deadline_ms: float,
                       over_rate: float, base_rate: float, factor: float, window_s: float = 2.0,
                       normal_ms: float = 50.0) -> dict[str, Any]:
    """The overload verdict from the overload run and the concurrent low-rate run (with samples)."""
    counts = merged_status_counts((over, low))
    n503 = over["overload"]["503"] + low["overload"]["503"]
    n503_ra = over["overload"]["503_with_retry_after"] + low["overload"]["503_with_retry_after"]
    only_ok = set(counts) <= {"200", "503"} and n503 == n503_ra
    s = low["samples"]
    after = [lat for t, lat, st in zip(s["intended_s"], s["latency_ms"], s["status"], strict=True)
             if overload_s <= t < overload_s + window_s and st == "200" and lat is not None]
    after_all = [st for t, st in zip(s["intended_s"], s["status"], strict=True)
                 if overload_s <= t < overload_s + window_s]
    during = [lat for t, lat, st in zip(s["intended_s"], s["latency_ms"], s["status"], strict=True)
              if t < overload_s and st == "200" and lat is not None]
    rec = rounded(summarize(after, qs=(50, 99)))
    acc = over["latency_ms_ok"]
    return {
        "base_rate": base_rate,
        "factor": factor,
        "overload_rate": round(over_rate, 2),
        "overload_seconds": overload_s,
        "low_rate": low["config"]["rate"],
        "deadline_ms": deadline_ms,
        "status_counts": counts,
        "503": n503,
        "503_with_retry_after": n503_ra,
        "retry_after_values": over["overload"]["retry_after_values"],
        "only_200_or_503_retry_after": only_ok,
        "overload_offered_rps": over["throughput"]["offered_rps"],
        "overload_ok_rps": over["throughput"]["ok_rps"],
        "accepted_p50_ms": acc["p50"],
        "accepted_p99_ms": acc["p99"],
        "accepted_p99_within_deadline": acc["p99"] is not None and acc["p99"] <= deadline_ms,
        "low_during_overload_p99_ms": rounded(summarize(during, qs=(99,)))["p99"],
        "recovery_window_s": window_s,
        "recovery_requests": len(after_all),
        "recovery_ok": len(after),
        "recovery_p50_ms": rec["p50"],
        "recovery_p99_ms": rec["p99"],
        "recovery_s": recovery_seconds(s, overload_s, normal_ms),
        "recovery_normal_ms": normal_ms,
        "low_after_window": low["latency_ms_ok"],
        # Every low-stream request after the drop, so a late slow one (which decides
        # recovery_s) can be told from a backlog: [s after the drop, latency ms, status].
        "low_after_drop": [[round(t - overload_s, 3), lat, st]
                           for t, lat, st in zip(s["intended_s"], s["latency_ms"], s["status"], strict=True)
                           if t >= overload_s],
        "generator_behind_schedule": bool(over["behind_schedule"] or low["behind_schedule"]),
        "generator_reasons": list(over["behind_schedule_reasons"]) + list(low["behind_schedule_reasons"]),
        "generator_cpu_fraction": over["generator_cpu"]["cpu_fraction_of_core"],
    }

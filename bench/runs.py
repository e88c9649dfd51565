"""One measured load run of a sweep configuration: its settings, the run, and the record kept.

Each run is short (warm-up + ``duration`` seconds, longer at low rates so it has at least
``min_samples`` requests); run ``i`` of every configuration uses seed ``seed + i``, so
configurations see the same requests at the same ladder step. Between runs the server's
backlog is allowed to drain (:func:`settle`), so one run's queue does not leak into the
next run's latencies. The sweep keeps a compact record of each run (:func:`point_summary`)
rather than bench.loadgen's whole report.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from bench.configs import Target
from bench.loadgen import run_load
from bench.openloop import LoadConfig
from bench.slo import Slo, judge
from bench.workloads import typists_for_rate


@dataclass
class RunSettings:
    duration: float = 5.0
    warmup: float = 1.0
    min_samples: int = 100
    p1_duration: float = 20.0
    p1_rate: float = 10.0
    timeout: float = 5.0
    seed: int = 0
    corpus: str | None = None
    max_docs: int | None = 2000
    arrivals: str = "poisson"
    typing_start: str = "prefix"
    # Typing runs warm up longer: their typists join over the warm-up, each with a cold read of its
    # whole prefix (bench.workloads.typing_plan), and those reads must be served before measurement.
    typing_warmup: float = 3.0

    def warmup_for(self, workload: str) -> float:
        """The warm-up of a run of ``workload``: at least ``typing_warmup`` for typing."""
        return max(self.warmup, self.typing_warmup) if workload == "typing" else self.warmup

    def duration_for(self, rate: float) -> float:
        return max(self.duration, math.ceil(self.min_samples / rate)) if rate > 0 else self.duration


def run_point(url: str, target: Target, rate: float, seed: int, duration: float, rs: RunSettings,
              docs: Sequence[str], warmup: float | None = None) -> dict[str, Any]:
    """One bench.loadgen run against ``url`` (typing: rate -> typists)."""
    cfg = LoadConfig(
        url=url, model=target.backend, workload=target.workload, rate=rate, duration=duration,
        warmup=rs.warmup_for(target.workload) if warmup is None else warmup, seed=seed, arrivals=rs.arrivals,
        corpus=rs.corpus, max_docs=rs.max_docs, typists=typists_for_rate(rate), timeout=rs.timeout,
        keep_samples=False, typing_start=rs.typing_start,
    )
    return asyncio.run(run_load(cfg, documents=docs))


def point_summary(result: Mapping[str, Any], rate: float, phase: str, slo: Slo,
                  extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The compact record of one load test kept in the sweep results."""
    passed, reason = judge(result, slo)
    cfg = result["config"]
    req = result["requests"]
    return {
        "rate": round(rate, 3),
        "phase": phase,
        "typists": cfg["typists"] if cfg["workload"] == "typing" else None,
        "seed": cfg["seed"],
        "duration_s": cfg["duration"],
        "warmup_s": cfg["warmup"],
        "offered_rps": result["throughput"]["offered_rps"],
        "ok_rps": result["throughput"]["ok_rps"],
        "measured": req["measured"],
        "ok": req["ok"],
        "error_fraction": round((req["measured"] - req["ok"]) / req["measured"], 4) if req["measured"] else None,
        "status_counts": result["status_counts"],
        "latency_ms_ok": {k: result["latency_ms_ok"][k] for k in ("count", "p50", "p90", "p99", "max")},
        "server_timing_ms": {k: v.get("p50") for k, v in result.get("server_timing_ms", {}).items()},
        "behind_schedule": result["behind_schedule"],
        "behind_schedule_reasons": result["behind_schedule_reasons"],
        "generator_cpu_fraction": result["generator_cpu"]["cpu_fraction_of_core"],
        "schedule_lag_p99_ms": result["schedule_lag_ms"]["p99"],
        "passed": passed,
        "reason": reason,
        **(dict(extra) if extra else {}),
    }


def settle(client: httpx.Client, url: str, backend: str, max_wait: float = 15.0, fast_ms: float = 250.0) -> float:
    """Wait until one probe request is answered within ``fast_ms`` (the backlog is gone)."""
    t0 = time.perf_counter()
    body = {"text": "The movie was ", "model": backend, "k": 3}
    while time.perf_counter() - t0 < max_wait:
        s = time.perf_counter()
        with contextlib.suppress(httpx.HTTPError):
            r = client.post(url + "/v1/complete", json=body)
            if r.status_code == 200 and (time.perf_counter() - s) * 1e3 < fast_ms:
                break
        time.sleep(0.25)
    return round(time.perf_counter() - t0, 2)

"""The report of one open-loop run: counts, rates, latency percentiles and whether it can be trusted.

Warm-up requests are sent but left out of every statistic. Latency is from the intended
send time (a stall shows in every request scheduled during it); percentiles are exact
nearest-rank values over all samples (:mod:`bench.stats`). A run whose generator could
not keep its schedule (p99 send lag over :data:`LAG_P99_LIMIT_MS`, the generator near one
full core, requests queued for a connection slot, client resource errors, requests still
unfinished at the drain deadline) is marked ``behind_schedule`` with the reasons, rather
than reported with rosy numbers.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.openloop import LoadConfig, Sample
from bench.stats import rounded, summarize
from bench.workloads import MEAN_KEYSTROKE_GAP_S, PlannedRequest

#: ``behind_schedule`` when the p99 send lag exceeds this many milliseconds.
LAG_P99_LIMIT_MS = 10.0
#: ``behind_schedule`` when the generator used more than this fraction of one core: a
#: single asyncio loop near 100% CPU delays both its sends and its own timestamps.
CPU_FRACTION_LIMIT = 0.85
RESULT_VERSION = 1


def _window_rate(count: int, times: Sequence[float], start: float, duration: float) -> float:
    """``count`` per second over the measurement window, stretched to the last event.

    On schedule, ``count / duration``; when sends or completions spill past the window
    the denominator grows with them, so a server (or generator) that cannot keep up
    shows a lower achieved rate instead of the offered one.
    """
    span = max(duration, (max(times) - start) if times else 0.0)
    return count / span if span > 0 else 0.0


def _server_timing(samples: Sequence[Sample]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for key in ("queue", "compute", "total"):
        values = [
            float(s.server_timing[key])
            for s in samples
            if s.server_timing
            and isinstance(s.server_timing.get(key), int | float)
            and not isinstance(s.server_timing.get(key), bool)
        ]
        out[key] = rounded(summarize(values))
    return out


def summarize_run(
    cfg: LoadConfig, plan: Sequence[PlannedRequest], samples: Sequence[Sample], acct: dict
) -> dict:
    """The JSON report of a run (its keys: :func:`bench.loadgen.run_load`)."""
    measured = [s for s in samples if not s.warmup]
    http = [s for s in measured if s.is_http]
    ok = [s for s in measured if s.status == "200"]
    sent = [s for s in measured if s.sent is not None]
    status_counts = Counter(s.status for s in measured)
    warmup_counts = Counter(s.status for s in samples if s.warmup)
    n503 = [s for s in measured if s.status == "503"]

    lag = summarize([s.lag_ms for s in sent if s.lag_ms is not None], qs=(50, 99))
    wall = acct["wall_s"]
    cpu_fraction = acct["process_time_s"] / wall if wall > 0 else 0.0
    # While sending, the busiest phase: the drain that follows only waits for responses.
    dispatch_s = acct["dispatch_end_s"]
    cpu_dispatch = acct["process_time_dispatch_s"] / dispatch_s if dispatch_s > 0 else 0.0
    rusage_cpu = acct["rusage_user_s"] + acct["rusage_sys_s"]
    slot_waits = sum(s.waited_for_slot for s in measured)
    resource_errors = [s.client_error for s in measured if s.client_error]

    reasons: list[str] = []
    if lag["p99"] is not None and lag["p99"] > LAG_P99_LIMIT_MS:
        reasons.append(f"p99 send lag {lag['p99']:.1f} ms > {LAG_P99_LIMIT_MS:g} ms")
    if max(cpu_fraction, cpu_dispatch) > CPU_FRACTION_LIMIT:
        reasons.append(
            f"generator used {max(cpu_fraction, cpu_dispatch):.0%} of one core"
            f" (> {CPU_FRACTION_LIMIT:.0%})"
        )
    if slot_waits:
        reasons.append(
            f"{slot_waits} requests waited for one of {acct['slot_limit']} connection slots"
        )
    if resource_errors:
        reasons.append(f"{len(resource_errors)} client-side errors, e.g. {resource_errors[0]}")
    if acct["unfinished"]:
        reasons.append(f"{acct['unfinished']} requests still unfinished at the drain deadline")

    start, duration = cfg.warmup, cfg.duration
    typing = cfg.workload == "typing"
    result: dict[str, Any] = {
        "version": RESULT_VERSION,
        "started_at": acct.get("started_at"),
        "config": dataclasses.asdict(cfg),
        "generator": {
            "python": platform.python_version(),
            "httpx": httpx.__version__,
            "percentile_definition": "nearest-rank (exact, all samples)",
            "latency_from": "intended send time",
            "rate_source": (
                f"{cfg.typists} typists x uniform "
                f"{MEAN_KEYSTROKE_GAP_S * 1e3:.0f} ms mean gap (rate/arrivals ignored)"
                if typing
                else f"{cfg.arrivals} arrivals at {cfg.rate:g} req/s"
            ),
        },
        "requests": {
            "planned": len(plan),
            "warmup": len(samples) - len(measured),
            "measured": len(measured),
            "sent": len(sent),
            "http_responses": len(http),
            "ok": len(ok),
        },
        "throughput": {
            "offered_rps": len(measured) / duration,
            "sent_rps": _window_rate(len(sent), [s.sent for s in sent], start, duration),
            "completed_rps": _window_rate(len(http), [s.done for s in http], start, duration),
            "ok_rps": _window_rate(len(ok), [s.done for s in ok], start, duration),
        },
        "status_counts": dict(sorted(status_counts.items())),
        "status_counts_warmup": dict(sorted(warmup_counts.items())),
        "overload": {
            "503": len(n503),
            "503_with_retry_after": sum(s.retry_after is not None for s in n503),
            "retry_after_values": dict(Counter(s.retry_after for s in n503 if s.retry_after)),
        },
        "latency_ms": rounded(summarize(s.latency_ms for s in http)),
        "latency_ms_ok": rounded(summarize(s.latency_ms for s in ok)),
        "service_time_ms_ok": rounded(summarize(s.service_ms for s in ok)),
        "server_timing_ms": _server_timing(ok),
        "schedule_lag_ms": rounded(lag),
        "generator_cpu": {
            "wall_s": round(wall, 3),
            "process_time_s": round(acct["process_time_s"], 3),
            "rusage_user_s": round(acct["rusage_user_s"], 3),
            "rusage_sys_s": round(acct["rusage_sys_s"], 3),
            "cpu_fraction_of_core": round(cpu_fraction, 4),
            "cpu_fraction_while_sending": round(cpu_dispatch, 4),
            "sending_s": round(dispatch_s, 3),
            "rusage_fraction_of_core": round(rusage_cpu / wall, 4) if wall > 0 else 0.0,
            "max_rss_mb": round(acct["max_rss_mb"], 1),
            "note": "whole process; includes anything else running in it",
        },
        "slot_waits": slot_waits,
        "connections_opened": acct.get("connections_opened"),
        "behind_schedule": bool(reasons),
        "behind_schedule_reasons": reasons,
    }
    for key in ("offered_rps", "sent_rps", "completed_rps", "ok_rps"):
        result["throughput"][key] = round(result["throughput"][key], 3)
    if cfg.keep_samples:
        result["samples"] = {
            "intended_s": [round(s.intended, 6) for s in samples],
            "lag_ms": [None if s.lag_ms is None else round(s.lag_ms, 3) for s in samples],
            "latency_ms": [
                None if s.latency_ms is None else round(s.latency_ms, 3) for s in samples
            ],
            "status": [s.status for s in samples],
            "warmup": [s.warmup for s in samples],
            "typist": [r.typist for r in plan] if typing else None,
        }
    return result


def format_summary(result: Mapping[str, Any]) -> str:
    """The one-line human summary of a :func:`bench.loadgen.run_load` result."""
    cfg, thr, lat = result["config"], result["throughput"], result["latency_ms_ok"]
    lag = result["schedule_lag_ms"]

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    req = result["requests"]
    line = (
        f"{cfg['model']} {cfg['workload']}: offered {thr['offered_rps']:.1f} req/s, "
        f"ok {thr['ok_rps']:.1f} req/s ({req['ok']}/{req['measured']}); "
        f"latency ms p50 {ms(lat['p50'])} p90 {ms(lat['p90'])} p99 {ms(lat['p99'])} "
        f"p99.9 {ms(lat['p99.9'])} max {ms(lat['max'])}; "
        f"503 {result['overload']['503']}; other {_other_statuses(result['status_counts'])}; "
        f"lag p99 {ms(lag['p99'])} ms; cpu {result['generator_cpu']['cpu_fraction_of_core']:.0%}"
    )
    if result["behind_schedule"]:
        line += " | BEHIND SCHEDULE: " + "; ".join(result["behind_schedule_reasons"])
    return line


def merged_status_counts(results: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """``status_counts`` of several runs summed (HTTP codes and client errors), sorted by key."""
    totals: Counter[str] = Counter()
    for result in results:
        totals.update(result.get("status_counts", {}))
    return dict(sorted(totals.items()))


def _other_statuses(counts: Mapping[str, int]) -> str:
    other = {k: v for k, v in counts.items() if k not in ("200", "503")}
    return ",".join(f"{k}={v}" for k, v in other.items()) or "0"


def write_result(result: Mapping[str, Any], path: str | Path) -> None:
    """Write the report: indented JSON, with the (long) sample columns kept compact."""
    head = {k: v for k, v in result.items() if k != "samples"}
    text = json.dumps(head, indent=2)
    if result.get("samples") is not None:
        compact = json.dumps(result["samples"], separators=(",", ":"))
        text = text[: text.rstrip().rfind("}")].rstrip() + f',\n  "samples": {compact}\n}}'
    Path(path).write_text(text + "\n", encoding="utf-8")


def answered_all(result: Mapping[str, Any]) -> int:
    """200s of a run, warm-up included: every answer the server spent CPU on during it."""
    measured, warmup = result.get("status_counts", {}), result.get("status_counts_warmup", {})
    return int(measured.get("200", 0)) + int(warmup.get("200", 0))


def cpu_ms_per_answer(before: float | None, after: float | None, result: Mapping[str, Any]) -> float | None:
    """The server's CPU seconds over a run (``before``/``after``, None if it was gone) per 200, in ms."""
    answered = answered_all(result)
    if before is None or after is None or not answered:
        return None
    return round((after - before) * 1000 / answered, 3)

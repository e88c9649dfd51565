"""Open-loop load generator for ``POST /v1/complete`` (in the spirit of wrk2).

Why open loop: a closed-loop tool (each user waits for its response before sending the
next request) stops sending while the server stalls, so the requests that *would* have
hit the stall are never made and never measured ("coordinated omission"); its
percentiles then describe a server far better than the one real users see. Here instead:

* the whole schedule of intended send times is fixed before the run
  (:mod:`bench.workloads`: constant or Poisson arrivals at ``rate``, or merged typists);
* each request is launched at its intended time as its own task, whatever happened to
  earlier ones, over one shared :class:`httpx.AsyncClient` with a large connection limit
  (by default on :class:`bench.transport.KeepAliveTransport`: httpx's stock httpcore
  pool costs CPU per request that grows with the pool size squared, which made the
  generator itself fall behind; ``--transport httpcore`` selects it anyway);
* latency is measured from the **intended** send time, so a server stall shows up in
  every request scheduled during it, and a generator that falls behind cannot hide it;
* the actual send lag (actual minus intended send time) is recorded too, and the report
  sets ``behind_schedule`` when the generator could not keep up (p99 lag > 10 ms, the
  generator near one full core of CPU, requests queued for a connection slot, client
  resource errors), rather than reporting rosy numbers.

"Actual send time" is when the request's task starts the HTTP call, after it got a
connection slot (``--concurrency-limit``, default :data:`DEFAULT_MAX_CONNECTIONS`).
Warm-up requests (the first ``warmup`` seconds of the schedule) are sent but left out of
every statistic. Percentiles are exact nearest-rank values over all samples
(:mod:`bench.stats`).

Usage::

    python -m bench.loadgen --url http://127.0.0.1:8000 --model gru --workload cold \\
        --rate 50 --duration 20 --warmup 3 --seed 0 --arrivals poisson --out results.json \\
        [--corpus ../shared/data/aclImdb_v1.tar.gz --max-docs 2000] [--typists 20] \\
        [--concurrency-limit N]

For the typing workload ``--rate`` and ``--arrivals`` are ignored: the rate is set by
``--typists`` (about 4.44 req/s each); see :func:`bench.workloads.typists_for_rate`.

A sweep calls :func:`run_load` directly with a :class:`LoadConfig` (or a dict).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import errno
import importlib.util
import json
import logging
import platform
import resource
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.stats import rounded, summarize
from bench.transport import KeepAliveTransport
from bench.workloads import (
    ARRIVALS,
    DEFAULT_TYPISTS,
    MEAN_KEYSTROKE_GAP_S,
    TYPING_STARTS,
    WORKLOADS,
    PlannedRequest,
    build_plan,
    load_documents,
)

log = logging.getLogger(__name__)

ENDPOINT = "/v1/complete"
#: In-flight request cap (and connection-pool size) when no ``--concurrency-limit`` is set.
DEFAULT_MAX_CONNECTIONS = 10_000
#: ``behind_schedule`` when the p99 send lag exceeds this many milliseconds.
LAG_P99_LIMIT_MS = 10.0
#: ``behind_schedule`` when the generator used more than this fraction of one core: a
#: single asyncio loop near 100% CPU delays both its sends and its own timestamps.
CPU_FRACTION_LIMIT = 0.85
#: Head start between building the client and the first intended send time, seconds.
START_DELAY_S = 0.05
#: Extra seconds allowed after the last request's own timeout before giving up on it.
DRAIN_GRACE_S = 5.0
RESULT_VERSION = 1
#: ``keepalive``: :class:`bench.transport.KeepAliveTransport` (O(1) per request);
#: ``httpcore``: httpx's stock pool, whose per-request CPU grows with the pool squared.
TRANSPORTS = ("keepalive", "httpcore")


@dataclass
class LoadConfig:
    """Everything that defines a run (mirrors the CLI flags; see the module docstring)."""

    url: str = "http://127.0.0.1:8000"
    model: str = "gru"
    workload: str = "cold"
    rate: float = 50.0
    duration: float = 20.0
    warmup: float = 3.0
    seed: int = 0
    arrivals: str = "poisson"
    corpus: str | None = None
    max_docs: int | None = None
    typists: int = DEFAULT_TYPISTS
    #: Where typists start in a document (:data:`bench.workloads.TYPING_STARTS`).
    typing_start: str = "prefix"
    concurrency_limit: int | None = None
    #: Per-request total timeout (connect + send + wait + read), seconds.
    timeout: float = 10.0
    #: Keep per-request samples (column lists) in the result, for plots.
    keep_samples: bool = True
    #: httpx transport under the shared client (see :data:`TRANSPORTS`).
    transport: str = "keepalive"

    def validate(self) -> None:
        """Raise :class:`ValueError` on a config that cannot describe a run."""
        if self.workload not in WORKLOADS:
            raise ValueError(f"workload must be one of {WORKLOADS}, not {self.workload!r}")
        if self.arrivals not in ARRIVALS:
            raise ValueError(f"arrivals must be one of {ARRIVALS}, not {self.arrivals!r}")
        if self.rate <= 0 and self.workload != "typing":
            raise ValueError("rate must be > 0")
        if self.duration <= 0:
            raise ValueError("duration must be > 0")
        if self.warmup < 0:
            raise ValueError("warmup must be >= 0")
        if self.typists < 1:
            raise ValueError("typists must be >= 1")
        if self.typing_start not in TYPING_STARTS:
            raise ValueError(f"typing_start must be one of {TYPING_STARTS}, not {self.typing_start!r}")
        if self.concurrency_limit is not None and self.concurrency_limit < 1:
            raise ValueError("concurrency_limit must be >= 1")
        if self.timeout <= 0:
            raise ValueError("timeout must be > 0")
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}, not {self.transport!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> LoadConfig:
        """A config from a dict, rejecting unknown keys (a typo must not be ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        return cls(**values)


@dataclass(slots=True)
class Sample:
    """What happened to one planned request. Times are seconds after the run's start."""

    intended: float
    warmup: bool
    sent: float | None = None
    done: float | None = None
    #: HTTP status as a string ("200", "503"), or "timeout", "connect_error", ...
    status: str = "unfinished"
    retry_after: str | None = None
    #: ``timing_ms`` reported by the server (200 responses only).
    server_timing: dict | None = None
    waited_for_slot: bool = False
    client_error: str | None = None

    @property
    def lag_ms(self) -> float | None:
        return None if self.sent is None else (self.sent - self.intended) * 1e3

    @property
    def latency_ms(self) -> float | None:
        """From the *intended* send time: includes any time the generator fell behind."""
        return None if self.done is None else (self.done - self.intended) * 1e3

    @property
    def service_ms(self) -> float | None:
        """From the actual send time (what a closed-loop tool would report)."""
        if self.done is None or self.sent is None:
            return None
        return (self.done - self.sent) * 1e3

    @property
    def is_http(self) -> bool:
        return self.status.isdigit()


# --------------------------------------------------------------------------- running


def _raise_fd_limit(wanted: int) -> int:
    """Raise the soft open-file limit towards ``wanted``; return the soft limit in force.

    Every in-flight request may hold a socket: without this, an open-loop run against a
    stalled server dies with EMFILE at the default 1024 descriptors.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return wanted
    new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        return new
    return soft


def _avoid_failed_sniffio_imports() -> None:
    """Make httpcore's per-request ``import sniffio`` fail fast when sniffio is absent.

    httpcore 1.0.x imports the optional ``sniffio`` inside ``current_async_library()``,
    called several times per request; anyio >= 4.11 no longer installs sniffio, and
    Python does not cache failed imports, so every call rescans ``sys.path`` (measured
    here: ~0.7 ms each, several ms of CPU per request, capping the generator near
    50-100 req/s). A ``None`` entry in ``sys.modules`` is Python's negative import cache:
    the import still fails (httpcore falls back to asyncio, as before), just instantly.
    See encode/httpcore discussion #1102 / PR #1103. Installing sniffio also fixes it.
    """
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]
        log.debug("sniffio absent: cached its failed import (httpcore per-request cost)")


@contextlib.contextmanager
def _quiet_http_loggers() -> Iterator[None]:
    """Silence httpx/httpcore's per-request INFO/DEBUG records for the run, then restore.

    httpx logs every request at INFO; with a caller's ``logging.basicConfig(INFO)`` that
    is one formatted record per request, CPU the generator needs to stay on schedule.
    """
    loggers = [logging.getLogger(name) for name in ("httpx", "httpcore")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _classify(exc: BaseException) -> str:
    """A status key for a request that got no HTTP response."""
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect_error"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol_error"
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return "read_write_error"
    if isinstance(exc, httpx.TransportError):
        return "transport_error"
    return "client_error"


def _is_resource_error(exc: BaseException) -> bool:
    """True when the generator itself ran out of something (descriptors, ports, memory)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, MemoryError):
            return True
        if isinstance(cur, OSError) and cur.errno in (
            errno.EMFILE,
            errno.ENFILE,
            errno.EADDRNOTAVAIL,
        ):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


JSON_HEADERS = {"content-type": "application/json"}


def session_headers(typist: int | None) -> dict[str, str]:
    """The request headers: a typist's keystrokes carry its session key (``X-Session-Id``)."""
    if typist is None:
        return JSON_HEADERS
    return {**JSON_HEADERS, "X-Session-Id": f"typist-{typist}"}


async def _send_one(
    client: httpx.AsyncClient,
    slots: asyncio.Semaphore,
    url: str,
    body: bytes,
    t0: float,
    sample: Sample,
    timeout: float,
    headers: dict[str, str] | None = None,
) -> None:
    """Send one request and fill in ``sample`` (never raises: every outcome is counted)."""
    sample.waited_for_slot = slots.locked()
    async with slots:
        sample.sent = time.perf_counter() - t0
        try:
            async with asyncio.timeout(timeout):
                resp = await client.post(url, content=body, headers=headers or JSON_HEADERS)
            sample.done = time.perf_counter() - t0
            sample.status = str(resp.status_code)
            sample.retry_after = resp.headers.get("retry-after")
            if resp.status_code == 200:
                try:
                    timing = resp.json().get("timing_ms")
                except (ValueError, AttributeError):
                    sample.status = "200_bad_body"
                else:
                    sample.server_timing = timing if isinstance(timing, dict) else None
        except Exception as exc:
            sample.done = time.perf_counter() - t0
            sample.status = _classify(exc)
            if _is_resource_error(exc):
                sample.client_error = f"{type(exc).__name__}: {exc}"
            elif sample.status == "client_error":
                sample.client_error = f"{type(exc).__name__}: {exc}"
                log.debug("request failed", exc_info=True)


async def _execute(
    plan: Sequence[PlannedRequest], cfg: LoadConfig
) -> tuple[list[Sample], dict[str, float]]:
    """Send ``plan`` open-loop; return the samples and the run's wall/CPU accounting."""
    if cfg.transport == "httpcore":
        _avoid_failed_sniffio_imports()
    limit = cfg.concurrency_limit or DEFAULT_MAX_CONNECTIONS
    fd_limit = _raise_fd_limit(limit + 256)
    if cfg.concurrency_limit is None and fd_limit < limit + 256:
        limit = max(1, fd_limit - 256)
        log.warning("open-file limit %d caps in-flight requests at %d", fd_limit, limit)
    url = cfg.url.rstrip("/") + ENDPOINT
    bodies = [json.dumps(r.payload(cfg.model)).encode() for r in plan]
    # A typist is one session (the server's prefix cache is private to it); a cold or phrase
    # request is a new user's, with no session, as curl sends it.
    headers = [session_headers(r.typist) for r in plan]
    samples = [Sample(intended=r.at, warmup=r.warmup) for r in plan]
    slots = asyncio.Semaphore(limit)
    limits = httpx.Limits(max_connections=limit, max_keepalive_connections=limit)
    transport = KeepAliveTransport() if cfg.transport == "keepalive" else None
    # trust_env=False: a proxy from the environment must not sit between us and the server.
    async with httpx.AsyncClient(
        limits=limits, timeout=cfg.timeout, trust_env=False, transport=transport
    ) as client:
        tasks: list[asyncio.Task[None]] = []
        cpu0, ru0 = time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter() + START_DELAY_S
        for req, body, sample, hdrs in zip(plan, bodies, samples, headers, strict=True):
            delay = t0 + req.at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(
                asyncio.create_task(_send_one(client, slots, url, body, t0, sample, cfg.timeout, hdrs))
            )
        dispatched = time.perf_counter() - t0
        cpu_dispatch = time.process_time() - cpu0
        unfinished = 0
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=cfg.timeout + DRAIN_GRACE_S)
            unfinished = len(pending)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        wall = time.perf_counter() - t0
        cpu1, ru1 = time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
    accounting = {
        "wall_s": wall,
        "dispatch_end_s": dispatched,
        "process_time_dispatch_s": cpu_dispatch,
        "process_time_s": cpu1 - cpu0,
        "rusage_user_s": ru1.ru_utime - ru0.ru_utime,
        "rusage_sys_s": ru1.ru_stime - ru0.ru_stime,
        "max_rss_mb": ru1.ru_maxrss / 1024,  # Linux reports KiB
        "unfinished": unfinished,
        "slot_limit": limit,
        "connections_opened": transport.opened if transport is not None else None,
    }
    return samples, accounting


# --------------------------------------------------------------------------- reporting


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
    """The JSON report of a run (see :func:`run_load`)."""
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
    """The one-line human summary of a :func:`run_load` result."""
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


async def run_load(
    config: LoadConfig | Mapping[str, Any], documents: Sequence[str] | None = None
) -> dict:
    """Run one open-loop load test and return its JSON-ready report.

    ``config`` is a :class:`LoadConfig` or a dict of its fields. ``documents`` overrides
    the corpus (a sweep can load it once and pass it to every run). Keys of the result:
    ``config``, ``requests`` (counts), ``throughput`` (offered vs sent/completed/ok req/s),
    ``status_counts`` (HTTP codes as strings, plus ``timeout``, ``connect_error``, ...),
    ``overload`` (503s and those with ``Retry-After``), ``latency_ms`` (all HTTP
    responses), ``latency_ms_ok`` (200s), ``service_time_ms_ok`` (from actual send),
    ``server_timing_ms`` (queue/compute/total reported by the server), ``schedule_lag_ms``,
    ``generator_cpu``, ``behind_schedule`` + ``behind_schedule_reasons``, and, unless
    ``keep_samples`` is off, per-request ``samples``.
    """
    cfg = config if isinstance(config, LoadConfig) else LoadConfig.from_mapping(config)
    cfg.validate()
    docs = list(documents) if documents is not None else load_documents(cfg.corpus, cfg.max_docs)
    plan = build_plan(
        cfg.workload,
        docs,
        rate=cfg.rate,
        duration=cfg.duration,
        warmup=cfg.warmup,
        seed=cfg.seed,
        arrivals=cfg.arrivals,
        typists=cfg.typists,
        typing_start=cfg.typing_start,
    )
    if cfg.workload == "typing":
        log.info(
            "typing: %d typists, ~%.1f req/s offered (rate/arrivals ignored)",
            cfg.typists,
            cfg.typists / MEAN_KEYSTROKE_GAP_S,
        )
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    with _quiet_http_loggers():
        samples, acct = await _execute(plan, cfg)
    acct["started_at"] = started_at
    result = summarize_run(cfg, plan, samples, acct)
    if result["behind_schedule"]:
        log.warning("generator behind schedule: %s", "; ".join(result["behind_schedule_reasons"]))
    return result


def write_result(result: Mapping[str, Any], path: str | Path) -> None:
    """Write the report: indented JSON, with the (long) sample columns kept compact."""
    head = {k: v for k, v in result.items() if k != "samples"}
    text = json.dumps(head, indent=2)
    if result.get("samples") is not None:
        compact = json.dumps(result["samples"], separators=(",", ":"))
        text = text[: text.rstrip().rfind("}")].rstrip() + f',\n  "samples": {compact}\n}}'
    Path(path).write_text(text + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.loadgen",
        description="Open-loop load generator for nextword's POST /v1/complete.",
    )
    p.add_argument("--url", default="http://127.0.0.1:8000", help="server base URL")
    p.add_argument("--model", default="gru", help="any served model's name")
    p.add_argument("--workload", default="cold", choices=WORKLOADS)
    p.add_argument(
        "--rate", type=float, default=50.0, help="offered req/s (cold/phrase; ignored by typing)"
    )
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds sent but not measured")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arrivals", default="poisson", choices=ARRIVALS)
    p.add_argument("--out", default="results.json", help="JSON report path")
    p.add_argument("--corpus", default=None, help="held-out corpus (test split is used)")
    p.add_argument("--max-docs", type=int, default=None, help="keep the first N documents")
    p.add_argument(
        "--typists",
        type=int,
        default=DEFAULT_TYPISTS,
        help="typing workload: simulated typists (~4.44 req/s each); sets its rate",
    )
    p.add_argument(
        "--typing-start",
        default="prefix",
        choices=TYPING_STARTS,
        help="typing workload: typists start after a 5-40-word prefix of each document (default) or from empty",
    )
    p.add_argument(
        "--concurrency-limit",
        type=int,
        default=None,
        help=f"max in-flight requests / connections (default {DEFAULT_MAX_CONNECTIONS})",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds")
    p.add_argument("--no-samples", action="store_true", help="omit per-request samples")
    p.add_argument(
        "--transport",
        default="keepalive",
        choices=TRANSPORTS,
        help="httpx transport: lean keep-alive (default) or httpx's stock httpcore pool",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: run, write ``--out``, print a one-line summary. Exit 0 on a run."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    cfg = LoadConfig(
        url=args.url,
        model=args.model,
        workload=args.workload,
        rate=args.rate,
        duration=args.duration,
        warmup=args.warmup,
        seed=args.seed,
        arrivals=args.arrivals,
        corpus=args.corpus,
        max_docs=args.max_docs,
        typists=args.typists,
        typing_start=args.typing_start,
        concurrency_limit=args.concurrency_limit,
        timeout=args.timeout,
        keep_samples=not args.no_samples,
        transport=args.transport,
    )
    try:
        cfg.validate()
    except ValueError as exc:
        _parser().error(str(exc))
    result = asyncio.run(run_load(cfg))
    write_result(result, args.out)
    print(format_summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

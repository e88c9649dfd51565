"""The open-loop sender: a fixed schedule of requests, each sent at its intended time.

Each planned request is launched at its intended time as its own task, whatever happened
to earlier ones, over one shared :class:`httpx.AsyncClient` with a large connection limit
(by default on :class:`bench.transport.KeepAliveTransport`, whose CPU per request does not
grow with the pool as httpx's stock httpcore pool does; ``transport="httpcore"`` selects
that one anyway). Every outcome of every request is recorded in a :class:`Sample` (status,
intended/actual send and completion times, the server's own timing), never raised, so
that a run is summarized from all of its requests (:mod:`bench.run_summary`) however
badly the server behaved.

"Actual send time" is when the request's task starts the HTTP call, after it got a
connection slot (``concurrency_limit``, default :data:`DEFAULT_MAX_CONNECTIONS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import importlib.util
import json
import logging
import resource
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from bench.transport import KeepAliveTransport
from bench.workloads import ARRIVALS, DEFAULT_TYPISTS, TYPING_STARTS, WORKLOADS, PlannedRequest

log = logging.getLogger(__name__)

ENDPOINT = "/v1/complete"
#: In-flight request cap (and connection-pool size) when no ``--concurrency-limit`` is set.
DEFAULT_MAX_CONNECTIONS = 10_000
#: Head start between building the client and the first intended send time, seconds.
START_DELAY_S = 0.05
#: Extra seconds allowed after the last request's own timeout before giving up on it.
DRAIN_GRACE_S = 5.0
#: ``keepalive``: :class:`bench.transport.KeepAliveTransport` (O(1) per request);
#: ``httpcore``: httpx's stock pool, whose per-request CPU grows with the pool squared.
TRANSPORTS = ("keepalive", "httpcore")


@dataclass
class LoadConfig:
    """Everything that defines a run (mirrors :mod:`bench.loadgen`'s flags, which document them)."""

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
    #: Send each document's e-mail subject with its requests (an e-mail ``corpus`` only).
    subjects: bool = False

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
        if self.subjects and self.corpus is None:
            raise ValueError("subjects come from an e-mail corpus: give one")

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
    Python does not cache failed imports, so every call rescans ``sys.path``, which adds
    milliseconds of CPU to each request and caps the generator's rate. A ``None`` entry in
    ``sys.modules`` is Python's negative import cache: the import still fails (httpcore falls
    back to asyncio), just instantly.
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


async def send_plan(plan: Sequence[PlannedRequest], cfg: LoadConfig) -> tuple[list[Sample], dict[str, float]]:
    """Send ``plan`` open-loop with httpx's per-request log records silenced (see :func:`_execute`)."""
    with _quiet_http_loggers():
        return await _execute(plan, cfg)

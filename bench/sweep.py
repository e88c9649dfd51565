"""The load-test sweep: every server configuration through the same open-loop generator.

``python -m bench.sweep --out bench/results/sweep.json`` runs, in order:

1. **model alone** (:mod:`bench.model_alone`, a subprocess pinned to the server's cores,
   same torch threads): cold requests through ``model.batching.drive`` at batch sizes
   1/8/32/64, the ceiling the server is measured against;
2. **nextword configurations**: backend {gru, lstm} x batching {on, off} x prefix cache
   {on, off} x workload {cold, typing}, except that cache-off is run on ``typing`` only
   (a cold request is a fresh random prefix: the cache can barely hit, so cold cache-off
   would repeat cold cache-on at twice the cost; ``--cache-off-workloads cold,typing``
   runs it anyway);
3. **LitServe tuning**, then the **LitServe peer** (:mod:`bench.litserve_server`) on the
   cold workload for each backend, with the tuned ``max_batch_size``/``batch_timeout``;
4. **overload**, per backend (nextword, batching on, cache on, cold): first a 5 s
   **saturation probe** far above capacity (``--overload-probe-rate``, default twice the
   model-alone best) whose answered throughput is the server's saturating rate; then ``3x``
   that rate (or ``3x`` the max rate at SLO, if higher) for ``--overload-seconds`` (default
   20 s; the issue asks for 60 s:
   ``--overload-seconds 60``), with a low-rate stream (10 req/s) running throughout and
   for ``--recovery-seconds`` after: every request must get 200 or 503 + Retry-After,
   accepted requests' p99 is compared to the deadline, and the low stream's p99 in the
   2 s after the overload stops shows recovery.

Every configuration gets a fresh server subprocess (``python -m app`` with ``NEXTWORD_*``
variables, its own free port, only its backend loaded), is used once /readyz (LitServe:
/health) says ready, and is stopped after (SIGTERM to its process group, then SIGKILL).

**SLO search** (like perf_analyzer's latency threshold): for each configuration a
geometric rate ladder (default 10, 20, 40, ... req/s, up to ``--max-rate``) until the
first rate that *fails*, then a binary search between the last pass and that failure
(``--search-steps``, stopping at ``--search-tol`` relative width). A run **passes** when
the p99 latency of its 200 responses is <= ``--slo-p99-ms`` (50), fewer than 1% of its
measured requests got anything but 200 (503, 504, timeouts, ... all count), and the
generator was not behind schedule (bench.loadgen's ``behind_schedule``). The max rate at
SLO is the highest *offered* rate that passed. Latency is from the intended send time.
Each run is short (``--warmup`` 1 s + ``--duration`` 5 s, longer at low rates so a run
has >= ``--min-samples`` requests; the first, 10 req/s, point of the default cold
configurations runs ``--p1-duration`` s for the low-load check). Run ``i`` of every
configuration uses seed ``seed + i``, so configurations see the same requests at the same
ladder step, and consecutive runs on one server do not repeat texts (which would turn
into prefix-cache hits).

**CPU pinning** (2-core machine): the server (and everything it spawns) runs on
``--server-cpus`` (default core 0) with ``--threads`` torch threads (default 1, so torch
does not oversubscribe its one core), the generator -- this process -- on
``--generator-cpus`` (default core 1), via ``taskset`` / ``sched_setaffinity`` where
available. The server is therefore measured on ONE core; the generator's own CPU use is
recorded per run (``generator_cpu_fraction``) and any run where it could not keep up is
marked failed with reason ``generator``. Model alone and LitServe get the same core and
thread count.

``--quick``: one backend (gru), 2 rates (10, 40 req/s), 2 s runs, no binary search, two
LitServe tunings, 3 s overload: a smoke test of every stage in about three minutes.
``--configs`` keeps only configurations whose key matches one of the given fnmatch
patterns (keys look like ``nextword-gru-batch-on-cache-on-cold``, ``litserve-lstm-cold``);
``--skip`` drops stages (model-alone, litserve, overload).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import fnmatch
import json
import logging
import math
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.workloads import TYPING_STARTS

log = logging.getLogger("bench.sweep")

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "model" / "artifacts"
DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "aclImdb_v1.tar.gz"
RESULT_VERSION = 1

BACKENDS = ("gru", "lstm")
WORKLOADS = ("cold", "typing")
STAGES = ("model-alone", "litserve", "overload")

#: LitServe settings tried by the tuning stage: (max_batch_size, batch_timeout_ms).
LITSERVE_GRID = tuple((b, t) for t in (1.0, 5.0) for b in (8, 32, 64))
LITSERVE_QUICK_GRID = ((8, 1.0), (32, 5.0))
#: Used when tuning is skipped.
LITSERVE_DEFAULT = (32, 5.0)
#: Tuning rate: this fraction of nextword's default cold max rate at SLO (else the fallback).
LITSERVE_TUNE_FRACTION = 0.5
LITSERVE_TUNE_FALLBACK = 20.0
#: LitServe's request timeout (seconds in its queue before a 504); bounds backlogs.
LITSERVE_TIMEOUT_S = 2.0

#: Rough costs behind the up-front duration estimate (measured on the 2-core dev box).
EST_NEXTWORD_START_S = 8.0
EST_LITSERVE_START_S = 10.0
EST_RUN_OVERHEAD_S = 2.0  # client drain, settling, metrics
EST_SEARCH_RUNS = 8  # ladder to first failure (~5) + binary search (~3)


# --------------------------------------------------------------------------- configurations


@dataclass(frozen=True)
class Target:
    """One server configuration under one workload."""

    server: str  # "nextword" | "litserve"
    backend: str  # "gru" | "lstm"
    workload: str  # "cold" | "typing"
    batching: bool = True
    cache: bool = True

    @property
    def key(self) -> str:
        if self.server == "litserve":
            return f"litserve-{self.backend}-{self.workload}"
        onoff = {True: "on", False: "off"}
        return f"nextword-{self.backend}-batch-{onoff[self.batching]}-cache-{onoff[self.cache]}-{self.workload}"

    @property
    def is_default(self) -> bool:
        """nextword's default configuration (batching on, cache on)."""
        return self.server == "nextword" and self.batching and self.cache


def expand_configs(
    backends: Sequence[str] = BACKENDS,
    workloads: Sequence[str] = WORKLOADS,
    batching: Sequence[bool] = (True, False),
    cache: Sequence[bool] = (True, False),
    cache_off_workloads: Sequence[str] = ("typing",),
    litserve: bool = True,
    litserve_workloads: Sequence[str] = ("cold",),
) -> list[Target]:
    """The sweep's configurations, nextword first (backend-major), then the LitServe peers.

    Cache-off is expanded only for workloads in ``cache_off_workloads``; LitServe (which
    has no prefix cache and one batching mode) only for ``litserve_workloads``.
    """
    out: list[Target] = []
    for backend in backends:
        for workload in workloads:
            for b in batching:
                for c in cache:
                    if not c and workload not in cache_off_workloads:
                        continue
                    out.append(Target("nextword", backend, workload, b, c))
    if litserve:
        for backend in backends:
            for workload in workloads:
                if workload in litserve_workloads:
                    out.append(Target("litserve", backend, workload))
    return out


def select_configs(targets: Iterable[Target], patterns: Sequence[str] | None) -> list[Target]:
    """Targets whose key matches any fnmatch pattern (all of them when no patterns)."""
    targets = list(targets)
    if not patterns:
        return targets
    return [t for t in targets if any(fnmatch.fnmatchcase(t.key, p) for p in patterns)]


# --------------------------------------------------------------------------- SLO and search


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
) -> SearchOutcome:
    """Ladder up ``rates`` to the first failure, then bisect between the last pass and it.

    ``measure(rate)`` runs one load test; ``passes(measurement)`` says whether it met the
    SLO. Bisection (arithmetic midpoints, ``snap``-ped to what can be offered, e.g. a
    whole number of typists) stops after ``max_steps`` measurements, when
    ``(hi - lo) / lo <= rel_tol``, or when the snapped midpoint is no longer strictly
    between the bounds. When even the first rate fails, up to ``max_descend`` lower rates
    (each ``descend_factor`` times lower) are tried first. Assumes that passing is
    monotone in rate (it is, up to noise).
    """
    out = SearchOutcome()
    lo: float | None = None
    hi: float | None = None
    seen: set[float] = set()
    for raw in rates:
        rate = snap(raw)
        if rate in seen:
            continue
        seen.add(rate)
        m = measure(rate)
        out.points.append((rate, m))
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
            m = measure(rate)
            out.points.append((rate, m))
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
        m = measure(mid)
        out.points.append((mid, m))
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


# --------------------------------------------------------------------------- machine facts


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpu_count": os.cpu_count()}
    with contextlib.suppress(Exception):
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        info["cpu_model"] = fields.get("Model name")
        info["cpus"] = fields.get("CPU(s)")
        info["threads_per_core"] = fields.get("Thread(s) per core")
        info["hypervisor"] = fields.get("Hypervisor vendor")
    return info


def git_info() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        with contextlib.suppress(Exception):
            r = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
            if r.returncode == 0:
                return r.stdout.strip()
        return None

    status = git("status", "--porcelain")
    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in ("torch", "litserve", "fastapi", "uvicorn", "httpx"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def find_top1(evaluation: Any) -> float | None:
    """``top1`` of a card's evaluation: at its top level or one level down (e.g. per split)."""
    if not isinstance(evaluation, dict):
        return None
    if isinstance(evaluation.get("top1"), int | float):
        return float(evaluation["top1"])
    for value in evaluation.values():
        if isinstance(value, dict) and isinstance(value.get("top1"), int | float):
            return float(value["top1"])
    return None


def model_facts(backends: Sequence[str]) -> dict[str, Any]:
    """File size and model-card facts (top-1 from card["evaluation"] when present)."""
    out: dict[str, Any] = {}
    for b in backends:
        path = ARTIFACTS / f"{b}.pt"
        facts: dict[str, Any] = {"path": str(path.relative_to(REPO)), "file_bytes": None, "card": None}
        if path.is_file():
            facts["file_bytes"] = path.stat().st_size
            with contextlib.suppress(Exception):
                import zipfile

                with zipfile.ZipFile(path) as zf:
                    name = next(n for n in zf.namelist() if n.endswith("extra/card.json"))
                    card = json.loads(zf.read(name))
                facts["card"] = {
                    "parameters": card.get("parameters"),
                    "checksum": card.get("checksum"),
                    "evaluation": card.get("evaluation"),
                    "top1": find_top1(card.get("evaluation")),
                    "tokens_seen": (card.get("training") or {}).get("tokens_seen"),
                    "config": card.get("config"),
                }
        out[b] = facts
    return out


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_cpus(text: str | None) -> set[int] | None:
    """"0", "0,1", "0-1" -> a CPU set; None/"" -> None (no pinning)."""
    if not text:
        return None
    cpus: set[int] = set()
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            cpus.update(range(int(a), int(b) + 1))
        else:
            cpus.add(int(part))
    return cpus


def pinned(argv: list[str], cpus: str | None) -> list[str]:
    """``argv`` under ``taskset -c cpus`` when possible (else unpinned: recorded in meta)."""
    if cpus and shutil.which("taskset"):
        return ["taskset", "-c", cpus, *argv]
    return argv


class ServerProcess:
    """A server subprocess in its own process group: start, wait until ready, stop."""

    def __init__(self, argv: list[str], env: Mapping[str, str], base_url: str, ready_path: str,
                 log_path: Path, name: str, cwd: Path = REPO) -> None:
        self.argv, self.env, self.base_url, self.ready_path = argv, dict(env), base_url, ready_path
        self.log_path, self.name, self.cwd = log_path, name, cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_after_s: float | None = None

    def start(self, timeout: float = 180.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logf = self.log_path.open("wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        logf.close()
        with httpx.Client(trust_env=False, timeout=2.0) as client:
            while time.perf_counter() - t0 < timeout:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(self.base_url + self.ready_path).status_code == 200:
                        self.ready_after_s = round(time.perf_counter() - t0, 2)
                        return
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the server's process group (LitServe forks workers), then SIGKILL."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group is ours alone
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
            deadline = time.time() + wait
            while time.time() < deadline:
                if self.proc.poll() is not None and not _group_alive(pgid):
                    return
                time.sleep(0.1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(1)

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def default_deadline_ms() -> float:
    """The server's default per-request deadline (app.config.Settings; light import, no torch)."""
    from app.config import Settings

    return float(Settings.model_fields["deadline_ms"].default)


def nextword_env(target: Target, port: int, threads: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The NEXTWORD_* settings of a configuration (inherited NEXTWORD_* variables are dropped)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXTWORD_")}
    ours = {
        "NEXTWORD_HOST": "127.0.0.1",
        "NEXTWORD_PORT": str(port),
        "NEXTWORD_BATCHING": "true" if target.batching else "false",
        "NEXTWORD_THREADS": str(threads),
        "NEXTWORD_DEFAULT_MODEL": target.backend,
        "NEXTWORD_MODELS": f"{target.backend}=model/artifacts/{target.backend}.pt",  # cwd is the repo
        "NEXTWORD_LOG_LEVEL": "warning",
        "NEXTWORD_DRAIN_GRACE_S": "0",  # no balancer to wait for: stop at once on SIGTERM
    }
    if not target.cache:
        ours["NEXTWORD_CACHE_BYTES"] = "0"
    ours.update(extra or {})
    env.update(ours)
    return env


def scrape_metrics(client: httpx.Client, url: str) -> dict[str, float]:
    """Prometheus text -> {metric name: value summed over labels} (empty on failure)."""
    out: dict[str, float] = {}
    with contextlib.suppress(httpx.HTTPError):
        text = client.get(url + "/metrics").text
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            name_labels, _, value = line.rpartition(" ")
            name = name_labels.split("{", 1)[0]
            with contextlib.suppress(ValueError):
                out[name] = out.get(name, 0.0) + float(value)
    return out


def metrics_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, Any]:
    def d(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    out: dict[str, Any] = {}
    n = d("nextword_batch_requests_count")
    if n > 0:
        out["model_calls"] = int(n)
        out["mean_batch_requests"] = round(d("nextword_batch_requests_sum") / n, 2)
        out["mean_batch_rows"] = round(d("nextword_batch_rows_sum") / max(d("nextword_batch_rows_count"), 1), 2)
    hits, misses = d("nextword_prefix_cache_hits_total"), d("nextword_prefix_cache_misses_total")
    if hits + misses > 0:
        out["cache_hit_rate"] = round(hits / (hits + misses), 4)
    return out


# --------------------------------------------------------------------------- one run


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

    def duration_for(self, rate: float) -> float:
        return max(self.duration, math.ceil(self.min_samples / rate)) if rate > 0 else self.duration


def run_point(url: str, target: Target, rate: float, seed: int, duration: float, rs: RunSettings,
              docs: Sequence[str], warmup: float | None = None) -> dict[str, Any]:
    """One bench.loadgen run against ``url`` (typing: rate -> typists)."""
    from bench.loadgen import LoadConfig, run_load
    from bench.workloads import typists_for_rate

    cfg = LoadConfig(
        url=url, model=target.backend, workload=target.workload, rate=rate, duration=duration,
        warmup=rs.warmup if warmup is None else warmup, seed=seed, arrivals=rs.arrivals,
        corpus=rs.corpus, max_docs=rs.max_docs, typists=typists_for_rate(rate), timeout=rs.timeout,
        keep_samples=False, typing_start=rs.typing_start,
    )
    return asyncio.run(run_load(cfg, documents=docs))


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


# --------------------------------------------------------------------------- the sweep


@dataclass
class SweepOptions:
    out: Path
    backends: tuple[str, ...] = BACKENDS
    workloads: tuple[str, ...] = WORKLOADS
    configs: tuple[str, ...] = ()
    cache_off_workloads: tuple[str, ...] = ("typing",)
    skip: tuple[str, ...] = ()
    slo: Slo = field(default_factory=Slo)
    run: RunSettings = field(default_factory=RunSettings)
    ladder_start: float = 10.0
    ladder_factor: float = 2.0
    max_rate: float = 1280.0
    ladder: tuple[float, ...] | None = None  # explicit ladder (quick mode)
    search_steps: int = 3
    search_tol: float = 0.1
    server_cpus: str | None = "0"
    generator_cpus: str | None = "1"
    threads: int = 1
    model_alone_batches: tuple[int, ...] = (1, 8, 32, 64)
    model_alone_seconds: float = 2.0
    litserve_grid: tuple[tuple[int, float], ...] = LITSERVE_GRID
    litserve_tune_rate: float | None = None
    overload_factor: float = 3.0
    overload_seconds: float = 20.0
    overload_low_rate: float = 10.0
    recovery_seconds: float = 5.0
    overload_rate: dict[str, float] = field(default_factory=dict)
    overload_probe_rate: float | None = None
    overload_probe_seconds: float = 5.0
    quick: bool = False

    def rates(self) -> list[float]:
        if self.ladder:
            return list(self.ladder)
        return ladder_rates(self.ladder_start, self.ladder_factor, self.max_rate)


def estimate_seconds(opts: SweepOptions, targets: Sequence[Target]) -> float:
    """A rough up-front estimate of the sweep's wall time (printed before it starts)."""
    rs = opts.run
    per_run = rs.warmup + rs.duration + EST_RUN_OVERHEAD_S
    runs = len(opts.rates()) if opts.ladder else EST_SEARCH_RUNS
    runs_time = runs * per_run + (rs.duration_for(opts.ladder_start) - rs.duration)
    total = 0.0
    for t in targets:
        start = EST_LITSERVE_START_S if t.server == "litserve" else EST_NEXTWORD_START_S
        total += start + runs_time
        if (t.is_default or t.server == "litserve") and t.workload == "cold":
            total += max(0.0, rs.p1_duration - rs.duration_for(opts.ladder_start))
    if "model-alone" not in opts.skip:
        total += 10 + len(opts.backends) * len(opts.model_alone_batches) * (opts.model_alone_seconds + 0.7)
    if "litserve" not in opts.skip and any(t.server == "litserve" for t in targets):
        total += len(opts.litserve_grid) * (EST_LITSERVE_START_S + per_run)
    if "overload" not in opts.skip:
        total += len(opts.backends) * (EST_NEXTWORD_START_S + opts.overload_probe_seconds + opts.overload_seconds
                                       + opts.recovery_seconds + 6)
    return total


class Sweep:
    def __init__(self, opts: SweepOptions, argv: Sequence[str]) -> None:
        self.opts = opts
        self.argv = list(argv)
        self.log_dir = Path(tempfile.mkdtemp(prefix="nextword-sweep-"))
        self.results: dict[str, Any] = {}
        self.docs: list[str] = []
        self.t0 = time.perf_counter()
        self._partial: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ bookkeeping
    def save(self) -> None:
        self.results["meta"]["elapsed_s"] = round(time.perf_counter() - self.t0, 1)
        self.opts.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.opts.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.results, indent=1) + "\n", encoding="utf-8")
        tmp.replace(self.opts.out)

    def start_meta(self, targets: Sequence[Target], estimate: float) -> None:
        o = self.opts
        pin_ok = bool(shutil.which("taskset")) and hasattr(os, "sched_setaffinity")
        self.results = {
            "version": RESULT_VERSION,
            "meta": {
                "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "command": "python -m bench.sweep " + " ".join(shlex.quote(a) for a in self.argv),
                "git": git_info(),
                "machine": machine_info(),
                "packages": package_versions(),
                "pinning": {
                    "server_cpus": o.server_cpus, "generator_cpus": o.generator_cpus,
                    "torch_threads": o.threads, "applied": pin_ok and bool(o.server_cpus),
                },
                "slo": asdict(o.slo),
                "run": asdict(o.run),
                "ladder": o.rates(),
                "search": {"steps": o.search_steps, "rel_tol": o.search_tol},
                "quick": o.quick,
                "estimate_s": round(estimate),
                "targets": [t.key for t in targets],
                "notes": [
                    "cache-off runs only on workloads " + ",".join(o.cache_off_workloads)
                    + " (cold prefixes are fresh, the cache barely hits)",
                    f"overload phase {o.overload_seconds:g} s (the issue asks for 60 s)",
                ],
            },
            "models": model_facts(o.backends),
            "model_alone": None,
            "configs": [],
            "litserve_tuning": None,
            "overload": {},
        }

    # ------------------------------------------------------------------ servers
    def nextword_server(self, target: Target, name: str) -> tuple[ServerProcess, str]:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = pinned([sys.executable, "-m", "app"], self.opts.server_cpus)
        env = nextword_env(target, port, self.opts.threads)
        return ServerProcess(argv, env, url, "/readyz", self.log_dir / f"{name}.log", name), url

    def litserve_server(self, backend: str, max_batch: int, timeout_ms: float, name: str) -> tuple[ServerProcess, str]:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = pinned([sys.executable, "-m", "bench.litserve_server", "--model", backend, "--port", str(port),
                       "--max-batch-size", str(max_batch), "--batch-timeout-ms", f"{timeout_ms:g}",
                       "--threads", str(self.opts.threads), "--timeout", f"{LITSERVE_TIMEOUT_S:g}"],
                      self.opts.server_cpus)
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEXTWORD_")}
        return ServerProcess(argv, env, url, "/health", self.log_dir / f"{name}.log", name), url

    # ------------------------------------------------------------------ stages
    def model_alone(self) -> None:
        o, rs = self.opts, self.opts.run
        out = self.log_dir / "model_alone.json"
        argv = [sys.executable, "-m", "bench.model_alone", "--models", ",".join(o.backends),
                "--batch-sizes", ",".join(map(str, o.model_alone_batches)), "--seconds", f"{o.model_alone_seconds:g}",
                "--threads", str(o.threads), "--seed", str(rs.seed), "--out", str(out)]
        if rs.corpus:
            argv += ["--corpus", rs.corpus]
        if rs.max_docs:
            argv += ["--max-docs", str(rs.max_docs)]
        argv = pinned(argv, o.server_cpus)
        print(f"[model-alone] {' '.join(argv)}", flush=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEXTWORD_")}  # default decode options
        r = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"[model-alone] FAILED:\n{r.stderr[-2000:]}", flush=True)
            self.results["model_alone"] = {"error": r.stderr[-2000:]}
            return
        data = json.loads(out.read_text())
        self.results["model_alone"] = {"command": " ".join(argv), "results": data}
        for b, v in data.items():
            rates = ", ".join(f"b{k}: {x['requests_per_s']:.0f}/s" for k, x in v["batch_sizes"].items())
            print(f"[model-alone] {b}: {rates}", flush=True)

    def search(self, target: Target, url: str, server: ServerProcess) -> dict[str, Any]:
        o, rs = self.opts, self.opts.run
        snap = typing_snap if target.workload == "typing" else (lambda r: r)
        index = {"i": 0}
        metrics_client = httpx.Client(trust_env=False, timeout=5.0)

        def measure(rate: float) -> dict[str, Any]:
            i = index["i"]
            index["i"] += 1
            duration = rs.duration_for(rate)
            p1 = (i == 0 and target.workload == "cold" and abs(rate - rs.p1_rate) < 1e-9
                  and (target.is_default or target.server == "litserve"))
            if p1:
                duration = max(duration, rs.p1_duration)
            before = scrape_metrics(metrics_client, url) if target.server == "nextword" else {}
            result = run_point(url, target, rate, rs.seed + i, duration, rs, self.docs)
            after = scrape_metrics(metrics_client, url) if target.server == "nextword" else {}
            settle_s = settle(metrics_client, url, target.backend)
            point = point_summary(result, rate, "", o.slo, {"server": metrics_delta(before, after),
                                                            "settle_s": settle_s})
            lat = point["latency_ms_ok"]
            print(f"  [{target.key}] {rate:7.1f} req/s: p50 {lat['p50']} p99 {lat['p99']} ms, "
                  f"ok {point['ok']}/{point['measured']}, gen cpu {point['generator_cpu_fraction']:.0%} "
                  f"-> {'PASS' if point['passed'] else 'FAIL (' + point['reason'] + ')'}", flush=True)
            self._partial.append(point)
            return point

        self._partial = []
        outcome = search_max_rate(measure, [snap(r) for r in o.rates()], lambda p: p["passed"],
                                  rel_tol=o.search_tol, max_steps=o.search_steps, snap=snap)
        # Ladder points: up to and including its first failure; the rest is the binary search.
        first_fail_idx = next((i for i, (_, p) in enumerate(outcome.points) if not p["passed"]), None)
        points = []
        for i, (_, p) in enumerate(outcome.points):
            p["phase"] = "ladder" if first_fail_idx is None or i <= first_fail_idx else "search"
            points.append(p)
        metrics_client.close()
        hi_point = next((p for r, p in outcome.points if r == outcome.first_fail), None)
        return {
            "points": sorted(points, key=lambda p: p["rate"]),
            "max_rate_at_slo": outcome.max_rate,
            "first_fail_rate": outcome.first_fail,
            "search_status": outcome.status,
            "limited_by": hi_point["reason"] if hi_point else None,
        }

    def run_target(self, target: Target, litserve: tuple[int, float] | None = None) -> dict[str, Any]:
        name = target.key
        if target.server == "litserve":
            mb, bt = litserve or LITSERVE_DEFAULT
            server, url = self.litserve_server(target.backend, mb, bt, name)
            settings: dict[str, Any] = {"max_batch_size": mb, "batch_timeout_ms": bt,
                                        "timeout_s": LITSERVE_TIMEOUT_S, "threads": self.opts.threads}
        else:
            server, url = self.nextword_server(target, name)
            settings = {k: v for k, v in server.env.items() if k.startswith("NEXTWORD_") and k != "NEXTWORD_PORT"}
        print(f"[{name}] starting: {' '.join(server.argv)}", flush=True)
        entry: dict[str, Any] = {"key": name, **asdict(target), "settings": settings}
        t0 = time.perf_counter()
        try:
            with server:
                entry["ready_after_s"] = server.ready_after_s
                entry.update(self.search(target, url, server))
        except Exception as exc:  # one broken configuration must not lose the others
            log.exception("%s failed", name)
            entry["error"] = f"{type(exc).__name__}: {exc}"
            entry["points"] = sorted(getattr(self, "_partial", []), key=lambda p: p["rate"])  # measured so far
        entry["wall_s"] = round(time.perf_counter() - t0, 1)
        print(f"[{name}] max rate at SLO: {entry.get('max_rate_at_slo')} req/s "
              f"({entry.get('search_status')}, limited by {entry.get('limited_by')}) in {entry['wall_s']} s",
              flush=True)
        return entry

    def tune_litserve(self, backend: str) -> tuple[int, float]:
        o, rs = self.opts, self.opts.run
        rate = o.litserve_tune_rate
        if rate is None:
            # A mid rate: half of what nextword's default cold configuration sustains at SLO.
            ref = self.config_result(f"nextword-{backend}-batch-on-cache-on-cold")
            ref_rate = ref.get("max_rate_at_slo") if ref else None
            rate = round(ref_rate * LITSERVE_TUNE_FRACTION, 1) if ref_rate else LITSERVE_TUNE_FALLBACK
        target = Target("litserve", backend, "cold")
        tried: list[dict[str, Any]] = []
        for mb, bt in o.litserve_grid:
            name = f"litserve-tune-{backend}-b{mb}-t{bt:g}"
            server, url = self.litserve_server(backend, mb, bt, name)
            rec: dict[str, Any] = {"max_batch_size": mb, "batch_timeout_ms": bt, "rate": rate}
            try:
                with server:
                    result = run_point(url, target, rate, rs.seed, rs.duration_for(rate), rs, self.docs)
                rec.update(point_summary(result, rate, "tune", o.slo))
            except Exception as exc:
                rec["error"] = f"{type(exc).__name__}: {exc}"
            lat = (rec.get("latency_ms_ok") or {})
            print(f"[litserve-tune] b={mb} t={bt:g}ms @ {rate:.0f} req/s: p50 {lat.get('p50')} p99 {lat.get('p99')} "
                  f"err {rec.get('error_fraction')} {rec.get('reason', rec.get('error'))}", flush=True)
            tried.append(rec)
        chosen = choose_litserve(tried)
        self.results["litserve_tuning"] = {
            "backend": backend, "rate": rate, "tried": tried,
            "chosen": {"max_batch_size": chosen[0], "batch_timeout_ms": chosen[1]},
            "rule": "lowest p99 among settings with <1% errors and generator on schedule at the tuning rate "
                    f"({LITSERVE_TUNE_FRACTION:g}x the max rate at SLO of nextword's default cold config, else "
                    f"{LITSERVE_TUNE_FALLBACK:g} req/s), else fewest errors then lowest p99",
        }
        print(f"[litserve-tune] chosen max_batch_size={chosen[0]} batch_timeout={chosen[1]:g} ms", flush=True)
        self.save()
        return chosen

    def overload(self, backend: str) -> dict[str, Any]:
        """Probe the saturating rate, then overload at ``factor`` x it (see the module docstring).

        The max rate at SLO is a latency bound, not a throughput one: 3x it can still be
        under capacity (and then nothing is rejected), so the base is what the server
        actually answers per second when offered far more.
        """
        o, rs = self.opts, self.opts.run
        key = f"nextword-{backend}-batch-on-cache-on-cold"
        ref = self.config_result(key)
        slo_rate = (ref or {}).get("max_rate_at_slo") or o.overload_rate.get(backend)
        probe_rate = o.overload_probe_rate or 2 * (self._model_alone_best(backend) or 200.0)
        target = Target("nextword", backend, "cold")
        server, url = self.nextword_server(target, f"overload-{backend}")
        deadline_ms = default_deadline_ms()  # the sweep does not override NEXTWORD_DEADLINE_MS
        try:
            with server:
                probe = asyncio.run(self._saturation_probe(url, backend, probe_rate, rs))
                base = max(probe["ok_rps"] or 0.0, slo_rate or 0.0)
                if not base:
                    return {"error": f"not measured: the probe answered nothing and {key} has no max rate at SLO"}
                over_rate = min(o.overload_factor * base, o.max_rate)
                print(f"[overload-{backend}] probe at {probe_rate:.0f} req/s answered {probe['ok_rps']:.1f} req/s "
                      f"(statuses {probe['status_counts']}); now {over_rate:.0f} req/s ({o.overload_factor:g}x "
                      f"{base:g}) for {o.overload_seconds:g} s, {o.overload_low_rate:g} req/s throughout and "
                      f"{o.recovery_seconds:g} s after", flush=True)
                time.sleep(2.0)  # the probe's backlog drains (the engine's queue is bounded in time)
                over, low = asyncio.run(self._overload_runs(url, backend, over_rate, rs))
        except Exception as exc:
            log.exception("overload %s failed", backend)
            return {"error": f"{type(exc).__name__}: {exc}"}
        out = summarize_overload(over, low, o.overload_seconds, deadline_ms, over_rate, base, o.overload_factor,
                                 normal_ms=o.slo.p99_ms)
        out["base_kind"] = "saturating" if base == probe["ok_rps"] else "max rate at SLO"
        out["max_rate_at_slo"] = slo_rate
        out["saturation_probe"] = {
            "offered_rps": probe["offered_rps"], "ok_rps": probe["ok_rps"], "status_counts": probe["status_counts"],
            "seconds": o.overload_probe_seconds, "generator_behind_schedule": probe["behind_schedule"],
        }
        print(f"[overload-{backend}] statuses {out['status_counts']}; accepted p99 {out['accepted_p99_ms']} ms "
              f"(deadline {deadline_ms:g}); back under {o.slo.p99_ms:g} ms {out['recovery_s']} s after the drop; "
              f"only 200/503+Retry-After: {'yes' if out['only_200_or_503_retry_after'] else 'NO'}", flush=True)
        return out

    def _model_alone_best(self, backend: str) -> float | None:
        """The model-alone stage's best requests/s for ``backend`` (None if not run)."""
        sizes = (((self.results.get("model_alone") or {}).get("results") or {}).get(backend) or {}).get("batch_sizes")
        return max((b["requests_per_s"] for b in sizes.values()), default=None) if sizes else None

    async def _saturation_probe(self, url: str, backend: str, rate: float, rs: RunSettings) -> dict[str, Any]:
        from bench.loadgen import LoadConfig, run_load

        cfg = LoadConfig(url=url, model=backend, workload="cold", rate=rate, duration=self.opts.overload_probe_seconds,
                         warmup=1.0, arrivals=rs.arrivals, seed=rs.seed + 3000, corpus=rs.corpus,
                         max_docs=rs.max_docs, timeout=rs.timeout, keep_samples=False)
        r = await run_load(cfg, self.docs)
        return {"offered_rps": r["throughput"]["offered_rps"], "ok_rps": r["throughput"]["ok_rps"],
                "status_counts": r["status_counts"], "behind_schedule": r["behind_schedule"]}

    async def _overload_runs(self, url: str, backend: str, over_rate: float,
                             rs: RunSettings) -> tuple[dict[str, Any], dict[str, Any]]:
        from bench.loadgen import LoadConfig, run_load

        o = self.opts
        common = {"url": url, "model": backend, "workload": "cold", "warmup": 0.0, "arrivals": rs.arrivals,
                  "corpus": rs.corpus, "max_docs": rs.max_docs, "timeout": rs.timeout}
        over = LoadConfig(rate=over_rate, duration=o.overload_seconds, seed=rs.seed + 1000, keep_samples=False,
                          **common)
        low = LoadConfig(rate=o.overload_low_rate, duration=o.overload_seconds + o.recovery_seconds,
                         seed=rs.seed + 2000, keep_samples=True, **common)
        return tuple(await asyncio.gather(run_load(over, self.docs), run_load(low, self.docs)))  # type: ignore[return-value]

    def config_result(self, key: str) -> dict[str, Any] | None:
        return next((c for c in self.results["configs"] if c["key"] == key), None)

    # ------------------------------------------------------------------ main
    def run(self, targets: Sequence[Target]) -> None:
        from bench.workloads import load_documents

        o = self.opts
        estimate = estimate_seconds(o, targets)
        self.start_meta(targets, estimate)
        print(f"sweep: {len(targets)} configurations, stages {[s for s in STAGES if s not in o.skip]}; "
              f"estimated {estimate / 60:.1f} min; server logs in {self.log_dir}", flush=True)
        gen = parse_cpus(o.generator_cpus)
        if gen and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, gen)
        load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        self.results["meta"]["loadavg_1min_at_start"] = load1
        if load1 is not None and load1 > 0.5:
            print(f"WARNING: 1-minute load average is {load1:.2f}: something else is using the CPUs "
                  "and will distort the numbers", flush=True)
        self.docs = load_documents(o.run.corpus, o.run.max_docs)
        self.results["meta"]["documents"] = len(self.docs)
        self.save()
        if "model-alone" not in o.skip:
            self.model_alone()
            self.save()
        litserve_setting: tuple[int, float] | None = None
        for target in targets:
            if target.server == "litserve":
                if "litserve" in o.skip:
                    continue
                if litserve_setting is None:
                    litserve_setting = self.tune_litserve(target.backend) if o.litserve_grid else LITSERVE_DEFAULT
            self.results["configs"].append(self.run_target(target, litserve_setting))
            self.save()
        if "overload" not in o.skip:
            for backend in o.backends:
                self.results["overload"][backend] = self.overload(backend)
                self.save()
        self.results["meta"]["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.save()
        print(f"sweep done in {(time.perf_counter() - self.t0) / 60:.1f} min "
              f"(estimated {estimate / 60:.1f}); results in {o.out}", flush=True)


def choose_litserve(tried: Sequence[Mapping[str, Any]]) -> tuple[int, float]:
    """The tuning rule: lowest p99 among clean runs (<1% errors, on schedule), else fewest errors, then p99."""
    ok = [t for t in tried if "error" not in t]
    if not ok:
        return LITSERVE_DEFAULT
    clean = [t for t in ok if t["reason"] in ("ok", "p99") and t["latency_ms_ok"]["p99"] is not None]
    if clean:
        best = min(clean, key=lambda t: t["latency_ms_ok"]["p99"])
    else:
        best = min(ok, key=lambda t: (t["error_fraction"] if t["error_fraction"] is not None else 1.0,
                                      t["latency_ms_ok"]["p99"] if t["latency_ms_ok"]["p99"] is not None
                                      else math.inf))
    return int(best["max_batch_size"]), float(best["batch_timeout_ms"])


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
    from bench.loadgen import merged_status_counts
    from bench.stats import rounded, summarize

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


# --------------------------------------------------------------------------- CLI


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="bench/results/sweep.json")
    p.add_argument("--quick", action="store_true", help="smoke test: gru, 2 rates, 2 s runs, no search")
    p.add_argument("--backends", default=",".join(BACKENDS))
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--configs", nargs="*", default=[], help="fnmatch patterns over config keys")
    p.add_argument("--cache-off-workloads", default="typing")
    p.add_argument("--skip", default="", help=f"comma-separated stages to skip: {','.join(STAGES)}")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per run")
    p.add_argument("--min-samples", type=int, default=100, help="lengthen low-rate runs to this many requests")
    p.add_argument("--p1-duration", type=float, default=20.0, help="seconds of the 10 req/s point of default cold")
    p.add_argument("--timeout", type=float, default=5.0, help="per-request client timeout, seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--corpus", default=str(DEFAULT_CORPUS) if DEFAULT_CORPUS.exists() else None)
    p.add_argument("--max-docs", type=int, default=2000)
    p.add_argument("--arrivals", default="poisson", choices=("poisson", "constant"))
    p.add_argument("--typing-start", default="prefix", choices=TYPING_STARTS,
                   help="typing workload: typists start after a 5-40-word prefix (default) or from empty")
    p.add_argument("--slo-p99-ms", type=float, default=50.0)
    p.add_argument("--max-error-fraction", type=float, default=0.01)
    p.add_argument("--ladder-start", type=float, default=10.0)
    p.add_argument("--ladder-factor", type=float, default=2.0)
    p.add_argument("--max-rate", type=float, default=1280.0)
    p.add_argument("--ladder", default=None, help="explicit comma-separated ladder rates")
    p.add_argument("--search-steps", type=int, default=3)
    p.add_argument("--search-tol", type=float, default=0.1)
    p.add_argument("--server-cpus", default="0", help="taskset list for servers ('' = no pinning)")
    p.add_argument("--generator-cpus", default="1", help="CPU list for this process ('' = no pinning)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of servers and model-alone")
    p.add_argument("--model-alone-batches", default="1,8,32,64")
    p.add_argument("--model-alone-seconds", type=float, default=2.0)
    p.add_argument("--litserve-grid", default=None,
                   help="'MB:TMS,...' LitServe (max_batch_size:batch_timeout_ms) to try; '' = no tuning")
    p.add_argument("--litserve-tune-rate", type=float, default=None)
    p.add_argument("--overload-factor", type=float, default=3.0)
    p.add_argument("--overload-seconds", type=float, default=20.0, help="the issue asks for 60")
    p.add_argument("--overload-low-rate", type=float, default=10.0)
    p.add_argument("--recovery-seconds", type=float, default=5.0)
    p.add_argument("--overload-rate", default="", help="'gru=100,lstm=90': base rate when not measured")
    p.add_argument("--overload-probe-rate", type=float, default=None,
                   help="offered req/s of the saturation probe (default: 2x the model-alone best, else 400)")
    p.add_argument("--overload-probe-seconds", type=float, default=5.0)
    p.add_argument("--dry-run", action="store_true", help="print the configurations and estimate, run nothing")
    return p


def options_from_args(args: argparse.Namespace) -> SweepOptions:
    def csv(text: str) -> tuple[str, ...]:
        return tuple(x for x in (text or "").split(",") if x)

    grid: tuple[tuple[int, float], ...] = LITSERVE_QUICK_GRID if args.quick else LITSERVE_GRID
    if args.litserve_grid is not None:
        grid = tuple((int(a), float(b)) for a, b in (x.split(":") for x in csv(args.litserve_grid)))
    run = RunSettings(duration=args.duration, warmup=args.warmup, min_samples=args.min_samples,
                      p1_duration=args.p1_duration, timeout=args.timeout, seed=args.seed, corpus=args.corpus,
                      max_docs=args.max_docs, arrivals=args.arrivals, typing_start=args.typing_start)
    opts = SweepOptions(
        out=Path(args.out), backends=csv(args.backends), workloads=csv(args.workloads),
        configs=tuple(args.configs), cache_off_workloads=csv(args.cache_off_workloads), skip=csv(args.skip),
        slo=Slo(args.slo_p99_ms, args.max_error_fraction), run=run, ladder_start=args.ladder_start,
        ladder_factor=args.ladder_factor, max_rate=args.max_rate,
        ladder=tuple(float(x) for x in csv(args.ladder)) if args.ladder else None,
        search_steps=args.search_steps, search_tol=args.search_tol,
        server_cpus=args.server_cpus or None, generator_cpus=args.generator_cpus or None, threads=args.threads,
        model_alone_batches=tuple(int(x) for x in csv(args.model_alone_batches)),
        model_alone_seconds=args.model_alone_seconds, litserve_grid=grid, litserve_tune_rate=args.litserve_tune_rate,
        overload_factor=args.overload_factor, overload_seconds=args.overload_seconds,
        overload_low_rate=args.overload_low_rate, recovery_seconds=args.recovery_seconds,
        overload_rate={k: float(v) for k, v in (x.split("=") for x in csv(args.overload_rate))},
        overload_probe_rate=args.overload_probe_rate, overload_probe_seconds=args.overload_probe_seconds,
        quick=args.quick,
    )
    if args.quick:
        # Smoke test of every stage: one backend, two rates, short runs, no bisection.
        opts.backends = ("gru",)
        opts.ladder = (10.0, 40.0)
        opts.search_steps = 0
        opts.run.duration, opts.run.warmup, opts.run.min_samples, opts.run.p1_duration = 2.0, 0.5, 1, 2.0
        opts.model_alone_batches, opts.model_alone_seconds = (1, 8), 0.5
        opts.overload_seconds, opts.recovery_seconds = 3.0, 3.0
        opts.overload_rate = opts.overload_rate or {"gru": 40.0}
        opts.configs = opts.configs or ("nextword-gru-batch-*-cache-on-cold", "nextword-gru-batch-on-cache-*-typing",
                                        "litserve-gru-cold")
    if os.cpu_count() == 1 or not hasattr(os, "sched_setaffinity"):
        opts.server_cpus = opts.generator_cpus = None
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    opts = options_from_args(args)
    targets = expand_configs(opts.backends, opts.workloads, cache_off_workloads=opts.cache_off_workloads,
                             litserve="litserve" not in opts.skip)
    targets = select_configs(targets, opts.configs)
    if args.dry_run:
        for t in targets:
            print(t.key)
        print(f"estimated {estimate_seconds(opts, targets) / 60:.1f} min")
        return 0
    Sweep(opts, argv).run(targets)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The sweep's configuration matrix: which servers, settings and workloads are measured.

A configuration (:class:`Target`) is a server (nextword or the LitServe peer), a backend, a
workload and, for nextword, batching and prefix cache on or off. The matrix is expanded
here and filtered by fnmatch patterns over the configurations' keys, so that a result
file, a report row and a command line name a configuration the same way. The LitServe
peer has settings of its own: the grid its tuning tries and the rule that picks one.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.servers import inherited_env

BACKENDS = ("gru", "lstm")
WORKLOADS = ("cold", "typing")

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


def nextword_env(target: Target, port: int, threads: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The NEXTWORD_* settings of a configuration (inherited NEXTWORD_* variables are dropped)."""
    env = inherited_env()
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

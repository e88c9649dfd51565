"""What a running nextword server's /metrics says about a load run: batch sizes and cache hits.

Read before and after a run, the difference is the run's own share of the server's
counters, so a sweep point or a fleet rate can name the batches the engine formed and
how often the prefix cache hit, next to the latencies the client measured.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import httpx


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

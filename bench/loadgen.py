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
connection slot (``--concurrency-limit``, default
:data:`bench.openloop.DEFAULT_MAX_CONNECTIONS`).
Warm-up requests (the first ``warmup`` seconds of the schedule) are sent but left out of
every statistic. Percentiles are exact nearest-rank values over all samples
(:mod:`bench.stats`).

Usage::

    python -m bench.loadgen --url http://127.0.0.1:8000 --model gru --workload cold \\
        --rate 50 --duration 20 --warmup 3 --seed 0 --arrivals poisson --out results.json \\
        [--corpus ../shared/data/aclImdb_v1.tar.gz --max-docs 2000] [--typists 20] \\
        [--concurrency-limit N] [--subjects]

For the typing workload ``--rate`` and ``--arrivals`` are ignored: the rate is set by
``--typists`` (about 4.44 req/s each); see :func:`bench.workloads.typists_for_rate`.

The sending is :mod:`bench.openloop`, the report of a run :mod:`bench.run_summary`; this
module joins them into one run (:func:`run_load`, which a sweep calls directly with a
:class:`bench.openloop.LoadConfig` or a dict) and is the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from bench.openloop import DEFAULT_MAX_CONNECTIONS, TRANSPORTS, LoadConfig, send_plan
from bench.run_summary import format_summary, summarize_run, write_result
from bench.workloads import (
    ARRIVALS,
    DEFAULT_TYPISTS,
    MEAN_KEYSTROKE_GAP_S,
    TYPING_STARTS,
    WORKLOADS,
    build_plan,
    load_documents,
    load_subjects,
)

log = logging.getLogger(__name__)


async def run_load(
    config: LoadConfig | Mapping[str, Any], documents: Sequence[str] | None = None,
    subjects: Sequence[str] | None = None,
) -> dict:
    """Run one open-loop load test and return its JSON-ready report.

    ``config`` is a :class:`~bench.openloop.LoadConfig` or a dict of its fields. ``documents`` overrides
    the corpus (a sweep can load it once and pass it to every run), ``subjects`` its subjects (with
    ``config.subjects``; loaded from the corpus when not given). Keys of the result:
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
    if cfg.subjects and subjects is None:
        subjects = load_subjects(cfg.corpus, cfg.max_docs)
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
        subjects=subjects if cfg.subjects else None,
    )
    if cfg.workload == "typing":
        log.info(
            "typing: %d typists, ~%.1f req/s offered (rate/arrivals ignored)",
            cfg.typists,
            cfg.typists / MEAN_KEYSTROKE_GAP_S,
        )
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    samples, acct = await send_plan(plan, cfg)
    acct["started_at"] = started_at
    result = summarize_run(cfg, plan, samples, acct)
    if result["behind_schedule"]:
        log.warning("generator behind schedule: %s", "; ".join(result["behind_schedule_reasons"]))
    return result


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
    p.add_argument(
        "--subjects",
        action="store_true",
        help="send each e-mail's subject with its requests, as the demo page does (an e-mail --corpus)",
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
        subjects=args.subjects,
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

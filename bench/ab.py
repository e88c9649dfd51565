"""Interleaved A/B of server variants under the same open-loop load, in one run.

    git worktree add /tmp/nextword-base HEAD            # the version to compare against
    taskset -c 1 python -m bench.ab --corpus ../shared/data/aclImdb_v1.tar.gz \\
        --arm base=/tmp/nextword-base --arm new=. --arm off=.:NEXTWORD_BATCHING=false \\
        --rates 20,40 --duration 30 --rounds 3 --out runs/ab.json

Why a separate tool: on this noisy VM a configuration's p99 moves 2-4x between sweeps run
minutes apart, so two sweeps (one per version) cannot tell a real change from the machine.
Here every arm runs at every rate in every round, the arms' order rotating round by round,
so slow drift and bursts of noise hit all arms alike; each arm's latencies are pooled over
its rounds (exact nearest-rank percentiles of all samples) and the per-round p99s are kept
to show the spread. Each run also records the server's CPU time (its process tree, from
``/proc``) per answered request, the figure that is stable on this machine.

An arm is ``NAME=DIR[@MODULE][:VAR=VALUE[:VAR=VALUE...]]``: the server is ``python -m app``
(or ``MODULE``, e.g. ``bench.floor_app``, the stack's floor) run from ``DIR`` (a checkout or
worktree; its own ``app``/``model`` packages are imported), pinned like the sweep's
(``--server-cpus``, 1 torch thread), with the sweep's settings for the backend plus the given
``NEXTWORD_*`` overrides (``NEXTWORD_RUNNER=granian`` for another runner). Run the tool
itself on the other core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import REPO
from bench.configs import Target, nextword_env
from bench.loadgen import run_load
from bench.openloop import LoadConfig
from bench.provenance import git_info, machine_info
from bench.run_summary import cpu_ms_per_answer, merged_status_counts
from bench.servers import app_server, free_port, tree_cpu_seconds
from bench.stats import rounded, summarize
from bench.workloads import load_documents, typists_for_rate

log = logging.getLogger("bench.ab")


@dataclass
class Arm:
    name: str
    directory: Path
    env: dict[str, str] = field(default_factory=dict)
    module: str = "app"  # what ``python -m`` runs (bench.floor_app: the stack's floor)


def parse_arm(text: str) -> Arm:
    """``NAME=DIR[:VAR=VALUE...]`` -> :class:`Arm` (``ValueError`` with the reason otherwise)."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise ValueError(f"arm {text!r}: expected NAME=DIR[:VAR=VALUE...]")
    directory, *pairs = rest.split(":")
    directory, _, module = directory.partition("@")
    env: dict[str, str] = {}
    for pair in pairs:
        var, eq, value = pair.partition("=")
        if not eq or not var.startswith("NEXTWORD_"):
            raise ValueError(f"arm {name!r}: {pair!r} is not a NEXTWORD_*=VALUE setting")
        env[var] = value
    path = (REPO / directory).resolve() if not Path(directory).is_absolute() else Path(directory)
    if not (path / "app" / "__main__.py").is_file():
        raise ValueError(f"arm {name!r}: {path} is not a nextword checkout (no app/__main__.py)")
    return Arm(name, path, env, module or "app")


def median_or_none(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 3) if known else None


def rotated(arms: Sequence[Arm], round_index: int) -> list[Arm]:
    """The arms in round ``round_index``'s order: rotated by one each round."""
    k = round_index % len(arms)
    return [*arms[k:], *arms[:k]]


def ok_latencies(result: dict[str, Any]) -> list[float]:
    """Measured (not warm-up) latencies of the 200s, from a run's kept samples."""
    s = result["samples"]
    return [
        lat
        for lat, status, warm in zip(s["latency_ms"], s["status"], s["warmup"], strict=True)
        if status == "200" and not warm and lat is not None
    ]


def run_arm(arm: Arm, backend: str, workload: str, rates: Sequence[float], duration: float, warmup: float,
            seed: int, docs: Sequence[str], server_cpus: str, log_dir: Path) -> dict[float, dict[str, Any]]:
    """Start ``arm``'s server, run every rate against it, stop it."""
    port = free_port()
    target = Target(server="nextword", backend=backend, workload=workload, batching=True, cache=True)
    env = nextword_env(target, port, threads=1, extra=arm.env)
    server = app_server(env, port, log_dir / f"{arm.name}.log", arm.name, server_cpus, cwd=arm.directory,
                        module=arm.module)
    url = server.base_url
    out: dict[float, dict[str, Any]] = {}
    with server:
        assert server.proc is not None
        for rate in rates:
            cfg = LoadConfig(url=url, model=backend, workload=workload, rate=rate, duration=duration,
                             warmup=warmup, seed=seed, typists=typists_for_rate(rate), keep_samples=True)
            cpu_before = tree_cpu_seconds(server.proc.pid)
            result = asyncio.run(run_load(cfg, documents=docs))
            cpu_after = tree_cpu_seconds(server.proc.pid)
            result["server_cpu_ms_per_request"] = cpu_ms_per_answer(cpu_before, cpu_after, result)
            out[rate] = result
            lat = result["latency_ms_ok"]
            log.info("  %-8s %5.1f req/s: p50 %s p99 %s ms, ok %d/%d, behind schedule: %s", arm.name, rate,
                     lat["p50"], lat["p99"], result["requests"]["ok"], result["requests"]["measured"],
                     result["behind_schedule"])
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arm", action="append", required=True, help="NAME=DIR[:NEXTWORD_VAR=VALUE...] (2 or more)")
    p.add_argument("--model", default="gru", help="a served model's name (model/artifacts/NAME.pt)")
    p.add_argument("--workload", choices=("cold", "phrase", "typing"), default="cold",
                   help="typing: as many typists as give about each rate")
    p.add_argument("--rates", default="20,40", help="comma-separated offered req/s")
    p.add_argument("--duration", type=float, default=30.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--corpus", required=True, help="held-out corpus (test split)")
    p.add_argument("--max-docs", type=int, default=2000)
    p.add_argument("--server-cpus", default="0")
    p.add_argument("--out", required=True)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = parser().parse_args(argv)
    try:
        arms = [parse_arm(a) for a in args.arm]
        rates = [float(r) for r in args.rates.split(",") if r]
    except ValueError as exc:
        parser().error(str(exc))
    if len(arms) < 2 or len({a.name for a in arms}) != len(arms):
        parser().error("give at least two arms with distinct names")
    docs = load_documents(args.corpus, args.max_docs)
    log_dir = Path(args.out).with_suffix(".logs")
    per_round: dict[str, dict[float, list[dict[str, Any]]]] = {a.name: {r: [] for r in rates} for a in arms}
    for round_index in range(args.rounds):
        order = rotated(arms, round_index)
        log.info("round %d/%d: %s", round_index + 1, args.rounds, ", ".join(a.name for a in order))
        for arm in order:
            # Same seed for every arm within a round: the same requests at the same instants.
            results = run_arm(arm, args.model, args.workload, rates, args.duration, args.warmup,
                              args.seed + round_index, docs, args.server_cpus, log_dir)
            for rate, result in results.items():
                per_round[arm.name][rate].append(result)
    table: dict[str, dict[str, Any]] = {}
    for arm in arms:
        table[arm.name] = {}
        for rate in rates:
            runs = per_round[arm.name][rate]
            table[arm.name][f"{rate:g}"] = {
                "pooled_ok_latency_ms": rounded(summarize(x for r in runs for x in ok_latencies(r))),
                "round_p99_ms": [r["latency_ms_ok"]["p99"] for r in runs],
                "round_cpu_ms_per_request": [r["server_cpu_ms_per_request"] for r in runs],
                "median_cpu_ms_per_request": median_or_none(r["server_cpu_ms_per_request"] for r in runs),
                "not_ok": sum(r["requests"]["measured"] - r["requests"]["ok"] for r in runs),
                "status_counts": merged_status_counts(runs),
                "behind_schedule_runs": sum(bool(r["behind_schedule"]) for r in runs),
            }
    report = {
        "command": "python -m bench.ab " + " ".join(argv if argv is not None else sys.argv[1:]),
        "git": git_info(),
        "machine": machine_info(),
        "arms": [{"name": a.name, "dir": str(a.directory), "module": a.module, "env": a.env} for a in arms],
        "model": args.model, "workload": args.workload, "rounds": args.rounds, "duration_s": args.duration,
        "results": table,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    log.info("%-8s %8s %10s %10s %10s %12s  %s", "arm", "rate", "n", "p50 ms", "p99 ms", "CPU ms/req",
             "p99 per round")
    for arm in arms:
        for rate in rates:
            row = table[arm.name][f"{rate:g}"]
            lat = row["pooled_ok_latency_ms"]
            log.info("%-8s %8g %10d %10s %10s %12s  %s  %s", arm.name, rate, lat["count"], lat["p50"], lat["p99"],
                     row["median_cpu_ms_per_request"], row["round_p99_ms"], row["status_counts"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

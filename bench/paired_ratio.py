"""nextword's CPU per request over the LitServe peer's, in paired rounds (#18's typing bar, measured robustly).

    taskset -c 1 python -m bench.paired_ratio --corpus ../shared/data/aclImdb_v1.tar.gz \\
        --workload typing --rates 440,80 --rounds 6 --out bench/results/paired_ratio_typing.json

Why: the sweep finds each server's max rate and reads its CPU-ms per request there, but it
measures nextword's ladder and the peer's minutes apart, and on this VM the machine's speed
drifts by 10% or more between runs minutes apart (the same server at the same load measured
2.16, 2.62 and 2.46 CPU-ms a keystroke within minutes): one sweep's ratio is one draw from that drift.
Here each round runs nextword at its rate and the peer at its own (the max rates the sweeps
found), back to back, in alternating order (ABBA...), so both sides of each round's ratio see
the same machine; the rounds give the ratio's median and range. CPU is counted as the sweep
counts it (the server's process tree, warm-up included, per 200 answered, warm-up included:
:func:`bench.run_summary.cpu_ms_per_answer`); each run's p50/p99 shows whether the rate held.
Each run starts its server afresh, as the sweep's ladder does not (there one server serves the
whole ladder); the warm-up is the sweep's (typing: 3 s, the typists joining over it).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import REPO
from bench.configs import LITSERVE_DEFAULT, LITSERVE_TIMEOUT_S, Target, nextword_env
from bench.provenance import git_info, machine_info
from bench.run_summary import cpu_ms_per_answer
from bench.runs import RunSettings, run_point
from bench.servers import ServerProcess, app_server, free_port, litserve_server, tree_cpu_seconds
from bench.workloads import load_documents

log = logging.getLogger("bench.paired_ratio")

SIDES = ("nextword", "litserve")


def round_order(index: int) -> tuple[str, str]:
    """ABBA: round 0 nextword first, round 1 the peer first, and so on (drift within a round cancels)."""
    return SIDES if index % 2 == 0 else SIDES[::-1]


def ratios(rounds: Sequence[dict[str, Any]]) -> list[float]:
    """nextword's CPU-ms per request over the peer's, round by round (rounds missing either are skipped)."""
    out = []
    for r in rounds:
        ours, peer = r["nextword"]["cpu_ms_per_request"], r["litserve"]["cpu_ms_per_request"]
        if ours is not None and peer:
            out.append(round(ours / peer, 4))
    return out


def summary(rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Median and range of the per-round ratios, and each side's CPU-ms and p99 per round."""
    values = ratios(rounds)
    return {
        "ratio_median": round(statistics.median(values), 4) if values else None,
        "ratio_min": min(values, default=None),
        "ratio_max": max(values, default=None),
        "ratios": values,
        **{f"{side}_cpu_ms": [r[side]["cpu_ms_per_request"] for r in rounds] for side in SIDES},
        **{f"{side}_p99_ms": [r[side]["p99_ms"] for r in rounds] for side in SIDES},
    }


def start(side: str, target: Target, litserve: tuple[int, float], cpus: str, log_dir: Path, name: str
          ) -> ServerProcess:
    if side == "nextword":
        port = free_port()
        env = nextword_env(target, port, threads=1)
        return app_server(env, port, log_dir / f"{name}.log", name, cpus)
    max_batch, timeout_ms = litserve
    return litserve_server(target.backend, max_batch, timeout_ms, 1, LITSERVE_TIMEOUT_S, log_dir / f"{name}.log", name,
                           cpus)


def measure(side: str, rate: float, seed: int, workload: str, backend: str, litserve: tuple[int, float],
            rs: RunSettings, docs: Sequence[str], cpus: str, log_dir: Path, name: str) -> dict[str, Any]:
    """One run of ``side`` at ``rate`` on a fresh server: CPU-ms per 200 and the latencies of the 200s."""
    target = Target(side, backend, workload)
    server = start(side, target, litserve, cpus, log_dir, name)
    with server:
        assert server.proc is not None
        before = tree_cpu_seconds(server.proc.pid)
        result = run_point(server.base_url, target, rate, seed, rs.duration_for(rate), rs, docs)
        after = tree_cpu_seconds(server.proc.pid)
    lat = result["latency_ms_ok"]
    return {"rate": rate, "seed": seed, "cpu_ms_per_request": cpu_ms_per_answer(before, after, result),
            "p50_ms": lat["p50"], "p99_ms": lat["p99"], "status_counts": result["status_counts"],
            "status_counts_warmup": result.get("status_counts_warmup", {})}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.paired_ratio", description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", required=True, help="held-out corpus (test split)")
    p.add_argument("--backend", default="gru")
    p.add_argument("--workload", choices=("cold", "typing"), default="typing")
    p.add_argument("--rates", default="440,80", help="NEXTWORD,PEER: each side's offered req/s")
    p.add_argument("--litserve", default=f"{LITSERVE_DEFAULT[0]}:{LITSERVE_DEFAULT[1]:g}",
                   help="the peer's MAX_BATCH:TIMEOUT_MS (the sweep's tuned grid point)")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--duration", type=float, default=15.0, help="measured seconds per run")
    p.add_argument("--min-samples", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-docs", type=int, default=2000)
    p.add_argument("--server-cpus", default="0")
    p.add_argument("--out", required=True)
    return p


def parse_pair(text: str, separator: str, what: str) -> tuple[float, float]:
    a, sep, b = text.partition(separator)
    if not sep:
        raise ValueError(f"--{what} {text!r}: expected two values")
    return float(a), float(b)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness probe otherwise
    try:
        ours_rate, peer_rate = parse_pair(args.rates, ",", "rates")
        max_batch, timeout_ms = parse_pair(args.litserve, ":", "litserve")
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    litserve = (int(max_batch), timeout_ms)
    rs = RunSettings(duration=args.duration, min_samples=args.min_samples, seed=args.seed, corpus=args.corpus,
                     max_docs=args.max_docs)
    docs = load_documents(args.corpus, args.max_docs)
    out = Path(args.out)
    log_dir = out.with_suffix(".logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    rates = {"nextword": ours_rate, "litserve": peer_rate}
    rounds: list[dict[str, Any]] = []
    for i in range(args.rounds):
        record: dict[str, Any] = {"round": i + 1, "order": list(round_order(i))}
        for side in round_order(i):
            run = measure(side, rates[side], args.seed + i, args.workload, args.backend, litserve, rs, docs,
                          args.server_cpus, log_dir, f"{side}-r{i + 1}")
            record[side] = run
            log.info("round %d %-8s %5.1f req/s: %s CPU-ms/req, p50 %s p99 %s ms, %s", i + 1, side, run["rate"],
                     run["cpu_ms_per_request"], run["p50_ms"], run["p99_ms"], run["status_counts"])
        rounds.append(record)
    report = {
        "command": "python -m bench.paired_ratio " + " ".join(sys.argv[1:] if argv is None else argv),
        "git": git_info(REPO), "machine": machine_info(), "backend": args.backend, "workload": args.workload,
        "rates": rates, "litserve": {"max_batch": litserve[0], "timeout_ms": litserve[1]},
        "duration_s": args.duration, "warmup_s": rs.warmup_for(args.workload),
        "rounds": rounds, "summary": summary(rounds),
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    s = report["summary"]
    log.info("nextword / peer CPU-ms per request, %d rounds: median %s (%s-%s); per round %s", len(s["ratios"]),
             s["ratio_median"], s["ratio_min"], s["ratio_max"], s["ratios"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What a sweep is asked to do: its options, the command line that sets them, and its duration.

The options name the configurations (:mod:`bench.configs`), the SLO and the rate ladder
(:mod:`bench.slo`), each run's length (:class:`bench.runs.RunSettings`), the pinning, and
the model-alone, LitServe and overload stages. ``--quick`` turns them into a smoke test of
every stage. The duration estimate is printed before a sweep starts, because a full sweep
takes long enough that it should be known up front.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import REPO
from bench.configs import BACKENDS, LITSERVE_GRID, LITSERVE_QUICK_GRID, WORKLOADS, Target
from bench.runs import RunSettings
from bench.slo import Slo, ladder_rates
from bench.workloads import TYPING_STARTS

DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "aclImdb_v1.tar.gz"
STAGES = ("model-alone", "litserve", "overload")
#: The first paragraph of :mod:`bench.sweep`'s docstring: what ``--help`` says the sweep is.
DESCRIPTION = "The load-test sweep: every server configuration through the same open-loop generator."

#: Rough per-stage costs behind the up-front duration estimate (a 2-core machine).
EST_NEXTWORD_START_S = 8.0
EST_LITSERVE_START_S = 10.0
EST_RUN_OVERHEAD_S = 2.0  # client drain, settling, metrics
EST_SEARCH_RUNS = 8  # ladder to first failure (~5) + binary search (~3)


@dataclass
class SweepOptions:
    out: Path
    backends: tuple[str, ...] = BACKENDS
    workloads: tuple[str, ...] = WORKLOADS
    configs: tuple[str, ...] = ()
    cache_off_workloads: tuple[str, ...] = ("typing",)
    litserve_workloads: tuple[str, ...] = ("cold", "typing")
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

    def run_seconds(workload: str) -> float:
        return rs.warmup_for(workload) + rs.duration + EST_RUN_OVERHEAD_S

    runs = len(opts.rates()) if opts.ladder else EST_SEARCH_RUNS
    longer_first = rs.duration_for(opts.ladder_start) - rs.duration  # the ladder's low first rate runs longer
    total = 0.0
    for t in targets:
        start = EST_LITSERVE_START_S if t.server == "litserve" else EST_NEXTWORD_START_S
        total += start + runs * run_seconds(t.workload) + longer_first
        if (t.is_default or t.server == "litserve") and t.workload == "cold":
            total += max(0.0, rs.p1_duration - rs.duration_for(opts.ladder_start))
    if "model-alone" not in opts.skip:
        total += 10 + len(opts.backends) * len(opts.model_alone_batches) * (opts.model_alone_seconds + 0.7)
    if "litserve" not in opts.skip and any(t.server == "litserve" for t in targets):
        total += len(opts.litserve_grid) * (EST_LITSERVE_START_S + run_seconds("cold"))  # its tuning runs are cold
    if "overload" not in opts.skip:
        total += len(opts.backends) * (EST_NEXTWORD_START_S + opts.overload_probe_seconds + opts.overload_seconds
                                       + opts.recovery_seconds + 6)
    return total


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.sweep", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="bench/results/sweep.json")
    p.add_argument("--quick", action="store_true", help="smoke test: gru, 2 rates, 2 s runs, no search")
    p.add_argument("--backends", default=",".join(BACKENDS))
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--configs", nargs="*", default=[], help="fnmatch patterns over config keys")
    p.add_argument("--cache-off-workloads", default="typing")
    p.add_argument("--litserve-workloads", default="cold,typing",
                   help="workloads the LitServe peer serves (typing: it re-reads the whole text every keystroke)")
    p.add_argument("--skip", default="", help=f"comma-separated stages to skip: {','.join(STAGES)}")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per run")
    p.add_argument("--typing-warmup", type=float, default=3.0,
                   help="typing runs warm up at least this long: their typists join over it, each first reading its"
                        " whole prefix cold, and in 1 s a stateful server was still serving those reads at high rates")
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
    run = RunSettings(duration=args.duration, warmup=args.warmup, typing_warmup=args.typing_warmup,
                      min_samples=args.min_samples,
                      p1_duration=args.p1_duration, timeout=args.timeout, seed=args.seed, corpus=args.corpus,
                      max_docs=args.max_docs, arrivals=args.arrivals, typing_start=args.typing_start)
    opts = SweepOptions(
        out=Path(args.out), backends=csv(args.backends), workloads=csv(args.workloads),
        configs=tuple(args.configs), cache_off_workloads=csv(args.cache_off_workloads),
        litserve_workloads=csv(args.litserve_workloads), skip=csv(args.skip),
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
        opts.run.typing_warmup = 0.5
        opts.model_alone_batches, opts.model_alone_seconds = (1, 8), 0.5
        opts.overload_seconds, opts.recovery_seconds = 3.0, 3.0
        opts.overload_rate = opts.overload_rate or {"gru": 40.0}
        opts.configs = opts.configs or ("nextword-gru-batch-*-cache-on-cold", "nextword-gru-batch-on-cache-*-typing",
                                        "litserve-gru-cold")
    if os.cpu_count() == 1 or not hasattr(os, "sched_setaffinity"):
        opts.server_cpus = opts.generator_cpus = None
    return opts

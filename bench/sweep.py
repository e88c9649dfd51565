"""The load-test sweep: every server configuration through the same open-loop generator.

``python -m bench.sweep --out bench/results/sweep.json`` runs, in order:

1. **model alone** (:mod:`bench.model_alone`, a subprocess pinned to the server's cores,
   same torch threads): cold requests through ``model.batching.drive`` at batch sizes
   1/8/32/64, the ceiling the server is measured against;
2. **nextword configurations** (:mod:`bench.configs`): backend {gru, lstm} x batching
   {on, off} x prefix cache {on, off} x workload {cold, typing}, except that cache-off is
   run on ``typing`` only (a cold request is a fresh random prefix: the cache can barely
   hit, so cold cache-off would repeat cold cache-on at twice the cost;
   ``--cache-off-workloads cold,typing`` runs it anyway);
3. **LitServe tuning**, then the **LitServe peer** (:mod:`bench.litserve_server`) on the
   cold workload for each backend, with the tuned ``max_batch_size``/``batch_timeout``;
4. **overload** (:mod:`bench.overload`), per backend: a 5 s saturation probe
   (``--overload-probe-rate``, default twice the model-alone best), then ``3x`` the
   saturating rate for ``--overload-seconds`` (default 20 s; the issue asks for 60 s:
   ``--overload-seconds 60``), with a low-rate stream (10 req/s) running throughout and
   for ``--recovery-seconds`` after.

Every configuration gets a fresh server subprocess (:mod:`bench.servers`: ``python -m app``
with ``NEXTWORD_*`` variables, its own free port, only its backend loaded), is used once
/readyz (LitServe: /health) says ready, and is stopped after (SIGTERM to its process group,
then SIGKILL).

**SLO search** (:mod:`bench.slo`): for each configuration a geometric rate ladder
(``--ladder-start`` 10 req/s, x ``--ladder-factor`` 2, up to ``--max-rate``) until the
first rate that *fails*, then a binary search between the last pass and that failure
(``--search-steps``, stopping at ``--search-tol`` relative width). A run passes at p99 of
its 200s <= ``--slo-p99-ms`` (50) with fewer than ``--max-error-fraction`` (1%) of its
requests not 200 and the generator on schedule. Each run (:mod:`bench.runs`) is
``--warmup`` 1 s + ``--duration`` 5 s, longer at low rates so it has >= ``--min-samples``
requests; the first, 10 req/s, point of the default cold configurations runs
``--p1-duration`` s for the low-load check, and typing runs warm up ``--typing-warmup`` 3 s (their
typists join over it, each with a cold read of a whole prefix). Latency is from the intended send time.

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
``--skip`` drops stages (model-alone, litserve, overload). The options and their flags are
:mod:`bench.sweep_options`; this module runs the stages in order and writes the results.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from bench import REPO
from bench.configs import (
    LITSERVE_DEFAULT,
    LITSERVE_TIMEOUT_S,
    LITSERVE_TUNE_FALLBACK,
    LITSERVE_TUNE_FRACTION,
    Target,
    choose_litserve,
    expand_configs,
    nextword_env,
    select_configs,
)
from bench.overload import default_deadline_ms, overload_runs, saturation_probe, summarize_overload
from bench.provenance import git_info, machine_info, model_facts, package_versions, utc_now
from bench.run_summary import cpu_ms_per_answer
from bench.runs import point_summary, run_point, settle
from bench.server_metrics import metrics_delta, scrape_metrics
from bench.servers import (
    ServerProcess,
    app_server,
    can_pin,
    free_port,
    inherited_env,
    litserve_server,
    pin_this_process,
    pinned,
    tree_cpu_seconds,
)
from bench.slo import search_max_rate, typing_snap
from bench.sweep_options import STAGES, SweepOptions, estimate_seconds, options_from_args, parser
from bench.workloads import load_documents

log = logging.getLogger("bench.sweep")

RESULT_VERSION = 1


class Sweep:
    """Runs the stages in order, saving the results file after each so an interrupted sweep keeps what it measured."""

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
        self.results = {
            "version": RESULT_VERSION,
            "meta": {
                "started_at": utc_now(),
                "command": "python -m bench.sweep " + " ".join(shlex.quote(a) for a in self.argv),
                "git": git_info(),
                "machine": machine_info(),
                "packages": package_versions(),
                "pinning": {
                    "server_cpus": o.server_cpus, "generator_cpus": o.generator_cpus,
                    "torch_threads": o.threads, "applied": can_pin() and bool(o.server_cpus),
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
        server = app_server(nextword_env(target, port, self.opts.threads), port, self.log_dir / f"{name}.log", name,
                            self.opts.server_cpus)
        return server, server.base_url

    def litserve_server(self, backend: str, max_batch: int, timeout_ms: float, name: str) -> tuple[ServerProcess, str]:
        server = litserve_server(backend, max_batch, timeout_ms, self.opts.threads, LITSERVE_TIMEOUT_S,
                                 self.log_dir / f"{name}.log", name, self.opts.server_cpus)
        return server, server.base_url

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
        env = inherited_env()  # default decode options
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
            cpu_before = tree_cpu_seconds(server.proc.pid) if server.proc is not None else None
            result = run_point(url, target, rate, rs.seed + i, duration, rs, self.docs)
            cpu_after = tree_cpu_seconds(server.proc.pid) if server.proc is not None else None
            after = scrape_metrics(metrics_client, url) if target.server == "nextword" else {}
            settle_s = settle(metrics_client, url, target.backend)
            cpu_ms = cpu_ms_per_answer(cpu_before, cpu_after, result)
            point = point_summary(result, rate, "", o.slo, {"server": metrics_delta(before, after),
                                                            "settle_s": settle_s,
                                                            "server_cpu_ms_per_request": cpu_ms})
            lat = point["latency_ms_ok"]
            print(f"  [{target.key}] {rate:7.1f} req/s: p50 {lat['p50']} p99 {lat['p99']} ms, "
                  f"ok {point['ok']}/{point['measured']}, gen cpu {point['generator_cpu_fraction']:.0%} "
                  f"-> {'PASS' if point['passed'] else 'FAIL (' + point['reason'] + ')'}", flush=True)
            self._partial.append(point)
            return point

        self._partial = []
        outcome = search_max_rate(measure, [snap(r) for r in o.rates()], lambda p: p["passed"],
                                  rel_tol=o.search_tol, max_steps=o.search_steps, snap=snap,
                                  remeasure=lambda p: p["reason"] == "generator")
        # A rate's last run decides it; earlier ones there were the generator falling behind.
        last_at = {rate: i for i, (rate, _) in enumerate(outcome.points)}
        deciding = [p for i, (rate, p) in enumerate(outcome.points) if last_at[rate] == i]
        hi_point = outcome.points[last_at[outcome.first_fail]][1] if outcome.first_fail in last_at else None
        remeasured = [p for i, (rate, p) in enumerate(outcome.points) if last_at[rate] != i]
        # Ladder points: up to and including its first failure; the rest is the binary search.
        first_fail_idx = next((i for i, p in enumerate(deciding) if not p["passed"]), None)
        for i, p in enumerate(deciding):
            p["phase"] = "ladder" if first_fail_idx is None or i <= first_fail_idx else "search"
        metrics_client.close()
        return {
            "points": sorted(deciding, key=lambda p: p["rate"]),
            "generator_behind_runs": remeasured,
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
        """Probe the saturating rate, then overload at ``factor`` x it (see :mod:`bench.overload`)."""
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
                probe = asyncio.run(saturation_probe(url, backend, probe_rate, o.overload_probe_seconds, rs,
                                                     self.docs))
                base = max(probe["ok_rps"] or 0.0, slo_rate or 0.0)
                if not base:
                    return {"error": f"not measured: the probe answered nothing and {key} has no max rate at SLO"}
                over_rate = min(o.overload_factor * base, o.max_rate)
                print(f"[overload-{backend}] probe at {probe_rate:.0f} req/s answered {probe['ok_rps']:.1f} req/s "
                      f"(statuses {probe['status_counts']}); now {over_rate:.0f} req/s ({o.overload_factor:g}x "
                      f"{base:g}) for {o.overload_seconds:g} s, {o.overload_low_rate:g} req/s throughout and "
                      f"{o.recovery_seconds:g} s after", flush=True)
                time.sleep(2.0)  # the probe's backlog drains (the engine's queue is bounded in time)
                with httpx.Client(trust_env=False, timeout=5.0) as metrics_client:
                    before = scrape_metrics(metrics_client, url)
                    over, low = asyncio.run(overload_runs(url, backend, over_rate, o.overload_seconds,
                                                          o.overload_low_rate, o.recovery_seconds, rs, self.docs))
                    after = scrape_metrics(metrics_client, url)
        except Exception as exc:
            log.exception("overload %s failed", backend)
            return {"error": f"{type(exc).__name__}: {exc}"}
        out = summarize_overload(over, low, o.overload_seconds, deadline_ms, over_rate, base, o.overload_factor,
                                 normal_ms=o.slo.p99_ms)
        out["base_kind"] = "saturating" if base == probe["ok_rps"] else "max rate at SLO"
        # The engine's batches while saturated: P4 compares the model alone at this batch size.
        out["server"] = metrics_delta(before, after)
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

    def config_result(self, key: str) -> dict[str, Any] | None:
        return next((c for c in self.results["configs"] if c["key"] == key), None)

    # ------------------------------------------------------------------ main
    def run(self, targets: Sequence[Target]) -> None:
        o = self.opts
        estimate = estimate_seconds(o, targets)
        self.start_meta(targets, estimate)
        print(f"sweep: {len(targets)} configurations, stages {[s for s in STAGES if s not in o.skip]}; "
              f"estimated {estimate / 60:.1f} min; server logs in {self.log_dir}", flush=True)
        pin_this_process(o.generator_cpus)
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
        self.results["meta"]["finished_at"] = utc_now()
        self.save()
        print(f"sweep done in {(time.perf_counter() - self.t0) / 60:.1f} min "
              f"(estimated {estimate / 60:.1f}); results in {o.out}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    opts = options_from_args(args)
    targets = expand_configs(opts.backends, opts.workloads, cache_off_workloads=opts.cache_off_workloads,
                             litserve="litserve" not in opts.skip, litserve_workloads=opts.litserve_workloads)
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

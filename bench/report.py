"""REPORT.md (+ small PNG plots) from a sweep's results JSON.

``python -m bench.report --results bench/results/sweep.json --out bench/results/REPORT.md``

Everything comes from the results file (written by :mod:`bench.sweep`); what it does not
hold is written as "not measured", never estimated. Max rates at SLO carry a bound kind
(:mod:`bench.sweep_results`) and the bars are judged with it (:mod:`bench.bars`); the
plots are :mod:`bench.report_plots`. The report is rendered one section at a time, each
by its own function returning its Markdown lines, so a section can be read, changed and
tested without the others.

The bars P2-P5 and the overload recovery bar are ratios whose targets live in
:data:`BARS` (override with ``--bar P2=2.5``); P1 is reported at 10 req/s with its breakdown,
without a verdict; the SLO (p99 <= 50 ms) comes from the load-testing issue. With
``--cost-run`` (one sweep per repeat) the report leads with the CPU-ms per request table
(:mod:`bench.cost_table`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.bars import bars, overload_base
from bench.cost_table import Runs, cost_section
from bench.provenance import model_facts
from bench.report_plots import plot_latency, plot_max_rates
from bench.runs import RunSettings
from bench.sweep_results import NOT_MEASURED, backends_of, configs_by_key, fmt, max_rate, nw_key, point_at

#: Targets of the bars. P1 from the issue; the ratio bars' values are this report's
#: defaults (override with --bar) and are printed next to every verdict.
BARS: dict[str, float] = {
    "P1_rate": 10.0,  # req/s of the low-load check
    "P2": 4.0,  # batching on / off, max rate at SLO, cold, same backend
    "P3": 2.0,  # nextword / LitServe, max rate at SLO, cold, same model
    "P4": 0.7,  # saturation throughput (answered at 3x capacity) / model alone at the same mean batch
    "P5": 3.0,  # typing: cache on / off, max rate at SLO (batching on)
    "overload_recovery_p99_ms": 50.0,  # p99 of the low stream in the 2 s after overload stops
}

#: How the report names where typists start (``meta.run.typing_start``; absent before it existed).
TYPING_START_TEXT = {
    "prefix": "after a 5-40-word prefix of each document (the cold workload's contexts)",
    "empty": "from an empty text box in every document",
    None: "from an empty text box (sweeps before `b6b8e95`, 2026-11-27)",
}

Profiles = Sequence[tuple[str, Mapping[str, Any]]]


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def _artifact_facts(backend: str) -> dict[str, Any]:
    """The bundled artifact's facts as they are on disk when the report renders (size, card)."""
    return model_facts([backend])[backend]


# --------------------------------------------------------------------------- sections


def provenance_section(meta: Mapping[str, Any]) -> list[str]:
    """The title and where the numbers come from: machine, commit, dates, pinning, load, SLO."""
    machine = meta.get("machine", {})
    git = meta.get("git", {})
    pin = meta.get("pinning", {})
    slo = meta.get("slo", {"p99_ms": 50.0, "max_error_fraction": 0.01})
    run = meta.get("run", {})
    # Sweeps that record a typing warm-up ramped their typists up over it (bench.workloads.typing_plan).
    typing_warmup = run.get("typing_warmup")
    typing_s = (RunSettings(warmup=run.get("warmup", 0.0), typing_warmup=typing_warmup).warmup_for("typing")
                if typing_warmup is not None else None)
    L: list[str] = ["# nextword load-test report", ""]
    if meta.get("quick"):
        L += ["**QUICK (smoke-test) RUN: short runs, no binary search; not numbers to quote.**", ""]
    L += [
        f"* Machine: {machine.get('cpu_model', 'unknown CPU')}, {machine.get('cpus', machine.get('cpu_count'))} "
        f"CPUs ({machine.get('threads_per_core', '?')} thread/core"
        + (f", {machine['hypervisor']} VM" if machine.get("hypervisor") else "") + f"), {machine.get('platform', '')}",
        f"* Commit: `{git.get('commit')}`" + (" (working tree had uncommitted changes)" if git.get("dirty") else ""),
        f"* Date: {meta.get('started_at')} → {meta.get('finished_at', 'unfinished')} "
        f"({fmt(meta.get('elapsed_s'), 0)} s; estimated {meta.get('estimate_s')} s)",
        "* Packages: " + ", ".join(f"{k} {v}" for k, v in (meta.get("packages") or {}).items()),
        f"* 1-minute load average when the sweep started: {fmt(meta.get('loadavg_1min_at_start'), 2)} "
        "(well above 0 means something else shared the CPUs)",
        f"* Pinning: servers on CPU(s) `{pin.get('server_cpus')}` with {pin.get('torch_threads')} torch thread(s), "
        f"the load generator on CPU(s) `{pin.get('generator_cpus')}`"
        + ("" if pin.get("applied") else " (NOT applied: no taskset/affinity)"),
        f"* Load: open-loop Poisson arrivals ({run.get('arrivals')}), held-out text `{run.get('corpus')}` "
        f"(first {run.get('max_docs')} test documents), {run.get('warmup')} s warm-up"
        + (f" (typing {typing_s} s)" if typing_s is not None else "")
        + f" + {run.get('duration')} s per "
        f"run (longer at low rates: ≥ {run.get('min_samples')} requests), latency from the intended send time.",
        "* Typing workload: typists start " + TYPING_START_TEXT.get(run.get("typing_start"), TYPING_START_TEXT[None])
        + ", then one request per keystroke, 150-300 ms apart"
        + ("; they join at random times over the warm-up." if typing_s is not None else "."),
        f"* SLO: a run passes when p99 of its 200s ≤ {slo['p99_ms']:g} ms, < {slo['max_error_fraction']:.0%} of its "
        "requests are not 200, and the generator kept its schedule. Max rate at SLO: highest passing offered "
        "rate of a ladder (×2 steps) then a binary search.",
        "",
    ]
    return L


def commands_section(results: Mapping[str, Any], out: Path, results_path: str, analysis_path: str | None,
                     profiles: Profiles) -> list[str]:
    """The commands that made the results and this report, then the sweep's notes."""
    meta = results.get("meta", {})
    L = [
        "Commands:",
        "",
        "```bash",
        meta.get("command", "python -m bench.sweep (command not recorded)"),
        f"python -m bench.report --results {results_path} --out {out}"
        + (f" --analysis {analysis_path}" if analysis_path else "")
        + "".join(f" --profile {path}" for path, _ in profiles),
    ]
    ma = results.get("model_alone") or {}
    if ma.get("command"):
        L.append(f"# model alone (run by the sweep): {ma['command']}")
    L += ["```", ""]
    L += [f"* Note: {note}" for note in meta.get("notes", [])]
    return [*L, ""]


def bars_section(results: Mapping[str, Any], targets: Mapping[str, float]) -> list[str]:
    """Every bar's verdict in one table, then where the targets come from."""
    L = ["## Bars", ""]
    L += _table(["bar", "what", "measured", "target", "verdict", "by how much"],
                [[r["bar"], r["what"], r["measured"], r["target"], f"**{r['verdict']}**", r["margin"]]
                 for r in bars(results, targets)])
    L += ["", "P2, P3 and P5 targets are the load-testing issue's, P4 this report's; the recovery target is this "
          "report's reading of "
          "\"within 2 s after the load drops, p99 is back to normal\": from a moment less than 2 s after the "
          "drop on, every low-stream request is answered within the SLO (older results files: the p99 of the "
          "2 s after the drop under the SLO; `bench/report.py: BARS`, override with `--bar NAME=VALUE`).", ""]
    return L


def analysis_section(analysis: str | None) -> list[str]:
    """The why behind the misses, written by a person from profiles.

    It is kept in its own file so that regenerating the numbers never overwrites it.
    """
    if not analysis:
        return []
    return ["## Why the misses (analysis)", "", analysis.strip(), ""]


def profile_section(profiles: Profiles) -> list[str]:
    """'Where the server's core goes': one column per :mod:`bench.profile` result, one row per part."""
    if not profiles:
        return []
    from bench.profile import PARTS

    heads = [f"{p['backend'].upper()}, {p['rate']:g} req/s" for _, p in profiles]
    rows: list[list[Any]] = []
    for part in PARTS:
        if part == "waiting":
            continue
        rows.append([part] + [f"{100 * (p['profile']['parts'][part]['share_of_busy'] or 0):.1f}%" for _, p in profiles])
    rows.append(["**core busy** (busy samples / wall)"]
                + [f"{100 * p['profile']['busy_fraction_of_wall']:.0f}%" for _, p in profiles])
    rows.append(["answered req/s; p50 / p99 while profiled"]
                + [f"{fmt(p['load']['ok_rps'])}; {fmt(p['load']['latency_ms_ok'].get('p50'))} / "
                   f"{fmt(p['load']['latency_ms_ok'].get('p99'))} ms" for _, p in profiles])
    L = ["## Where the server's core goes (py-spy)", "",
         "Share of the busy samples of the server (pinned as in the sweep) under the cold workload, by the "
         "innermost known frame of each sample (`bench/profile.py`; time inside a torch call counts as the "
         "model's). Two threads can be busy in the same sample, so a saturated core can read over 100%.", ""]
    L += _table(["part", *heads], rows)
    L += ["", "```bash", *(p.get("command", f"(command not recorded: {path})") for path, p in profiles), "```", ""]
    return L


def max_rate_section(results: Mapping[str, Any], img_dir: Path, stem: str) -> list[str]:
    """Each configuration's max rate at SLO (plot and table), with what limited it."""
    L = ["## Max rate at SLO per configuration", ""]
    if plot_max_rates(results, img_dir / f"{stem}_max_rate.png"):
        L += [f"![max rate at SLO]({stem}_max_rate.png)", ""]
    rows = []
    for c in results.get("configs", []):
        mr = max_rate(c)
        gen = max((p["generator_cpu_fraction"] for p in c.get("points", [])), default=None)
        batch = [p.get("server", {}).get("mean_batch_requests") for p in c.get("points", [])]
        batch = [b for b in batch if b is not None]
        rows.append([c["key"], mr.fmt(1) if mr else (f"{NOT_MEASURED}: {c['error']}" if c.get("error")
                                                     else NOT_MEASURED),
                     c.get("search_status", "n/a"), c.get("limited_by") or "n/a", len(c.get("points", [])),
                     f"{max(batch):.1f}" if batch else "n/a", f"{gen:.0%}" if gen is not None else "n/a"])
    L += _table(["configuration", "max req/s at SLO", "search", "first failure by", "runs",
                 "largest mean batch", "max generator CPU"], rows)
    return [*L, ""]


def latency_section(results: Mapping[str, Any], img_dir: Path, stem: str, slo_ms: float) -> list[str]:
    """Latency against offered rate, one plot per workload."""
    L = ["## Latency vs offered rate", ""]
    for wl in ("cold", "typing"):
        name = f"{stem}_latency_{wl}.png"
        if plot_latency(results, wl, img_dir / name, slo_ms):
            L += [f"![{wl} latency]({name})", ""]
        else:
            L += [f"{wl}: {NOT_MEASURED}.", ""]
    return L


def gru_vs_lstm(results: Mapping[str, Any]) -> list[str]:
    cfg = configs_by_key(results)
    backends = [b for b in ("gru", "lstm") if b in backends_of(results)]
    cold = {b: cfg.get(nw_key(b, True, True, "cold")) for b in backends}
    common = None
    for c in cold.values():
        rates = {p["rate"] for p in (c or {}).get("points", [])}
        common = rates if common is None else common & rates
    common_sorted = sorted(common or [])
    if len(common_sorted) > 3:
        common_sorted = [common_sorted[0], common_sorted[len(common_sorted) // 2], common_sorted[-1]]
    header = ["backend"] + [f"p50 / p99 at {r:g} req/s" for r in common_sorted] + [
        "max rate at SLO", "top-1 (card)", "file size", "parameters"]
    rows = []
    for b in backends:
        cells: list[Any] = [b]
        for r in common_sorted:
            lat = (point_at(cold[b], r) or {}).get("latency_ms_ok") or {}
            cells.append(f"{fmt(lat.get('p50'))} / {fmt(lat.get('p99'))} ms")
        mr = max_rate(cold[b])
        cells.append(mr.fmt(1, " req/s") if mr else NOT_MEASURED)
        facts = (results.get("models") or {}).get(b)
        if facts is None:  # an older results file: read the artifact now (and say so)
            facts = {**_artifact_facts(b), "read_at_report_time": True}
        card = facts.get("card") or {}
        top1 = card.get("top1")
        if top1 is None and card.get("checksum"):
            # Evaluated after the sweep: take it from the artifact if it is still the same model.
            now = _artifact_facts(b).get("card") or {}
            if now.get("checksum") == card["checksum"]:
                top1 = now.get("top1")
        cells.append(f"{top1:.4f}" if isinstance(top1, int | float) else "n/a")
        size = facts.get("file_bytes")
        cells.append(f"{size / 1e6:.1f} MB" if size else "n/a")
        cells.append(f"{card['parameters']:,}" if card.get("parameters") else "n/a")
        if facts.get("read_at_report_time"):
            cells[-3] += " (artifact read at report time)"
        rows.append(cells)
    lines = ["Default configuration (batching on, cache on), cold workload, at (up to) three rates measured for "
             "both backends."]
    if not common_sorted:
        lines.append("No rate was measured for both backends: latency columns not measured.")
    return [*lines, "", *_table(header, rows)]


def model_alone_section(results: Mapping[str, Any]) -> list[str]:
    """The model's own requests/s by batch size: the ceiling the server is measured against."""
    ma = results.get("model_alone") or {}
    L = ["## Model alone (in process, no HTTP)", ""]
    data = ma.get("results")
    if data:
        sizes = sorted({int(s) for v in data.values() for s in v["batch_sizes"]})
        rows = [[b] + [fmt((v["batch_sizes"].get(str(s)) or {}).get("requests_per_s"), 1) for s in sizes]
                for b, v in data.items()]
        L += ["Cold requests (k=3, no cache) through `model.batching.drive`, requests/s by batch size, "
              "same core and threads as the server:", ""]
        L += _table(["backend"] + [f"batch {s}" for s in sizes], rows)
    else:
        L.append(f"{NOT_MEASURED}" + (f" ({ma['error'][:200]})" if ma.get("error") else "") + ".")
    return [*L, ""]


def litserve_section(results: Mapping[str, Any]) -> list[str]:
    """The LitServe settings tried, and the one chosen for the peer."""
    L = ["## LitServe peer and its tuning", ""]
    tune = results.get("litserve_tuning")
    if tune:
        L += [f"Tried on {tune['backend']}, cold, {fmt(tune['rate'])} req/s offered; rule: {tune['rule']}. "
              f"Chosen: max_batch_size={tune['chosen']['max_batch_size']}, "
              f"batch_timeout={tune['chosen']['batch_timeout_ms']:g} ms.", ""]
        rows = []
        for t in tune["tried"]:
            lat = t.get("latency_ms_ok") or {}
            rows.append([t["max_batch_size"], f"{t['batch_timeout_ms']:g}", fmt(lat.get("p50")), fmt(lat.get("p99")),
                         fmt(t.get("error_fraction"), 3), t.get("reason", t.get("error", ""))])
        L += _table(["max_batch_size", "batch_timeout ms", "p50 ms", "p99 ms", "error fraction", "result"], rows)
    else:
        L.append(f"Tuning {NOT_MEASURED}.")
    return [*L, ""]


def _overload_lines(backend: str, ov: Mapping[str, Any]) -> list[str]:
    """One backend's overload run in words: the probe, then statuses, latencies and recovery."""
    if ov.get("error"):
        return [f"* {backend}: {NOT_MEASURED} ({ov['error']})"]
    L = []
    probe = ov.get("saturation_probe")
    if probe:
        L.append(f"* {backend}: saturation probe: {fmt(probe['offered_rps'])} req/s offered for "
                 f"{probe['seconds']:g} s, {fmt(probe['ok_rps'])} req/s answered 200 (statuses "
                 f"{probe['status_counts']}): the saturating rate; max rate at SLO "
                 f"{fmt(ov.get('max_rate_at_slo'))} req/s.")
    L.append(f"* {backend}: {ov['overload_rate']:.0f} req/s ({ov['factor']:g}x the {overload_base(ov)}, "
             f"{ov['base_rate']:g}) for "
             f"{ov['overload_seconds']:g} s" + (" — **shorter than the issue's 60 s**"
                                                if ov["overload_seconds"] < 60 else "")
             + f", with {ov['low_rate']:g} req/s throughout and after. Statuses {ov['status_counts']}, "
             f"Retry-After values {ov['retry_after_values']}; ok throughput {fmt(ov['overload_ok_rps'])} req/s; "
             f"accepted p50/p99 {fmt(ov['accepted_p50_ms'])}/{fmt(ov['accepted_p99_ms'])} ms "
             f"(deadline {ov['deadline_ms']:g} ms); low stream p99 during overload "
             f"{fmt(ov['low_during_overload_p99_ms'])} ms; p50/p99 in the {ov['recovery_window_s']:g} s after: "
             f"{fmt(ov['recovery_p50_ms'])}/{fmt(ov['recovery_p99_ms'])} ms "
             f"({ov['recovery_ok']}/{ov['recovery_requests']} ok)"
             + (f"; every request back under {ov.get('recovery_normal_ms', 50):g} ms "
                + (f"{ov['recovery_s']:g} s after the drop" if ov["recovery_s"] is not None else "never")
                if "recovery_s" in ov else "") + "."
             + (f" Generator behind schedule: {'; '.join(ov['generator_reasons'])}."
                if ov.get("generator_behind_schedule") else ""))
    return L


def overload_section(results: Mapping[str, Any]) -> list[str]:
    """What each backend answered when offered several times what it can serve."""
    L = ["## Overload", ""]
    ovs = results.get("overload") or {}
    if not ovs:
        L.append(f"{NOT_MEASURED}.")
    for b, ov in ovs.items():
        L += _overload_lines(b, ov)
    return [*L, ""]


def runs_section(results: Mapping[str, Any]) -> list[str]:
    """Every run of every configuration, one table per configuration."""
    L = ["## Every run", ""]
    for c in results.get("configs", []):
        L += [f"### {c['key']}", ""]
        if c.get("error"):
            L += [f"Failed: `{c['error']}`", ""]
        if c.get("settings"):
            L += ["Settings: " + ", ".join(f"`{k}={v}`" for k, v in c["settings"].items()), ""]
        rows = []
        for p in c.get("points", []):
            lat, srv = p["latency_ms_ok"], p.get("server") or {}
            rows.append([p["phase"], f"{p['rate']:.1f}" + (f" ({p['typists']} typists)" if p.get("typists") else ""),
                         fmt(p["offered_rps"]), fmt(p["ok_rps"]), p["measured"], fmt(lat["p50"]), fmt(lat["p90"]),
                         fmt(lat["p99"]), fmt(p["error_fraction"], 3), f"{p['generator_cpu_fraction']:.0%}",
                         fmt(srv.get("mean_batch_requests")), fmt(srv.get("cache_hit_rate"), 2),
                         "pass" if p["passed"] else f"FAIL ({p['reason']})"])
        if rows:
            L += _table(["phase", "rate", "offered", "ok/s", "n", "p50", "p90", "p99", "errors", "gen CPU",
                         "mean batch", "cache hits", "SLO"], rows)
        L.append("")
    return L


# --------------------------------------------------------------------------- the report


def render(
    results: Mapping[str, Any], out: Path, results_path: str, targets: Mapping[str, float] = BARS,
    analysis: str | None = None, analysis_path: str | None = None, profiles: Profiles = (),
    cost_runs: Runs = (), cost_rate: float = 10.0,
) -> str:
    """The whole report: its sections in order (plots are written next to ``out``)."""
    meta = results.get("meta", {})
    slo = meta.get("slo", {"p99_ms": 50.0, "max_error_fraction": 0.01})
    img_dir, stem = out.parent, out.stem.lower()
    sections = [
        provenance_section(meta),
        cost_section(cost_runs, cost_rate),
        commands_section(results, out, results_path, analysis_path, profiles),
        bars_section(results, targets),
        analysis_section(analysis),
        profile_section(profiles),
        max_rate_section(results, img_dir, stem),
        latency_section(results, img_dir, stem, slo["p99_ms"]),
        ["## GRU vs LSTM", "", *gru_vs_lstm(results), ""],
        model_alone_section(results),
        litserve_section(results),
        overload_section(results),
        runs_section(results),
    ]
    return "\n".join(line for section in sections for line in section).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default="bench/results/sweep.json")
    p.add_argument("--out", default="bench/results/REPORT.md")
    p.add_argument("--analysis", default=None, help="Markdown file with the profile-based analysis to include")
    p.add_argument("--profile", action="append", default=[], metavar="JSON",
                   help="a bench.profile result to tabulate (repeatable)")
    p.add_argument("--cost-run", action="append", default=[], metavar="JSON",
                   help="a sweep whose CPU-ms per request at --cost-rate makes the first table (repeat per run)")
    p.add_argument("--cost-rate", type=float, default=10.0, help="the rate of the CPU-ms table (req/s)")
    p.add_argument("--bar", action="append", default=[], metavar="NAME=VALUE",
                   help=f"override a bar target ({', '.join(BARS)})")
    args = p.parse_args(argv)
    targets = dict(BARS)
    for item in args.bar:
        name, _, value = item.partition("=")
        if name not in targets:
            p.error(f"unknown bar {name!r}")
        targets[name] = float(value)
    results = json.loads(Path(args.results).read_text(encoding="utf-8"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    analysis = Path(args.analysis).read_text(encoding="utf-8") if args.analysis else None
    profiles = [(path, json.loads(Path(path).read_text(encoding="utf-8"))) for path in args.profile]
    cost_runs = [(path, json.loads(Path(path).read_text(encoding="utf-8"))) for path in args.cost_run]
    out.write_text(render(results, out, results_path=args.results, targets=targets, analysis=analysis,
                          analysis_path=args.analysis, profiles=profiles, cost_runs=cost_runs,
                          cost_rate=args.cost_rate), encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

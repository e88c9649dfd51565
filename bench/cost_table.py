"""The report's first table: server CPU-ms per answered request, with its spread over repeated sweeps.

CPU per request is the figure this noisy machine measures stably (the process's CPU time
moves by a few percent between runs where a p99 moves by 2-4x), so the report leads with it:
every configuration of every given sweep at one moderate rate they all sustain, each cell the
min / median / max over the sweeps that measured it, and each nextword row's median over
LitServe's for the same workload.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

Runs = Sequence[tuple[str, Mapping[str, Any]]]


def _label(cfg: Mapping[str, Any]) -> str:
    if cfg.get("server") == "litserve":
        s = cfg.get("settings") or {}
        return f"LitServe (max batch {s.get('max_batch_size')}, {s.get('batch_timeout_ms')} ms)"
    return (f"nextword (batching {'on' if cfg.get('batching') else 'off'}, "
            f"cache {'on' if cfg.get('cache') else 'off'})")


#: How far a measured rate may be from the table's rate (typing rates snap to the typists' cadence).
RATE_TOLERANCE = 0.15


def nearest_point(cfg: Mapping[str, Any], rate: float) -> Mapping[str, Any] | None:
    """The configuration's point with a CPU figure nearest ``rate``, within :data:`RATE_TOLERANCE`."""
    points = [p for p in cfg.get("points", []) if p.get("server_cpu_ms_per_request") is not None]
    if not points:
        return None
    nearest = min(points, key=lambda p: abs(p["rate"] - rate))
    return nearest if abs(nearest["rate"] - rate) <= RATE_TOLERANCE * rate else None


def cost_rows(runs: Runs, rate: float) -> list[dict[str, Any]]:
    """One row per (backend, workload, configuration) seen in ``runs``: its CPU-ms over the runs."""
    rows: dict[str, dict[str, Any]] = {}
    for _, results in runs:
        for cfg in results.get("configs", []):
            row = rows.setdefault(cfg["key"], {"key": cfg["key"], "server": cfg.get("server"),
                                               "backend": cfg.get("backend"), "workload": cfg.get("workload"),
                                               "label": _label(cfg), "values": [], "slo_met": 0,
                                               "rates": set()})
            point = nearest_point(cfg, rate)
            if point is not None:
                row["values"].append(float(point["server_cpu_ms_per_request"]))
                row["rates"].add(round(float(point["rate"]), 2))
                row["slo_met"] += bool(point.get("passed"))
    out = []
    for row in rows.values():
        v = row.pop("values")
        row["rates"] = sorted(row["rates"])
        row.update(n=len(v), min=min(v) if v else None, median=statistics.median(v) if v else None,
                   max=max(v) if v else None)
        out.append(row)
    for row in out:  # the ratio to LitServe on the same backend and workload
        peer = next((r for r in out if r["server"] == "litserve" and r["backend"] == row["backend"]
                     and r["workload"] == row["workload"] and r["median"]), None)
        row["vs_litserve"] = (round(row["median"] / peer["median"], 2)
                              if peer and row["median"] and row["server"] != "litserve" else None)
    return sorted(out, key=lambda r: (r["workload"] or "", r["backend"] or "", r["server"] != "litserve", r["key"]))


def cost_section(runs: Runs, rate: float) -> list[str]:
    """Markdown: the table, then each sweep's command and commit."""
    if not runs:
        return []
    rows = cost_rows(runs, rate)
    L = [f"## Server CPU per answered request at about {rate:g} req/s", "",
         "The server's whole process tree (user + system CPU from `/proc`) over a run, divided by the"
         f" requests it answered 200; min / median / max over the {len(runs)} sweeps below (n: how many"
         " measured the row; SLO met: in how many of them that point kept p99 <= the SLO with no errors;"
         " at: the offered rate of the points, the nearest within 15%).", "",
         "| workload | backend | server | at (req/s) | CPU-ms per request (min / median / max) | n | SLO met"
         " | median / LitServe's |",
         "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        spread = (f"{r['min']:.2f} / **{r['median']:.2f}** / {r['max']:.2f}" if r["n"] else "not measured")
        ratio = f"{r['vs_litserve']:.2f}x" if r["vs_litserve"] is not None else ""
        at = ", ".join(f"{x:g}" for x in r["rates"])
        L.append(f"| {r['workload']} | {r['backend']} | {r['label']} | {at} | {spread} | {r['n']}"
                 f" | {r['slo_met']}/{r['n']} | {ratio} |")
    L += ["", "```bash"]
    for path, results in runs:
        meta = results.get("meta", {})
        git = meta.get("git", {})
        L.append(f"{meta.get('command', '(command not recorded)')}"
                 f"    # -> {path}, at {git.get('commit', '?')}, {str(meta.get('started_at', '?'))[:10]}")
    return [*L, "```", ""]

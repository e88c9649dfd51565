"""The report's PNG plots: latency against offered rate, and each configuration's max rate at SLO.

Small (80 dpi) so they can be committed next to the report; matplotlib is imported only
when a plot is drawn, with the Agg backend, so rendering needs no display.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.sweep_results import max_rate


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_latency(results: Mapping[str, Any], workload: str, path: Path, slo_ms: float) -> bool:
    configs = [c for c in results.get("configs", []) if c["workload"] == workload and c.get("points")]
    if not configs:
        return False
    plt = _plt()
    from matplotlib.ticker import LogFormatter

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=80, sharey=True)
    for ax, q in zip(axes, ("p50", "p99"), strict=True):
        for c in configs:
            pts = sorted((p for p in c["points"] if p["latency_ms_ok"].get(q) is not None), key=lambda p: p["rate"])
            if pts:
                ax.plot([p["rate"] for p in pts], [p["latency_ms_ok"][q] for p in pts], marker="o", ms=3, lw=1,
                        label=c["key"].replace(f"-{workload}", ""))
        ax.axhline(slo_ms, color="grey", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):  # plain numbers, not 6x10^0
            axis.set_major_formatter(LogFormatter(labelOnlyBase=False))
            axis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
        ax.set_xlabel("offered rate (req/s)")
        ax.set_title(f"{workload}: {q} latency (200s)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ms (from intended send)")
    axes[1].legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def plot_max_rates(results: Mapping[str, Any], path: Path) -> bool:
    rows = [(c["key"], max_rate(c)) for c in results.get("configs", [])]
    rows = [(k, r) for k, r in rows if r is not None]
    if not rows:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(rows) + 1.2), dpi=80)
    colors = {"exact": "tab:blue", "lower": "tab:green", "upper": "tab:red"}
    ax.barh([k for k, _ in rows], [r.value for _, r in rows], color=[colors[r.kind] for _, r in rows])
    for i, (_, r) in enumerate(rows):
        ax.text(r.value, i, " " + r.fmt(0 if r.value >= 10 else 1), va="center", fontsize=7)
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("max offered req/s at SLO (blue exact, green lower bound, red: below)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True

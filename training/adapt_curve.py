"""The adaptation learning curves: validation loss and word perplexity against minutes, per model.

    python -m training.adapt_curve --log gru-email=docs/results/email/gru-email.log.jsonl \\
        --log lstm-email=docs/results/email/lstm-email.log.jsonl --out docs/results/email/curve

Reads the ``log.jsonl`` that ``training.adapt`` keeps in its work folder (one line per
validation) and writes ``OUT.json`` (the points) and ``OUT.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def curve_points(lines: Sequence[str]) -> list[dict[str, Any]]:
    """The validation points of one adaptation log, in order."""
    points = []
    for line in lines:
        row = json.loads(line) if line.strip() else {}
        if row.get("val_loss") is not None:
            points.append({"minutes": round(row["wall_seconds"] / 60, 2), "step": row["step"],
                           "val_loss": row["val_loss"], "val_word_ppl": row["val_word_ppl"]})
    return points


def plot(curves: dict[str, list[dict[str, Any]]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, ppl_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for name, points in curves.items():
        minutes = [p["minutes"] for p in points]
        loss_ax.plot(minutes, [p["val_loss"] for p in points], marker="o", label=name)
        ppl_ax.plot(minutes, [p["val_word_ppl"] for p in points], marker="o", label=name)
    loss_ax.set(xlabel="minutes", ylabel="dev loss (nats per piece)", title="validation loss")
    ppl_ax.set(xlabel="minutes", ylabel="dev word perplexity", title="validation word perplexity", yscale="log")
    for ax in (loss_ax, ppl_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.adapt_curve", description=__doc__.split("\n\n")[0])
    p.add_argument("--log", action="append", required=True, metavar="NAME=LOG", help="a model's log.jsonl")
    p.add_argument("--out", required=True, help="output stem: OUT.json and OUT.png")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    curves = {}
    for item in args.log:
        name, _, path = item.partition("=")
        curves[name] = curve_points(Path(path).read_text().splitlines())
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(curves, indent=1) + "\n")
    plot(curves, out.with_suffix(".png"))
    log.info("wrote %s.json and %s.png", out, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

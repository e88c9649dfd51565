"""Learning curves: top-1 and word perplexity against tokens seen, from training snapshots.

    python -m training.curve --runs runs/gru runs/lstm --tokenizer runs/imdb8k/tokenizer.model \
        --corpus ../shared/data/aclImdb_v1.tar.gz --max-docs 100 --out docs/curve

Every validation wrote ``snapshots/tokens_*.pt`` (weights only). Each snapshot is scripted
in memory and scored by the evaluator (top-1/top-3 from the server's decoder, word_ppl; no
keystroke simulation, which costs most) on a fixed sample of held-out documents. Writes
``<out>.json`` and ``<out>.png``.

While a run trains, points can be scored one snapshot at a time on spare cores and plotted
afterwards: ``--snapshots FILE... --points-dir DIR`` writes one JSON per snapshot, and
``--points DIR/*.json --out STEM`` draws the curve from them. ``--logs [NAME=]RUN/log.jsonl ...``
draws validation loss and perplexity against minutes from the logs alone (an adaptation's curve).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from model.artifact import LanguageModel
from model.export import model_from_checkpoint, script_model
from model.tokenizer import PieceTokenizer
from training.evaluate import evaluate_neural, load_docs

log = logging.getLogger("training.curve")


def run_name(snapshot: Path) -> str:
    """``runs/gru/snapshots/tokens_*.pt`` belongs to the run ``gru``."""
    return snapshot.parent.parent.name


def snapshot_point(path: Path, tokenizer: PieceTokenizer, docs: list[str]) -> dict:
    """Score one snapshot: top-1/top-3 through the server's decoder, and word_ppl."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model, _ = model_from_checkpoint(ckpt)
    lm = LanguageModel(run_name(path), script_model(model), tokenizer, {})
    result = evaluate_neural(lm, docs, ksr=False)
    point = {"run": run_name(path), "tokens_seen": ckpt["tokens_seen"], "top1": result["top1"],
             "top3": result["top3"], "word_ppl": result["word_ppl"], "docs": len(docs)}
    log.info("%s", point)
    return point


def snapshot_points(run: Path, tokenizer: PieceTokenizer, docs: list[str], every: int = 1) -> list[dict]:
    snapshots = sorted((run / "snapshots").glob("tokens_*.pt"))[::every]
    return [snapshot_point(path, tokenizer, docs) for path in snapshots]


def group_points(points: list[dict]) -> dict[str, list[dict]]:
    """Points of several runs -> one curve per run, ordered by tokens seen."""
    curves: dict[str, list[dict]] = {}
    for point in sorted(points, key=lambda p: (p["run"], p["tokens_seen"])):
        curves.setdefault(point["run"], []).append(point)
    return curves


def plot(curves: dict[str, list[dict]], path: Path, reference_top1: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, points in curves.items():
        tokens = [p["tokens_seen"] / 1e6 for p in points]
        ax1.plot(tokens, [p["top1"] for p in points], marker="o", label=name)
        ax2.plot(tokens, [p["word_ppl"] for p in points], marker="o", label=name)
    if reference_top1 is not None:
        ax1.axhline(reference_top1, color="grey", linestyle="--", label="word trigram")
        ax1.axhline(1.3 * reference_top1, color="red", linestyle=":", label="bar: 1.3x trigram")
    ax1.set(xlabel="training tokens (M)", ylabel="top-1 next word", title="top-1 vs tokens")
    ax2.set(xlabel="training tokens (M)", ylabel="word perplexity", title="word_ppl vs tokens", yscale="log")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def curve_points(lines: list[str]) -> list[dict]:
    """The validation points of one training log's lines, in order (lines without one are skipped)."""
    points = []
    for line in lines:
        row = json.loads(line) if line.strip() else {}
        if row.get("val_loss") is not None:
            points.append({"minutes": round(row["wall_seconds"] / 60, 2), "step": row["step"],
                           "val_loss": row["val_loss"], "val_word_ppl": row["val_word_ppl"]})
    return points


def log_curves(logs: list[str]) -> dict[str, list[dict]]:
    """Validation points of training logs, one curve per log: ``NAME=RUN/log.jsonl``, or the path
    alone (named after its run folder)."""
    curves = {}
    for item in logs:
        name, _, path = item.rpartition("=")
        log_path = Path(path)
        curves[name or log_path.parent.name] = curve_points(log_path.read_text().splitlines())
    return curves


def plot_logs(curves: dict[str, list[dict]], path: Path, title: str, x: str = "minutes") -> None:
    """Validation loss and word perplexity against minutes (or steps) of training, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, ppl_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for name, points in curves.items():
        xs = [p[x] for p in points]
        loss_ax.plot(xs, [p["val_loss"] for p in points], marker="o", markersize=3, label=name)
        ppl_ax.plot(xs, [p["val_word_ppl"] for p in points], marker="o", markersize=3, label=name)
    xlabel = "minutes of training (this CPU)" if x == "minutes" else "optimiser steps"
    loss_ax.set(xlabel=xlabel, ylabel="validation loss (nats per piece)")
    ppl_ax.set(xlabel=xlabel, ylabel="validation word perplexity", yscale="log")
    for ax in (loss_ax, ppl_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--runs", nargs="+", help="run folders: score all their snapshots")
    source.add_argument("--snapshots", nargs="+", help="score these snapshot files (with --points-dir)")
    source.add_argument("--points", nargs="+", help="already scored point JSONs: only draw the curve")
    source.add_argument("--logs", nargs="+", metavar="[NAME=]LOG",
                        help="training or adaptation logs (RUN/log.jsonl): validation loss and perplexity vs minutes")
    parser.add_argument("--title", default="validation perplexity while training")
    parser.add_argument("--x", choices=("minutes", "step"), default="minutes", help="--logs: the x axis")
    parser.add_argument("--tokenizer")
    parser.add_argument("--corpus")
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-docs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=1, help="use every N-th snapshot")
    parser.add_argument("--reference-top1", type=float, help="n-gram top-1 to draw for comparison")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--points-dir", help="with --snapshots: write one JSON per snapshot here")
    parser.add_argument("--out", help="output stem (writes .json and .png)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    meta: dict = {}
    if args.logs:
        if not args.out:
            parser.error("--out is required")
        curves = log_curves(args.logs)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(curves, indent=2))
        plot_logs(curves, out.with_suffix(".png"), args.title, args.x)
        return
    if args.points:
        points = [json.loads(Path(p).read_text()) for p in args.points]
        curves = group_points(points)
        meta = {"docs": sorted({p.get("docs") for p in points}, key=str), "from_points": len(points)}
    else:
        if not (args.tokenizer and args.corpus):
            parser.error("--tokenizer and --corpus are needed to score snapshots")
        if args.snapshots and not args.points_dir:
            parser.error("--snapshots needs --points-dir")
        tokenizer = PieceTokenizer(Path(args.tokenizer).read_bytes())
        docs = load_docs(None, args.corpus, args.split, args.max_docs, args.seed)
        meta = {"docs": len(docs), "split": args.split, "seed": args.seed, "corpus": args.corpus}
        if args.snapshots:
            out_dir = Path(args.points_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            for snapshot in map(Path, args.snapshots):
                point = {**snapshot_point(snapshot, tokenizer, docs), "meta": meta}
                (out_dir / f"{point['run']}-{snapshot.stem}.json").write_text(json.dumps(point))
            return
        curves = {Path(r).name: snapshot_points(Path(r), tokenizer, docs, args.every) for r in args.runs}
    if not args.out:
        parser.error("--out is required to draw the curve")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "curves": curves}, indent=2))
    plot(curves, out.with_suffix(".png"), args.reference_top1)


if __name__ == "__main__":
    main()

"""Learning curves: top-1 and word perplexity against tokens seen, from training snapshots.

    python -m training.curve --runs runs/gru runs/lstm --tokenizer runs/imdb8k/tokenizer.model \
        --corpus ../shared/data/aclImdb_v1.tar.gz --max-docs 100 --out docs/curve

Every validation wrote ``snapshots/tokens_*.pt`` (weights only). Each snapshot is scripted
in memory and scored by the evaluator (top-1/top-3 from the server's decoder, word_ppl; no
keystroke simulation, which costs most) on a fixed sample of held-out documents. Writes
``<out>.json`` and ``<out>.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from model.artifact import LanguageModel, model_from_checkpoint, script_model
from model.tokenizer import PieceTokenizer
from training.evaluate import evaluate_neural, load_docs

log = logging.getLogger("training.curve")


def snapshot_points(run: Path, tokenizer: PieceTokenizer, docs: list[str], every: int = 1) -> list[dict]:
    points = []
    snapshots = sorted((run / "snapshots").glob("tokens_*.pt"))[::every]
    for path in snapshots:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        model, _ = model_from_checkpoint(ckpt)
        lm = LanguageModel(run.name, script_model(model), tokenizer, {})
        result = evaluate_neural(lm, docs, ksr=False)
        points.append({"tokens_seen": ckpt["tokens_seen"], "top1": result["top1"], "top3": result["top3"],
                       "word_ppl": result["word_ppl"]})
        log.info("%s %s", run.name, points[-1])
    return points


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


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True)
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-docs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=1, help="use every N-th snapshot")
    parser.add_argument("--reference-top1", type=float, help="n-gram top-1 to draw for comparison")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", required=True, help="output stem (writes .json and .png)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    tokenizer = PieceTokenizer(Path(args.tokenizer).read_bytes())
    docs = load_docs(None, args.corpus, args.split, args.max_docs, args.seed)
    curves = {Path(r).name: snapshot_points(Path(r), tokenizer, docs, args.every) for r in args.runs}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"docs": len(docs), "split": args.split, "seed": args.seed, "corpus": args.corpus}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "curves": curves}, indent=2))
    plot(curves, out.with_suffix(".png"), args.reference_top1)


if __name__ == "__main__":
    main()

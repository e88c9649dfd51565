"""Build the models report tables from evaluation JSON, model cards and training logs.

    python -m training.report --results docs/results --runs runs/gru runs/lstm > docs/results/tables.md
    python -m training.report --personal docs/results/personal      # the personal-adaptation table

Reads ``<results>/<set>_<model>.json`` files written by ``python -m training.evaluate --out``
(sets: ``imdb2000ksr``, ``imdb2000``, ``imdb500``, ``wiki200``; models: ``gru``, ``lstm``, ``ngram``),
``<results>/step_latency.json`` (``python -m bench.step_latency``) and the artifacts' cards,
and prints Markdown tables. Missing inputs print as "n/a": nothing is filled in by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from model.artifact import load_artifact

MODELS = ("gru", "lstm", "ngram")


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "n/a"
    if pct:
        return f"{100 * value:.1f}%"
    return f"{value:,}" if isinstance(value, int) else str(value)


SETS = (
    ("imdb2000ksr", "IMDB test"),
    ("imdb2000", "IMDB test"),
    ("imdb500", "IMDB test"),
    ("wiki200", "WikiText-2 valid"),
)


def results_table(results: Path) -> str:
    rows = ["| model | set | docs | words | weights | top-1 | top-3 | word_ppl | ksr (k=3) |", "|---" * 9 + "|"]
    for name in MODELS:
        for data_set, label in SETS:
            r = _load(results / f"{data_set}_{name}.json")
            if r is None:
                continue
            weights = r.get("precision", "n-gram" if name == "ngram" else "fp32")
            rows.append(
                f"| {name} | {label} ({data_set}) | {r['docs']} | {r['words']:,} | {weights} | "
                f"{_fmt(r['top1'], True)} | {_fmt(r['top3'], True)} | {r['word_ppl']} | {_fmt(r.get('ksr'), True)} |"
            )
    return "\n".join(rows)


def models_table(artifacts: Path, results: Path) -> str:
    latency = _load(results / "step_latency.json") or {}
    rows = [
        "| model | parameters | file size | training tokens | training wall time | "
        "step b=1, 1 thr (fp32 / fp16) | step b=64, 1 thr (fp32 / fp16) | "
        "step b=1, 2 thr (fp32 / fp16) | step b=64, 2 thr (fp32 / fp16) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("gru", "lstm"):
        path = artifacts / f"{name}.pt"
        card = load_artifact(path).card
        training = card.get("training", {})

        def step(batch: int, threads: int, name: str = name) -> str:
            cells = []
            for suffix in ("", "@fp16"):
                cell = latency.get(f"{name}@{threads}thr{suffix}", {}).get(f"step_b{batch}")
                cells.append(f"{cell['mean_ms']:.2f}" if cell else "n/a")
            return " / ".join(cells) + " ms"

        # A run continued from trained weights (--init-from) counts their tokens in tokens_seen
        # but its own time only in wall_seconds: add theirs so both columns cover the same training.
        wall = training.get("wall_seconds", 0) + ((training.get("init_from") or {}).get("wall_seconds") or 0)
        rows.append(
            f"| {name} | {card['parameters']:,} | {path.stat().st_size / 1e6:.1f} MB | "
            f"{_fmt(training.get('tokens_seen'))} | {wall / 60:.0f} min | "
            f"{step(1, 1)} | {step(64, 1)} | {step(1, 2)} | {step(64, 2)} |"
        )
    return "\n".join(rows)


def curve_table(runs: list[Path]) -> str:
    rows = ["| model | tokens seen | val piece ppl | val word ppl | wall time |", "|---|---|---|---|---|"]
    for run in runs:
        for line in (run / "log.jsonl").read_text().splitlines():
            r = json.loads(line)
            wall = r["wall_seconds"]
            rows.append(f"| {run.name} | {r['tokens_seen']:,} | {r['val_piece_ppl']} | {r['val_word_ppl']} | "
                        + (f"{wall:.0f} s |" if wall < 600 else f"{wall / 60:.0f} min |"))
    return "\n".join(rows)


EMAIL_ROWS = (
    ("gru", "GRU (reviews)"),
    ("lstm", "LSTM (reviews)"),
    ("gru-email", "GRU e-mail"),
    ("lstm-email", "LSTM e-mail"),
    ("ngram-email", "word trigram, e-mail train"),
    ("ngram-email-reviews", "word trigram, e-mail + reviews train"),
)


def _with_subject_rows(rows: tuple[tuple[str, str], ...]) -> list[tuple[str, str, str]]:
    """(name, result suffix, label): each row, then the same model read with each e-mail's subject."""
    return [row for name, label in rows
            for row in ((name, "", label), (name, "_subject", f"{label}, with the subject"))]


def email_table(results: Path) -> str:
    """E-mail test split: top-k and perplexity on all 1,193 e-mails, keystroke savings on a 400 sample."""
    rows = ["| model | top-1 | top-3 | word_ppl | ksr (k=3, 400 e-mails) | top-1 (400 e-mails) |", "|---" * 6 + "|"]
    for name, suffix, label in _with_subject_rows(EMAIL_ROWS):
        full = _load(results / f"{name}_test{suffix}.json")
        sample = _load(results / f"{name}_test400ksr{suffix}.json")
        if full is None and sample is None:
            continue
        full = full or {}
        sample = sample or {}
        rows.append(f"| {label} | {_fmt(full.get('top1'), True)} | {_fmt(full.get('top3'), True)} | "
                    f"{_fmt(full.get('word_ppl'))} | {_fmt(sample.get('ksr'), True)} | "
                    f"{_fmt(sample.get('top1'), True)} |")
    return "\n".join(rows)


def phrase_table(results: Path, threshold: float) -> str:
    """Ghost text at ``threshold`` on e-mail test text, every word boundary of the evaluated e-mails."""
    rows = ["| model | e-mails | boundaries | coverage | ExactMatch | mean words | ECE (shown) | ECE (all) | "
            "ExactMatch@1 / @2 / @3+ | ECE before calibration |", "|---" * 10 + "|"]
    for name, suffix, label in _with_subject_rows(EMAIL_ROWS[:4]):
        r = _load(results / f"phrases_{name}{suffix}.json")
        if r is None:
            continue
        point = next((p for p in r["curve"] if abs(p["threshold"] - threshold) < 1e-9), None)
        if point is None:
            continue
        by = point["exact_match_at_words"]
        longer = [v for k, v in by.items() if int(k) >= 3]
        at3 = (sum(v["shown"] * v["exact_match"] for v in longer) / sum(v["shown"] for v in longer)
               if longer else None)
        at = [by.get("1", {}).get("exact_match"), by.get("2", {}).get("exact_match"), at3]
        rows.append(f"| {label} | {r['eval_docs']} | {point['boundaries']:,} | {_fmt(point['coverage'], True)} | "
                    f"{_fmt(point['exact_match'], True)} | {_fmt(point['mean_words'])} | {_fmt(point['ece'])} | "
                    f"{_fmt(r['ece_every_boundary'])} | {' / '.join(_fmt(a, True) for a in at)} | "
                    f"{_fmt(r['ece_uncalibrated'])} |")
    return "\n".join(rows)


def imdb_forgetting_table(results: Path) -> str:
    rows = ["| model | IMDB test top-1 (500 reviews) | top-3 | word_ppl |", "|---|---|---|---|"]
    for name, label in EMAIL_ROWS[:4]:
        r = _load(results / f"{name}_imdb500.json")
        if r is not None:
            rows.append(f"| {label} | {_fmt(r['top1'], True)} | {_fmt(r['top3'], True)} | {_fmt(r['word_ppl'])} |")
    return "\n".join(rows)


def personal_table(results: Path) -> str:
    """Per sender: the e-mail model and its personal adaptation on the sender's own test mail, and
    on everyone's (what it forgets), from ``training/personal_eval.sh``'s files."""
    rows = ["| sender (train e-mails) | model | adapting | top-1 | top-3 | word_ppl | ksr (k=3) | ghost text: "
            "coverage / ExactMatch / ECE | everyone's mail: top-1 / word_ppl |", "|---" * 9 + "|"]
    for lineage_path in sorted(results.glob("*.lineage.json")):
        cell, _, owner = lineage_path.name.removesuffix(".lineage.json").partition("-")
        lineage = json.loads(lineage_path.read_text())["lineage"]
        base = Path(str(lineage.get("base", {}).get("file") or f"{cell}-email.pt")).stem
        for name in (base, f"{cell}-{owner}"):
            own = _load(results / f"{owner}_{name}.json") or {}
            ghost = (_load(results / f"{owner}_phrases_{name}.json") or {}).get("at_default") or {}
            everyone = _load(results / f"email300_{name}.json") or {}
            adapting = "base" if name == base else f"{lineage['minutes']} min, {lineage['tokens']:,} tokens"
            rows.append(f"| {owner} ({lineage['data']['train']['docs']}) | `{name}` | {adapting} | "
                        f"{_fmt(own.get('top1'), True)} | {_fmt(own.get('top3'), True)} | "
                        f"{_fmt(own.get('word_ppl'))} | {_fmt(own.get('ksr'), True)} | "
                        f"{_fmt(ghost.get('coverage'), True)} / {_fmt(ghost.get('exact_match'), True)} / "
                        f"{_fmt(ghost.get('ece'))} | {_fmt(everyone.get('top1'), True)} / "
                        f"{_fmt(everyone.get('word_ppl'))} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--results", default="docs/results")
    parser.add_argument("--artifacts", default="model/artifacts")
    parser.add_argument("--runs", nargs="*", default=[])
    parser.add_argument("--email", help="e-mail results folder (docs/results/email): print only the e-mail tables")
    parser.add_argument("--threshold", type=float, default=0.5, help="the phrase threshold to tabulate")
    parser.add_argument("--personal", help="personal adaptation results (docs/results/personal): that table only")
    args = parser.parse_args(argv)
    if args.personal:
        print("### Adapting to one person's mail\n\n" + personal_table(Path(args.personal)) + "\n")
        return
    if args.email:
        email = Path(args.email)
        print("### E-mail test split\n\n" + email_table(email) + "\n")
        print(f"### Ghost text at threshold {args.threshold}\n\n" + phrase_table(email, args.threshold) + "\n")
        print("### What the e-mail models forgot\n\n" + imdb_forgetting_table(email) + "\n")
        return
    results = Path(args.results)
    print("### Models\n\n" + models_table(Path(args.artifacts), results) + "\n")
    print("### Word-level results\n\n" + results_table(results) + "\n")
    if args.runs:
        print("### Validation during training\n\n" + curve_table([Path(r) for r in args.runs]) + "\n")


if __name__ == "__main__":
    main()

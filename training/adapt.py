"""Adapt a bundled artifact to a new corpus (e-mail, or a user's own mail) on a CPU.

    python -m training.adapt --from model/artifacts/gru.pt \
        --corpus ../shared/data/aeslc-enron-email.jsonl.gz --minutes 40 --out model/artifacts/gru-email.pt

Fine-tuning, not training: the text is read through the artifact's own tokenizer, the
architecture is the artifact's, and the schedule is a short warm-up to a peak learning rate
below a from-scratch run's, then a cosine decay over the time budget. Validation runs on the
corpus's own ``dev`` split when it has one (the AESLC e-mail corpus), else on ~1% of its
documents; the best checkpoint is kept. At the end the weights of the last ``--average-last``
validation snapshots (the low-learning-rate tail of the schedule) are averaged, and the average
is exported instead of the best checkpoint when its validation loss is lower.
``--mix-corpus``/``--mix-docs`` mix some documents of another corpus (the reviews the base
learnt) into the training text.

The exported card records the lineage: the base artifact's SHA-256, the data and its licence,
tokens and minutes of this run, the recipe and the machine. Any corpus the readers take works
(``.jsonl[.gz]``, text, mbox, maildir): a user points it at their own mail. ``--resume``
continues an interrupted run from ``WORK/last.pt``; ``--dry-run`` adapts for a few steps (CI).
The base's lexicon (the words it may propose, :mod:`model.lexicon`) gains the corpus's words,
so the adapted model proposes the user's own names and terms.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.artifact import LanguageModel, load_artifact
from model.decoder import BOUNDARY_CALIBRATION_KEY, INSIDE_CALIBRATION_KEY
from model.export import export_checkpoint
from model.lexicon import Lexicon
from model.network import ModelConfig, RNNLanguageModel, rebuild_eager
from training.data import detect_format, open_maybe_gzip
from training.lexicon import DEFAULT_MIN_COUNT, corpus_lexicon
from training.train import AUTOCAST, TrainConfig, evaluate_loss, train

log = logging.getLogger("training.adapt")

#: Licences of the shared corpora, found by file name; anything else is the user's own data.
KNOWN_LICENCES = {
    "aeslc-enron-email": "CC BY-NC-SA 4.0 (AESLC, Zhang and Tetreault 2019; Enron e-mail)",
    "aclImdb": "Large Movie Review Dataset (Maas et al. 2011), research use",
}
DEFAULT_LICENCE = "unspecified: the user's own text"

# The recipe chosen on the e-mail dev split (docs/models.md, "Adapting to e-mail").
DEFAULT_LR = 4e-3
DEFAULT_WARMUP_STEPS = 100
DEFAULT_MIN_LR_RATIO = 0.05
DEFAULT_AVERAGE_LAST = 4
#: A corpus of many writers (the e-mail corpus): a time budget, validation every 250 steps.
CORPUS_RECIPE: dict[str, Any] = {"lr": DEFAULT_LR, "minutes": 40.0, "max_passes": None,
                                 "warmup_steps": DEFAULT_WARMUP_STEPS, "eval_every": 250, "eval_tokens": 120_000,
                                 "valid_per_mille": 10}
#: e-mails per thousand with their subject, for a subject-reading base whose card does not say
DEFAULT_SUBJECT_PER_MILLE = 750
#: One person's mail (``--personal``: a few hundred e-mails, a minute or two on a laptop CPU),
#: chosen on three Enron senders' dev mail (docs/models.md, "Adapting to one person's mail"):
#: a gentler peak, a budget in passes rather than minutes, validation often enough to keep the
#: best point of so short a run, on a tenth of the mail when it has no dev split.
PERSONAL_RECIPE: dict[str, Any] = {"lr": 1e-3, "minutes": None, "max_passes": 4.0, "warmup_steps": 10,
                                   "eval_every": 15, "eval_tokens": 20_000, "valid_per_mille": 100}


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def licence_of(corpus: str) -> str:
    name = Path(corpus).name
    return next((text for key, text in KNOWN_LICENCES.items() if key in name), DEFAULT_LICENCE)


def has_split(corpus: str, split: str) -> bool:
    """True when a ``.jsonl`` corpus labels some of its records ``split`` (e.g. ``dev``)."""
    path = Path(corpus)
    if detect_format(path) != "jsonl":
        return False
    with open_maybe_gzip(path) as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("split") == split:
                return True
    return False


def machine() -> dict[str, Any]:
    return {"platform": platform.platform(terse=True), "processor": platform.machine(),
            "cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads()}


def build_config(args: argparse.Namespace, base_config: dict[str, Any]) -> TrainConfig:
    """The training run that adapts the base weights: the base's architecture, a fine-tuning schedule."""
    work = Path(args.work_dir)
    valid_split = args.valid_split
    if valid_split == "auto":
        valid_split = "dev" if has_split(args.corpus, "dev") else None
    cfg = TrainConfig(
        corpus=args.corpus,
        split=args.split,
        valid_split=valid_split,
        mix_corpus=args.mix_corpus,
        mix_docs=args.mix_docs,
        data_dir=args.data_dir or str(work / "data"),
        out=str(work),
        cell=base_config["cell"],
        vocab_size=base_config["vocab_size"],
        emb_dim=base_config["emb_dim"],
        hidden_dim=base_config["hidden_dim"],
        num_layers=base_config["num_layers"],
        dropout=args.dropout if args.dropout is not None else base_config.get("dropout", 0.1),
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        lr=args.lr,
        min_lr_ratio=args.min_lr_ratio,
        warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay,
        max_minutes=args.minutes,
        max_tokens=args.max_tokens,
        max_passes=args.max_passes,
        valid_per_mille=args.valid_per_mille,
        sender=args.sender,
        subject_per_mille=args.subject_per_mille,
        eval_every=args.eval_every,
        eval_tokens=args.eval_tokens,
        threads=args.threads,
        autocast=args.autocast,
        device="cpu",
        init_from=args.base,
        seed=args.seed,
    )
    if args.dry_run:
        cfg.max_docs = 200
        cfg.data_dir = args.data_dir or str(work / "data-dry")
        cfg.batch_size, cfg.seq_len = 4, 16
        cfg.max_tokens = args.max_tokens or 4 * 16 * 6
        cfg.max_minutes = None
        cfg.eval_every, cfg.eval_tokens, cfg.warmup_steps = 3, 2000, 2
    return cfg


def lineage(args: argparse.Namespace, cfg: TrainConfig, ckpt: dict[str, Any], base_card: dict[str, Any]) -> dict:
    """What the adapted model came from, on what, for how long, where."""
    summary = ckpt.get("corpus_summary", {})
    return {
        "base": {"file": Path(args.base).name, "sha256": file_sha256(args.base),
                 "checksum": base_card.get("checksum"),
                 "data": Path(str((base_card.get("data") or {}).get("source") or "")).name or None},
        "data": {"corpus": Path(args.corpus).name, "licence": args.licence or licence_of(args.corpus),
                 "split": cfg.split, "valid_split": cfg.valid_split or f"{cfg.valid_per_mille / 10:g}% by content hash",
                 "sender_filter": bool(cfg.sender),  # whether only the writer's own messages were read (not who)
                 "subject_per_mille": cfg.subject_per_mille,
                 "train": summary.get("train"), "valid": summary.get("valid"),
                 "mixed_in": ({"corpus": Path(cfg.mix_corpus).name, "docs": cfg.mix_docs,
                               "licence": licence_of(cfg.mix_corpus)} if cfg.mix_corpus and cfg.mix_docs else None)},
        "tokens": int(ckpt["tokens_seen"]) - int(ckpt.get("tokens_before") or 0),
        "minutes": round(float(ckpt["wall_seconds"]) / 60, 1),
        "best_val_loss": ckpt.get("val_loss"),
        "recipe": {k: getattr(cfg, k) for k in ("lr", "warmup_steps", "min_lr_ratio", "weight_decay", "dropout",
                                                  "batch_size", "seq_len", "max_minutes", "max_passes", "mix_docs",
                                                  "autocast")},
        "machine": machine(),
    }


def validation_loss(model: RNNLanguageModel, cfg: TrainConfig) -> float:
    """``model``'s loss on the run's validation slice, the one its checkpoints were chosen on."""
    valid = np.load(Path(cfg.data_dir) / "valid.npy")
    return evaluate_loss(model, valid, min(cfg.eval_tokens, len(valid) - 1))


def averaged(best: Path, cfg: TrainConfig, last: int) -> tuple[Path, dict[str, Any] | None]:
    """The mean of the last ``last`` snapshots' weights, when it validates better than ``best``.

    Averaging the weights along the tail of a decaying schedule smooths out the last steps'
    noise (stochastic weight averaging); it is kept only if the validation slice says so.
    """
    snapshots = sorted((Path(cfg.out) / "snapshots").glob("tokens_*.pt"))[-last:] if last > 1 else []
    if len(snapshots) < 2:
        return best, None
    states = [torch.load(p, map_location="cpu", weights_only=True)["model"] for p in snapshots]
    mean = {k: torch.stack([s[k].float() for s in states]).mean(0).to(states[0][k].dtype) for k in states[0]}
    ckpt = torch.load(best, map_location="cpu", weights_only=False)
    best_loss = float(ckpt["val_loss"])  # measured on this same slice when it was saved
    mean_loss = validation_loss(rebuild_eager(ModelConfig(**ckpt["model_config"]), mean), cfg)
    report = {"snapshots": [p.stem for p in snapshots], "val_loss_best": round(best_loss, 4),
              "val_loss_average": round(mean_loss, 4), "exported": "average" if mean_loss < best_loss else "best"}
    log.info("weight averaging: %s", report)
    if mean_loss >= best_loss:
        return best, report
    path = Path(cfg.out) / "averaged.pt"
    torch.save({**ckpt, "model": mean, "val_loss": mean_loss}, path)
    return path, report


def adapted_lexicon(base: LanguageModel, corpus: str, split: str, min_count: int, sender: str | None = None
                    ) -> tuple[Lexicon | None, dict[str, Any]]:
    """The base model's lexicon plus the words of the adaptation text: the user's own names and terms.

    A base without a lexicon proposes any string, and so does what is adapted from it (the
    user's mail alone would be too small a lexicon).
    """
    if base.lexicon is None:
        return None, {}
    own, about = corpus_lexicon([corpus], min_count, split, sender)
    before = base.card.get("lexicon") or {}
    sources = [*before.get("sources", []), *about["sources"]]
    return base.lexicon | own, {**about, "sources": sources, "base_words": len(base.lexicon)}


def inherited_subject_per_mille(card: dict[str, Any]) -> int:
    """A base that reads subjects keeps reading them: its new text gets the layout it was taught.

    Without this, a personal model adapted from a subject-reading e-mail model would train on
    bodies alone yet still be served its writer's subjects (its card inherits ``reads_subject``).
    """
    if not card.get("reads_subject"):
        return 0
    learnt = ((card.get("lineage") or {}).get("data") or {}).get("subject_per_mille")
    return int(learnt) if learnt else DEFAULT_SUBJECT_PER_MILLE


def adapt(args: argparse.Namespace) -> dict[str, Any]:
    """Run the adaptation and export the best checkpoint as ``args.out``; return its card."""
    base = load_artifact(args.base)
    if args.subject_per_mille is None:
        args.subject_per_mille = inherited_subject_per_mille(base.card)
    cfg = build_config(args, base.card["config"])
    budget = ", ".join(f"{value} {unit}" for value, unit in ((cfg.max_minutes, "min"), (cfg.max_tokens, "tokens"),
                                                           (cfg.max_passes, "passes")) if value)
    log.info("adapting %s on %s (valid: %s) for %s", args.base, args.corpus, cfg.valid_split or "hash split", budget)
    best = train(cfg, resume=args.resume)
    chosen, averaging = averaged(best, cfg, args.average_last)
    ckpt = torch.load(chosen, map_location="cpu", weights_only=False)
    before = validation_loss(rebuild_eager(ModelConfig(**base.card["config"]), base.module.state_dict()), cfg)
    if float(ckpt["val_loss"]) >= before:
        log.warning("the adapted model validates no better than its base (%.4f vs %.4f): too little text, "
                    "or too high a learning rate; serve the base instead", float(ckpt["val_loss"]), before)
    card = export_checkpoint(chosen, args.out)
    from model.artifact import update_card

    extra = {"lineage": {**lineage(args, cfg, ckpt, base.card), "weight_averaging": averaging,
                         "base_val_loss": round(before, 4)},
             "name": Path(args.out).stem}
    if cfg.subject_per_mille:  # a reader's own default (inherited_subject_per_mille), unless opted out
        # The server puts a request's subject line before its text only for a model that learnt to read one.
        extra["reads_subject"] = True
    if args.sender:  # the card describes the model, not whose mail it read: no address in it
        given = json.dumps(args.sender)[1:-1]  # as it appears in the recorded command and config
        extra["training"] = json.loads(json.dumps(card.get("training") or {}).replace(given, "<sender>"))
    for key in (BOUNDARY_CALIBRATION_KEY, INSIDE_CALIBRATION_KEY):
        if base.card.get(key):
            # The base's ghost-text calibrations until they are fitted on the new text (training.phrases
            # --write-card): closer than none, which would trust the raw probabilities.
            extra[key] = {**base.card[key], "inherited_from": Path(args.base).name}
    (Path(cfg.out) / "lineage.json").write_text(json.dumps(extra, indent=2))
    lexicon, about = adapted_lexicon(base, args.corpus, args.split, args.lexicon_min_count, args.sender)
    card = update_card(args.out, extra, lexicon, about)
    log.info("wrote %s (%.1f MB): %s", args.out, Path(args.out).stat().st_size / 1e6, json.dumps(extra["lineage"]))
    return card


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--from", dest="base", required=True, help="the artifact to adapt (model/artifacts/gru.pt)")
    parser.add_argument("--corpus", required=True, help="any corpus the readers take: .jsonl[.gz], text, mbox, maildir")
    parser.add_argument("--out", required=True, help="the adapted artifact (e.g. model/artifacts/gru-email.pt)")
    parser.add_argument("--personal", action="store_true",
                        help="one person's mail (a few hundred e-mails): the recipe measured for it (PERSONAL_RECIPE)")
    parser.add_argument("--minutes", type=float, default=None, help="time budget; the schedule decays over it (40)")
    parser.add_argument("--max-tokens", type=int, default=None, help="token budget instead of (or as well as) minutes")
    parser.add_argument("--max-passes", type=float, default=None, help="budget in passes over the training text")
    parser.add_argument("--work-dir", default=None, help="checkpoints and log (default runs/adapt/<out's stem>)")
    parser.add_argument("--data-dir", default=None, help="the prepared corpus (default WORK/data); runs may share one")
    parser.add_argument("--split", default="train", help="the corpus split that trains")
    parser.add_argument("--sender", default=None,
                        help="mbox/maildir: only messages from these addresses (comma-separated): your own mail "
                        "out of a whole-mailbox export")
    parser.add_argument("--lexicon-min-count", type=int, default=DEFAULT_MIN_COUNT,
                        help="times a word of the corpus must appear to join the model's lexicon")
    parser.add_argument("--subject-per-mille", type=int, default=None,
                        help="e-mails per thousand read with their subject line before the body (mbox, maildir, "
                             "JSON lines with a 'subject'); the model then reads a request's subject (e.g. 750; "
                             "default: the base's own, 0 for a base that reads none)")
    parser.add_argument("--valid-split", default="auto", help="'auto': the corpus's dev split if it has one")
    parser.add_argument("--mix-corpus", default=None, help="another corpus to mix in (e.g. the reviews)")
    parser.add_argument("--mix-docs", type=int, default=0, help="documents of --mix-corpus to mix in")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate")
    parser.add_argument("--warmup-steps", type=int, default=None)
    parser.add_argument("--min-lr-ratio", type=float, default=DEFAULT_MIN_LR_RATIO)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--dropout", type=float, default=None, help="default: the base's")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--eval-every", type=int, default=None, help="steps between validations")
    parser.add_argument("--eval-tokens", type=int, default=None, help="validation pieces read each time")
    parser.add_argument("--valid-per-mille", type=int, default=None,
                        help="without a dev split: documents per thousand that validate")
    parser.add_argument("--average-last", type=int, default=DEFAULT_AVERAGE_LAST,
                        help="average the last N validation snapshots' weights if that validates better (1: off)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--autocast", choices=AUTOCAST, default="fp32",
                        help="bf16: forward pass in bfloat16 (fp32 weights); faster on AVX512-BF16 CPUs")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--licence", default=None, help="licence of --corpus (known corpora are recognised)")
    parser.add_argument("--resume", action="store_true", help="continue from WORK/last.pt")
    parser.add_argument("--dry-run", action="store_true", help="a few steps on 200 documents (CI)")
    args = parser.parse_args(argv)
    for key, value in (PERSONAL_RECIPE if args.personal else CORPUS_RECIPE).items():
        if getattr(args, key) is None:  # a flag given on the command line wins over the recipe
            setattr(args, key, value)
    if args.work_dir is None:
        args.work_dir = str(Path("runs") / "adapt" / Path(args.out).stem)
    return args


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    adapt(parse_args(argv))


if __name__ == "__main__":
    main()

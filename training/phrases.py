"""Ghost text you can trust: measure phrase acceptance, calibrate ``confidence``, pick a threshold.

    python -m training.phrases --model model/artifacts/gru-email.pt \
        --corpus ../shared/data/aeslc-enron-email.jsonl.gz --fit-split dev --eval-split test \
        --out docs/results/phrases/gru-email --write-card

At every word boundary of a held-out text (the start of each word that follows a space, and
the start of the text) the server's own phrase search (:func:`model.decoder.phrase_candidates`)
lists where the best continuations could stop, each with its exact probability; a candidate is
*accepted* when the text goes on with exactly it (and, if it ends inside a word's characters,
the word ends there too). From these:

* **calibration** (``--fit-split``): Platt scaling of the phrase probability (logistic
  regression of acceptance on ``logit(P)`` and the phrase's word count), stored in the
  artifact's card (``phrase_calibration``; with ``--positions inside``, fitted at every keystroke
  inside a word, ``phrase_calibration_inside``) so the server's ``confidence`` is P(accepted);
* **the operating curve** (``--eval-split``): for thresholds 0.05-0.95, the phrase the server
  would show at each boundary (:func:`model.decoder.choose_phrase`): coverage (share of
  boundaries that show one), ExactMatch (share of shown phrases typed exactly), mean words,
  ExactMatch@N by phrase length; a reliability diagram and its expected calibration error.

The default threshold is chosen on the fit split: the lowest threshold whose ExactMatch there
reaches ``--target-exact-match``, i.e. the most ghost text that is still right that often.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from model.artifact import LanguageModel, update_card
from model.batching import Decoding, drive_stream
from model.decoder import (
    BOUNDARY_CALIBRATION_KEY,
    INSIDE_CALIBRATION_KEY,
    PhraseCalibration,
    PhraseCandidate,
    choose_phrase,
    next_words,
    phrase_candidates,
)
from model.prefix_cache import PrefixStateCache, StepMemo
from model.suggest import DecodeOptions, context_state, header_ids, prompt_parts, unread_header_words
from model.text import WORD_CHARS, WORD_RE
from training.evaluate import load_docs, load_named, load_subjects

log = logging.getLogger("training.phrases")

THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))
#: Hypotheses below this probability are not followed while collecting (nothing that unlikely
#: is shown at any threshold of the curve once calibrated; it keeps collection affordable).
COLLECT_MIN_P = 0.01


@dataclass(frozen=True)
class Observed:
    """One candidate at one boundary, and whether the writer typed exactly it."""

    words: int
    logp: float
    sentence_end: bool
    accepted: bool
    inserted: int  # the characters a Tab on it inserts (what model.decoder.choose_phrase weighs)


def boundaries(doc: str) -> Iterator[tuple[str, str]]:
    """(context, what follows) at the start of the text and of every word that follows a space."""
    for match in WORD_RE.finditer(doc):
        start = match.start()
        if start == 0 or doc[start - 1] == " ":
            yield doc[:start], doc[start:]


def inside_words(doc: str) -> Iterator[tuple[str, str]]:
    """(text typed so far, what follows the word's start) at every keystroke inside a word.

    The words are those :func:`boundaries` starts; after each of their characters but the last,
    the writer is mid-word and the ghost text must first complete the word.
    """
    for match in WORD_RE.finditer(doc):
        start = match.start()
        if start == 0 or doc[start - 1] == " ":
            for end in range(start + 1, match.end()):
                yield doc[:end], doc[start:]


POSITIONS = {"boundaries": boundaries, "inside": inside_words}
CONDITIONINGS = ("first-piece", "search")


def is_accepted(phrase: str, following: str) -> bool:
    """The text goes on with exactly ``phrase`` (a phrase ending in a word ends with that word)."""
    phrase = phrase.lstrip(" ")
    if not phrase or not following.startswith(phrase):
        return False
    rest = following[len(phrase) :]
    return not (rest and phrase[-1] in WORD_CHARS and rest[0] in WORD_CHARS)


def _document(lm: LanguageModel, doc: str, cache: PrefixStateCache, max_words: int, beam: int,
              min_logp: float, positions: str = "boundaries", conditioning: str = "first-piece",
              known_words: bool = DecodeOptions.known_words, subject: str = "") -> Decoding[list[list[Observed]]]:
    found: list[list[Observed]] = []
    lexicon = lm.lexicon if known_words else None
    head = header_ids(lm, subject)
    for typed, following in POSITIONS[positions](doc):
        ids, fragment, require_space, _ = prompt_parts(lm, typed, DecodeOptions.context_pieces, head)
        if not following.lstrip(" ").startswith(fragment):
            continue  # normalisation moved the word's start (rare): no place to compare with
        logp, state, _, _ = yield from context_state(lm, ids, cache)
        given = None
        exclude = unread_header_words(lm, ids)
        # As the server does: conditioned on the next-word search's fragment_logp, which also
        # leaves out the words the text cannot start with.
        if (conditioning == "search" and fragment) or exclude:
            words = yield from next_words(lm.tokenizer, logp, state, fragment, require_space, k=3,
                                          beam=DecodeOptions.beam, memo=StepMemo(cache, ids), lexicon=lexicon,
                                          exclude=exclude)
            given = words.fragment_logp
        candidates: list[PhraseCandidate] = yield from phrase_candidates(
            lm.tokenizer, logp, state, fragment, require_space, max_words, beam, None, min_logp, given, lexicon,
            exclude)
        found.append([Observed(c.words, c.logp, c.sentence_end, is_accepted(c.text, following), c.inserted)
                      for c in candidates])
    return found


def collect(lm: LanguageModel, docs: list[str], max_words: int = 5, beam: int = DecodeOptions.phrase_beam,
            batch_docs: int = 64, positions: str = "boundaries", conditioning: str = "first-piece",
            known_words: bool = DecodeOptions.known_words,
            subjects: dict[str, str] | None = None) -> list[list[Observed]]:
    """Candidates at every boundary (or keystroke inside a word) of ``docs``, documents batched
    as the evaluator does; ``conditioning`` says what a mid-word phrase is conditioned on,
    ``known_words`` whether its words keep to the model's lexicon (as the server's do),
    ``subjects`` each document's e-mail subject (read by a model that reads subjects)."""
    subjects = subjects or {}
    cache = PrefixStateCache(256 * 1024 * 1024)
    min_logp = math.log(COLLECT_MIN_P)
    out: list[list[list[Observed]]] = [[] for _ in docs]
    gens = (_document(lm, d, cache, max_words, beam, min_logp, positions, conditioning, known_words,
                      subjects.get(d, "")) for d in docs)
    with tqdm(total=len(docs), unit="doc", desc=f"phrases {lm.name}", file=sys.stderr, mininterval=5) as bar:
        for i, found in drive_stream(lm.module, gens, width=batch_docs, max_rows=1024):
            out[i] = found
            bar.update(1)
    return [b for per_doc in out for b in per_doc]


# ---------------------------------------------------------------------------- calibration
def _features(obs: list[Observed]) -> np.ndarray:
    p = np.clip(np.exp([o.logp for o in obs]), 1e-12, 1 - 1e-9)
    return np.column_stack([np.log(p) - np.log1p(-p), [o.words for o in obs], np.ones(len(obs))])


def fit_platt(obs: list[Observed], l2: float = 1e-3, iterations: int = 50) -> PhraseCalibration:
    """Logistic regression of acceptance on (logit P, words, 1) by Newton's method (L2-damped)."""
    if not obs:
        return PhraseCalibration()
    x = _features(obs)
    y = np.array([o.accepted for o in obs], dtype=float)
    w = np.array([1.0, 0.0, 0.0])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(x @ w, -50, 50)))
        grad = x.T @ (p - y) + l2 * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + l2 * np.eye(3)
        delta = np.linalg.solve(hess, grad)
        w -= delta
        if np.abs(delta).max() < 1e-8:
            break
    return PhraseCalibration(slope=float(w[0]), per_word=float(w[1]), bias=float(w[2]))


def expected_calibration_error(confidences: list[float], outcomes: list[bool], bins: int = 10) -> float:
    """Sum over equal-width confidence bins of (share of samples) x |mean confidence - accept rate|."""
    if not confidences:
        return 0.0
    conf = np.asarray(confidences, dtype=float)
    hit = np.asarray(outcomes, dtype=float)
    index = np.minimum((conf * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        chosen = index == b
        if chosen.any():
            total += chosen.mean() * abs(conf[chosen].mean() - hit[chosen].mean())
    return float(total)


def reliability(confidences: list[float], outcomes: list[bool], bins: int = 10) -> list[dict[str, float]]:
    """Per confidence bin: its range, count, mean confidence and observed acceptance."""
    rows = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        pairs = [(c, o) for c, o in zip(confidences, outcomes, strict=True)
                 if lo <= c < hi or (b == bins - 1 and c == 1.0)]
        if pairs:
            rows.append({"lo": lo, "hi": hi, "count": len(pairs),
                         "confidence": float(np.mean([c for c, _ in pairs])),
                         "accepted": float(np.mean([o for _, o in pairs]))})
    return rows


# ---------------------------------------------------------------------------- operating points
def shown(found: list[list[Observed]], calibration: PhraseCalibration,
          threshold: float) -> list[tuple[Observed, float] | None]:
    """At each boundary, the phrase the server would show at ``threshold`` (with its confidence)."""
    out: list[tuple[Observed, float] | None] = []
    for obs in found:
        chosen = choose_phrase(obs, calibration, threshold)
        out.append(None if chosen is None or chosen[1] < threshold else chosen)
    return out


def operating_point(found: list[list[Observed]], calibration: PhraseCalibration, threshold: float) -> dict[str, Any]:
    picks = [s for s in shown(found, calibration, threshold) if s is not None]
    confs = [c for _, c in picks]
    hits = [o.accepted for o, _ in picks]
    by_words: dict[str, dict[str, float]] = {}
    for n in sorted({o.words for o, _ in picks}):
        group = [o.accepted for o, _ in picks if o.words == n]
        by_words[str(n)] = {"shown": len(group), "exact_match": round(float(np.mean(group)), 4)}
    return {
        "threshold": threshold,
        "boundaries": len(found),
        "shown": len(picks),
        "coverage": round(len(picks) / max(len(found), 1), 4),
        "exact_match": round(float(np.mean(hits)), 4) if hits else None,
        "mean_words": round(float(np.mean([o.words for o, _ in picks])), 3) if picks else None,
        "mean_confidence": round(float(np.mean(confs)), 4) if confs else None,
        "ece": round(expected_calibration_error(confs, hits), 4),
        "exact_match_at_words": by_words,
    }


def choose_threshold(found: list[list[Observed]], calibration: PhraseCalibration, target: float) -> float:
    """The lowest threshold of the grid whose ExactMatch reaches ``target`` (the most useful ghost text)."""
    for threshold in THRESHOLDS:
        point = operating_point(found, calibration, threshold)
        if point["exact_match"] is not None and point["exact_match"] >= target:
            return threshold
    return THRESHOLDS[-1]


def plot(curve: list[dict[str, Any]], bins: list[dict[str, float]], ece: float, title: str, stem: Path,
         default: float, where: str = "word boundaries") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    ax.plot([b["confidence"] for b in bins], [b["accepted"] for b in bins], marker="o", label="shown phrases")
    for b in bins:
        ax.annotate(str(b["count"]), (b["confidence"], b["accepted"]), fontsize=7, xytext=(3, -9),
                    textcoords="offset points")
    ax.set(xlabel="confidence (bin mean)", ylabel="accepted exactly", xlim=(0, 1), ylim=(0, 1),
           title=f"{title}: reliability, ECE {ece:.3f}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(stem.with_name(stem.name + "_reliability.png"), dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4.5))
    points = [p for p in curve if p["exact_match"] is not None]
    ax.plot([p["coverage"] for p in points], [p["exact_match"] for p in points], marker=".")
    for p in points:
        if p["threshold"] in (0.1, 0.3, 0.5, 0.7, 0.9) or p["threshold"] == default:
            ax.annotate(f"t={p['threshold']}", (p["coverage"], p["exact_match"]), fontsize=7)
    chosen = next((p for p in points if p["threshold"] == default), None)
    if chosen:
        ax.plot([chosen["coverage"]], [chosen["exact_match"]], marker="*", markersize=14, color="tab:red",
                label=f"default threshold {default}")
        ax.legend(loc="lower left")
    ax.set(xlabel=f"coverage ({where} showing a phrase)", ylabel="ExactMatch of shown phrases",
           xlim=(0, None), ylim=(0, 1), title=f"{title}: coverage vs ExactMatch")
    fig.tight_layout()
    fig.savefig(stem.with_name(stem.name + "_curve.png"), dpi=110)
    plt.close(fig)


def _sample(corpus: str, split: str, max_docs: int | None, seed: int) -> list[str]:
    return load_docs(None, corpus, split, max_docs, seed)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--corpus", required=True, help="text to fit and evaluate on")
    parser.add_argument("--fit-split", default="dev", help="split the calibration is fitted on")
    parser.add_argument("--eval-split", default="test", help="split the figures are reported on")
    parser.add_argument("--fit-docs", type=int, default=600, help="documents of the fit split (seeded sample)")
    parser.add_argument("--eval-docs", type=int, default=None, help="documents of the eval split (default all)")
    parser.add_argument("--fit-corpus", default=None, help="another corpus to fit on (default --corpus)")
    parser.add_argument("--max-words", type=int, default=5)
    parser.add_argument("--beam", type=int, default=DecodeOptions.phrase_beam, help="the server's by default")
    parser.add_argument("--threshold", type=float, default=None, help="default: chosen on the fit split")
    parser.add_argument("--target-exact-match", type=float, default=0.55)
    parser.add_argument("--fit-seed", type=int, default=1, help="sample seed of the fit documents")
    parser.add_argument("--keep-calibration", action="store_true", help="use the card's calibration, fit nothing")
    parser.add_argument("--not-on-fit-docs", action="store_true",
                        help="with --keep-calibration: leave out the eval documents the fit sample holds, as a "
                             "fitted run does, so that the two report on the same documents")
    parser.add_argument("--write-card", action="store_true", help="store the calibration in the artifact's card")
    parser.add_argument("--positions", choices=tuple(POSITIONS), default="boundaries",
                        help="inside: every keystroke inside a word, fitted to and read from the card's "
                             "phrase_calibration_inside (phrase_calibration at boundaries)")
    parser.add_argument("--conditioning", choices=CONDITIONINGS, default="first-piece",
                        help="what a mid-word phrase's probability is conditioned on (the server's: search)")
    parser.add_argument("--all-words", action="store_true",
                        help="phrases of any strings the pieces spell, not only the model's lexicon words (as served)")
    parser.add_argument("--subjects", action="store_true",
                        help="a model that reads subjects reads each e-mail's subject first (fit and eval)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", required=True, help="output stem: STEM.json, STEM_curve.png, STEM_reliability.png")
    args = parser.parse_args(argv)
    started = time.time()
    lm = load_named(args.model, threads=args.threads)
    stem = Path(args.out)
    stem.parent.mkdir(parents=True, exist_ok=True)

    fit_docs: list[str] = []
    if not args.keep_calibration or args.not_on_fit_docs:
        fit_docs = _sample(args.fit_corpus or args.corpus, args.fit_split, args.fit_docs, args.fit_seed)
    inside = args.positions == "inside"
    if args.keep_calibration:
        calibration = PhraseCalibration.from_card(lm.card, inside=inside)
        fit_found: list[list[Observed]] = []
    else:  # fitted where it is used: at word boundaries, or inside words
        fit_subjects = load_subjects(args.fit_corpus or args.corpus, args.fit_split) if args.subjects else None
        fit_found = collect(lm, fit_docs, args.max_words, args.beam, positions=args.positions,
                            conditioning=args.conditioning, known_words=not args.all_words, subjects=fit_subjects)
        calibration = fit_platt([o for obs in fit_found for o in obs])
        log.info("calibration on %d %s of %s: %s", len(fit_found), args.positions, args.fit_split, calibration)
    threshold = args.threshold
    if threshold is None:
        threshold = choose_threshold(fit_found, calibration, args.target_exact_match) if fit_found else 0.5
    eval_docs = _sample(args.corpus, args.eval_split, args.eval_docs, args.seed)
    if fit_docs:  # never report on a document the calibration was fitted on
        fitted = set(fit_docs)
        eval_docs = [d for d in eval_docs if d not in fitted]
    found = collect(lm, eval_docs, args.max_words, args.beam, positions=args.positions,
                    conditioning=args.conditioning, known_words=not args.all_words,
                    subjects=load_subjects(args.corpus, args.eval_split) if args.subjects else None)
    curve = [operating_point(found, calibration, t) for t in THRESHOLDS]
    at_default = operating_point(found, calibration, threshold)
    picks = [s for s in shown(found, calibration, 0.0) if s is not None]
    confs, hits = [c for _, c in picks], [o.accepted for o, _ in picks]
    bins = reliability(confs, hits)
    ece_all = expected_calibration_error(confs, hits)
    raw = PhraseCalibration()
    raw_picks = [s for s in shown(found, raw, 0.0) if s is not None]
    result = {
        "model": lm.name,
        "corpus": Path(args.corpus).name,
        "eval_split": args.eval_split,
        "eval_docs": len(eval_docs),
        "fit_split": None if args.keep_calibration else args.fit_split,
        "fit_boundaries": len(fit_found),
        "max_words": args.max_words,
        "beam": args.beam,
        "positions": args.positions,
        "conditioning": args.conditioning,
        "known_words": not args.all_words and lm.lexicon is not None,
        "subject_read": args.subjects and lm.reads_subject,
        "calibration": asdict(calibration),
        "default_threshold": threshold,
        "at_default": at_default,
        "ece_every_boundary": round(ece_all, 4),
        "ece_uncalibrated": round(expected_calibration_error([c for _, c in raw_picks],
                                                             [o.accepted for o, _ in raw_picks]), 4),
        "reliability": bins,
        "curve": curve,
        "seconds": round(time.time() - started, 1),
        "command": "python -m training.phrases " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2))
    plot(curve, bins, ece_all, lm.name, stem, threshold,
         "word boundaries" if args.positions == "boundaries" else "keystrokes inside words")
    log.info("at threshold %.2f: %s", threshold, json.dumps(at_default))
    if args.write_card and not args.keep_calibration:
        update_card(args.model, {INSIDE_CALIBRATION_KEY if inside else BOUNDARY_CALIBRATION_KEY: {
            **asdict(calibration), "fitted_on": f"{Path(args.fit_corpus or args.corpus).name}:{args.fit_split}",
            "boundaries": len(fit_found), "threshold": threshold}})
        log.info("wrote the calibration into %s", args.model)


if __name__ == "__main__":
    main()

"""What the ghost text types for a writer: keystrokes saved by Tab alone, as the demo page is used.

    python -m training.ghost_typing --model model/artifacts/gru-email.pt \
        --corpus ../shared/data/aeslc-enron-email.jsonl.gz --split test --max-docs 200 --subjects \
        --out docs/results/email/ghost_typing_gru-email.json

``training.phrases`` scores the ghost text one place at a time (coverage, ExactMatch, calibration).
A writer meets it as a sequence: each document is typed character by character, and after every
keystroke (and before the first) the server's own decoder (:func:`model.suggest.suggest`, ``max_words``
5, the served threshold) is asked for its completion. When it shows one and the document goes on with
exactly that text, one Tab inserts it; otherwise the writer types the next character. Nothing else
helps the writer here: no chip is clicked, so these savings are the ghost text's alone. The request is
the page's (``k`` 5), and so is what it shows: no ghost under two characters (``--min-chars``).

* ``ghost_ksr`` = 1 - keystrokes / characters (a Tab is one keystroke);
* ``shown``: keystrokes after which a ghost was showing (a ghost the writer types through is asked
  about again at the next keystroke, so a wrong one that stays up counts at each keystroke it is seen);
* ``tabs``, ``tab_chars``: the ghosts taken (every right one is) and the characters they inserted;
  ``right_when_shown`` = tabs / shown.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from model.artifact import LanguageModel
from model.batching import Decoding, drive_stream
from model.prefix_cache import PrefixStateCache
from model.suggest import DecodeOptions, suggest
from model.text import WORD_CHARS
from training.evaluate import Tally, load_docs, load_named, load_subjects

log = logging.getLogger("training.ghost_typing")

MAX_WORDS = 5  # what the demo page asks for
#: The words the demo page asks for: the next-word search that conditions a phrase inside a word
#: runs to the same depth as the page's, so its ghost text is the page's.
PAGE_K = 5
#: The shortest ghost the demo page shows: a one-character one saves no keystroke (its Tab is one).
PAGE_MIN_CHARS = 2


@dataclass
class GhostScore(Tally):
    """Counts for one document or, summed, for many (see the module docstring)."""

    chars: int = 0
    keystrokes: int = 0
    shown: int = 0
    tabs: int = 0  # the ghosts taken: every right one is
    tab_chars: int = 0


def takes(ghost: str, rest: str) -> bool:
    """The text goes on with exactly ``ghost``, and a ghost that ends inside a word ends it there."""
    if not ghost or not rest.startswith(ghost):
        return False
    after = rest[len(ghost) :]
    return not (after and ghost[-1] in WORD_CHARS and after[0] in WORD_CHARS)


#: Asks for the ghost text to show after a text (what the page would show; "" for none).
Ask = Callable[[str], Decoding[str]]


def served_ghost(lm: LanguageModel, cache: PrefixStateCache, options: DecodeOptions, subject: str = "",
                 scope: str = "") -> Ask:
    """The server's ghost text for the page's request: its completion, shown only at the threshold
    (after a typed space it comes without one: ``model.decoder.typed_part_removed``)."""
    def ask(text: str) -> Decoding[str]:
        result = yield from suggest(lm, text, PAGE_K, MAX_WORDS, cache, options, scope=scope, subject=subject)
        return result.completion[0] if result.completion is not None else ""

    return ask


def at_least(ask: Ask, min_chars: int) -> Ask:
    """``ask``'s ghost text, hidden when shorter than ``min_chars``."""
    def shorter_hidden(text: str) -> Decoding[str]:
        ghost = yield from ask(text)
        return ghost if len(ghost) >= min_chars else ""

    return shorter_hidden


def type_document(doc: str, ask: Ask) -> Decoding[GhostScore]:
    """Type ``doc`` with the ghost text ``ask`` shows (a decoder generator, as the model's are)."""
    score = GhostScore(chars=len(doc))
    pos = 0
    while pos < len(doc):
        ghost = yield from ask(doc[:pos])
        score.keystrokes += 1
        if ghost:
            score.shown += 1
        if takes(ghost, doc[pos:]):
            score.tabs += 1
            score.tab_chars += len(ghost)
            pos += len(ghost)
        else:
            pos += 1
    return score


def evaluate(lm: LanguageModel, docs: list[str], options: DecodeOptions | None = None,
             subjects: dict[str, str] | None = None, batch_docs: int = 64,
             min_chars: int = PAGE_MIN_CHARS) -> dict[str, Any]:
    """The documents typed with the ghost text, batched across documents as the evaluator batches them."""
    options = options or DecodeOptions()
    subjects = subjects or {}
    cache = PrefixStateCache(512 * 1024 * 1024)
    total = GhostScore()
    # Each document is its own cache scope, as each writer is the server's.
    gens = (type_document(d, at_least(served_ghost(lm, cache, options, subjects.get(d, ""), str(i)), min_chars))
            for i, d in enumerate(docs))
    with tqdm(total=len(docs), unit="doc", desc=f"ghost typing {lm.name}", file=sys.stderr, mininterval=5) as bar:
        for _, score in drive_stream(lm.module, gens, width=batch_docs, max_rows=1024):
            total.add(score)
            bar.update(1)
    return summarize(total)


def summarize(total: GhostScore) -> dict[str, Any]:
    return {
        **asdict(total),
        "ghost_ksr": round(1 - total.keystrokes / max(total.chars, 1), 4),
        "right_when_shown": round(total.tabs / total.shown, 4) if total.shown else None,
        "shown_per_keystroke": round(total.shown / max(total.keystrokes, 1), 4),
        "chars_per_tab": round(total.tab_chars / total.tabs, 2) if total.tabs else None,
    }


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-docs", type=int, default=None, help="a seeded sample of this many documents")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=DecodeOptions.completion_threshold,
                        help="the completion threshold (the server's by default)")
    parser.add_argument("--min-chars", type=int, default=PAGE_MIN_CHARS,
                        help="show no ghost shorter than this (the demo page's by default)")
    parser.add_argument("--subjects", action="store_true", help="a model that reads subjects reads each e-mail's")
    parser.add_argument("--precision", choices=("fp16", "fp32"), default="fp16", help="as served by default")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", required=True, help="the JSON results file")
    args = parser.parse_args(argv)
    started = time.time()
    lm = load_named(args.model, args.precision, args.threads)
    docs = load_docs(None, args.corpus, args.split, args.max_docs, args.seed)
    subjects = load_subjects(args.corpus, args.split) if args.subjects else None
    options = DecodeOptions(completion_threshold=args.threshold)
    result = {
        "model": lm.name,
        "corpus": Path(args.corpus).name,
        "split": args.split,
        "docs": len(docs),
        "threshold": args.threshold,
        "max_words": MAX_WORDS,
        "k": PAGE_K,
        "min_chars": args.min_chars,
        "subject_read": bool(subjects) and lm.reads_subject,
        "precision": args.precision,
        **evaluate(lm, docs, options, subjects, min_chars=args.min_chars),
        "seconds": round(time.time() - started, 1),
        "command": "python -m training.ghost_typing " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    log.info("%s", json.dumps(result))


if __name__ == "__main__":
    main()

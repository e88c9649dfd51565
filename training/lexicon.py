"""Build the lexicon an artifact proposes words from, and embed it in the artifact.

    python -m training.lexicon --model model/artifacts/gru-email.pt \
        --corpus ../shared/data/aclImdb_v1.tar.gz --corpus ../shared/data/aeslc-enron-email.jsonl.gz

The lexicon is every word (``WORD_RE``, case-folded) seen at least ``--min-count`` times in the
training split of the corpora the model learnt from. Once is enough by default: on held-out
e-mail, keeping also the words seen once saved more keystrokes than requiring two (the rare
names and terms of a mailbox are words too; docs/models.md, "Known words").
``training.adapt`` adds the user's own words to the base model's lexicon the same way.
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from model.artifact import update_card
from model.lexicon import Lexicon
from model.text import WORD_RE
from training.data import iter_documents

log = logging.getLogger("training.lexicon")

DEFAULT_MIN_COUNT = 1


def count_words(docs: Iterable[str]) -> Counter[str]:
    """Case-folded word counts of ``docs``."""
    counts: Counter[str] = Counter()
    for doc in docs:
        counts.update(w.lower() for w in WORD_RE.findall(doc))
    return counts


def corpus_counts(path: str | Path, split: str = "train", sender: str | None = None) -> Counter[str]:
    """Word counts of one corpus's ``split`` (formats without splits: all of it; see
    :func:`training.data.iter_documents` for ``sender``)."""
    return count_words(iter_documents(path, split=split, sender=sender))


def lexicon_from_counts(counts: Counter[str], min_count: int = DEFAULT_MIN_COUNT) -> Lexicon:
    return Lexicon(w for w, c in counts.items() if c >= min_count)


def corpus_lexicon(paths: Iterable[str | Path], min_count: int = DEFAULT_MIN_COUNT, split: str = "train",
                   sender: str | None = None) -> tuple[Lexicon, dict]:
    """The lexicon of the corpora together, and what the card says of it."""
    paths = [str(p) for p in paths]
    counts: Counter[str] = Counter()
    for path in paths:
        counts.update(corpus_counts(path, split, sender))
    lexicon = lexicon_from_counts(counts, min_count)
    about = {"sources": [Path(p).name for p in paths], "split": split, "min_count": min_count}
    log.info("lexicon: %d of %d distinct words seen >= %d times in %s", len(lexicon), len(counts), min_count,
             ", ".join(about["sources"]))
    return lexicon, about


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model", required=True, help="the artifact to write the lexicon into (rewritten in place)")
    parser.add_argument("--corpus", action="append", required=True, help="a corpus the model learnt from (repeat)")
    parser.add_argument("--split", default="train", help="the corpora's split to read (default: train)")
    parser.add_argument("--min-count", type=int, default=DEFAULT_MIN_COUNT, help="times a word must be seen")
    args = parser.parse_args(argv)
    if args.min_count < 1:
        parser.error("--min-count must be at least 1")
    lexicon, about = corpus_lexicon(args.corpus, args.min_count, args.split)
    card = update_card(args.model, {}, lexicon, about)
    log.info("wrote %s: lexicon %s", args.model, card["lexicon"])


if __name__ == "__main__":
    main()

"""Fit a word n-gram on the training documents of one or more corpora and save it.

Why only fitting: a saved model is scored by ``python -m training.evaluate --model OUT.pkl.gz``,
the evaluator every model goes through, so the n-gram's figures share its definitions.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from training.ngram.estimator import NgramEstimator

log = logging.getLogger(__name__)

_EPILOG = (
    "evaluate the saved model with: python -m training.evaluate --model OUT --corpus CORPUS --split test"
)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    """Fit on the non-validation train docs of ``--corpus`` and save to ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m training.ngram", description=(__doc__ or "").split("\n")[0],
                                     epilog=_EPILOG)
    parser.add_argument("--corpus", required=True, nargs="+",
                        help="corpus path(s) (any training.data format); several are fitted on together")
    parser.add_argument("--out", default="runs/ngram/trigram.pkl.gz", help="model file")
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument("--min-count", type=int, default=2, help="rarer words become <unk>")
    parser.add_argument("--max-docs", type=int, default=None, help="fit on at most N docs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from training.data import is_validation, iter_documents

    out = Path(args.out)
    docs: Iterator[str] = (d for corpus in args.corpus for d in iter_documents(corpus, split="train")
                           if not is_validation(d))
    if args.max_docs is not None:
        docs = islice(docs, args.max_docs)
    # The estimator alone: the query side's indexes are built by whoever loads the file.
    model = NgramEstimator().fit(docs, order=args.order, min_count=args.min_count, progress=True)
    t0 = time.perf_counter()
    model.save(out)
    log.info(
        "saved %s (%.1f MiB) in %.1fs; tables %.0f MiB, peak RSS %.0f MiB",
        out,
        out.stat().st_size / 2**20,
        time.perf_counter() - t0,
        model.nbytes() / 2**20,
        _peak_rss_mib(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

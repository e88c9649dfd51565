"""Word perplexity of artifacts on seeded document samples (cheap: no decoding).

    python -m training.perplexity --models model/artifacts/gru.pt runs/trials/gru-lr4e-3.pt \
        --set imdb_test_200=../shared/data/aclImdb_v1.tar.gz:test:200 \
        --set email_dev_200=../shared/data/aeslc-enron-email.jsonl.gz:dev:200 --out forgetting.json

Word perplexity as :mod:`training.evaluate` defines it (every piece, end of document included,
over whitespace tokens + one per document), on ``N`` documents of ``SPLIT`` sampled with seed 0.
Used to see what an adapted model forgot of its base domain.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from model.artifact import load_artifact
from training.evaluate import load_docs, piece_nll


def word_ppl(path: str, docs: list[str]) -> float:
    lm = load_artifact(path)
    tokens = sum(len(d.split()) + 1 for d in docs)
    return round(math.exp(piece_nll(lm, docs) / tokens), 2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--set", action="append", required=True, help="NAME=CORPUS:SPLIT:DOCS")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sets = {}
    for spec in args.set:
        name, _, rest = spec.partition("=")
        corpus, split, n = rest.rsplit(":", 2)
        sets[name] = load_docs(None, corpus, split, int(n), 0)
    out = {path: {name: word_ppl(path, docs) for name, docs in sets.items()} for path in args.models}
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

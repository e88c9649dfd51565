"""Stage what ``training/gpu_job.sh`` reads on a machine that cannot see ``../shared``.

    python -m training.stage --data-dir runs/imdb8k --corpus ../shared/data/aclImdb_v1.tar.gz --out .device

Copies a corpus prepared by ``training.train`` (the token streams, the train stream xz-compressed
to fit a 64 MB upload, the tokenizer and summary) and writes the evaluation sets as JSONL: the
same seeded samples ``training.evaluate --split test --max-docs N --seed 0`` draws, in the same
order, so results on either side are on the same reviews.

To continue training the bundled models there (``gpu_job.sh`` with ``INIT_FROM``), the corpus
must be tokenised by their tokenizer: ``--tokenizer-from model/artifacts/gru.pt`` prepares
``--data-dir`` with it when the folder is new, and refuses a folder tokenised otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import lzma
import shutil
from pathlib import Path

from model.artifact import load_artifact
from training.corpus import CorpusSpec, check_tokenizer, prepare_corpus
from training.evaluate import load_docs, sample_docs

log = logging.getLogger("training.stage")


def ensure_tokenized_by(data_dir: Path, corpus: str, artifact: Path) -> None:
    """Make ``data_dir`` a corpus prepared with ``artifact``'s tokenizer, or fail saying why."""
    lm = load_artifact(artifact)
    tokenizer = lm.tokenizer.model_proto
    if (data_dir / "summary.json").exists():
        check_tokenizer(data_dir, tokenizer)
        return
    # The vocabulary size the artifact's own run asked for, so its training spec matches this one.
    asked = ((lm.card.get("training") or {}).get("config") or {}).get("vocab_size", lm.tokenizer.vocab_size)
    prepare_corpus(CorpusSpec(path=corpus, vocab_size=asked), data_dir, tokenizer)


def stage(data_dir: Path, corpus: str, out: Path, sizes: tuple[int, ...] = (2000, 200), seed: int = 0,
          tokenizer_from: Path | None = None) -> None:
    if tokenizer_from is not None:
        ensure_tokenized_by(data_dir, corpus, tokenizer_from)
    everything = load_docs(None, corpus, "test", None, seed)  # read the corpus once, before the slow copy
    if len(everything) < max(sizes):  # a smaller "sample" would be all of it, in another order
        raise ValueError(f"{corpus} has {len(everything)} test documents, fewer than the {max(sizes)} "
                         "the evaluation sets need: pass smaller --sizes")
    out.mkdir(parents=True, exist_ok=True)
    with (data_dir / "train.npy").open("rb") as src, lzma.open(out / "train.npy.xz", "wb", preset=3) as dst:
        shutil.copyfileobj(src, dst, 1 << 22)
    for name in ("valid.npy", "tokenizer.model", "summary.json"):
        shutil.copy(data_dir / name, out / name)
    docs = sample_docs(everything, max(sizes), seed)
    for size in sizes:
        # random.sample draws the same first picks for any k here, so each smaller set is a prefix.
        subset = sample_docs(everything, size, seed)
        if subset != docs[:size]:
            raise RuntimeError(f"the {size}-document sample is not a prefix of the {max(sizes)}-document one")
        with (out / f"imdb-test-{size}.jsonl").open("w") as fh:
            for doc in subset:
                fh.write(json.dumps({"text": doc}) + "\n")
    log.info("staged %s (%.1f MB)", out, sum(f.stat().st_size for f in out.iterdir()) / 1e6)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="a corpus folder prepared by training.train")
    parser.add_argument("--corpus", required=True, help="the aclImdb corpus (its test split is sampled)")
    parser.add_argument("--out", default=".device")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tokenizer-from", type=Path,
                        help="an artifact whose tokenizer the corpus must use (prepares --data-dir if new)")
    parser.add_argument("--sizes", default="2000,200",
                        help="evaluation sets to write, in documents (default 2000,200: the job's top-k and ksr sets)")
    args = parser.parse_args(argv)
    try:
        sizes = tuple(int(n) for n in args.sizes.split(","))
    except ValueError:
        parser.error(f"--sizes: comma-separated document counts, got {args.sizes!r}")
    if not sizes or min(sizes) < 1:
        parser.error("--sizes: every count must be >= 1")
    try:
        stage(Path(args.data_dir), args.corpus, Path(args.out), sizes, args.seed, args.tokenizer_from)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))


if __name__ == "__main__":
    main()

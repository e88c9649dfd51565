"""Word-level evaluation: top-k next-word accuracy, word perplexity, keystroke savings.

    python -m training.evaluate --model model/artifacts/gru.pt --corpus ../shared/data/aclImdb_v1.tar.gz \
        --split test --max-docs 2000 --json

Definitions (also in the README):

* word: a match of ``[A-Za-z0-9]+(?:'[A-Za-z]+)?``; every word of a document is a target,
  its context all text of the document before it.
* top-k: the target equals (case-sensitively) one of the k words proposed there. Neural
  models propose through :func:`model.suggest.suggest`, the server's own decoder.
* word_ppl: exp(total NLL of all pieces of the documents, end-of-document included /
  (whitespace-separated tokens + one per document)).
* ksr (k=3): type each document character by character; before each keystroke inside or
  at the start of a word, if the target is among the 3 proposals for the context plus
  the typed fragment, one keystroke accepts it (and its following space).
  ksr = 1 - keystrokes / characters.

The simulation (:func:`document_queries`) does not know what answers it: a neural model
(batched across documents with :func:`model.batching.drive`) or the n-gram baseline.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import random
import sys
import time
from collections.abc import Generator, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from model.artifact import LanguageModel, load_artifact
from model.batching import Decoding, drive_stream
from model.prefix_cache import PrefixStateCache
from model.suggest import DecodeOptions, header_ids, suggest
from model.text import WORD_RE
from training.data import iter_documents, iter_subject_documents

log = logging.getLogger("training.evaluate")

KSR_K = 3


@dataclass(frozen=True)
class Query:
    """Propose words for the text ``context + fragment`` (``context`` ends before the word)."""

    context: str
    fragment: str


class Tally:
    """A dataclass of counts that sums field by field (a document's into a corpus's)."""

    def add(self, other: Tally) -> None:
        for name, value in asdict(other).items():  # type: ignore[call-overload]  # subclasses are dataclasses
            setattr(self, name, getattr(self, name) + value)


@dataclass
class DocScore(Tally):
    """Counts for one document (sums over documents give the corpus figures)."""

    words: int = 0
    top1: int = 0
    top3: int = 0
    chars: int = 0
    keystrokes: int = 0
    queries: int = 0
    proposals: int = 0  # words proposed over all queries
    outside_lexicon: int = 0  # of them, strings outside the model's lexicon (when it has one)


def document_queries(doc: str) -> Generator[Query, list[str], DocScore]:
    """Simulate a person typing ``doc`` with k=3 suggestions; yield a query per keystroke."""
    score = DocScore(chars=len(doc))
    pos = 0
    for match in WORD_RE.finditer(doc):
        start, end, word = match.start(), match.end(), match.group(0)
        score.words += 1
        if start < pos:  # already consumed by an accepted suggestion (cannot happen for words)
            continue
        score.keystrokes += start - pos  # separators typed by hand
        pos = end
        for typed in range(len(word)):
            proposals = yield Query(doc[:start], word[:typed])
            score.queries += 1
            if typed == 0:
                score.top1 += int(bool(proposals) and proposals[0] == word)
                score.top3 += int(word in proposals[:3])
            if word in proposals[:KSR_K]:
                score.keystrokes += 1
                if end < len(doc) and doc[end] == " ":
                    pos = end + 1
                break
            score.keystrokes += 1
    score.keystrokes += len(doc) - pos
    return score


# ---------------------------------------------------------------------------- neural model
def _neural_document(
    lm: LanguageModel, doc: str, cache: PrefixStateCache, options: DecodeOptions, ksr: bool, subject: str = ""
) -> Decoding[DocScore]:
    queries = document_queries(doc)
    query = next(queries)
    shown = outside = 0
    while True:
        result = yield from suggest(lm, query.context + query.fragment, KSR_K, 0, cache, options, subject=subject)
        proposals = [word for word, _ in result.suggestions]
        shown += len(proposals)
        if lm.lexicon is not None:
            outside += sum(word not in lm.lexicon for word in proposals)
        try:
            query = queries.send(proposals)
            while not ksr and query.fragment:  # top-k only: skip the keystroke queries
                query = queries.send([])
        except StopIteration as stop:
            score: DocScore = stop.value
            score.proposals, score.outside_lexicon = shown, outside
            return score


@torch.no_grad()
def piece_nll(lm: LanguageModel, docs: list[str], batch: int = 16, window: int = 128,
              subjects: dict[str, str] | None = None) -> float:
    """Total NLL (nats) of every piece of every document, its end-of-document token included.

    Documents of similar length are batched and read ``window`` pieces at a time, carrying the
    state: memory stays at batch x window x vocabulary however long a review is (all at once,
    a batch of 2,500-piece reviews held 1.3 GB of logits). With ``subjects`` (document ->
    subject) a model that reads subjects reads its document's first; only the document is scored.
    """
    heads = [header_ids(lm, (subjects or {}).get(d, "")) for d in docs]
    seqs = [[*head, *lm.tokenizer.encode(d), lm.eos_id] for head, d in zip(heads, docs, strict=True)]
    firsts = [len(head) for head in heads]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    total = 0.0
    for start in range(0, len(order), batch):
        group = [seqs[i] for i in order[start : start + batch]]
        width = max(len(s) for s in group)
        tokens = torch.zeros(len(group), width, dtype=torch.long)
        for row, s in enumerate(group):
            tokens[row, : len(s)] = torch.tensor(s)
        lengths = torch.tensor([len(s) for s in group]).unsqueeze(1)
        scored_from = torch.tensor([firsts[i] for i in order[start : start + batch]]).unsqueeze(1)
        state = lm.module.init_state(len(group))
        for t0 in range(0, width - 1, window):
            inputs = tokens[:, t0 : min(t0 + window, width - 1)]
            targets = tokens[:, t0 + 1 : t0 + 1 + inputs.size(1)]
            logits, state = lm.module.forward(inputs, state)
            nll = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view_as(targets)
            where = torch.arange(t0 + 1, t0 + 1 + inputs.size(1)).unsqueeze(0)
            real = (where < lengths) & (where >= scored_from)  # the document's pieces: not padding, not its header
            total += float(nll[real].sum())
    return total


def evaluate_neural(
    lm: LanguageModel, docs: list[str], batch_docs: int = 64, ksr: bool = True, options: DecodeOptions | None = None,
    bar_position: int = 0, subjects: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Top-k, perplexity and keystroke savings of ``lm``; ``subjects`` maps a document to its e-mail's subject."""
    subjects = subjects or {}
    options = options or DecodeOptions()
    cache = PrefixStateCache(512 * 1024 * 1024)  # LRU: finished documents' entries age out
    total = DocScore()
    started = time.time()
    with tqdm(total=len(docs), unit="doc", desc=f"eval {lm.name}", file=sys.stderr, mininterval=5,
              position=bar_position) as bar:
        # batch_docs documents in flight; the next starts as soon as one is done.
        gens = (_neural_document(lm, d, cache, options, ksr, subjects.get(d, "")) for d in docs)
        for _, score in drive_stream(lm.module, gens, width=batch_docs, max_rows=1024):
            total.add(score)
            bar.update(1)
    nll = piece_nll(lm, docs, subjects=subjects)
    summary = _summary(lm.name, docs, total, nll, time.time() - started, ksr)
    return {**summary, "beam": options.beam, "context_pieces": options.context_pieces,
            "known_words": options.known_words and lm.lexicon is not None,
            "subject_read": bool(subjects) and lm.reads_subject}


# ---------------------------------------------------------------------------- n-gram peer
def evaluate_predictor(name: str, predictor: Any, docs: list[str], ksr: bool = True,
                       bar_position: int = 0) -> dict[str, Any]:
    """Score any object with ``predict(context, fragment, k)`` and ``doc_nll(doc)``."""
    total = DocScore()
    nll = 0.0
    started = time.time()
    for doc in tqdm(docs, unit="doc", desc=f"eval {name}", file=sys.stderr, mininterval=5, position=bar_position):
        queries = document_queries(doc)
        try:
            query = next(queries)
            while True:
                if not ksr and query.fragment:
                    query = queries.send([])
                    continue
                proposals = [w for w, _ in predictor.predict(query.context, query.fragment, KSR_K)]
                query = queries.send(proposals)
        except StopIteration as stop:
            total.add(stop.value)
        nll += predictor.doc_nll(doc)[0]
    return _summary(name, docs, total, nll, time.time() - started, ksr)


def _summary(name: str, docs: list[str], total: DocScore, nll: float, seconds: float, ksr: bool) -> dict[str, Any]:
    ws_tokens = sum(len(d.split()) + 1 for d in docs)
    return summarize(name, len(docs), ws_tokens, total, nll, seconds, ksr)


def summarize(
    name: str, docs: int, ws_tokens: int, total: DocScore, nll: float, seconds: float, ksr: bool
) -> dict[str, Any]:
    """The reported figures, plus the raw sums that let shards be merged exactly."""
    return {
        "model": name,
        "docs": docs,
        "words": total.words,
        "top1": round(total.top1 / max(total.words, 1), 4),
        "top3": round(total.top3 / max(total.words, 1), 4),
        "word_ppl": round(math.exp(nll / max(ws_tokens, 1)), 2),
        "ksr": round(1 - total.keystrokes / max(total.chars, 1), 4) if ksr else None,
        "queries": total.queries,
        # Share of proposals the model's lexicon does not hold (0 when the decoder keeps to it).
        "outside_lexicon": round(total.outside_lexicon / max(total.proposals, 1), 4),
        "seconds": round(seconds, 1),
        "sums": {**asdict(total), "nll": nll, "ws_tokens": ws_tokens},
    }


def merge_results(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine the results of disjoint shards (``--shard I/N``) into the whole set's figures."""
    if not results:
        raise ValueError("nothing to merge")
    names = {r["model"] for r in results}
    ksr_flags = {r["ksr"] is not None for r in results}
    if len(names) != 1 or len(ksr_flags) != 1:
        raise ValueError(f"shards disagree on model or ksr: {sorted(names)}")
    total, nll, ws_tokens = DocScore(), 0.0, 0
    for r in results:
        sums = dict(r["sums"])
        nll += sums.pop("nll")
        ws_tokens += sums.pop("ws_tokens")
        total.add(DocScore(**sums))
    merged = summarize(results[0]["model"], sum(r["docs"] for r in results), ws_tokens, total, nll,
                       max(r["seconds"] for r in results), ksr_flags.pop())
    # How the figures were made: shards must agree.
    for setting in ("precision", "beam", "context_pieces", "known_words", "subject_read"):
        values = {r.get(setting) for r in results}
        if len(values) != 1:
            raise ValueError(f"shards disagree on {setting}: {sorted(map(str, values))}")
        if values != {None}:
            merged[setting] = values.pop()
    if "source" in results[0]:
        merged["source"] = {**results[0]["source"], "shard": None, "merged_shards": len(results)}
    return merged


def shard(docs: list[str], spec: str | None) -> list[str]:
    """``I/N``: every N-th document starting at I (0-based); shards of one list are disjoint."""
    if not spec:
        return docs
    try:
        index, count = (int(x) for x in spec.split("/"))
    except ValueError:
        raise ValueError(f"--shard wants I/N, got {spec!r}") from None
    if not 0 <= index < count:
        raise ValueError(f"--shard {spec}: need 0 <= I < N")
    return docs[index::count]


# ---------------------------------------------------------------------------- CLI
def load_docs(text: str | None, corpus: str | None, split: str, max_docs: int | None, seed: int) -> list[str]:
    """Documents to evaluate: all of them, or a seeded random sample of ``max_docs``."""
    if text:
        docs = list(iter_documents(text, fmt="text"))
    else:
        docs = list(iter_documents(corpus, split=split))  # type: ignore[arg-type]
    return sample_docs(docs, max_docs, seed)


def load_subjects(corpus: str, split: str) -> dict[str, str]:
    """Each e-mail's subject (as typed, not yet a subject line) by its text (the corpus's texts are unique)."""
    return {doc: subject for subject, doc in iter_subject_documents(corpus, split) if subject}


def sample_docs(docs: list[str], max_docs: int | None, seed: int) -> list[str]:
    """The seeded sample :func:`load_docs` draws (all documents when there are few enough)."""
    if max_docs is not None and max_docs < len(docs):
        return random.Random(seed).sample(docs, max_docs)
    return docs


def load_named(model_path: str, precision: str = "fp32", threads: int | None = None) -> LanguageModel:
    """The artifact at ``model_path``, named by its file (as results name it), on ``threads`` torch threads."""
    if threads:
        torch.set_num_threads(threads)
    lm = load_artifact(model_path, precision=precision)
    lm.name = Path(model_path).stem
    return lm


def evaluate_path(
    model_path: str, docs: Iterable[str], batch_docs: int = 64, ksr: bool = True, precision: str = "fp32",
    threads: int | None = None, bar_position: int = 0, beam: int | None = None,
    context_pieces: int = DecodeOptions.context_pieces, known_words: bool = DecodeOptions.known_words,
    subjects: dict[str, str] | None = None,
) -> dict[str, Any]:
    if threads:
        torch.set_num_threads(threads)
    docs = list(docs)
    if model_path.endswith((".pkl", ".pkl.gz")):
        from training.ngram import NgramModel

        return evaluate_predictor(f"ngram:{Path(model_path).name}", NgramModel.load(model_path), docs, ksr,
                                  bar_position)
    lm = load_named(model_path, precision)
    options = DecodeOptions(beam=beam or DecodeOptions.beam, context_pieces=context_pieces, known_words=known_words)
    result = evaluate_neural(lm, docs, batch_docs, ksr, options, bar_position=bar_position, subjects=subjects)
    return {**result, "precision": lm.precision}


def evaluate_parallel(
    model_path: str, docs: list[str], jobs: int, batch_docs: int = 64, ksr: bool = True, precision: str = "fp32",
    threads: int | None = None, beam: int | None = None, context_pieces: int = DecodeOptions.context_pieces,
    known_words: bool = DecodeOptions.known_words, subjects: dict[str, str] | None = None,
) -> dict[str, Any]:
    """:func:`evaluate_path` over ``jobs`` worker processes, one shard each, merged exactly.

    The decoder is mostly single-threaded Python between small model calls, so a second
    core helps far more as a second process than as a second torch thread.
    """
    jobs = max(1, min(jobs, len(docs)))
    if jobs == 1:
        return evaluate_path(model_path, docs, batch_docs, ksr, precision, threads, beam=beam,
                             context_pieces=context_pieces, known_words=known_words, subjects=subjects)
    context = multiprocessing.get_context("spawn")  # no forked torch thread pools
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [pool.submit(evaluate_path, model_path, part, batch_docs, ksr, precision, threads or 1, i, beam,
                               context_pieces, known_words, {d: subjects[d] for d in part if d in subjects}
                               if subjects else None)
                   for i, part in enumerate(balanced_shards(docs, jobs))]
        return merge_results([f.result() for f in futures])


def balanced_shards(docs: list[str], count: int) -> list[list[str]]:
    """Split ``docs`` into ``count`` disjoint parts of about equal total length (longest first,
    each to the lightest part): the work is per character typed, and every-N-th shards of
    reviews differing 10x in length left one process idle for a third of the run."""
    parts: list[list[str]] = [[] for _ in range(count)]
    loads = [0] * count
    for doc in sorted(docs, key=len, reverse=True):
        lightest = loads.index(min(loads))
        parts[lightest].append(doc)
        loads[lightest] += len(doc)
    return parts


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model", help="artifact (.pt) or n-gram (.pkl.gz)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="plain-text file, one document per line")
    source.add_argument("--corpus", help="any other supported corpus (format detected)")
    source.add_argument("--merge", nargs="+", metavar="JSON", help="merge shard results instead of evaluating")
    parser.add_argument("--split", default="test", help="aclImdb split (default: test)")
    parser.add_argument("--max-docs", type=int, help="evaluate a seeded random sample of N documents")
    parser.add_argument("--seed", type=int, default=0, help="sample seed (default 0)")
    parser.add_argument("--shard", help="I/N: evaluate every N-th sampled document from I (merge with --merge)")
    parser.add_argument("--batch-docs", type=int, default=64, help="documents decoded together")
    parser.add_argument("--threads", type=int, help="torch threads (per process with --jobs; default 1 there)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes, each on its own shard, merged exactly (e.g. one per core)")
    parser.add_argument("--no-ksr", action="store_true", help="skip keystroke savings (faster)")
    parser.add_argument("--beam", type=int, help=f"next-word beam width (default {DecodeOptions.beam}, the server's)")
    parser.add_argument("--context-pieces", type=int, default=DecodeOptions.context_pieces,
                        help="read at most the last N context pieces, cut at a word (0: all; the server's setting)")
    parser.add_argument("--all-words", action="store_true",
                        help="propose any string the pieces spell, not only the model's lexicon (the server's default)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16"],
                        help="weights as the server would hold them (fp16: the artifact's serving form, the default)")
    parser.add_argument("--subjects", action="store_true",
                        help="a model that reads subjects reads each e-mail's subject first (e-mail corpora)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--out", help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    if args.merge:
        try:
            result = merge_results([json.loads(Path(p).read_text()) for p in args.merge])
        except ValueError as exc:  # shards of different runs: say so, no traceback
            parser.error(str(exc))
    else:
        if not args.model:
            parser.error("--model is required unless --merge is given")
        if args.jobs < 1:  # before reading the corpus: bad flags fail at once
            parser.error("--jobs must be >= 1")
        if args.beam is not None and args.beam < 1:
            parser.error("--beam must be >= 1")
        if args.subjects and not args.corpus:
            parser.error("--subjects reads a --corpus of e-mails (JSON lines with a 'subject', mbox, maildir)")
        try:
            docs = shard(load_docs(args.text, args.corpus, args.split, args.max_docs, args.seed), args.shard)
            subjects = load_subjects(args.corpus, args.split) if args.subjects else None
        except ValueError as exc:
            parser.error(str(exc))
        result = evaluate_parallel(args.model, docs, args.jobs, args.batch_docs, not args.no_ksr, args.precision,
                                   args.threads, args.beam, args.context_pieces, not args.all_words, subjects)
        result["source"] = {"path": args.text or args.corpus, "split": args.split, "max_docs": args.max_docs,
                            "seed": args.seed, "shard": args.shard, "subjects": args.subjects}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>10}: {value}")


if __name__ == "__main__":
    main()

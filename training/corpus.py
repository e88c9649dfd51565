"""Turn a corpus into a SentencePiece tokenizer and cached token streams for training.

The prepared corpus lives in one folder (``runs/<name>/data`` by default):
``tokenizer.model``, ``train.npy``/``valid.npy`` (uint16/int32 piece ids, one EOS before
every document) and ``summary.json`` (documents, words, pieces, skips, source). Preparing
is deterministic, and an existing folder is reused, so GRU and LSTM runs share exactly
the same tokenizer and token stream.
"""

from __future__ import annotations

import json
import logging
import random
import time
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import sentencepiece as spm

from model.text import subject_line
from training.data import ReadStats, is_validation, iter_documents, iter_subject_documents

log = logging.getLogger(__name__)

EOS_ID = 2


@dataclass
class CorpusSpec:
    """Where the text comes from and how it is tokenised."""

    path: str
    fmt: str | None = None
    split: str = "train"
    blank_line_docs: bool = False
    max_docs: int | None = None
    vocab_size: int = 8000
    tokenizer_sample_docs: int = 40000
    valid_per_mille: int = 10
    # A corpus with its own validation split (the e-mail corpus's ``dev``): every document of
    # ``split`` trains, every one of ``valid_split`` validates, and the training documents are
    # shuffled (seeded) so that no stretch of the stream is one author's mail.
    valid_split: str | None = None
    # Documents of another corpus mixed into the training text (e.g. reviews, so that a model
    # adapted to e-mail keeps some of what it knew); chosen by content hash, deterministically.
    mix_path: str | None = None
    mix_docs: int = 0
    shuffle_seed: int = 0
    sender: str | None = None  # mbox/maildir: only messages from these addresses (one's own mail)
    # E-mails per thousand (by content hash) read with their subject line just before the body
    # (mbox, maildir, JSON lines with a ``subject``): the model learns to use a subject and to do without one.
    subject_per_mille: int = 0


def _read_documents(spec: CorpusSpec, stats: ReadStats) -> tuple[list[list[str]], list[list[str]]]:
    """(train, valid) documents as ``spec`` defines them, each as the documents the stream holds for it.

    With ``subject_per_mille`` a chosen e-mail's subject line is a document of its own placed
    just before its body, so the stream reads EOS, subject line, EOS, body: the served context.
    """
    train_units: list[list[str]] = []
    valid_units: list[list[str]] = []
    for i, unit in enumerate(_units(spec, spec.split, stats, spec.sender)):
        if spec.max_docs is not None and i >= spec.max_docs:
            break
        if spec.valid_split is not None:
            train_units.append(unit)
        else:
            (valid_units if is_validation(unit[-1], spec.valid_per_mille) else train_units).append(unit)
    if spec.valid_split is not None:
        valid_units = list(islice(_units(spec, spec.valid_split, ReadStats()), spec.max_docs))
    if spec.mix_path and spec.mix_docs > 0:
        train_units.extend([doc] for doc in mixed_documents(spec.mix_path, spec.mix_docs))
    if spec.valid_split is not None or spec.mix_docs:
        random.Random(spec.shuffle_seed).shuffle(train_units)
    return train_units, valid_units


def _units(spec: CorpusSpec, split: str, stats: ReadStats, sender: str | None = None) -> Iterator[list[str]]:
    """Each document of ``split`` as the documents the stream holds for it: [body] or [subject line, body]."""
    if not spec.subject_per_mille:
        for doc in iter_documents(spec.path, spec.fmt, split, spec.blank_line_docs, stats, sender):
            yield [doc]
        return
    for subject, doc in iter_subject_documents(spec.path, split, stats, sender):
        line = subject_line(subject)
        with_subject = line and zlib.crc32(doc.encode("utf-8")) % 1000 < spec.subject_per_mille
        yield [line, doc] if with_subject else [doc]


def mixed_documents(path: str, count: int) -> list[str]:
    """``count`` training documents of ``path``, spread over the corpus (every n-th by content hash).

    The hash picks about ``3 * count`` per 75,000 documents (the size of the review corpus's train
    split), then the first ``count`` are kept, so the choice does not follow the archive's order.
    """
    per_million = max(1, min(1_000_000, 3 * count * 1_000_000 // 75_000))
    chosen: list[str] = []
    for doc in iter_documents(path, split="train"):
        if zlib.crc32(doc.encode("utf-8")) % 1_000_000 < per_million and not is_validation(doc):
            chosen.append(doc)
            if len(chosen) >= count:
                break
    return chosen


def train_tokenizer(docs: list[str], vocab_size: int, model_path: Path, seed: int = 0) -> None:
    """SentencePiece unigram model: byte fallback (no <unk> ever), case kept, digits split."""
    sample = list(docs)
    random.Random(seed).shuffle(sample)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sample),
        model_prefix=str(model_path.with_suffix("")),
        vocab_size=vocab_size,
        model_type="unigram",
        byte_fallback=True,
        split_digits=True,
        character_coverage=0.9995,
        normalization_rule_name="identity",
        remove_extra_whitespaces=True,
        unk_id=0,
        bos_id=1,
        eos_id=EOS_ID,
        pad_id=-1,
        input_sentence_size=len(sample),
        max_sentence_length=1 << 16,
        num_threads=2,
        minloglevel=2,
        hard_vocab_limit=False,  # tiny corpora get a smaller vocabulary, not an error
    )


def encode_documents(sp: spm.SentencePieceProcessor, docs: list[str]) -> np.ndarray:
    """One flat stream: EOS, doc 1 pieces, EOS, doc 2 pieces, ... (EOS doubles as BOS)."""
    dtype = np.uint16 if sp.get_piece_size() < 65536 else np.int32
    pieces = sp.encode(docs)
    total = sum(len(p) + 1 for p in pieces)
    out = np.empty(total, dtype=dtype)
    pos = 0
    for ids in pieces:
        out[pos] = EOS_ID
        out[pos + 1 : pos + 1 + len(ids)] = ids
        pos += len(ids) + 1
    return out


def check_tokenizer(out_dir: Path, tokenizer: bytes) -> None:
    """Refuse a prepared corpus folder whose text was tokenised by another tokenizer."""
    if (out_dir / "tokenizer.model").read_bytes() != tokenizer:
        raise ValueError(
            f"{out_dir} was tokenised with another tokenizer than the weights to continue from; "
            "pick another --data-dir (a new one is prepared with the weights' own tokenizer)"
        )


def prepare_corpus(spec: CorpusSpec, out_dir: Path, tokenizer: bytes | None = None) -> dict:
    """Read, split, train the tokenizer and encode; reuse ``out_dir`` when already done.

    ``tokenizer`` (a SentencePiece model's bytes) is used instead of training one: a run that
    continues from existing weights must read its text through the pieces those weights know.
    A folder prepared with another tokenizer is refused rather than silently mixed.
    """
    summary_path = out_dir / "summary.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        # A field added since the folder was prepared reads as its default there.
        stored = {**asdict(CorpusSpec(path=spec.path)), **(summary.get("spec") or {})}
        if stored != asdict(spec):
            raise ValueError(f"{out_dir} holds a corpus prepared from another spec; pick another folder")
        if tokenizer is not None:
            check_tokenizer(out_dir, tokenizer)
        return summary
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    stats = ReadStats()
    train_units, valid_units = _read_documents(spec, stats)
    train_docs = [doc for unit in train_units for doc in unit]
    valid_docs = [doc for unit in valid_units for doc in unit]
    if not train_docs or not valid_docs:
        raise ValueError(
            f"{spec.path}: {len(train_units)} training and {len(valid_units)} validation documents; "
            "need at least one of each"
        )
    log.info("read %d train / %d valid documents", len(train_docs), len(valid_docs))
    model_path = out_dir / "tokenizer.model"
    if tokenizer is None:
        train_tokenizer(train_docs[: spec.tokenizer_sample_docs], spec.vocab_size, model_path)
    else:
        model_path.write_bytes(tokenizer)
    sp = spm.SentencePieceProcessor(model_file=str(model_path))
    summary: dict = {"spec": asdict(spec), "skipped": stats.skipped, "vocab_size": sp.get_piece_size(),
                     "tokenizer": "trained" if tokenizer is None else "given"}
    for name, units in (("train", train_units), ("valid", valid_units)):
        docs_ = [doc for unit in units for doc in unit]
        stream = encode_documents(sp, docs_)
        np.save(out_dir / f"{name}.npy", stream)
        summary[name] = {
            "docs": len(units),
            "words": sum(len(d.split()) for d in docs_),
            "pieces": int(stream.size),
        }
        if spec.subject_per_mille:
            summary[name]["with_subject"] = sum(len(unit) == 2 for unit in units)
    summary["prepare_seconds"] = round(time.time() - started, 1)
    summary_path.write_text(json.dumps(summary, indent=2))
    log.info("prepared corpus in %s: %s", out_dir, summary)
    return summary

"""Corpus readers: every supported input format becomes a stream of normalised documents.

Formats (detected from the path, or forced with ``fmt``):

* ``aclimdb``: the Large Movie Review Dataset, as its folder or straight from the
  ``.tar.gz`` (no extraction); ``split`` picks ``train`` (pos+neg+unsup) or ``test``.
* ``text``: plain text, one document per line, or (``blank_line_docs=True``) documents
  separated by blank lines.
* ``jsonl``: one JSON object per line with a ``text`` field, optionally gzip-compressed
  (``.jsonl.gz``); records that carry a ``split`` field (the AESLC e-mail corpus: ``train``,
  ``dev``, ``test``) are filtered by ``split``, records without one are always read.
* ``mbox`` / ``maildir``: e-mail; only the author's own body text is kept
  (see :mod:`training.email_text`).

Bad input never crashes deep in training: a missing path or an unreadable/binary file
raises :class:`CorpusError` with a clear message up front; a single bad record (invalid
JSON, undecodable bytes, an empty document) is counted in :class:`ReadStats` and skipped.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from model.text import normalize_text

log = logging.getLogger(__name__)

FORMATS = ("aclimdb", "text", "jsonl", "mbox", "maildir")
# An mbox starts with a "From <sender> <date>" line followed by a header line: plain
# text that merely begins with the word "From" must not be read as e-mail.
_MBOX_FROM_RE = re.compile(rb"From \S+ [^\r\n]*\d{4}\r?\n[!-9;-~]+:")
_ACLIMDB_SPLITS = {"train": ("train/pos", "train/neg", "train/unsup"), "test": ("test/pos", "test/neg")}


class CorpusError(ValueError):
    """The corpus cannot be read at all (missing, empty, binary, unknown format)."""


@dataclass
class ReadStats:
    """What a read produced and what it skipped, and why."""

    docs: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())


def detect_format(path: Path) -> str:
    """Guess the format of ``path`` from its name and layout."""
    name = path.name.lower()
    if path.is_dir():
        if (path / "train").is_dir() or (path / "test").is_dir() or (path / "aclImdb").is_dir():
            return "aclimdb"
        if (path / "cur").is_dir() and (path / "new").is_dir():
            return "maildir"
        raise CorpusError(f"{path}: a folder that is neither an aclImdb nor a maildir layout")
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return "aclimdb"
    if name.endswith((".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")):
        return "jsonl"
    if name.endswith((".mbox", ".mbx")) or name == "mbox":
        return "mbox"
    with path.open("rb") as fh:
        head = fh.read(1024)
    if _MBOX_FROM_RE.match(head):
        return "mbox"
    return "text"


def _check_path(path: Path) -> None:
    if not path.exists():
        raise CorpusError(f"{path}: no such file or folder")
    if path.is_file():
        if path.stat().st_size == 0:
            raise CorpusError(f"{path}: the file is empty")
        with path.open("rb") as fh:
            head = fh.read(4096)
        is_archive = head[:2] == b"\x1f\x8b" or path.name.endswith(".tar")  # gzip or tar
        if b"\x00" in head and not is_archive:
            raise CorpusError(f"{path}: looks binary (NUL bytes), not text")


def _decode(raw: bytes, stats: ReadStats) -> str | None:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        stats.skip("undecodable")
        return None


def _emit(text: str | None, stats: ReadStats) -> str | None:
    if text is None:
        return None
    doc = normalize_text(text)
    if not doc:
        stats.skip("empty")
        return None
    stats.docs += 1
    return doc


def _aclimdb_member_split(name: str) -> str | None:
    """'aclImdb/train/unsup/123_0.txt' -> 'train/unsup' (None for anything else)."""
    parts = name.split("/")
    if len(parts) < 3 or not parts[-1].endswith(".txt"):
        return None
    return "/".join(parts[-3:-1])


def read_aclimdb(path: Path, split: str, stats: ReadStats) -> Iterator[str]:
    """Reviews of ``split`` in a fixed order (archive order / sorted file names)."""
    if split not in _ACLIMDB_SPLITS:
        raise CorpusError(f"aclImdb split must be one of {sorted(_ACLIMDB_SPLITS)}, got {split!r}")
    wanted = set(_ACLIMDB_SPLITS[split])
    if path.is_dir():
        root = path / "aclImdb" if (path / "aclImdb").is_dir() else path
        for sub in _ACLIMDB_SPLITS[split]:
            folder = root / sub
            if not folder.is_dir():
                continue
            for file in sorted(folder.glob("*.txt")):
                doc = _emit(_decode(file.read_bytes(), stats), stats)
                if doc is not None:
                    yield doc
        return
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if not member.isfile() or _aclimdb_member_split(member.name) not in wanted:
                    continue
                fh = tar.extractfile(member)
                if fh is None:
                    continue
                doc = _emit(_decode(fh.read(), stats), stats)
                if doc is not None:
                    yield doc
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise CorpusError(f"{path}: not a readable tar archive ({exc})") from exc


def read_text(path: Path, stats: ReadStats, blank_line_docs: bool = False) -> Iterator[str]:
    """One document per line, or per blank-line-separated paragraph block."""
    with path.open("rb") as fh:
        if not blank_line_docs:
            for raw in fh:
                if not raw.strip():
                    continue
                doc = _emit(_decode(raw, stats), stats)
                if doc is not None:
                    yield doc
            return
        block: list[bytes] = []
        for raw in [*fh, b"\n"]:
            if raw.strip():
                block.append(raw)
                continue
            if block:
                doc = _emit(_decode(b"".join(block), stats), stats)
                block = []
                if doc is not None:
                    yield doc


def open_maybe_gzip(path: Path) -> IO[bytes]:
    """The file's bytes, gunzipped when it starts with the gzip magic."""
    with path.open("rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else path.open("rb")


def _jsonl_records(path: Path, stats: ReadStats, split: str | None) -> Iterator[dict]:
    """Each JSON object of the file (of ``split`` when a record has one); bad lines counted and skipped."""
    with open_maybe_gzip(path) as fh:
        for raw in fh:
            if not raw.strip():
                continue
            line = _decode(raw, stats)
            if line is None:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                stats.skip("bad_json")
                continue
            if not isinstance(record, dict):
                stats.skip("no_text_field")
                continue
            if split is not None and record.get("split", split) != split:
                continue
            yield record


def read_jsonl(path: Path, stats: ReadStats, field_name: str = "text", split: str | None = None) -> Iterator[str]:
    """The ``text`` field of each JSON line; malformed lines are counted and skipped.

    A record with a ``split`` field is read only when it equals ``split`` (``None`` reads all).
    """
    for _, doc in read_jsonl_subjects(path, stats, field_name, split):
        yield doc


def read_jsonl_subjects(
    path: Path, stats: ReadStats, field_name: str = "text", split: str | None = None
) -> Iterator[tuple[str, str]]:
    """(subject, document) of each JSON line: its ``subject`` normalised, or "" without one."""
    for record in _jsonl_records(path, stats, split):
        value = record.get(field_name)
        if not isinstance(value, str):
            stats.skip("no_text_field")
            continue
        doc = _emit(value, stats)
        if doc is not None:
            subject = record.get("subject")
            yield (normalize_text(subject) if isinstance(subject, str) else ""), doc


def iter_subject_documents(path: str | os.PathLike[str], split: str = "train", stats: ReadStats | None = None,
                           sender: str | None = None) -> Iterator[tuple[str, str]]:
    """(subject, document) pairs of an e-mail corpus (the subject normalised, "" where it has none).

    The subject as a person typed it: :func:`model.text.subject_line` makes it the line a model reads.

    JSON lines with a ``subject`` field (their ``split``), or an mbox or maildir (each message's
    ``Subject:``; ``sender`` as for :func:`iter_documents`).
    """
    path = Path(path)
    _check_path(path)
    fmt = detect_format(path)
    if fmt not in ("jsonl", "mbox", "maildir"):
        raise CorpusError(f"{path}: subjects are read from e-mail corpora (JSON lines with a 'subject', mbox, "
                          f"maildir), not {fmt}")
    stats = stats if stats is not None else ReadStats()
    if fmt == "jsonl":
        yield from read_jsonl_subjects(path, stats, split=split)
    else:
        yield from _mail_documents(path, fmt, stats, sender)
    if stats.total_skipped:
        log.warning("%s: skipped %d records %s", path, stats.total_skipped, stats.skipped)


def _mail_documents(path: Path, fmt: str, stats: ReadStats, sender: str | None) -> Iterator[tuple[str, str]]:
    """(subject, document) of each message of an mbox or maildir (from ``sender``, if given)."""
    from training.email_text import read_maildir, read_mbox, senders_of

    reader = read_mbox if fmt == "mbox" else read_maildir
    for subject, body in reader(path, stats, senders_of(sender)):
        doc = _emit(body, stats)
        if doc is not None:
            yield normalize_text(subject), doc


def iter_documents(
    path: str | os.PathLike[str],
    fmt: str | None = None,
    split: str = "train",
    blank_line_docs: bool = False,
    stats: ReadStats | None = None,
    sender: str | None = None,
) -> Iterator[str]:
    """Normalised documents of any supported corpus (see the module docstring).

    ``sender`` (mbox and maildir only: addresses, comma-separated) keeps the messages whose
    ``From:`` is one of them: one's own mail out of a whole-mailbox export.
    """
    path = Path(path)
    _check_path(path)
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise CorpusError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    if sender and fmt not in ("mbox", "maildir"):
        raise CorpusError(f"{path}: a sender filter applies to mbox and maildir corpora, not {fmt}")
    stats = stats if stats is not None else ReadStats()
    if fmt == "aclimdb":
        yield from read_aclimdb(path, split, stats)
    elif fmt == "text":
        yield from read_text(path, stats, blank_line_docs)
    elif fmt == "jsonl":
        yield from read_jsonl(path, stats, split=split)
    else:
        for _, doc in _mail_documents(path, fmt, stats, sender):
            yield doc
    if stats.total_skipped:
        log.warning("%s: skipped %d records %s", path, stats.total_skipped, stats.skipped)


def is_validation(doc: str, per_mille: int = 10) -> bool:
    """Deterministic train/validation split by document content (CRC32), ~1% by default."""
    return zlib.crc32(doc.encode("utf-8")) % 1000 < per_mille


def split_documents(docs: Iterable[str], per_mille: int = 10) -> tuple[list[str], list[str]]:
    """(train, validation) lists, split by :func:`is_validation`."""
    train: list[str] = []
    valid: list[str] = []
    for doc in docs:
        (valid if is_validation(doc, per_mille) else train).append(doc)
    return train, valid

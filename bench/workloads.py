"""Request plans for the open-loop load generator: *what* to send and *when*.

A plan is a list of :class:`PlannedRequest`, sorted by intended send time, fixed before
the first request goes out. Fixing it up front is what makes the generator open-loop:
no response (or missing response) can change when later requests are sent.

Workloads, all drawn from held-out documents:

* ``cold``: a random 5-40-word prefix of a document, ending at a word boundary with a
  trailing space (the user has just finished a word), ``k=3``, ``max_words=0``.
* ``phrase``: the same kind of prefix with ``max_words=5`` (phrase completion).
* ``cold-long``: a document's first ~1,500 characters, cut after a word (an editor sending
  a window of the text so far); documents shorter than that are skipped.
* ``typing``: ``typists`` simulated users each type a document character by character;
  every keystroke is one request whose text is the previous keystroke's text plus one
  character, so word-fragment completion is exercised naturally. By default
  (``typing_start="prefix"``) a typist's text box already holds a 5-40-word prefix of the
  document (the cold workload's contexts: someone typing on in the middle of a text);
  ``"empty"`` starts every document from an empty box, which in a 5-15 s run measures only
  the first few words of every document (the start-up transient of typing, not its steady
  state). Each typist waits a
  uniform 150-300 ms between keystrokes (mean 225 ms, ~4.44 keystrokes/s), and the
  typists' schedules are merged. The request rate is therefore *set by the number of
  typists* (about ``4.44 * typists`` req/s); ``rate`` and ``arrivals`` do not apply.
  Use :func:`typists_for_rate` to pick a typist count for a target rate.

``cold`` and ``phrase`` arrivals are ``constant`` (every ``1/rate`` s) or ``poisson``
(exponential gaps of mean ``1/rate``, i.e. independent users).

Arrival times and request contents use separate seeded RNGs, so the same seed gives the
same texts whether arrivals are constant or Poisson.

With ``subjects`` (an e-mail corpus's subject lines, :func:`load_subjects`) every request
carries its document's subject, as the demo page sends it to a model that reads one; the
texts and times are the same as without.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.texts import BUILTIN_PARAGRAPHS

log = logging.getLogger(__name__)

WORKLOADS = ("cold", "typing", "phrase", "cold-long")
#: Where a typist starts in each document (see the module docstring).
TYPING_STARTS = ("prefix", "empty")
ARRIVALS = ("poisson", "constant")

#: Prefix length (in words) of cold / phrase requests, inclusive.
MIN_PREFIX_WORDS = 5
MAX_PREFIX_WORDS = 40
#: Suggestions asked for by every workload.
DEFAULT_K = 3
#: Context length of the long-context cold workload: an editor sending a window of the text.
LONG_CONTEXT_CHARS = 1500
#: ``max_words`` of the phrase workload.
PHRASE_MAX_WORDS = 5
#: Per-typist gap between keystrokes, seconds (uniform).
KEYSTROKE_GAP_S = (0.150, 0.300)
MEAN_KEYSTROKE_GAP_S = sum(KEYSTROKE_GAP_S) / 2
DEFAULT_TYPISTS = 20


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """One request of the plan.

    ``at`` is the intended send time in seconds after the run's start; ``warmup`` marks
    requests that are sent but left out of the statistics; ``typist`` is the simulated
    user of the typing workload (``None`` otherwise).
    """

    at: float
    text: str
    k: int = DEFAULT_K
    max_words: int = 0
    warmup: bool = False
    typist: int | None = None
    subject: str = ""

    def payload(self, model: str) -> dict:
        """The JSON body of ``POST /v1/complete`` for this request (a subject only when it has one)."""
        body = {"text": self.text, "model": model, "k": self.k, "max_words": self.max_words}
        return body | {"subject": self.subject} if self.subject else body


# --------------------------------------------------------------------------- documents


@functools.lru_cache(maxsize=8)
def _load_corpus(path: str, max_docs: int | None) -> tuple[str, ...]:
    # Imported lazily: the training package is only needed when a corpus is given, and
    # the load generator should start (and its tests run) without it.
    from training.data import iter_documents

    docs = iter_documents(path, split="test")
    if max_docs is not None:
        docs = itertools.islice(docs, max_docs)
    return tuple(docs)


def load_documents(corpus: str | Path | None = None, max_docs: int | None = None) -> list[str]:
    """Held-out documents to draw requests from.

    ``corpus`` is any path :func:`training.data.iter_documents` reads; its ``test``
    split is used (for aclImdb that is the held-out reviews; other formats have no split
    and are read whole, so pass text the model did not train on). ``max_docs`` keeps the
    *first* N documents (aclImdb's test split lists positive reviews first). Results are
    cached per ``(corpus, max_docs)`` so a sweep reads the corpus once.

    With no corpus, the built-in paragraphs of :mod:`bench.texts` are returned: fine for
    tests and smoke runs, not for numbers you report.
    """
    if corpus is None:
        docs = list(BUILTIN_PARAGRAPHS)
        return docs[:max_docs] if max_docs is not None else docs
    docs = list(_load_corpus(str(corpus), max_docs))
    if not docs:
        raise ValueError(f"{corpus}: no documents in its test split")
    log.info("loaded %d held-out documents from %s", len(docs), corpus)
    return docs


@functools.lru_cache(maxsize=8)
def _load_subjects(path: str, max_docs: int | None) -> tuple[str, ...]:
    from training.data import CorpusError, iter_subject_documents

    try:
        pairs = iter_subject_documents(path, split="test")
        if max_docs is not None:
            pairs = itertools.islice(pairs, max_docs)
        return tuple(subject for subject, _ in pairs)
    except CorpusError as exc:
        raise ValueError(str(exc)) from None


def load_subjects(corpus: str | Path, max_docs: int | None = None) -> list[str]:
    """The subject of each document :func:`load_documents` returns for an e-mail corpus ("" where none).

    Same order and count as the documents (both read the corpus's test split); a corpus
    without subjects (reviews, plain text) is a ``ValueError``.
    """
    return list(_load_subjects(str(corpus), max_docs))


def _check_subjects(docs: Sequence[str], subjects: Sequence[str] | None) -> Sequence[str]:
    """``subjects`` (one per document), or no subject for any document."""
    if subjects is None:
        return [""] * len(docs)
    if len(subjects) != len(docs):
        raise ValueError(f"{len(subjects)} subjects for {len(docs)} documents")
    return subjects


# --------------------------------------------------------------------------- arrivals


def constant_schedule(rate: float, duration: float) -> list[float]:
    """Send times ``0, 1/rate, 2/rate, ...`` strictly below ``duration`` seconds."""
    if rate <= 0:
        raise ValueError("rate must be > 0")
    n = math.ceil(duration * rate - 1e-9)
    return [i / rate for i in range(max(n, 0))]


def poisson_schedule(rate: float, duration: float, rng: random.Random) -> list[float]:
    """Poisson-process send times (exponential gaps of mean ``1/rate``) below ``duration``.

    The first arrival is at 0 so the run starts immediately, like the constant schedule.
    """
    if rate <= 0:
        raise ValueError("rate must be > 0")
    times: list[float] = []
    t = 0.0
    while t < duration:
        times.append(t)
        t += rng.expovariate(rate)
    return times


def typists_for_rate(rate: float) -> int:
    """The typist count whose merged keystrokes average about ``rate`` requests/s."""
    return max(1, round(rate * MEAN_KEYSTROKE_GAP_S))


# --------------------------------------------------------------------------- requests


def usable_documents(docs: Sequence[str]) -> list[tuple[int, list[str]]]:
    """(index, words) of the documents long enough for a 5-word prefix + a next word."""
    usable = [(i, w) for i, w in enumerate(d.split() for d in docs) if len(w) > MIN_PREFIX_WORDS]
    if not usable:
        raise ValueError(f"no document has more than {MIN_PREFIX_WORDS} words")
    return usable


def word_lists(docs: Sequence[str]) -> list[list[str]]:
    """Documents as word lists, keeping those long enough for a 5-word prefix + a next word."""
    return [words for _, words in usable_documents(docs)]


def word_prefix(words: Sequence[str], rng: random.Random) -> str:
    """A random 5-40-word prefix of ``words`` ending with a space (a word just finished).

    At least one word of the document is left after the prefix, so the "true" next word
    exists; shorter documents give shorter maximum prefixes.
    """
    hi = min(MAX_PREFIX_WORDS, len(words) - 1)
    n = rng.randint(MIN_PREFIX_WORDS, hi)
    return " ".join(words[:n]) + " "


def cold_request(usable: Sequence[Sequence[str]], rng: random.Random) -> tuple[str, int, int]:
    """``(text, k, max_words)`` of one cold request; ``usable`` comes from :func:`word_lists`.

    Used by the Locust file, which draws requests one at a time instead of from a plan.
    """
    return word_prefix(rng.choice(usable), rng), DEFAULT_K, 0


def long_prefix(doc: str, chars: int = LONG_CONTEXT_CHARS) -> str | None:
    """``doc``'s first ``chars`` characters or fewer, cut after a whole word (``None``: too short)."""
    if len(doc) <= chars + 20:
        return None
    cut = doc.rfind(" ", 0, chars + 1)
    return doc[: cut + 1] if cut > chars // 2 else None


def _long_plan(times: Sequence[float], docs: Sequence[str], subjects: Sequence[str], rng: random.Random,
               warmup: float) -> list[PlannedRequest]:
    texts = [(t, s) for t, s in zip((long_prefix(d) for d in docs), subjects, strict=True) if t is not None]
    if not texts:
        raise ValueError(f"no document is longer than {LONG_CONTEXT_CHARS} characters")
    plan = []
    for t in times:
        text, subject = rng.choice(texts)
        plan.append(PlannedRequest(at=t, text=text, k=DEFAULT_K, warmup=t < warmup, subject=subject))
    return plan


def _prefix_plan(
    times: Sequence[float], docs: Sequence[str], subjects: Sequence[str], rng: random.Random, max_words: int,
    warmup: float,
) -> list[PlannedRequest]:
    usable = usable_documents(docs)
    plan = []
    for t in times:
        i, words = rng.choice(usable)  # the same draw as choosing among word_lists(docs)
        plan.append(PlannedRequest(at=t, text=word_prefix(words, rng), k=DEFAULT_K, max_words=max_words,
                                   warmup=t < warmup, subject=subjects[i]))
    return plan


def typing_start(doc: str, rng: random.Random) -> int:
    """Characters already in the text box when a typist starts on ``doc`` (``"prefix"``).

    The end of a random 5-40-word prefix and the whitespace after it, drawn as
    :func:`word_prefix` draws the cold workload's (at least one word is left to type);
    0 for a document too short for one.
    """
    words = list(re.finditer(r"\S+", doc))
    if len(words) <= MIN_PREFIX_WORDS:
        return 0
    n = rng.randint(MIN_PREFIX_WORDS, min(MAX_PREFIX_WORDS, len(words) - 1))
    return words[n].start()  # after word n and the whitespace that follows it


def typing_plan(
    docs: Sequence[str],
    typists: int,
    duration: float,
    rng: random.Random,
    warmup: float = 0.0,
    start: str = "prefix",
    subjects: Sequence[str] | None = None,
) -> list[PlannedRequest]:
    """Merged keystroke schedules of ``typists`` users, ``duration`` seconds in all.

    Each typist joins at a random time within the warm-up (at least one maximum gap, so they
    are not in lock-step), as a load test ramps its users up: a typist's first request reads its
    whole prefix cold, and all of them at once left a stateful server's backlog in the measured
    window at high rates (at 440 req/s, p50 38-157 ms in the first second and p99 up to 127 ms in
    the next: ``bench/results/cpu_per_request.md``). Then it picks a random document and, from
    ``s`` characters already typed (``start="prefix"``: :func:`typing_start`; ``"empty"``: 0), sends ``doc[:s+1]``,
    ``doc[:s+2]``, ... with a uniform 150-300 ms gap before each next keystroke. A typist
    who finishes a document starts on a new one the same way. Requests before ``warmup``
    are warm-up. ``subjects`` (one per document) go with every keystroke of their document.
    """
    if typists < 1:
        raise ValueError("typists must be >= 1")
    if start not in TYPING_STARTS:
        raise ValueError(f"unknown typing start {start!r}; expected one of {TYPING_STARTS}")
    texts = [(d, s) for d, s in zip(docs, _check_subjects(docs, subjects), strict=True) if d]
    if not texts:
        raise ValueError("no documents to type")

    def begin() -> tuple[str, str, int]:
        doc, subject = rng.choice(texts)
        return doc, subject, typing_start(doc, rng) if start == "prefix" else 0

    lo, hi = KEYSTROKE_GAP_S
    plan: list[PlannedRequest] = []
    for typist in range(typists):
        t = rng.uniform(0.0, max(hi, warmup))
        doc, subject, pos = begin()
        while t < duration:
            if pos == len(doc):
                doc, subject, pos = begin()
            pos += 1
            plan.append(
                PlannedRequest(
                    at=t, text=doc[:pos], k=DEFAULT_K, max_words=0, warmup=t < warmup, typist=typist,
                    subject=subject,
                )
            )
            t += rng.uniform(lo, hi)
    plan.sort(key=lambda r: r.at)
    return plan


def build_plan(
    workload: str,
    docs: Sequence[str],
    *,
    rate: float,
    duration: float,
    warmup: float = 0.0,
    seed: int = 0,
    arrivals: str = "poisson",
    typists: int = DEFAULT_TYPISTS,
    typing_start: str = "prefix",
    subjects: Sequence[str] | None = None,
) -> list[PlannedRequest]:
    """The full plan (warm-up then measurement, ``warmup + duration`` s), sorted by time.

    ``subjects``: one per document (:func:`load_subjects`), sent with each request drawn from it.
    """
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}; expected one of {WORKLOADS}")
    if arrivals not in ARRIVALS:
        raise ValueError(f"unknown arrivals {arrivals!r}; expected one of {ARRIVALS}")
    total = warmup + duration
    text_rng = random.Random(f"nextword-bench-text-{seed}")
    subjects = _check_subjects(docs, subjects)
    if workload == "typing":
        return typing_plan(docs, typists, total, text_rng, warmup=warmup, start=typing_start, subjects=subjects)
    time_rng = random.Random(f"nextword-bench-arrivals-{seed}")
    if arrivals == "constant":
        times = constant_schedule(rate, total)
    else:
        times = poisson_schedule(rate, total, time_rng)
    if workload == "cold-long":
        return _long_plan(times, docs, subjects, text_rng, warmup)
    max_words = PHRASE_MAX_WORDS if workload == "phrase" else 0
    return _prefix_plan(times, docs, subjects, text_rng, max_words, warmup)

"""The next-word decoder: beam searches over subword pieces that end at word boundaries.

Both searches start from the state after the context (the text up to the last word
boundary) and grow piece sequences whose surface text forms the next word(s):

* :func:`next_words` -- the ``k`` most probable whole next words, optionally constrained
  to complete the fragment the user has typed (start with it and be longer: the typed
  text itself is never proposed, it would insert nothing; its own probability of being
  the whole word is returned beside the proposals). A word is scored exactly: the
  probability of its pieces times the probability that the piece after it does *not*
  continue the word (summed over every boundary piece, EOS included). Different
  segmentations of one word add up. The search stops as soon as no open hypothesis can
  beat the k-th best finished word (scores only fall as pieces are added).
* :func:`complete_phrase` -- the ghost text: of the places where the most probable
  continuations could stop (a word end or sentence punctuation, up to ``max_words`` words),
  the longest whose calibrated confidence -- the probability that the writer types exactly
  that text next -- reaches the threshold.

The fragment constraint works on surface text, not on the fragment's own tokenisation:
a typed ``"mo"`` is often tokenised ``" mo"`` while the word it belongs to is the single
piece ``" movie"``. Every piece is allowed whose text agrees with what remains of the
fragment (it either contains it all, or is a prefix of it).

These are generators (see :mod:`model.batching`): they yield model calls and never touch
the network, so the server's engine and the offline evaluator batch them the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from model.batching import Decoding, ModelCall
from model.prefix_cache import StepMemo
from model.text import WORD_RE, words
from model.tokenizer import PieceTokenizer

NEG_INF = float("-inf")


@dataclass
class _Hyp:
    text: str  # surface continuation so far (may start with a space)
    score: float  # log-probability of its pieces
    ids: tuple[int, ...] = ()  # its pieces

    @property
    def pieces(self) -> int:
        return len(self.ids)

    @property
    def word(self) -> str:
        return self.text.lstrip(" ")


def _logaddexp(a: float | None, b: float) -> float:
    if a is None:
        return b
    hi, lo = max(a, b), min(a, b)
    return hi + math.log1p(math.exp(lo - hi))


def _mask_key(hyp: _Hyp, fragment: str, require_space: bool) -> tuple[bool, str, bool]:
    """What decides the pieces allowed after ``hyp``: (at the word's start, text still needed, space needed)."""
    if hyp.text == "":
        return True, fragment, require_space
    word = hyp.word
    return False, (fragment[len(word) :] if len(word) < len(fragment) else ""), False


@lru_cache(maxsize=256)  # 256 vocabulary-sized masks: 2 MB at 8k pieces, shared by every model
def _allowed(tok: PieceTokenizer, at_start: bool, needed: str, require_space: bool) -> Tensor:
    """Pieces that may extend a hypothesis still inside the first word (cached: never mutate it)."""
    if at_start:
        starts = tok.word_start & tok.consistent_with(" " + needed) if needed else tok.word_start
        if require_space:
            return starts
        attached = tok.continuation & tok.consistent_with(needed) if needed else tok.continuation
        return starts | attached
    if needed:
        return tok.continuation & tok.consistent_with(needed)
    return tok.continuation


@lru_cache(maxsize=128)  # 128 float rows of the vocabulary: 4 MB at 8k pieces
def _allowed_scores(tok: PieceTokenizer, at_start: bool, needed: str, require_space: bool) -> Tensor:
    """:func:`_allowed` as 0 / -inf terms to add to scores (a beam step reuses it instead of
    converting a fresh mask on every step)."""
    return _additive(_allowed(tok, at_start, needed, require_space))


def _word_mask(tok: PieceTokenizer, hyp: _Hyp, fragment: str, require_space: bool) -> Tensor:
    """Pieces that may extend ``hyp`` while it is still inside the first word."""
    return _allowed(tok, *_mask_key(hyp, fragment, require_space))


def _expand(
    memo: StepMemo | None, parents: Tensor, rows: list[int], new_ids: list[tuple[int, ...]]
) -> Decoding[tuple[Tensor, Tensor]]:
    """Log-probs and states after each new hypothesis (``new_ids``, grown from ``parents[rows]``).

    Hypotheses the memo already holds cost nothing; the rest share ONE model call, and
    their results go into the memo for the next request that tries them.
    """
    if memo is None:
        return (yield ModelCall([[ids[-1]] for ids in new_ids], parents[rows]))
    found = [memo.get(ids) for ids in new_ids]
    missing = [i for i, entry in enumerate(found) if entry is None]
    if not missing:
        return torch.cat([e.logp for e in found if e is not None]), torch.cat([e.state for e in found if e is not None])
    logp, state = yield ModelCall([[new_ids[i][-1]] for i in missing], parents[[rows[i] for i in missing]])
    for j, i in enumerate(missing):
        memo.put(new_ids[i], state[j : j + 1], logp[j : j + 1])
    if len(missing) == len(found):
        return logp, state
    computed = {i: j for j, i in enumerate(missing)}
    logps = [e.logp if e is not None else logp[computed[i]].unsqueeze(0) for i, e in enumerate(found)]
    states = [e.state if e is not None else state[computed[i]].unsqueeze(0) for i, e in enumerate(found)]
    return torch.cat(logps), torch.cat(states)


def _additive(masks: Tensor) -> Tensor:
    """Boolean masks as 0 / -inf terms to add to scores (cheaper than masked_fill on this path)."""
    return torch.where(masks, 0.0, NEG_INF)


def _log_boundary_mass(tok: PieceTokenizer, logp: Tensor) -> Tensor:
    """log P(the next piece does not continue the word) for each row of ``logp`` [rows, V].

    Summed as probabilities in one matrix-vector product (cheaper than a masked logsumexp);
    rows whose boundary mass underflows fp32 fall back to the exact logsumexp.
    """
    ends = (logp.exp() @ tok.boundary_weights).log()
    underflow = torch.isneginf(ends)
    if bool(underflow.any()):
        ends[underflow] = torch.logsumexp(logp[underflow].masked_fill(~tok.boundary, NEG_INF), dim=1)
    return ends


def _is_whole_word(word: str, fragment: str) -> bool:
    """``word`` is a whole word (``WORD_RE``) that starts with the typed fragment."""
    return len(word) >= len(fragment) and word.startswith(fragment) and WORD_RE.fullmatch(word) is not None


@dataclass
class NextWords:
    """What :func:`next_words` found.

    ``words`` only *complete* the fragment (each is longer than it). Why: a proposal equal
    to what is already typed inserts nothing (empty ghost text) and, accepted, saves no
    keystroke (it costs the one the space would have), yet it takes one of the ``k``
    slots; after "the" a typist wants "there" or "these" offered, not "the". How likely
    it is that the typed text is already the whole word is kept apart, in ``typed_logp``,
    so a client can still hold back ghost text when "the" itself is the better bet.
    """

    words: list[tuple[str, float]]  # (word, log-probability), best first
    typed_logp: float | None = None  # log P(the fragment is the whole word); None: not a word / not reached


def next_words(
    tok: PieceTokenizer,
    logp: Tensor,
    state: Tensor,
    fragment: str,
    require_space: bool,
    k: int,
    beam: int,
    max_pieces: int = 10,
    memo: StepMemo | None = None,
) -> Decoding[NextWords]:
    """Top-``k`` whole next words as ``(word, log-probability)``, best first (see :class:`NextWords`).

    ``logp`` [1, V] and ``state`` [1, L, W] describe the model after the context;
    ``require_space`` says the context ended in whitespace (or is empty), so the word must
    be introduced by a space piece; otherwise it may also attach directly (after "(").
    ``memo`` (the context's, from the prefix cache) reuses and records the beam's steps.
    """
    finals: dict[str, float] = {}
    typed: float | None = None
    hyps = [_Hyp("", 0.0)]
    vocab = logp.size(1)
    for _ in range(max_pieces):
        finishing = [i for i, h in enumerate(hyps) if h.word and _is_whole_word(h.word, fragment)]
        if finishing:
            ends = _log_boundary_mass(tok, logp[finishing]).tolist()
            for i, end in zip(finishing, ends, strict=True):
                word = hyps[i].word
                if len(word) == len(fragment):  # the typed text itself: not a proposal
                    typed = _logaddexp(typed, hyps[i].score + end)
                else:
                    finals[word] = _logaddexp(finals.get(word), hyps[i].score + end)
        allowed = torch.stack([_allowed_scores(tok, *_mask_key(h, fragment, require_space)) for h in hyps])
        scores = torch.tensor([h.score for h in hyps]).unsqueeze(1) + logp + allowed
        top = torch.topk(scores.flatten(), min(beam, scores.numel()))
        keep = [(s, j) for s, j in zip(top.values.tolist(), top.indices.tolist(), strict=True) if s > NEG_INF]
        if not keep:
            break
        if len(finals) >= k and keep[0][0] <= sorted(finals.values(), reverse=True)[k - 1]:
            break  # nothing still open can beat the k-th finished word
        rows = [j // vocab for _, j in keep]
        pieces = [j % vocab for _, j in keep]
        hyps = [
            _Hyp(hyps[r].text + tok.surfaces[p], s, (*hyps[r].ids, p))
            for (s, _), r, p in zip(keep, rows, pieces, strict=True)
        ]
        logp, state = yield from _expand(memo, state, rows, [h.ids for h in hyps])
    ranked = sorted(finals.items(), key=lambda kv: kv[1], reverse=True)
    return NextWords(ranked[:k], typed)


@dataclass(frozen=True)
class PhraseCandidate:
    """A place a phrase could stop: its surface text, log P(the writer types exactly it), words."""

    text: str
    logp: float
    words: int
    sentence_end: bool = False


@dataclass(frozen=True)
class PhraseCalibration:
    """Maps a phrase's sequence probability to P(the writer accepts it as is).

    ``logit(confidence) = slope * logit(P) + per_word * words + bias``: Platt scaling of the
    phrase's probability (word end included), fitted on held-out text by
    :func:`model.calibration.fit_platt`. The identity (slope 1, the rest 0) trusts the model.
    """

    slope: float = 1.0
    per_word: float = 0.0
    bias: float = 0.0

    def confidence(self, logp: float, n_words: int) -> float:
        p = min(math.exp(logp), 1 - 1e-9)
        z = self.slope * (math.log(max(p, 1e-300)) - math.log1p(-p)) + self.per_word * n_words + self.bias
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0

    def min_logp(self, threshold: float, max_words: int) -> float:
        """Below this log-probability no phrase of up to ``max_words`` words reaches ``threshold``."""
        if threshold <= 0.0 or self.slope <= 0.0:
            return NEG_INF
        threshold = min(threshold, 1 - 1e-9)
        target = math.log(threshold) - math.log1p(-threshold)
        best_words = max(1, max_words) if self.per_word > 0 else 1
        logit_p = (target - self.per_word * best_words - self.bias) / self.slope
        # logit(P) >= logit_p  <=>  P >= sigmoid(logit_p); a margin keeps rounding from pruning a winner.
        return -math.log1p(math.exp(-logit_p)) - 1e-6 if logit_p > -700 else NEG_INF

    @classmethod
    def from_card(cls, card: dict) -> PhraseCalibration:
        fitted = card.get("phrase_calibration") or {}
        return cls(float(fitted.get("slope", 1.0)), float(fitted.get("per_word", 0.0)), float(fitted.get("bias", 0.0)))


def phrase_candidates(
    tok: PieceTokenizer,
    logp: Tensor,
    state: Tensor,
    fragment: str,
    require_space: bool,
    max_words: int,
    beam: int,
    memo: StepMemo | None = None,
    min_logp: float = NEG_INF,
) -> Decoding[list[PhraseCandidate]]:
    """Every place the best phrase continuations could stop, with its exact probability.

    A beam search over pieces ranked by joint log-probability. A hypothesis that has just
    completed a word is a candidate, scored with P(the word ends there) (the next piece does
    not continue it); one that has just emitted sentence punctuation is a candidate and stops
    (a phrase never runs past the end of a sentence); none grows past ``max_words`` words.
    The first word must complete ``fragment``, and the probabilities are then conditioned on
    the text starting with it. Hypotheses below ``min_logp`` are dropped (they can only fall).
    """
    printable, sentence_end = tok.printable, tok.sentence_end
    found: dict[str, PhraseCandidate] = {}
    given = 0.0  # log P(the continuation agrees with the fragment), conditioned away below
    if fragment:
        first = _allowed(tok, True, fragment, require_space)
        given = float(torch.logsumexp(logp[0].masked_fill(~first, NEG_INF), dim=0))
    min_logp = min_logp + given if min_logp > NEG_INF else NEG_INF

    def add(text: str, score: float, n_words: int, at_sentence_end: bool) -> None:
        if text.lstrip(" ") == fragment:
            return  # only what is already typed: nothing to show
        old = found.get(text)
        total = score - given if old is None else _logaddexp(old.logp, score - given)
        found[text] = PhraseCandidate(text, total, n_words, at_sentence_end)

    hyps = [_Hyp("", 0.0)]
    for _ in range(3 * max_words + 3):
        masks = []
        ending = [i for i, h in enumerate(hyps)
                  if h.text and h.text[-1].isalnum() and len(h.word) >= len(fragment) and words(h.text)]
        ends = _log_boundary_mass(tok, logp[ending]).tolist() if ending else []
        end_of = dict(zip(ending, ends, strict=True))
        for i, hyp in enumerate(hyps):
            if hyp.text == "" or len(hyp.word) < len(fragment):
                masks.append(_word_mask(tok, hyp, fragment, require_space))
                continue
            n_words = len(words(hyp.text))
            if i in end_of:
                add(hyp.text, hyp.score + end_of[i], n_words, False)
            in_word = hyp.text[-1].isalnum()
            # Budget spent: only the current word may still grow.
            masks.append((tok.continuation if in_word else torch.zeros_like(printable))
                         if n_words >= max_words else printable)
        scores = torch.tensor([h.score for h in hyps]).unsqueeze(1) + logp
        scores = (scores + _additive(torch.stack(masks))).flatten()
        top = torch.topk(scores, min(beam, scores.numel()))
        vocab = logp.size(1)
        live: list[tuple[float, int, int]] = []
        for s, j in zip(top.values.tolist(), top.indices.tolist(), strict=True):
            if s == NEG_INF or s < min_logp:
                continue
            r, p = divmod(j, vocab)
            text = hyps[r].text + tok.surfaces[p]
            if bool(sentence_end[p]) and words(hyps[r].text) and len(hyps[r].word) >= len(fragment):
                add(text, s, len(words(text)), True)
            else:
                live.append((s, r, p))
        if not live:
            break
        hyps = [_Hyp(hyps[r].text + tok.surfaces[p], s, (*hyps[r].ids, p)) for s, r, p in live]
        logp, state = yield from _expand(memo, state, [r for _, r, _ in live], [h.ids for h in hyps])
    return list(found.values())


def choose_phrase(
    candidates: list[PhraseCandidate], calibration: PhraseCalibration, threshold: float
) -> tuple[PhraseCandidate, float] | None:
    """The phrase to show: the longest candidate whose confidence reaches ``threshold``.

    Longer ghost text saves more keystrokes, so among confident candidates the one with most
    words wins, then one that ends its sentence, then the more confident. When none reaches
    the threshold the most confident one is returned (the caller does not show it).
    """
    if not candidates:
        return None
    scored = [(c, calibration.confidence(c.logp, c.words)) for c in candidates]
    confident = [(c, conf) for c, conf in scored if conf >= threshold]
    if confident:
        return max(confident, key=lambda cc: (cc[0].words, cc[0].sentence_end, cc[1]))
    return max(scored, key=lambda cc: cc[1])


def complete_phrase(
    tok: PieceTokenizer,
    logp: Tensor,
    state: Tensor,
    fragment: str,
    require_space: bool,
    max_words: int,
    beam: int,
    memo: StepMemo | None,
    calibration: PhraseCalibration,
    threshold: float,
) -> Decoding[tuple[str, float] | None]:
    """The phrase to show ``(surface text, confidence)``, or ``None`` if no phrase finished.

    The text is the continuation right after the context, so it still contains the typed
    fragment; the caller strips what the user already typed. ``confidence`` is the calibrated
    probability that the writer types exactly this text next (see :class:`PhraseCalibration`).
    """
    min_logp = calibration.min_logp(threshold, max_words)
    candidates = yield from phrase_candidates(tok, logp, state, fragment, require_space, max_words, beam, memo,
                                              min_logp)
    chosen = choose_phrase(candidates, calibration, threshold)
    return None if chosen is None else (chosen[0].text, chosen[1])

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
* :func:`complete_phrase` -- a phrase of up to ``max_words`` words that stops at sentence
  punctuation or end of text, ranked by length-normalised log-probability; its
  confidence is the geometric-mean piece probability.

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


@lru_cache(maxsize=4096)
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


@lru_cache(maxsize=512)
def _allowed_scores(tok: PieceTokenizer, at_start: bool, needed: str, require_space: bool) -> Tensor:
    """:func:`_allowed` as 0 / -inf terms to add to scores (a beam step reuses it instead of
    converting a fresh mask: the conversion alone cost ~60-230 us a step here)."""
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
    """Boolean masks as 0 / -inf terms to add to scores (measured ~2x cheaper than masked_fill)."""
    return torch.where(masks, 0.0, NEG_INF)


def _log_boundary_mass(tok: PieceTokenizer, logp: Tensor) -> Tensor:
    """log P(the next piece does not continue the word) for each row of ``logp`` [rows, V].

    Summed as probabilities in one matrix-vector product (~5x cheaper here than a masked
    logsumexp); rows whose boundary mass underflows fp32 fall back to the exact logsumexp.
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
    fragment: str = "",
    require_space: bool = True,
    k: int = 3,
    beam: int = 8,
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


def complete_phrase(
    tok: PieceTokenizer,
    logp: Tensor,
    state: Tensor,
    fragment: str = "",
    require_space: bool = True,
    max_words: int = 5,
    beam: int = 4,
    memo: StepMemo | None = None,
) -> Decoding[tuple[str, float] | None]:
    """Best phrase continuation ``(surface text, confidence)`` or ``None`` if none finished.

    The text is the continuation right after the context, so it still contains the typed
    fragment; the caller strips what the user already typed. A phrase ends at sentence
    punctuation (kept), at end of text, or after ``max_words`` complete words.
    """
    printable, sentence_end = tok.printable, tok.sentence_end
    nothing = torch.zeros_like(printable)
    finished: list[tuple[float, str]] = []
    hyps = [_Hyp("", 0.0)]
    for _ in range(3 * max_words + 3):
        masks = []
        for i, hyp in enumerate(hyps):
            typing_fragment = hyp.text == "" or len(hyp.word) < len(fragment)
            if typing_fragment:
                masks.append(_word_mask(tok, hyp, fragment, require_space))
                continue
            n_words = len(words(hyp.text))
            in_word = hyp.text[-1].isalnum()
            if n_words >= max_words:
                # Budget spent: end here (the next piece must not continue the word).
                end = float(_log_boundary_mass(tok, logp[i : i + 1])[0]) if in_word else NEG_INF
                masks.append(tok.continuation if in_word else nothing)
            else:
                end = float(logp[i][tok.eos_id])
                masks.append(printable)
            if end > NEG_INF:
                finished.append(((hyp.score + end) / (hyp.pieces + 1), hyp.text))
        scores = torch.tensor([h.score for h in hyps]).unsqueeze(1) + logp
        scores = (scores + _additive(torch.stack(masks))).flatten()
        top = torch.topk(scores, min(beam, scores.numel()))
        vocab = logp.size(1)
        live: list[tuple[float, int, int]] = []
        for s, j in zip(top.values.tolist(), top.indices.tolist(), strict=True):
            if s == NEG_INF:
                continue
            r, p = divmod(j, vocab)
            if bool(sentence_end[p]) and words(hyps[r].text):
                finished.append((s / (hyps[r].pieces + 1), hyps[r].text + tok.surfaces[p]))
            else:
                live.append((s, r, p))
        if not live:
            break
        hyps = [_Hyp(hyps[r].text + tok.surfaces[p], s, (*hyps[r].ids, p)) for s, r, p in live]
        logp, state = yield from _expand(memo, state, [r for _, r, _ in live], [h.ids for h in hyps])
    if not finished:
        return None
    score, text = max(finished)
    return text, math.exp(score)

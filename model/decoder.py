"""The next-word decoder: beam searches over subword pieces that end at word boundaries.

Both searches start from the state after the context (the text up to the last word
boundary) and grow piece sequences whose surface text forms the next word(s):

* :func:`next_words` -- the ``k`` most probable whole next words, optionally constrained
  to complete the fragment the user has typed (start with it and be longer: the typed
  text itself is never proposed, it would insert nothing; its own probability of being
  the whole word is returned beside the proposals). A word is scored exactly: the
  probability of its pieces times the probability that the piece after it does *not*
  continue the word (summed over every boundary piece, EOS included). Different
  segmentations of one word add up, as far as the search follows them. The search stops as
  soon as no open hypothesis can beat the k-th best finished word (scores only fall as pieces
  are added), and does not follow one that alone no longer can. Given a lexicon,
  only its words are proposed (:mod:`model.lexicon`).
* :func:`complete_phrase` -- the ghost text: of the places where the most probable
  continuations could stop (a word end or sentence punctuation, up to ``max_words`` words),
  of those whose calibrated confidence -- the probability that the writer types exactly that
  text next -- reaches the threshold, the one that saves the most keystrokes on average.
  Given a lexicon, the phrase uses only its words.

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
from typing import Protocol, TypeVar

import numpy as np
import torch
from torch import Tensor

from model.batching import Decoding, ModelCall
from model.lexicon import Lexicon
from model.prefix_cache import StepMemo
from model.text import WORD_RE, words
from model.tokenizer import PieceTokenizer

NEG_INF = float("-inf")
# With a lexicon the search goes on past strings that are not words, to find k that are. It stops
# where what is still open is under this fraction of the likeliest string it finished: such
# words would only fill slots at "<1%", and searching on for them cost a keystroke 28% more CPU
# (docs/models.md, "Known words").
NEGLIGIBLE_LOGP = math.log(1e-3)


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
    return _key_after(hyp.text == "", len(hyp.word), fragment, require_space)


def _key_after(at_start: bool, typed: int, fragment: str, require_space: bool) -> tuple[bool, str, bool]:
    """:func:`_mask_key` of a hypothesis that has typed ``typed`` characters of the word."""
    if at_start:
        return True, fragment, require_space
    return False, fragment[typed:], False


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


@lru_cache(maxsize=4096)  # the same few hypotheses come back at every keystroke of a word
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
    # log P(the text after the context starts as typed): with a fragment, the next piece agrees with it
    # (see fragment_logp); without one, after a typed space, the next piece starts with a space (see
    # space_logp); else 0. What the words' probabilities are conditioned on.
    fragment_logp: float = 0.0
    # The proposed words whose likelier spelling starts with a space piece. Only a context that
    # ends without a space leaves it open: after "Mr." the word is " Lay", after "john@" it is
    # "enron", attached; a client needs it to insert the word.
    spaced: frozenset[str] = frozenset()
    # log P(what follows the context starts as the space typed says, and the next word is none of the
    # search's ``exclude``) (space_logp without any): ``fragment_logp`` minus this is P(the next word
    # starts with the fragment | the space, and it is not one of them); 0 without a fragment.
    outside_logp: float = 0.0


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
    lexicon: Lexicon | None = None,
    exclude: frozenset[str] = frozenset(),
    prune: bool = True,
) -> Decoding[NextWords]:
    """Top-``k`` whole next words as ``(word, log-probability)``, best first (see :class:`NextWords`).

    ``logp`` [1, V] and ``state`` [1, L, W] describe the model after the context;
    ``require_space`` says the context ended in whitespace (or is empty), so the word must
    be introduced by a space piece; otherwise it may also attach directly (after "(").
    ``memo`` (the context's, from the prefix cache) reuses and records the beam's steps, and
    with them what each step derived from its log-probs (see :class:`_Node`). With a
    ``lexicon`` other strings are never proposed nor counted among the ``k`` that end the search,
    and a word under ``NEGLIGIBLE_LOGP`` of the likeliest string finished is not proposed: the
    search ends once nothing open reaches that (such a word is not worth a slot, nor the steps).
    ``exclude`` are words the text is known not to be, though the network may expect them: never
    proposed, and the probability the search finds for them is taken out of ``fragment_logp``,
    so the rest are conditioned on the text being another word (see :func:`without_mass`); what
    that leaves of the whole next word, ``outside_logp``, is noted on the context's cache entry,
    so only the first keystroke that needs it searches for it.

    Probabilities are conditioned on what is typed after the context: the fragment, or with none
    a typed space (``require_space``): then the next piece starts with a space (:func:`space_logp`),
    and the mass the network gave to what cannot follow one ("-" after "follow", ",", "'s") is
    not counted against the words.

    A beam step keeps the ``beam`` best (hypothesis, piece) pairs. It takes them from each
    hypothesis's own best allowed pieces, which is the same set as the best of all pairs:
    a pair outside its row's best ``beam`` has ``beam`` better pairs in that row alone. With
    ``prune`` it then drops the pairs no longer open (see the loop): alone they cannot reach the
    ``k`` shown, and their rows were a quarter of a keystroke's. They give up only the mass they
    would still have added to another segmentation of a word (measured in docs/models.md, "Pruned
    pairs"); ``prune=False`` follows them all (with an exhaustive beam, exact over every segmentation).
    """
    finals: dict[str, float] = {}
    forms: dict[tuple[str, bool], float] = {}  # (word, spelled with a leading space) -> log-probability
    typed: float | None = None
    excluded: float | None = None  # log P(the next word is one of ``exclude``), as far as the search reached
    likeliest = NEG_INF  # the best finished string of any kind (a lexicon's search stops relative to it)
    hyps = [_Hyp("", 0.0)]
    root = memo.get(()) if memo is not None else None
    nodes = [_Node(root.logp, root.state, root.notes) if root is not None else _Node(logp, state, {})]
    reached = {(): nodes[0]}  # with a fragment: the nodes of hypotheses still inside it, by pieces
    for _ in range(max_pieces):
        finishing = [i for i, h in enumerate(hyps) if h.word and _is_whole_word(h.word, fragment)]
        if finishing:
            ends = _word_ends(tok, [nodes[i] for i in finishing])
            for i, end in zip(finishing, ends, strict=True):
                word = hyps[i].word
                if word in exclude:
                    excluded = _logaddexp(excluded, hyps[i].score + end)
                    continue
                likeliest = max(likeliest, hyps[i].score + end)
                if len(word) == len(fragment):  # the typed text itself: not a proposal
                    typed = _logaddexp(typed, hyps[i].score + end)
                elif lexicon is not None and word not in lexicon:
                    continue
                else:
                    score = hyps[i].score + end
                    finals[word] = _logaddexp(finals.get(word), score)
                    form = (word, hyps[i].text.startswith(" "))
                    forms[form] = _logaddexp(forms.get(form), score)
        tops = _best_pieces(tok, nodes, [_mask_key(h, fragment, require_space) for h in hyps], beam)
        pairs = [(h.score + lp, r, p) for r, h in enumerate(hyps) for lp, p in tops[r]]
        pairs.sort(key=lambda pair: pair[0], reverse=True)  # stable: ties keep row, then piece order
        keep = [pair for pair in pairs[:beam] if pair[0] > NEG_INF]
        if not keep:
            break
        # A pair is still open while it can beat the k-th finished word and (with a lexicon) is not
        # negligible beside the likeliest string finished; ``keep`` is best first.
        kth = sorted(finals.values(), reverse=True)[k - 1] if len(finals) >= k else NEG_INF
        negligible = likeliest + NEGLIGIBLE_LOGP if lexicon is not None else NEG_INF
        if keep[0][0] <= kth or keep[0][0] < negligible:
            break  # nothing is still open
        if prune:
            keep = [pair for pair in keep if pair[0] > kth and pair[0] >= negligible]
        hyps = [_Hyp(hyps[r].text + tok.surfaces[p], s, (*hyps[r].ids, p)) for s, r, p in keep]
        nodes = yield from _grow(memo, nodes, [r for _, r, _ in keep], [h.ids for h in hyps])
        if fragment:
            reached.update((h.ids, n) for h, n in zip(hyps, nodes, strict=True) if len(h.word) < len(fragment))
    ranked = sorted(finals.items(), key=lambda kv: kv[1], reverse=True)
    if lexicon is not None:
        ranked = [(word, score) for word, score in ranked if score >= likeliest + NEGLIGIBLE_LOGP]
    space = space_logp(tok, reached[()], require_space)
    given = fragment_logp(tok, reached, fragment, require_space) if fragment else space
    if excluded is not None:
        given = without_mass(given, excluded)
    spaced = frozenset(w for w, _ in ranked[:k] if forms.get((w, True), NEG_INF) >= forms.get((w, False), NEG_INF))
    outside = space
    if exclude:
        key = ("outside", exclude)
        outside = given if not fragment else reached[()].notes.get(key)
        if outside is None:  # the search without the fragment finds the excluded words' whole mass
            outside = (yield from next_words(tok, logp, state, "", require_space, 1, beam, max_pieces, memo, lexicon,
                                             exclude)).outside_logp
        reached[()].notes[key] = outside
    return NextWords(ranked[:k], typed, given, spaced, outside)


def without_mass(total: float, part: float) -> float:
    """log(exp(total) - exp(part)): what is left of a probability mass once a part is ruled out.

    A part that is (numerically) all of it leaves ``total``: nothing is left to condition on.
    """
    if part >= total - 1e-9:
        return total
    return total + math.log1p(-math.exp(part - total))


def space_logp(tok: PieceTokenizer, node: _Node, require_space: bool) -> float:
    """log P(the next piece starts with a space) after ``node`` when a space was typed (0 when none was).

    The condition a typed space puts on what follows: "up" after "Thanks for the follow " is
    P(up | the space) = 70%, not the 7% left once the network's 85% for an attached "-" is counted
    (the space belongs to the next piece in SentencePiece, so the context never shows it). Noted
    on the node: every keystroke of the next word reuses it.
    """
    if not require_space:
        return 0.0
    noted = node.notes.get("space")
    if noted is None:
        noted = node.notes["space"] = _mass_logp(node.row[tok.space_led_ids])
    return noted


def _mass_logp(values: np.ndarray) -> float:
    """log(sum(exp(values))) of log-probabilities (<= 0: their exps cannot overflow; only an all-underflow
    needs the shift)."""
    mass = float(np.exp(values).sum())
    if mass > 0.0:
        return math.log(mass)
    top = float(values.max()) if len(values) else NEG_INF
    return NEG_INF if top == NEG_INF else top + math.log(float(np.exp(values - top).sum()))


def fragment_logp(tok: PieceTokenizer, reached: dict[tuple[int, ...], _Node], fragment: str, require_space: bool,
                  ids: tuple[int, ...] = (), typed: int = 0) -> float:
    """log P(the text after the context starts with the typed ``fragment``), from what the search reached.

    The event a fragment's completions are conditioned on: "report" after "rep" is shown with
    P(report | the writer's next word starts "rep"), not its probability before anything was
    typed. It sums the pieces that agree with the fragment: one that holds the rest of it counts
    whole; one that is a proper prefix of it (" re" for "rep") counts times what agrees with the
    rest after it, where the search expanded it (``reached``, keyed by pieces); where it did not,
    the piece counts whole, so the value errs high and the words' conditional probabilities err
    low (together they never exceed 1). Exact when the beam spans every prefix piece. ``ids`` is
    the hypothesis summed after, which has typed ``typed`` characters of the word.
    """
    key = _key_after(not ids, typed, fragment, require_space)
    allowed = _few_allowed(tok, *key)
    if allowed is None or len(allowed) == 0:
        return NEG_INF
    values = reached[ids].row[allowed]
    for j in _prefix_positions(tok, *key):
        piece = int(allowed[j])
        child = (*ids, piece)
        if child in reached:  # a prefix piece whose continuations the search saw: keep what agrees
            values[j] += fragment_logp(tok, reached, fragment, require_space, child, typed + int(tok.word_chars[piece]))
    return _mass_logp(values)


@lru_cache(maxsize=1024)  # keyed like _few_allowed
def _prefix_positions(tok: PieceTokenizer, at_start: bool, needed: str, require_space: bool) -> tuple[int, ...]:
    """Positions in :func:`_few_allowed`'s ids of the pieces that type only part of ``needed``."""
    ids = _few_allowed(tok, at_start, needed, require_space)
    if ids is None:
        return ()
    return tuple(np.flatnonzero(tok.word_chars[ids] < len(needed)).tolist())


class _Node:
    """A hypothesis's place in the search: the model's output after it, and ``notes`` derived from it.

    With the prefix cache the notes are the cache entry's own, so what one keystroke derived
    (the word-end probability, the best pieces under a mask that does not depend on the
    fragment) serves every later keystroke that reaches the same pieces, instead of another
    pass over the vocabulary.
    """

    __slots__ = ("logp", "notes", "state")

    def __init__(self, logp: Tensor, state: Tensor, notes: dict) -> None:
        self.logp = logp  # [1, V]
        self.state = state  # [1, L, W]
        self.notes = notes

    @property
    def row(self) -> np.ndarray:
        """The log-probs as a numpy view (no copy), made once per node and noted."""
        row = self.notes.get("row")
        if row is None:
            row = self.notes["row"] = self.logp[0].numpy()
        return row


def _word_ends(tok: PieceTokenizer, nodes: list[_Node]) -> list[float]:
    """log P(the word ends after each node) (:func:`_log_boundary_mass`), from notes where known."""
    for node in nodes:
        if "end" not in node.notes:
            # One row's exp and dot in numpy: a few microseconds, where each torch op costs more
            # than that in dispatch alone.
            mass = float(np.dot(np.exp(node.row), tok.boundary_weights_np))
            node.notes["end"] = math.log(mass) if mass > 0.0 else float(_log_boundary_mass(tok, node.logp)[0])
    return [n.notes["end"] for n in nodes]


@lru_cache(maxsize=1024)  # ids arrays, short when text is needed; keyed like _allowed
def _few_allowed(tok: PieceTokenizer, at_start: bool, needed: str, require_space: bool) -> np.ndarray | None:
    """:func:`_allowed` as ascending ids when it is a short list, else None (a word-start mask
    that needs no text spans most of the vocabulary)."""
    if not needed:
        return None if at_start else tok.continuation_ids
    if at_start:
        ids = [i for i in tok.consistent_ids(" " + needed) if tok.starts_word[i]]
        if not require_space:
            ids += [i for i in tok.consistent_ids(needed) if tok.continues_word[i]]
    else:
        ids = [i for i in tok.consistent_ids(needed) if tok.continues_word[i]]
    return np.array(sorted(set(ids)), dtype=np.int64)


def _best_of(row: np.ndarray, ids: np.ndarray, beam: int) -> list[tuple[float, int]]:
    """The ``beam`` best of ``row[ids]`` as ``(log-prob, piece)``, best first (ties: lower id first)."""
    values = row[ids]
    if len(values) > beam:
        chosen = values.argpartition(-beam)[-beam:]
        values, ids = values[chosen], ids[chosen]
    ranked = sorted(zip((-values).tolist(), ids.tolist(), strict=True))  # (-log-prob, id): best, then lower id
    return [(-negated, piece) for negated, piece in ranked]


def _best_pieces(
    tok: PieceTokenizer, nodes: list[_Node], keys: list[tuple[bool, str, bool]], beam: int
) -> list[list[tuple[float, int]]]:
    """Each node's ``beam`` best allowed pieces as ``(log-prob, piece)``, best first.

    Most masks allow few pieces (those that agree with the text still needed, or the 1-2k
    pieces that continue a word): they are gathered by id in numpy, whose small-array ops
    cost a microsecond where torch's cost several. A word's first piece with no text needed
    may be most of the vocabulary: those rows share one masked top-k. Answers that do not
    depend on the fragment are noted on the node, the same at every keystroke that reaches it.
    """
    tops: list[list[tuple[float, int]] | None] = [None] * len(nodes)
    wide: list[int] = []
    for i, (node, key) in enumerate(zip(nodes, keys, strict=True)):
        noted = node.notes.get((key, beam)) if not key[1] else None
        if noted is not None:
            tops[i] = noted
            continue
        ids = _few_allowed(tok, *key)
        if ids is None:
            wide.append(i)
            continue
        tops[i] = _best_of(node.row, ids, beam)
        if not key[1]:
            node.notes[(key, beam)] = tops[i]
    if wide:
        scores = torch.cat([nodes[i].logp for i in wide]) + torch.stack([_allowed_scores(tok, *keys[i]) for i in wide])
        best = torch.topk(scores, min(beam, scores.size(1)), dim=1)
        for i, values, ids in zip(wide, best.values.tolist(), best.indices.tolist(), strict=True):
            tops[i] = nodes[i].notes[(keys[i], beam)] = list(zip(values, ids, strict=True))
    return tops  # type: ignore[return-value]


def _grow(memo: StepMemo | None, parents: list[_Node], rows: list[int], new_ids: list[tuple[int, ...]]
          ) -> Decoding[list[_Node]]:
    """The nodes of the new hypotheses (``new_ids``, grown from ``parents[rows]``).

    Hypotheses the memo already holds cost nothing; the rest share ONE model call, and
    their results go into the memo for the next request that tries them.
    """
    found = [memo.get(ids) for ids in new_ids] if memo is not None else [None] * len(new_ids)
    nodes: list[_Node | None] = [_Node(e.logp, e.state, e.notes) if e is not None else None for e in found]
    missing = [i for i, node in enumerate(nodes) if node is None]
    if missing:
        states = [parents[rows[i]].state for i in missing]
        logp, state = yield ModelCall([[new_ids[i][-1]] for i in missing],
                                      torch.cat(states) if len(states) > 1 else states[0])
        for j, i in enumerate(missing):
            entry = memo.put(new_ids[i], state[j : j + 1], logp[j : j + 1]) if memo is not None else None
            nodes[i] = (_Node(entry.logp, entry.state, entry.notes) if entry is not None
                        else _Node(logp[j : j + 1], state[j : j + 1], {}))
    return nodes  # type: ignore[return-value]


def typed_part_removed(text: str, fragment: str, require_space: bool) -> str:
    """Strip from a phrase continuation what the user has already typed.

    With ``require_space`` the context ended in a space (or is empty), so the phrase's
    leading space is already there; then the typed fragment is dropped.
    """
    if require_space and text.startswith(" "):
        text = text[1:]
    return text[len(fragment) :] if text.startswith(fragment) else text


@dataclass(frozen=True)
class PhraseCandidate:
    """A place a phrase could stop: its surface text, log P(the writer types exactly it), words."""

    text: str
    logp: float
    words: int
    sentence_end: bool = False
    typed: int = 0  # how much of ``text`` is already typed (see typed_part_removed)

    @property
    def inserted(self) -> int:
        """The characters a Tab on this phrase inserts."""
        return len(self.text) - self.typed


#: Where a card keeps the calibration of phrases at word boundaries, and of phrases inside a word:
#: fitted apart because inside a word the fragment conditions the probabilities, and a fit at word
#: boundaries read them under-confidently there (docs/models.md, "Ghost text inside a word").
BOUNDARY_CALIBRATION_KEY = "phrase_calibration"
INSIDE_CALIBRATION_KEY = "phrase_calibration_inside"


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
    def from_card(cls, card: dict, inside: bool = False) -> PhraseCalibration:
        """The card's calibration for phrases at word boundaries, or with ``inside`` for phrases that
        complete a typed fragment (``phrase_calibration_inside``; the boundaries' where a card has none)."""
        fitted = (inside and card.get(INSIDE_CALIBRATION_KEY)) or card.get(BOUNDARY_CALIBRATION_KEY) or {}
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
    given: float | None = None,
    lexicon: Lexicon | None = None,
    exclude: frozenset[str] = frozenset(),
) -> Decoding[list[PhraseCandidate]]:
    """Every place the best phrase continuations could stop, with its exact probability.

    A beam search over pieces ranked by joint log-probability. A hypothesis that has just
    completed a word is a candidate, scored with P(the word ends there) (the next piece does
    not continue it); one that has just emitted sentence punctuation is a candidate and stops
    (a phrase never runs past the end of a sentence); none grows past ``max_words`` words.
    The first word must complete ``fragment``, and the probabilities are then conditioned on
    the text starting with it: on ``given``, log P(it does) (the next-word search's
    :func:`fragment_logp`), or else on the mass of the first pieces that agree with it, a looser
    bound; without a fragment, on a typed space (:func:`space_logp`). Hypotheses below
    ``min_logp`` are dropped (they can only fall). With a ``lexicon``, a phrase with a word
    outside it is never a candidate. A first word in ``exclude`` is never
    finished (only longer words that start with it go on); ``given`` should then be the
    next-word search's, which leaves its probability out.
    """
    printable, sentence_end = tok.printable, tok.sentence_end
    found: dict[str, PhraseCandidate] = {}
    if given is None and not fragment:  # log P(the continuation starts as typed), conditioned away below
        given = space_logp(tok, _Node(logp, state, {}), require_space)
    elif given is None:
        first = _allowed(tok, True, fragment, require_space)
        given = float(torch.logsumexp(logp[0].masked_fill(~first, NEG_INF), dim=0))
    min_logp = min_logp + given if min_logp > NEG_INF else NEG_INF

    def add(text: str, score: float, n_words: int, at_sentence_end: bool) -> None:
        if text.lstrip(" ") == fragment or text.lstrip(" ") in exclude:
            return  # only what is already typed, or a word the text is known not to be: nothing to show
        if lexicon is not None and not all(w in lexicon for w in words(text)):
            return
        old = found.get(text)
        total = score - given if old is None else _logaddexp(old.logp, score - given)
        typed = len(text) - len(typed_part_removed(text, fragment, require_space))
        found[text] = PhraseCandidate(text, total, n_words, at_sentence_end, typed)

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
            if hyp.word in exclude:  # it may only grow into a longer word
                masks.append(tok.continuation)
                continue
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


class Phrase(Protocol):
    """What :func:`choose_phrase` weighs: a :class:`PhraseCandidate`, or an evaluator's record of one."""

    @property
    def logp(self) -> float: ...
    @property
    def words(self) -> int: ...
    @property
    def sentence_end(self) -> bool: ...
    @property
    def inserted(self) -> int: ...


P = TypeVar("P", bound=Phrase)


def expected_saving(phrase: Phrase, confidence: float) -> float:
    """Keystrokes a shown ``phrase`` saves on average: its characters less the Tab, when it is taken."""
    return confidence * (phrase.inserted - 1)


def choose_phrase(candidates: list[P], calibration: PhraseCalibration, threshold: float) -> tuple[P, float] | None:
    """The phrase to show: of the candidates whose confidence reaches ``threshold``, the one that
    saves the most keystrokes on average (:func:`expected_saving`).

    The longest confident phrase would insert the most when right, but it is right less often
    than a shorter one that ends where the writer is surer; weighing both saves more keystrokes
    and shows fewer wrong ghosts (docs/models.md, "Which phrase is shown"). Ties go to more
    words, then one that ends its sentence, then the more confident. When none reaches the
    threshold the most confident one is returned (the caller does not show it).
    """
    if not candidates:
        return None
    scored = [(c, calibration.confidence(c.logp, c.words)) for c in candidates]
    confident = [(c, conf) for c, conf in scored if conf >= threshold]
    if confident:
        return max(confident, key=lambda cc: (expected_saving(cc[0], cc[1]), cc[0].words, cc[0].sentence_end, cc[1]))
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
    given: float | None = None,
    lexicon: Lexicon | None = None,
    exclude: frozenset[str] = frozenset(),
) -> Decoding[tuple[str, float] | None]:
    """The phrase to show ``(surface text, confidence)``, or ``None`` if no phrase finished.

    The text is the continuation right after the context, so it still contains the typed
    fragment; the caller strips what the user already typed. ``confidence`` is the calibrated
    probability that the writer types exactly this text next (see :class:`PhraseCalibration`).
    ``given`` is what the probabilities are conditioned on inside a word, ``lexicon`` the words
    it may use, ``exclude`` first words it may not (:func:`phrase_candidates`).
    """
    min_logp = calibration.min_logp(threshold, max_words)
    candidates = yield from phrase_candidates(tok, logp, state, fragment, require_space, max_words, beam, memo,
                                              min_logp, given, lexicon, exclude)
    chosen = choose_phrase(candidates, calibration, threshold)
    return None if chosen is None else (chosen[0].text, chosen[1])

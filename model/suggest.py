"""One autocomplete request, end to end, as a decoder generator (see :mod:`model.batching`).

``suggest`` turns raw typed text into suggestions: normalise it, back off to the last word
boundary (the typed fragment is completed by the decoder, not fed to the network), find
the state after the context (from the prefix cache, prefilling only what is new), then run
the next-word search and, if asked, the phrase search. The server's engine and the offline
evaluator both run exactly this function.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from model.artifact import LanguageModel
from model.batching import Decoding, ModelCall
from model.decoder import complete_phrase, next_words, typed_part_removed
from model.prefix_cache import PrefixStateCache, StepMemo
from model.text import (
    SUBJECT_PREFIX,
    ends_in_pictograph,
    normalize_prompt,
    split_fragment,
    subject_line,
    typed_apostrophe,
    words,
)

#: A subject line is read up to this many pieces (a subject is a line; more is not one).
SUBJECT_PIECES = 64
#: How far back from a cut :func:`text_tail` looks for the whitespace before the word it fell in.
LONGEST_WORD = 64
#: The subject line's first word ("Subject"): see unread_header_words.
HEADER_WORDS = frozenset(words(SUBJECT_PREFIX)[:1])


@dataclass(frozen=True)
class DecodeOptions:
    """The decoder's knobs, and the one place their defaults are written.

    ``app.config.Settings`` takes its decoding defaults from these fields and the server builds
    its options from its settings; the evaluators use the same defaults, so offline figures are
    the served decoder's. (The defaults live here, not in ``app``, because training may not
    import the server.)
    """

    beam: int = 6  # ranks next words as well as 8 on held-out text, at less work per keystroke
    phrase_beam: int = 4
    prefill_chunk: int = 256
    completion_threshold: float = 0.4  # the operating point chosen on the dev split (docs/models.md)
    # Read at most the last 128 context pieces (0: all; see context_window): a 1,500-character
    # context then costs 1.2x a short one at p99 instead of 4.5x, for at most 0.1 point of top-1
    # (docs/models.md, "Context window").
    context_pieces: int = 128
    # Propose only words of the model's lexicon (when it carries one): its other strings were
    # almost never what was typed next (docs/models.md, "Known words").
    known_words: bool = True


@dataclass
class SuggestResult:
    fragment: str
    suggestions: list[tuple[str, float]]  # (word, probability), best first
    completion: tuple[str, float] | None  # (text to insert after the caret, confidence)
    context_tokens: int = 0
    prefilled_tokens: int = 0  # tokens the network had to read for the context
    cache_hit: bool = False
    # P(the fragment is already the whole word | the fragment is typed): the suggestions never
    # repeat it (see model.decoder.NextWords); 0 with no fragment or when the search did not reach it.
    typed_word_prob: float = 0.0
    # P(the next word starts with the fragment | context and the space typed before it), from what the
    # search reached (see model.decoder.fragment_logp; 1 with no fragment): the suggestions' and
    # typed_word_prob's condition; times it, they are conditioned on the context and that space alone
    # (model.decoder.space_logp: the network's mass for what cannot follow a space is never counted).
    fragment_prob: float = 1.0
    # For each suggestion, exactly what to insert after the caret (see insertion_text).
    insertions: list[str] = field(default_factory=list)
    subject_read: bool = False  # the network read the e-mail's subject before the text (header_ids)


def prompt_parts(
    lm: LanguageModel, text: str, context_pieces: int, head: list[int] | None = None
) -> tuple[list[int], str, bool, str]:
    """(context ids the network reads, header included; fragment; require_space; normalised prompt).

    ``head`` is what is read before the text (:func:`header_ids`; EOS alone by default). The text's
    ids are cut to the last ``context_pieces`` (:func:`context_window`; 0 keeps them all).
    """
    prompt = normalize_prompt(text_tail(text, context_pieces * lm.tokenizer.max_piece_chars))
    context, fragment = split_fragment(prompt)
    require_space = context == "" or context.endswith(" ")
    head = head or [lm.eos_id]
    ids = [*head, *lm.tokenizer.encode(context.rstrip(" "))]
    return context_window(ids, lm.tokenizer.word_start, context_pieces, len(head)), fragment, require_space, prompt


def text_tail(text: str, chars: int) -> str:
    """The end of ``text`` the context window reads: at least its last ``chars`` characters (all when 0).

    An editor sends the whole e-mail so far, and normalising and tokenising all of it to keep its
    last pieces would cost each keystroke in proportion to the e-mail; ``prompt_parts`` asks for
    the window's pieces times the longest piece's characters (short of the window only where
    normalising removes much: whitespace runs, markup). The cut moves in steps of half that and
    lands on the whitespace before the word it fell in, so consecutive keystrokes share their
    context's start and the prefix cache keeps serving them. Texts up to one and a half times
    ``chars`` are whole.
    """
    step = chars // 2
    if chars <= 0 or len(text) <= chars + step:
        return text
    start = (len(text) - chars) // step * step
    space = max(text.rfind(c, max(0, start - LONGEST_WORD), start + 1) for c in " \n\t\r")
    return text[space if space >= 0 else start :]


def header_ids(lm: LanguageModel, subject: str = "") -> list[int]:
    """What the network reads before the text: EOS, then, for a model that reads subjects, the subject line and EOS.

    That is how its training e-mails were laid out (``training.corpus``: the subject line a
    document just before the body). A model that never learnt it would take the line for
    another e-mail, so its subject is left out. At most ``SUBJECT_PIECES`` of the line are read.
    """
    line = subject_line(subject) if subject and lm.reads_subject else ""
    if not line:
        return [lm.eos_id]
    return [lm.eos_id, *lm.tokenizer.encode(line)[:SUBJECT_PIECES], lm.eos_id]


def unread_header_words(lm: LanguageModel, ids: list[int]) -> frozenset[str]:
    """Words the text cannot start with, though the network expects them (the decoders' ``exclude``).

    Three of every four training e-mails of a model that reads subjects began with the subject
    line, so at the very start of a text sent without a subject (``ids`` is the lone EOS) it
    still expects "Subject: ..." (65% for ``gru-email``) and would propose the line's first word.
    The text itself never starts with the line: that word is ruled out and the rest renormalised.
    """
    return HEADER_WORDS if lm.reads_subject and ids == [lm.eos_id] else frozenset()


def context_window(ids: list[int], word_start: Tensor, pieces: int, header: int = 1) -> list[int]:
    """The context the network reads: the ``header`` (EOS, subject) and at most the last ``pieces`` pieces.

    The cut lands on a word's first piece, and it moves in steps of half a window, so the
    contexts of consecutive keystrokes share their start and the prefix cache keeps serving
    them; the text read is between half a window and a window long. A context read is
    token-serial, so this bounds its cost however much text an editor sends.
    """
    body = ids[header:]
    if pieces <= 0 or len(body) <= pieces:
        return ids
    stride = max(1, pieces // 2)
    start = ((len(body) - pieces) // stride + 1) * stride
    while start < len(body) and not bool(word_start[body[start]]):
        start += 1
    return [*ids[:header], *body[start:]]


def context_state(
    lm: LanguageModel, ids: list[int], cache: PrefixStateCache | None, chunk: int = DecodeOptions.prefill_chunk,
    scope: str = "",
) -> Decoding[tuple[Tensor, Tensor, int, bool]]:
    """(log-probs [1,V], state [1,L,W], tokens prefilled, cache hit) after ``ids``."""
    entry = cache.lookup(ids, scope) if cache is not None else None
    if entry is not None and len(entry.ids) == len(ids):
        return entry.logp, entry.state, 0, True
    start = len(entry.ids) if entry is not None else 0
    state = entry.state if entry is not None else lm.zero_state
    logp = torch.empty(0)
    for pos in range(start, len(ids), chunk):
        logp, state = yield ModelCall([ids[pos : pos + chunk]], state)
    if cache is not None:
        cache.insert(ids, state, logp, scope=scope)
    return logp, state, len(ids) - start, entry is not None


def insertion_text(word: str, fragment: str, require_space: bool, spaced: bool) -> str:
    """What to insert after the caret to complete ``word``.

    The rest of it past the typed fragment; with nothing typed, the word, and where the context
    ended without a space, the space it takes if its likelier spelling has one (after "Mr." it is
    " Lay"; after "john@" or "3:" the word attaches). Only the decoder knows which.
    """
    if fragment:
        return word[len(fragment) :]
    return " " + word if spaced and not require_space else word


def suggest(
    lm: LanguageModel,
    text: str,
    k: int = 3,
    max_words: int = 0,
    cache: PrefixStateCache | None = None,
    options: DecodeOptions = DecodeOptions(),
    scope: str = "",
    subject: str = "",
) -> Decoding[SuggestResult]:
    """Suggestions for ``text`` (see the module docstring); ``scope`` confines its cache use.

    ``subject``: the e-mail's subject, read before the text by a model that learnt to (:func:`header_ids`).
    """
    head = header_ids(lm, subject)
    ids, fragment, require_space, _ = prompt_parts(lm, text, options.context_pieces, head)
    logp, state, prefilled, hit = yield from context_state(lm, ids, cache, options.prefill_chunk, scope)
    memo = StepMemo(cache, ids, scope) if cache is not None else None
    lexicon = lm.lexicon if options.known_words else None
    exclude = unread_header_words(lm, ids)
    found = yield from next_words(lm.tokenizer, logp, state, fragment, require_space, k=k, beam=max(options.beam, k),
                                  memo=memo, lexicon=lexicon, exclude=exclude)
    # Conditioned on what is typed: P(word | context, the next word starts with the fragment).
    given = found.fragment_logp
    suggestions = [(word, min(1.0, math.exp(score - given))) for word, score in found.words]
    typed_word_prob = min(1.0, math.exp(found.typed_logp - given)) if found.typed_logp is not None else 0.0
    completion = None
    if max_words > 0:
        phrase = yield from complete_phrase(
            lm.tokenizer, logp, state, fragment, require_space, max_words, options.phrase_beam, memo,
            lm.phrase_calibration_inside if fragment else lm.phrase_calibration, options.completion_threshold,
            # Mid-word, conditioned as the suggestions are (docs/models.md, "Ghost text inside a word").
            given=given, lexicon=lexicon, exclude=exclude,
        )
        if phrase is not None and phrase[1] >= options.completion_threshold:
            completion = (typed_part_removed(phrase[0], fragment, require_space), phrase[1])
    insertions = [insertion_text(word, fragment, require_space, word in found.spaced) for word, _ in found.words]
    if not fragment and ends_in_pictograph(text):  # read as a space the writer did not type
        insertions = [" " + t for t in insertions]
        completion = completion and (" " + completion[0], completion[1])
    result = SuggestResult(fragment, suggestions, completion, len(ids), prefilled, hit, typed_word_prob=typed_word_prob,
                           fragment_prob=min(1.0, math.exp(given - found.outside_logp)), insertions=insertions,
                           subject_read=len(head) > 1)
    apostrophe = typed_apostrophe(text)
    return result if apostrophe == "'" else in_apostrophe_style(result, apostrophe)


def in_apostrophe_style(result: SuggestResult, apostrophe: str) -> SuggestResult:
    """``result`` written with the writer's ``apostrophe``: the network reads and writes "'" (see
    ``model.text.TYPOGRAPHY``), but text typed with "’" (or "´") goes on with it ("I’ll", not "I'll")."""
    def styled(s: str) -> str:
        return s.replace("'", apostrophe)

    completion = result.completion and (styled(result.completion[0]), result.completion[1])
    return replace(result, fragment=styled(result.fragment), completion=completion,
                   suggestions=[(styled(word), p) for word, p in result.suggestions],
                   insertions=[styled(text) for text in result.insertions])

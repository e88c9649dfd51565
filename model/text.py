"""Text conventions shared by training, evaluation and serving.

Keeping them in one place is what makes the evaluator's numbers describe the server:
both normalise text and find words exactly the same way.
"""

from __future__ import annotations

import re
import unicodedata

#: A "word" for every word-level metric and for every suggestion the server makes.
WORD_PATTERN = r"[A-Za-z0-9]+(?:'[A-Za-z]+)?"
WORD_RE = re.compile(WORD_PATTERN)
#: Characters that may continue a word (a word may carry one apostrophe suffix).
WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'")
_BR_RE = re.compile(r"<br\s*/?>", re.IGNORECASE)
_SPACE_RE = re.compile(r"\s+")
_ODD_SPACE_RE = re.compile(r"[^\S ]| {2}")  # whitespace other than a lone space
_TRAILING_FRAGMENT_RE = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]*)?$")


#: Emoji and pictographic symbols: category So in the arrows-to-symbols block and the emoji planes
#: (arrows and dingbats included; not ©, ®, °, ™ nor math signs). The training text has none (the
#: e-mail corpus is ASCII; IMDB's test reviews 4 in 29 M characters), so a network read one as rare
#: bytes and lost the thread ("Happy birthday 🎉🎂 Hope you have a great " -> "experience" 12% first,
#: against "holiday" 21% without them); one separates words as a space does, and is read as one.
PICTOGRAPHS = frozenset(c for c in map(chr, [*range(0x2190, 0x2C00), *range(0x1F000, 0x1FB00)])
                        if unicodedata.category(c) == "So")
#: What only dresses a pictograph (variation selectors, the keycap, skin tones): dropped with it.
_EMOJI_MODIFIERS = "\ufe0e\ufe0f\u20e3" + "".join(map(chr, range(0x1F3FB, 0x1F400)))
#: Characters editors put in unseen: zero-width spaces and joiners, a byte-order mark, soft hyphens,
#: direction marks (dropped, :data:`TYPOGRAPHY`).
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad\u200e\u200f"
#: Compatibility forms of ASCII letters and signs: ligatures ("ﬁ" from a PDF) and full-width forms
#: (an East Asian input method's "Ｆ"), as NFKC folds them (NFKC at large would also split the
#: acute accent "´" into a space and a combining mark).
_COMPATIBILITY = {c: unicodedata.normalize("NFKC", c)
                  for c in map(chr, [*range(0xFB00, 0xFB07), *range(0xFF01, 0xFF5F)])}
#: Punctuation that editors put in as one types (curly apostrophes and quotes, the acute accent some
#: keyboards type for one, dashes, the ellipsis), folded to the ASCII the training text is written in,
#: pictographs to spaces (:data:`PICTOGRAPHS`), compatibility letters to ASCII, and characters they put in
#: unseen (:data:`_INVISIBLE`), dropped: the e-mail corpus has none of them and IMDB's training reviews 286 "’" against
#: 400,000 "'", so a network read "don’t" as a rare byte sequence and lost the thread ("I don’t "
#: -> "and" instead of "know"; a byte-order mark before "Hi John, I " cut "am" from 14% to 3%).
TYPOGRAPHY = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "´": "'", "“": '"', "”": '"', "„": '"', "–": "-", "—": "--",
                            "…": "...", **dict.fromkeys(_INVISIBLE),
                            **dict.fromkeys(PICTOGRAPHS, " "), **dict.fromkeys(_EMOJI_MODIFIERS), **_COMPATIBILITY})
#: The apostrophe editors substitute for "'".
CURLY_APOSTROPHE = "’"


def normalize_text(text: str) -> str:
    """Unicode NFC, typographic punctuation to ASCII, pictographs to spaces and invisible characters
    out (:data:`TYPOGRAPHY`), HTML line breaks to spaces, every whitespace run to one space, stripped."""
    return _spaced(_folded(text))


def normalize_prompt(text: str) -> str:
    """Like :func:`normalize_text` but keeps one trailing space: it tells "word ended"."""
    text = _folded(text)  # first: a space stays the last character when an invisible one followed it
    if not text:
        return ""
    ends_with_space = text[-1].isspace()
    body = _spaced(text)
    return body + " " if ends_with_space and body else body


def _folded(text: str) -> str:
    """NFC, then :data:`TYPOGRAPHY` (only a non-ASCII text has anything to fold: a scan in C)."""
    text = unicodedata.normalize("NFC", text)
    return text if text.isascii() else text.translate(TYPOGRAPHY)


def _spaced(text: str) -> str:
    """HTML line breaks to spaces, every whitespace run to one space, stripped."""
    if "<" in text:  # a scan in C: most texts (every keystroke of one) have no tag to look for
        text = _BR_RE.sub(" ", text)
    text = text.replace("\x00", " ")
    if _ODD_SPACE_RE.search(text) is None:  # nothing to collapse: no new string
        return text.strip(" ")
    return _SPACE_RE.sub(" ", text).strip()


#: Apostrophes typed for "'" (read as it, :data:`TYPOGRAPHY`), and answered in: the curly one editors
#: substitute, the acute accent some keyboards type.
TYPED_APOSTROPHES = (CURLY_APOSTROPHE, "´")


def typed_apostrophe(text: str) -> str:
    """The apostrophe the writer types: the curly one (or the acute accent) when the text has it and no straight one."""
    if text.isascii() or "'" in text:
        return "'"
    return next((a for a in TYPED_APOSTROPHES if a in text), "'")


def ends_in_pictograph(text: str) -> bool:
    """The text's last visible character is a pictograph (:data:`PICTOGRAPHS`): read as a space, but
    the writer typed none, so a next word inserted after it needs one ("Sounds good 👍" + " See")."""
    text = text.rstrip(_EMOJI_MODIFIERS + _INVISIBLE)
    return bool(text) and text[-1] in PICTOGRAPHS


def split_fragment(text: str) -> tuple[str, str]:
    """Split a prompt into (context before the word being typed, the typed fragment).

    ``"the mo"`` -> ``("the ", "mo")``; ``"the "`` -> ``("the ", "")``. The fragment is the
    trailing part of a word: letters/digits, optionally an apostrophe and letters.
    """
    # Only the trailing run of word characters can hold the match: searching there instead of
    # the whole text gives the same leftmost match in O(fragment) instead of O(text) (a typed
    # review is thousands of characters, and every keystroke splits it again).
    start = len(text)
    while start > 0 and text[start - 1] in WORD_CHARS:
        start -= 1
    match = _TRAILING_FRAGMENT_RE.search(text, start)
    if match is None:
        return text, ""
    return text[: match.start()], match.group(0)


#: How an e-mail's subject is written before its body, in training text and in served contexts.
SUBJECT_PREFIX = "Subject: "


#: Reply and forward markers before a subject ("Re: ", "FW: ", "Fwd: ", repeated).
_REPLY_MARKERS_RE = re.compile(r"^(?:(?:re|fwd?)\s*:\s*)+", re.IGNORECASE)


def subject_line(subject: str) -> str:
    """The subject as the text the network reads before the body ("" when there is none).

    A model that reads subjects saw, for most of its training e-mails, this line as a document
    of its own just before the body (EOS, subject line, EOS, body): what the body is about. The
    corpus's subjects carry no reply or forward markers (1 of 16,454), so they are left out here
    too: "RE: FW: Lunch tomorrow" is read as "Lunch tomorrow" (the markers had cut "lunch" after
    "Are you free for " from 40% to 29% with gru-email).
    """
    subject = _REPLY_MARKERS_RE.sub("", normalize_text(subject))
    return SUBJECT_PREFIX + subject if subject else ""


def words(text: str) -> list[str]:
    """Every word of ``text`` in order (the prediction targets of the metrics)."""
    return WORD_RE.findall(text)

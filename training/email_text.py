"""E-mail corpus readers: the author's own words from mbox files and maildir folders.

Why a dedicated module: an e-mail is mostly *not* its author's text. Headers, quoted
replies, attribution lines ("On <date>, <someone> wrote:"), forwarded and
"-----Original Message-----" blocks, signatures, attachments and HTML markup would all
teach the model somebody else's phrasing (or boilerplate) many times over, because the
same quoted text reappears in every reply of a thread. So each message is reduced to its
``text/plain`` body (the tag-stripped ``text/html`` body only when there is no plain
one), and :func:`strip_quoted` cuts everything that is not newly written.

One bad message never stops a read: it is counted in :class:`training.data.ReadStats`
(``empty_body``, ``no_text_part``, ``undecodable``, ``unreadable``, ``unparseable``) and
skipped. Only the standard library is used (:mod:`mailbox`, :mod:`email`).
"""

from __future__ import annotations

import codecs
import email
import logging
import mailbox
import re
from collections.abc import Iterator
from email.message import EmailMessage, Message
from email.policy import default as default_policy
from email.utils import getaddresses
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from training.data import ReadStats

log = logging.getLogger(__name__)

#: The signature separator (RFC 3676 section 4.3): exactly dash, dash, space.
SIGNATURE_SEPARATOR = "-- "

# A reply attribution on one line: "On Tue, 5 Mar 2024 at 10:00, Ann <a@b.c> wrote:".
# A few other common client languages are accepted as well.
_ATTRIBUTION_RE = re.compile(
    r"^\s*(?:On|Am|Le|El|Il)\s.*\b(?:wrote|schrieb|a\s+écrit|escribió|ha\s+scritto)\s*:\s*$",
    re.IGNORECASE,
)
# The start of an attribution that a client wrapped over two lines.
_ATTRIBUTION_START_RE = re.compile(r"^\s*(?:On|Am|Le|El|Il)\s", re.IGNORECASE)
_ORIGINAL_RE = re.compile(r"^\s*-{2,}\s*Original\s+Message\s*-{2,}\s*$", re.IGNORECASE)
_FORWARDED_RE = re.compile(
    r"^\s*(?:-{2,}\s*Forwarded\s+message\s*-{2,}|Begin\s+forwarded\s+message:)\s*$",
    re.IGNORECASE,
)
# Outlook replies without an "Original Message" line: a rule of underscores, then headers.
_OUTLOOK_RULE_RE = re.compile(r"^\s*_{10,}\s*$")
_HEADER_FROM_RE = re.compile(r"^\s*From:\s", re.IGNORECASE)
_HEADER_FOLLOW_RE = re.compile(r"^\s*(?:Sent|Date|To|Subject):\s", re.IGNORECASE)


def _is_reply_header(lines: list[str], i: int) -> bool:
    """True when ``lines[i]`` starts a reply attribution (one line, or wrapped over two)."""
    line = lines[i]
    if _ATTRIBUTION_RE.match(line):
        return True
    if i + 1 < len(lines) and _ATTRIBUTION_START_RE.match(line) and lines[i + 1].strip():
        joined = f"{line.rstrip()} {lines[i + 1].strip()}"
        # Only trust a two-line join when it looks like "date / address ... wrote:".
        return bool(_ATTRIBUTION_RE.match(joined)) and bool(re.search(r"[0-9@<]", joined))
    return False


def _is_outlook_header(lines: list[str], i: int) -> bool:
    """``From: ...`` followed within three lines by ``Sent:``/``Date:``/``To:``/``Subject:``."""
    if not _HEADER_FROM_RE.match(lines[i]):
        return False
    return any(_HEADER_FOLLOW_RE.match(line) for line in lines[i + 1 : i + 4])


def strip_quoted(body: str) -> str:
    """The newly written part of a plain-text e-mail body.

    Drops quoted lines (starting with ``>``, after optional indentation) and cuts the
    body at the first reply attribution (``On <date>, <someone> wrote:``),
    ``-----Original Message-----`` line, Outlook header block, forwarded-message marker
    or signature separator (a line that is exactly ``-- ``): everything from there on is
    someone else's text, a forwarded message, or a signature. The result is stripped of
    surrounding blank lines; whitespace inside is left for the caller to normalise.
    """
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for i, line in enumerate(lines):
        if line == SIGNATURE_SEPARATOR:
            break
        if _ORIGINAL_RE.match(line) or _FORWARDED_RE.match(line):
            break
        if _is_reply_header(lines, i) or _is_outlook_header(lines, i):
            break
        if _OUTLOOK_RULE_RE.match(line) and i + 1 < len(lines) and _is_outlook_header(lines, i + 1):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line.rstrip())
    return "\n".join(kept).strip()


class _HTMLText(HTMLParser):
    """Visible text of an HTML body; quoted (``<blockquote>``) and non-text parts dropped."""

    _SKIP = frozenset({"blockquote", "script", "style", "head", "title"})
    _BREAKS = frozenset(
        {"br", "p", "div", "li", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "pre"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_tag: str | None = None
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip_tag is not None:
            if tag == self._skip_tag:
                self._skip_depth += 1
            return
        if tag in self._SKIP:
            self._skip_tag, self._skip_depth = tag, 1
        elif tag in self._BREAKS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # A self-closing tag (<br/>) never opens a skipped region.
        if self._skip_tag is None and tag in self._BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self._skip_tag is not None:
            if tag == self._skip_tag:
                self._skip_depth -= 1
                if self._skip_depth == 0:
                    self._skip_tag = None
            return
        if tag in self._BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skip_tag is None:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Visible text of ``html`` with block elements as line breaks and entities decoded."""
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


def _decode_part(part: Message) -> str | None:
    """The text of one MIME part; None when it cannot be decoded.

    With a declared charset that Python knows, bad bytes become U+FFFD; an unknown
    declared charset is undecodable. Without a declaration only UTF-8 (and so ASCII)
    is accepted.
    """
    payload = part.get_payload(decode=True)
    if payload is None:
        return None
    if isinstance(payload, str):  # pragma: no cover - only for non-bytes payload models
        return payload
    charset = part.get_content_charset()
    if charset:
        try:
            codecs.lookup(charset)
        except LookupError:
            return None
        return payload.decode(charset, errors="replace")
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


def message_text(msg: EmailMessage, stats: ReadStats) -> str | None:
    """The author's own words in ``msg``, or None (counted in ``stats``) when there are none."""
    part = msg.get_body(preferencelist=("plain",))
    is_html = False
    if part is None:
        part = msg.get_body(preferencelist=("html",))
        is_html = True
    if part is None:
        stats.skip("no_text_part")
        return None
    text = _decode_part(part)
    if text is None:
        stats.skip("undecodable")
        return None
    if is_html:
        text = html_to_text(text)
    body = strip_quoted(text)
    if not body.strip():
        stats.skip("empty_body")
        return None
    return body


def _parse(raw: bytes) -> EmailMessage:
    # policy.default makes the parser build EmailMessage objects (with get_body()).
    return cast(EmailMessage, email.message_from_bytes(raw, policy=default_policy))


def senders_of(spec: str | None) -> frozenset[str]:
    """``"me@a.org, Me@B.org"`` -> the addresses, lower-cased (empty: no filter)."""
    return frozenset(a.strip().lower() for a in (spec or "").split(",") if a.strip())


def is_from(msg: Message, senders: frozenset[str]) -> bool:
    """The message's ``From:`` holds one of ``senders`` (one's own mail in a whole-mailbox export)."""
    return any(address.lower() in senders for _, address in getaddresses(msg.get_all("From", [])))


def _read_messages(
    box: mailbox.Mailbox, keys: list[str] | list[int], stats: ReadStats, senders: frozenset[str] = frozenset()
) -> Iterator[tuple[str, str]]:
    for key in keys:
        try:
            raw = box.get_bytes(key)
        except (KeyError, OSError) as exc:
            log.debug("message %s unreadable: %s", key, exc)
            stats.skip("unreadable")
            continue
        try:
            msg = _parse(raw)
            if senders and not is_from(msg, senders):
                stats.skip("other_sender")
                continue
            text = message_text(msg, stats)
            subject = str(msg.get("Subject") or "")
        except Exception as exc:  # one malformed message must never stop a corpus read
            log.debug("message %s unparseable: %r", key, exc)
            stats.skip("unparseable")
            continue
        if text is not None:
            yield subject, text


def read_mbox(path: Path, stats: ReadStats, senders: frozenset[str] = frozenset()) -> Iterator[tuple[str, str]]:
    """(subject, body text) of each message of the mbox file ``path`` (only from ``senders``, if given), in file
    order."""
    from training.data import CorpusError

    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: not an mbox file")
    try:
        box = mailbox.mbox(path, create=False)
    except (OSError, mailbox.Error) as exc:
        raise CorpusError(f"{path}: not a readable mbox file ({exc})") from exc
    try:
        keys = list(box.iterkeys())
        if not keys:
            log.warning("%s: no messages found (an mbox message starts with a 'From ' line)", path)
        yield from _read_messages(box, keys, stats, senders)
    finally:
        box.close()


def read_maildir(path: Path, stats: ReadStats, senders: frozenset[str] = frozenset()) -> Iterator[tuple[str, str]]:
    """(subject, body text) of each message of the maildir ``path`` (cur/ and new/; only from ``senders``,
    if given), sorted by key."""
    from training.data import CorpusError

    path = Path(path)
    if not ((path / "cur").is_dir() and (path / "new").is_dir()):
        raise CorpusError(f"{path}: not a maildir (needs cur/ and new/ subfolders)")
    try:
        box = mailbox.Maildir(path, factory=None, create=False)
        keys = sorted(box.iterkeys())
    except (OSError, mailbox.Error) as exc:
        raise CorpusError(f"{path}: not a readable maildir ({exc})") from exc
    if not keys:
        log.warning("%s: maildir holds no messages", path)
    try:
        yield from _read_messages(box, keys, stats, senders)
    finally:
        box.close()

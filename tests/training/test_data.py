"""Corpus readers (training.data) and the e-mail body extraction (training.email_text).

Every test builds its own tiny corpus under ``tmp_path``; nothing reads ../shared.
"""

from __future__ import annotations

import io
import json
import mailbox
import tarfile
import unicodedata
from email.message import EmailMessage
from pathlib import Path

import pytest

from training.data import (
    CorpusError,
    ReadStats,
    detect_format,
    is_validation,
    iter_documents,
    split_documents,
)
from training.email_text import html_to_text, strip_quoted

# ----------------------------------------------------------------------------- aclImdb

# Decomposed "é" (e + combining acute): the readers must hand back NFC text.
_DECOMPOSED = "Cafe\u0301"
_ACLIMDB = {
    "train/pos/0_9.txt": f"Great film.<br /><br />{_DECOMPOSED} scene!",
    "train/pos/1_8.txt": "Loved it.",
    "train/neg/0_2.txt": "Awful<br/>plot.",
    "train/unsup/0_0.txt": "No rating here.",
    "test/pos/0_10.txt": "Test positive.",
    "test/neg/0_1.txt": "Test negative.",
    "train/urls_pos.txt": "http://example.com/not-a-review",
    "imdb.vocab": "the\nand\n",
}
_TRAIN_DOCS = [
    "Great film. Café scene!",
    "Loved it.",
    "Awful plot.",
    "No rating here.",
]
_TEST_DOCS = ["Test positive.", "Test negative."]


def _write_aclimdb_folder(root: Path) -> Path:
    base = root / "aclImdb"
    for rel, text in _ACLIMDB.items():
        file = base / rel
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text, encoding="utf-8")
    return base


def _write_aclimdb_tar(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        # Archive order differs from sorted order on purpose: the tar is read as stored.
        for rel, text in _ACLIMDB.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"aclImdb/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_aclimdb_folder_train_and_test(tmp_path: Path) -> None:
    base = _write_aclimdb_folder(tmp_path)
    for root in (tmp_path, base):  # the folder holding aclImdb/, or aclImdb/ itself
        assert detect_format(root) == "aclimdb"
        stats = ReadStats()
        assert list(iter_documents(root, split="train", stats=stats)) == _TRAIN_DOCS
        assert stats.docs == 4 and stats.total_skipped == 0
        assert list(iter_documents(root, split="test")) == _TEST_DOCS


def test_aclimdb_tar_gz_matches_folder(tmp_path: Path) -> None:
    archive = _write_aclimdb_tar(tmp_path / "aclImdb_v1.tar.gz")
    assert detect_format(archive) == "aclimdb"
    docs = list(iter_documents(archive, split="train"))
    assert docs == _TRAIN_DOCS
    assert all(doc == unicodedata.normalize("NFC", doc) for doc in docs)
    assert not any("<br" in doc for doc in docs)
    assert list(iter_documents(archive, split="test")) == _TEST_DOCS
    # Fixed order: a second read gives exactly the same sequence.
    assert list(iter_documents(archive, split="train")) == docs


def test_aclimdb_folder_order_is_sorted_file_names(tmp_path: Path) -> None:
    folder = tmp_path / "aclImdb" / "test" / "pos"
    folder.mkdir(parents=True)
    for name in ("b.txt", "c.txt", "a.txt"):
        (folder / name).write_text(f"review {name[0]}", encoding="utf-8")
    (tmp_path / "aclImdb" / "test" / "neg").mkdir()
    assert list(iter_documents(tmp_path, split="test")) == ["review a", "review b", "review c"]


def test_aclimdb_bad_split_and_bad_archive(tmp_path: Path) -> None:
    base = _write_aclimdb_folder(tmp_path)
    with pytest.raises(CorpusError, match="split"):
        list(iter_documents(base, split="validation"))
    fake = tmp_path / "broken.tar.gz"
    fake.write_bytes(b"\x1f\x8bthis is not gzip data at all")
    with pytest.raises(CorpusError, match="tar archive"):
        list(iter_documents(fake))


def test_aclimdb_undecodable_review_is_counted(tmp_path: Path) -> None:
    base = _write_aclimdb_folder(tmp_path)
    (base / "train" / "neg" / "9_1.txt").write_bytes(b"bad \xff\xfe bytes")
    stats = ReadStats()
    assert list(iter_documents(base, split="train", stats=stats)) == _TRAIN_DOCS
    assert stats.skipped == {"undecodable": 1}


# -------------------------------------------------------------------------- plain text


def test_text_one_document_per_line(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text(f"first  line\n\n   \nsecond\tline\n{_DECOMPOSED}<br />bar\n", encoding="utf-8")
    stats = ReadStats()
    assert detect_format(path) == "text"
    assert list(iter_documents(path, stats=stats)) == ["first line", "second line", "Café bar"]
    assert stats.docs == 3 and stats.total_skipped == 0


def test_text_blank_line_separated_documents(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text(
        "para one\ncontinues here\n\n\npara two\n  \npara three\nno newline at end",
        encoding="utf-8",
    )
    docs = list(iter_documents(path, blank_line_docs=True))
    assert docs == ["para one continues here", "para two", "para three no newline at end"]


def test_text_undecodable_line_is_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"good line\nbad \xff\xfe line\nanother good line\n")
    stats = ReadStats()
    assert list(iter_documents(path, stats=stats)) == ["good line", "another good line"]
    assert stats.skipped == {"undecodable": 1}
    assert stats.docs == 2


def test_text_line_of_only_markup_is_counted_empty(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("real text\n<br /><br />\n", encoding="utf-8")
    stats = ReadStats()
    assert list(iter_documents(path, stats=stats)) == ["real text"]
    assert stats.skipped == {"empty": 1}


# ------------------------------------------------------------------------------- JSONL


def test_jsonl_good_malformed_and_missing_text(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    lines = [
        json.dumps({"text": "first doc", "id": 1}),
        '{"text": "unterminated',
        json.dumps({"body": "no text field"}),
        json.dumps(["not", "an", "object"]),
        json.dumps({"text": 42}),
        "",
        json.dumps({"text": f"  {_DECOMPOSED}\n second  "}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    stats = ReadStats()
    assert detect_format(path) == "jsonl"
    assert list(iter_documents(path, stats=stats)) == ["first doc", "Café second"]
    assert stats.skipped == {"bad_json": 1, "no_text_field": 3}
    assert stats.docs == 2


def test_jsonl_undecodable_line_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(b'{"text": "ok"}\n{"text": "\xff"}\n')
    stats = ReadStats()
    assert list(iter_documents(path, stats=stats)) == ["ok"]
    assert stats.skipped == {"undecodable": 1}


# ---------------------------------------------------------------------------- e-mail

# Text that must never reach a document: headers, quotes, attributions, forwarded and
# original-message blocks, signatures, attachments.
_LEAKS = (
    "Subject",
    "secret-subject",
    "alice@example.com",
    "bob@example.com",
    "From:",
    "wrote",
    "QUOTED",
    "FORWARDED",
    "ORIGINAL",
    "SIGNATURE",
    "ATTACHMENT",
    "Forwarded message",
    "Original Message",
)


def _message(body: str, *, subject: str = "secret-subject", msg_id: int = 1) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Alice <alice@example.com>"
    msg["To"] = "Bob <bob@example.com>"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{msg_id}@example.com>"
    msg.set_content(body)
    return msg


def _sample_messages() -> list[EmailMessage]:
    reply = _message(
        "Sounds good, see you at noon.\n"
        "\n"
        "On Tue, 5 Mar 2024 at 10:00, Bob <bob@example.com> wrote:\n"
        "> QUOTED lunch tomorrow?\n"
        "> QUOTED\n",
        msg_id=1,
    )
    forward = _message(
        "Have a look at this.\n"
        "\n"
        "---------- Forwarded message ---------\n"
        "From: Carol <carol@example.com>\n"
        "Date: Mon, 4 Mar 2024\n"
        "Subject: FORWARDED report\n"
        "\n"
        "FORWARDED body text\n",
        msg_id=2,
    )
    signed = _message(
        "Thanks for the notes.\n> QUOTED inline quote\nI will fix it.\n-- \nAlice SIGNATURE\n",
        msg_id=3,
    )
    outlook = _message(
        "Approved.\r\n"
        "\r\n"
        "-----Original Message-----\r\n"
        "From: Bob\r\n"
        "Sent: Monday\r\n"
        "ORIGINAL request\r\n",
        msg_id=4,
    )
    with_attachment = _message("Report attached.", msg_id=5)
    with_attachment.add_attachment(
        "ATTACHMENT csv,data\n", subtype="csv", filename="ATTACHMENT.csv"
    )
    only_quotes = _message("On Mon, Bob wrote:\n> QUOTED only\n", msg_id=6)
    html_only = EmailMessage()
    html_only["From"] = "alice@example.com"
    html_only["Subject"] = "secret-subject"
    html_only.set_content(
        "<html><head><style>p {color: red}</style><title>ATTACHMENT</title></head><body>"
        "<p>Hello&nbsp;<b>there</b> &amp; welcome</p><div>second line<br>third</div>"
        "<blockquote>QUOTED html quote</blockquote></body></html>",
        subtype="html",
    )
    return [reply, forward, signed, outlook, with_attachment, only_quotes, html_only]


_EXPECTED_BODIES = [
    "Sounds good, see you at noon.",
    "Have a look at this.",
    "Thanks for the notes. I will fix it.",
    "Approved.",
    "Report attached.",
    "Hello there & welcome second line third",
]


def _assert_no_leaks(docs: list[str]) -> None:
    for doc in docs:
        for leak in _LEAKS:
            assert leak not in doc, f"{leak!r} leaked into {doc!r}"


def test_mbox_keeps_only_the_authors_words(tmp_path: Path) -> None:
    path = tmp_path / "archive.mbox"
    box = mailbox.mbox(path)
    for msg in _sample_messages():
        box.add(msg)
    box.close()
    assert detect_format(path) == "mbox"
    stats = ReadStats()
    docs = list(iter_documents(path, stats=stats))
    assert docs == _EXPECTED_BODIES
    _assert_no_leaks(docs)
    assert stats.docs == len(_EXPECTED_BODIES)
    assert stats.skipped == {"empty_body": 1}


@pytest.mark.parametrize("layout", ["mbox", "maildir"])
def test_a_sender_filter_keeps_only_ones_own_messages(tmp_path: Path, layout: str) -> None:
    """A whole-mailbox export (Gmail's is one mbox) holds everyone's mail; --sender keeps yours."""
    path = tmp_path / ("all.mbox" if layout == "mbox" else "Maildir")
    box = mailbox.mbox(path) if layout == "mbox" else mailbox.Maildir(path, create=True)
    box.add(_message("Mine, sent from work.\n", msg_id=1))
    received = _message("Somebody else wrote this.\n", msg_id=2)
    received.replace_header("From", "Bob <bob@example.com>")
    box.add(received)
    other_address = _message("Mine, from my other address.\n", msg_id=3)
    other_address.replace_header("From", "alice.home@example.org")
    box.add(other_address)
    box.close()
    stats = ReadStats()
    mine = list(iter_documents(path, stats=stats, sender="ALICE@example.com, alice.home@example.org"))
    assert sorted(mine) == ["Mine, from my other address.", "Mine, sent from work."]
    assert stats.skipped == {"other_sender": 1}  # counted, not silently dropped
    assert len(list(iter_documents(path))) == 3  # no filter: everyone's


def test_a_sender_filter_is_refused_where_there_are_no_senders(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("one document\n")
    with pytest.raises(CorpusError, match="sender filter"):
        list(iter_documents(path, sender="me@example.com"))


def test_mbox_detected_by_content_without_extension(tmp_path: Path) -> None:
    path = tmp_path / "inbox"
    box = mailbox.mbox(path)
    box.add(_message("Just one line.\n"))
    box.close()
    assert detect_format(path) == "mbox"
    assert list(iter_documents(path)) == ["Just one line."]


def test_maildir_keeps_only_the_authors_words(tmp_path: Path) -> None:
    path = tmp_path / "Maildir"
    box = mailbox.Maildir(path, create=True)
    for msg in _sample_messages():
        box.add(msg)
    box.close()
    assert (path / "tmp").is_dir()
    assert detect_format(path) == "maildir"
    stats = ReadStats()
    docs = list(iter_documents(path, stats=stats))
    # Maildir has no intrinsic order; the reader sorts by key, so compare as sets.
    assert sorted(docs) == sorted(_EXPECTED_BODIES)
    assert list(iter_documents(path)) == docs  # ... and the order is stable
    _assert_no_leaks(docs)
    assert stats.skipped == {"empty_body": 1}


def test_email_charsets_and_undecodable_payloads(tmp_path: Path) -> None:
    path = tmp_path / "charsets.mbox"
    path.write_bytes(
        b"From alice@example.com Mon Mar  4 10:00:00 2024\n"
        b"From: alice@example.com\n"
        b"Subject: latin\n"
        b"Content-Type: text/plain; charset=iso-8859-1\n"
        b"Content-Transfer-Encoding: 8bit\n"
        b"\n"
        b"Caf\xe9 au lait\n"
        b"\n"
        b"From alice@example.com Mon Mar  4 10:01:00 2024\n"
        b"From: alice@example.com\n"
        b"Subject: bad utf8, declared\n"
        b"Content-Type: text/plain; charset=utf-8\n"
        b"Content-Transfer-Encoding: 8bit\n"
        b"\n"
        b"broken \xff byte\n"
        b"\n"
        b"From alice@example.com Mon Mar  4 10:02:00 2024\n"
        b"From: alice@example.com\n"
        b"Subject: unknown charset\n"
        b"Content-Type: text/plain; charset=x-no-such-charset\n"
        b"Content-Transfer-Encoding: 8bit\n"
        b"\n"
        b"mystery \xff bytes\n"
        b"\n"
        b"From alice@example.com Mon Mar  4 10:03:00 2024\n"
        b"From: alice@example.com\n"
        b"Subject: undeclared 8bit\n"
        b"\n"
        b"undeclared \xff bytes\n"
    )
    stats = ReadStats()
    docs = list(iter_documents(path, stats=stats))
    assert docs == ["Café au lait", "broken \ufffd byte"]
    assert stats.skipped == {"undecodable": 2}


def test_email_without_text_part_is_counted(tmp_path: Path) -> None:
    msg = EmailMessage()
    msg["From"] = "alice@example.com"
    msg.add_attachment(b"\x89PNG...", maintype="image", subtype="png", filename="a.png")
    path = tmp_path / "a.mbox"
    box = mailbox.mbox(path)
    box.add(msg)
    box.add(_message("kept"))
    box.close()
    stats = ReadStats()
    assert list(iter_documents(path, stats=stats)) == ["kept"]
    assert stats.skipped == {"no_text_part": 1}


def test_strip_quoted_rules() -> None:
    assert strip_quoted("hi\n> quoted\n  > indented quote\nbye") == "hi\nbye"
    # The signature separator is exactly "-- ": "--" or "-- x" are ordinary text.
    assert strip_quoted("a\n--\nb\n-- x\nc\n-- \nsig") == "a\n--\nb\n-- x\nc"
    assert strip_quoted("top\nOn Mon, 1 Jan 2024, Bob wrote:\ninterleaved\n> q") == "top"
    # An attribution wrapped over two lines by the client.
    wrapped = "top\n\nOn Mon, Jan 1, 2024 at 10:00 AM Bob Smith <\nbob@example.com> wrote:\n> q"
    assert strip_quoted(wrapped) == "top"
    # "On ..." at the start of an ordinary sentence is kept.
    assert strip_quoted("On Monday we ship.\nOk?") == "On Monday we ship.\nOk?"
    assert strip_quoted("ok\n-----Original Message-----\nFrom: x") == "ok"
    assert strip_quoted("fwd\n---------- Forwarded message ---------\nbody") == "fwd"
    assert strip_quoted("yes\r\n\r\n___________________\r\nFrom: Bob\r\nSent: now\r\nx") == "yes"
    assert strip_quoted("> only\n> quotes") == ""
    assert strip_quoted("") == ""


def test_html_to_text_drops_markup_and_quotes() -> None:
    html = (
        "<p>a&lt;b</p><script>var x = 1;</script>"
        "<blockquote>q1<blockquote>q2</blockquote>q3</blockquote><div>after</div>"
    )
    text = html_to_text(html)
    assert " ".join(text.split()) == "a<b after"


# ------------------------------------------------------------------- malformed input


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no such file or folder"):
        list(iter_documents(tmp_path / "does-not-exist.txt"))


def test_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(CorpusError, match="empty"):
        list(iter_documents(path))


@pytest.mark.parametrize("name", ["blob.bin", "blob.txt", "blob.jsonl"])
def test_binary_file_is_a_clear_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"some text\x00\x01\x02\x00more")
    with pytest.raises(CorpusError, match="binary"):
        list(iter_documents(path))


def test_unknown_format_and_unrecognised_folder(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("x\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="unknown format"):
        list(iter_documents(path, fmt="docx"))
    folder = tmp_path / "random"
    folder.mkdir()
    with pytest.raises(CorpusError, match="neither"):
        list(iter_documents(folder))


def test_corpus_error_is_raised_before_any_document(tmp_path: Path) -> None:
    # The generator fails on its first step, i.e. before training would start.
    docs = iter_documents(tmp_path / "missing.jsonl")
    with pytest.raises(CorpusError):
        next(docs)


# ------------------------------------------------------------------------- splitting


def test_split_documents_is_deterministic() -> None:
    docs = [f"document number {i}" for i in range(3000)]
    train, valid = split_documents(docs)
    assert (train, valid) == split_documents(list(docs))
    assert len(train) + len(valid) == len(docs)
    assert set(train).isdisjoint(valid)
    # ~1% by default; the split depends on content only, not on position.
    assert 5 <= len(valid) <= 60
    assert split_documents(reversed(docs))[1] == list(reversed(valid))
    assert all(is_validation(doc) for doc in valid)
    assert not any(is_validation(doc) for doc in train)
    _, wide_valid = split_documents(docs, per_mille=500)
    assert set(valid) <= set(wide_valid)
    assert 1200 <= len(wide_valid) <= 1800
    assert split_documents([], per_mille=10) == ([], [])


# ------------------------------------------------------- format detection edge cases


def test_plain_text_starting_with_from_is_not_mbox(tmp_path: Path) -> None:
    path = tmp_path / "book.txt"
    path.write_text("From the start it rained.\nThen it stopped.\n", encoding="utf-8")
    assert detect_format(path) == "text"
    assert list(iter_documents(path)) == ["From the start it rained.", "Then it stopped."]


def test_utf8_bom_is_dropped(tmp_path: Path) -> None:
    text = tmp_path / "bom.txt"
    text.write_bytes("\ufeffHello\n".encode())
    assert list(iter_documents(text)) == ["Hello"]
    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_bytes('\ufeff{"text": "first"}\n'.encode())
    stats = ReadStats()
    assert list(iter_documents(jsonl, stats=stats)) == ["first"]
    assert stats.total_skipped == 0

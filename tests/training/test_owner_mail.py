"""One sender's mail from an AESLC-style corpus: the stand-in for a user's own mailbox."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from training.data import iter_documents
from training.owner_mail import main, owner_and_folder, owner_mail


def _corpus(path: Path) -> Path:
    records = [
        {"split": "train", "id": "lee-a_sent_1", "subject": "s", "text": "Thanks, I will call you tomorrow."},
        {"split": "train", "id": "lee-a_inbox_2", "subject": "s", "text": "Someone else wrote this."},
        {"split": "dev", "id": "lee-a_sent_3", "subject": "s", "text": "See you at the meeting."},
        {"split": "test", "id": "lee-a_sent_4", "subject": "s", "text": "Please send me the draft."},
        {"split": "train", "id": "lee-ab_sent_5", "subject": "s", "text": "Another person with a longer name."},
    ]
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)
    return path


def test_ids_name_the_mailbox_and_its_folder() -> None:
    assert owner_and_folder("shackleton-s_sent_123") == ("shackleton-s", "sent")
    assert owner_and_folder("allen-p_inbox_20") == ("allen-p", "inbox")


def test_only_what_the_owner_sent_is_kept_with_its_splits(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "mail.jsonl.gz")
    mine = owner_mail(corpus, "lee-a")
    assert [r["id"] for r in mine] == ["lee-a_sent_1", "lee-a_sent_3", "lee-a_sent_4"]
    out = tmp_path / "lee-a.jsonl"
    main(["--corpus", str(corpus), "--owner", "lee-a", "--out", str(out)])
    # The readers take the written corpus like any other, split by split.
    assert list(iter_documents(out, split="train")) == ["Thanks, I will call you tomorrow."]
    assert list(iter_documents(out, split="test")) == ["Please send me the draft."]


def test_an_unknown_owner_is_refused(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "mail.jsonl.gz")
    with pytest.raises(SystemExit, match="no records"):
        main(["--corpus", str(corpus), "--owner", "nobody-x", "--out", str(tmp_path / "x.jsonl")])


def test_everyone_else_is_the_corpus_without_any_of_the_owner_s_mailbox(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "mail.jsonl.gz")
    out = tmp_path / "others.jsonl"
    main(["--corpus", str(corpus), "--owner", "lee-a", "--everyone-else", "--out", str(out)])
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == ["lee-ab_sent_5"]  # neither lee-a's sent nor inbox folder; a longer name is another owner

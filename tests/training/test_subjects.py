"""Training text with e-mail subjects: the stream lays each out as the server reads it."""

from __future__ import annotations

import dataclasses
import gzip
import json
import mailbox
from email.message import EmailMessage
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm

from model.artifact import load_artifact
from model.suggest import header_ids
from model.text import subject_line
from training.adapt import main as adapt_main
from training.corpus import EOS_ID, CorpusSpec, prepare_corpus
from training.data import CorpusError, iter_subject_documents
from training.evaluate import load_subjects, piece_nll

BODIES = [f"Please send the {thing} report by {day}, thanks." for thing in ("budget", "trading", "legal", "gas")
          for day in ("Monday", "Friday", "noon")]


def _mail(path: Path, subjects: bool = True) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for i, body in enumerate(BODIES * 3):
            record = {"split": "dev" if i % 4 == 3 else "train", "text": f"{body} ({i})"}
            if subjects:
                record["subject"] = "" if i % 6 == 5 else f"Re:  {body.split()[3]}\treport"
            fh.write(json.dumps(record) + "\n")
    return path


def test_subjects_are_read_with_their_e_mails(tmp_path: Path) -> None:
    pairs = list(iter_subject_documents(_mail(tmp_path / "m.jsonl.gz"), "train"))
    assert pairs[0] == ("Re: budget report", "Please send the budget report by Monday, thanks. (0)")
    assert dict((body, subject) for subject, body in pairs)[f"{BODIES[5]} (5)"] == ""  # none is made up
    text = tmp_path / "t.txt"
    text.write_text("one document\n")
    with pytest.raises(CorpusError, match="e-mail corpora"):
        list(iter_subject_documents(text))


def test_a_mailbox_gives_each_message_its_subject_and_keeps_to_the_sender(tmp_path: Path) -> None:
    path = tmp_path / "all.mbox"
    box = mailbox.mbox(path)
    for sender, subject, body in (("me@a.org", "Lunch \t tomorrow", "Are you free for lunch tomorrow?"),
                                  ("them@b.org", "Re: Lunch", "Yes, noon works for me."),
                                  ("Me@A.org", None, "See you at noon then.")):
        msg = EmailMessage()
        msg["From"] = sender
        if subject is not None:
            msg["Subject"] = subject
        msg.set_content(body)
        box.add(msg)
    box.close()
    assert list(iter_subject_documents(path, sender="me@a.org")) == [
        ("Lunch tomorrow", "Are you free for lunch tomorrow?"), ("", "See you at noon then.")]
    assert len(list(iter_subject_documents(path))) == 3


def test_the_stream_holds_eos_subject_line_eos_body(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    corpus = _mail(tmp_path / "m.jsonl.gz")
    tokenizer = load_artifact(tiny_models["gru"]).tokenizer.model_proto
    spec = CorpusSpec(path=str(corpus), valid_split="dev", subject_per_mille=1000)
    summary = prepare_corpus(spec, tmp_path / "all", tokenizer)
    sp = spm.SentencePieceProcessor(model_proto=tokenizer)
    pairs = list(iter_subject_documents(corpus, "train"))
    with_subject = sum(bool(subject) for subject, _ in pairs)
    assert summary["train"]["docs"] == len(pairs) and summary["train"]["with_subject"] == with_subject
    stream = np.load(tmp_path / "all" / "train.npy").tolist()
    for subject, body in pairs:  # each e-mail, wherever the shuffle put it, with its subject line just before it
        line = sp.encode(subject_line(subject))
        expected = [EOS_ID, *line, EOS_ID, *sp.encode(body)] if subject else [EOS_ID, *sp.encode(body)]
        starts = [i for i in range(len(stream)) if stream[i : i + len(expected)] == expected]
        assert len(starts) == 1, (subject, body)
    # The evaluator hands a model the subject as typed; it reads the very line its training text had.
    base = load_artifact(tiny_models["gru"])
    reader = dataclasses.replace(base, card={**base.card, "reads_subject": True})
    subjects = load_subjects(str(corpus), "train")
    for subject, body in pairs:
        if subject:
            assert header_ids(reader, subjects[body]) == [EOS_ID, *sp.encode(subject_line(subject)), EOS_ID]
    none = prepare_corpus(CorpusSpec(path=str(corpus), valid_split="dev"), tmp_path / "none", tokenizer)
    assert "with_subject" not in none["train"]
    assert none["train"]["pieces"] < summary["train"]["pieces"]
    some = prepare_corpus(CorpusSpec(path=str(corpus), valid_split="dev", subject_per_mille=500), tmp_path / "some",
                          tokenizer)
    assert 0 < some["train"]["with_subject"] < with_subject  # chosen by content hash, about half


def test_an_adapted_model_that_read_subjects_says_so_and_is_scored_on_its_text_only(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    corpus = _mail(tmp_path / "m.jsonl.gz")
    out = tmp_path / "reads.pt"
    adapt_main(["--from", str(tiny_models["gru"]), "--corpus", str(corpus), "--out", str(out), "--work-dir",
                str(tmp_path / "work"), "--dry-run", "--threads", "1", "--subject-per-mille", "750"])
    lm = load_artifact(out)
    assert lm.reads_subject and lm.card["lineage"]["data"]["subject_per_mille"] == 750
    assert not load_artifact(tiny_models["gru"]).reads_subject
    # Perplexity with a subject counts the e-mail's pieces only: the header is context, not text.
    doc, subject = BODIES[0], "Budget"
    head = header_ids(lm, subject)
    assert len(head) > 1
    alone = piece_nll(lm, [doc])
    read = piece_nll(lm, [doc], subjects={doc: subject})
    assert read != alone
    import torch
    import torch.nn.functional as F

    ids = [*head, *lm.tokenizer.encode(doc), lm.eos_id]
    with torch.no_grad():
        logits, _ = lm.module.forward(torch.tensor([ids[:-1]]), lm.module.init_state(1))
    nll = F.cross_entropy(logits[0], torch.tensor(ids[1:]), reduction="none")
    assert read == pytest.approx(float(nll[len(head) - 1 :].sum()), rel=1e-4)


def test_a_model_adapted_from_a_subject_reader_goes_on_reading_subjects(tmp_path: Path,
                                                                       tiny_models: dict[str, Path]) -> None:
    corpus = _mail(tmp_path / "m.jsonl.gz")
    reader = tmp_path / "reader.pt"
    common = ["--corpus", str(corpus), "--dry-run", "--threads", "1", "--personal"]
    adapt_main(["--from", str(tiny_models["gru"]), "--out", str(reader), "--work-dir", str(tmp_path / "w0"),
                *common, "--subject-per-mille", "500"])
    personal = tmp_path / "me.pt"
    adapt_main(["--from", str(reader), "--out", str(personal), "--work-dir", str(tmp_path / "w1"), *common])
    data = load_artifact(personal).card["lineage"]["data"]
    assert data["subject_per_mille"] == 500 and data["train"]["with_subject"] > 0  # the layout it is served with
    opted_out = tmp_path / "bodies.pt"
    adapt_main(["--from", str(reader), "--out", str(opted_out), "--work-dir", str(tmp_path / "w2"), *common,
                "--subject-per-mille", "0"])
    assert load_artifact(opted_out).card["lineage"]["data"]["train"].get("with_subject", 0) == 0
    assert load_artifact(personal).reads_subject and not load_artifact(opted_out).reads_subject


def test_the_evaluator_reads_subjects_when_asked(tmp_path: Path, tiny_models: dict[str, Path], capsys) -> None:
    from training.evaluate import main as evaluate_main

    corpus = _mail(tmp_path / "m.jsonl.gz")
    out = tmp_path / "reads.pt"
    adapt_main(["--from", str(tiny_models["gru"]), "--corpus", str(corpus), "--out", str(out), "--work-dir",
                str(tmp_path / "work"), "--dry-run", "--threads", "1", "--subject-per-mille", "1000"])
    results = {}
    for flags in ([], ["--subjects"]):
        evaluate_main(["--model", str(out), "--corpus", str(corpus), "--split", "dev", "--no-ksr", "--json", *flags])
        results[bool(flags)] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert results[True]["subject_read"] and not results[False]["subject_read"]
    assert results[True]["source"]["subjects"] and results[True]["words"] == results[False]["words"]
    assert results[True]["sums"]["nll"] != results[False]["sums"]["nll"]
    with pytest.raises(SystemExit):
        evaluate_main(["--model", str(out), "--text", str(tmp_path / "t.txt"), "--subjects"])

"""Adaptation: a bundled-style artifact continues training on an e-mail corpus, end to end."""

from __future__ import annotations

import gzip
import hashlib
import json
import mailbox
from email.message import EmailMessage
from pathlib import Path

import pytest
import torch

from model.artifact import load_artifact
from tests.conftest import make_tiny_corpus
from training.adapt import main as adapt_main
from training.data import iter_documents
from training.lexicon import main as lexicon_main

EMAILS = [f"Thanks for the update. I will send you the report by {day}. Please let me know if you have any questions."
          for day in ("Monday", "Tuesday", "Friday", "noon", "tonight")]


def _aeslc_like(path: Path, n: int = 240) -> Path:
    """A gzip JSON-lines corpus labelled train/dev/test, like the shared e-mail corpus."""
    texts = make_tiny_corpus(n, seed=3)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for i, text in enumerate(texts):
            split = ("train", "train", "train", "dev", "test")[i % 5]
            fh.write(json.dumps({"split": split, "id": f"u_{i}", "subject": "s", "text": f"{EMAILS[i % 5]} {text}"})
                     + "\n")
    return path


def test_jsonl_gz_splits_are_read_by_label(tmp_path: Path) -> None:
    corpus = _aeslc_like(tmp_path / "mail.jsonl.gz", 50)
    train, dev = list(iter_documents(corpus, split="train")), list(iter_documents(corpus, split="dev"))
    assert len(train) == 30 and len(dev) == 10
    assert not set(train) & set(dev)


def test_adapt_runs_end_to_end_and_records_its_lineage(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    corpus = _aeslc_like(tmp_path / "aeslc-enron-email.jsonl.gz")
    out = tmp_path / "gru-email.pt"
    adapt_main(["--from", str(tiny_models["gru"]), "--corpus", str(corpus), "--out", str(out),
                "--work-dir", str(tmp_path / "work"), "--dry-run", "--threads", "1"])
    base, adapted = load_artifact(tiny_models["gru"]), load_artifact(out)
    # Same architecture and tokenizer, new weights.
    assert adapted.card["config"] == base.card["config"]
    assert adapted.tokenizer.model_proto == base.tokenizer.model_proto
    assert adapted.card["checksum"] != base.card["checksum"]
    lineage = adapted.card["lineage"]
    assert lineage["base"]["sha256"] == hashlib.sha256(tiny_models["gru"].read_bytes()).hexdigest()
    assert lineage["base"]["checksum"] == base.card["checksum"]
    assert lineage["data"]["corpus"] == "aeslc-enron-email.jsonl.gz"
    assert lineage["data"]["licence"].startswith("CC BY-NC-SA 4.0")
    assert lineage["data"]["valid_split"] == "dev"
    assert lineage["data"]["train"]["docs"] > 0 and lineage["data"]["valid"]["docs"] > 0
    assert lineage["tokens"] > 0 and lineage["minutes"] >= 0
    assert {"cpus", "torch", "platform"} <= lineage["machine"].keys()
    assert lineage["recipe"]["lr"] > 0
    assert adapted.card["name"] == "gru-email"
    # The exported weights are the snapshots' mean when that validated better, else the best checkpoint's.
    averaging = lineage["weight_averaging"]
    snapshots = [torch.load(tmp_path / "work" / "snapshots" / f"{name}.pt", weights_only=True)["model"]
                 for name in averaging["snapshots"]]
    assert len(snapshots) == 2
    average_won = averaging["val_loss_average"] < averaging["val_loss_best"]
    assert averaging["exported"] == ("average" if average_won else "best")
    expected = ({k: torch.stack([s[k] for s in snapshots]).mean(0) for k in snapshots[0]} if average_won
                else torch.load(tmp_path / "work" / "best.pt", weights_only=False)["model"])
    served = adapted.module.state_dict()
    assert all(torch.allclose(served[k], expected[k], atol=1e-6) for k in expected)
    # --resume continues the same run from its last checkpoint.
    last = torch.load(tmp_path / "work" / "last.pt", weights_only=False)
    adapt_main(["--from", str(tiny_models["gru"]), "--corpus", str(corpus), "--out", str(out),
                "--work-dir", str(tmp_path / "work"), "--dry-run", "--threads", "1", "--max-tokens", "768",
                "--resume"])
    again = torch.load(tmp_path / "work" / "last.pt", weights_only=False)
    assert again["step"] > last["step"]
    assert (tmp_path / "work" / "log.jsonl").read_text().count("\n") >= 2


def test_adapt_takes_a_users_mbox(tmp_path: Path, tiny_models: dict[str, Path], tiny_corpus: Path) -> None:
    box = mailbox.mbox(tmp_path / "me.mbox")
    for i, text in enumerate(make_tiny_corpus(120, seed=5)):
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "me@example.com", "you@example.com", f"note {i}"
        signed = " Best, Zorbalina" if i % 4 == 0 else ""
        msg.set_content(f"{EMAILS[i % 5]} {text}{signed}\n\n"
                        "On Mon, 1 Jan 2024, you <you@example.com> wrote:\n> quoted\n")
        box.add(msg)
    box.flush()
    base = tmp_path / "base.pt"  # a base that keeps to a lexicon, as the bundled models do
    base.write_bytes(tiny_models["lstm"].read_bytes())
    lexicon_main(["--model", str(base), "--corpus", str(tiny_corpus)])
    out = tmp_path / "me.pt"
    adapt_main(["--from", str(base), "--corpus", str(tmp_path / "me.mbox"), "--out", str(out),
                "--work-dir", str(tmp_path / "work"), "--dry-run", "--threads", "1"])
    adapted = load_artifact(out)
    card = adapted.card
    assert card["lineage"]["data"]["licence"] == "unspecified: the user's own text"
    assert card["lineage"]["data"]["valid_split"] == "1% by content hash"
    assert card["config"]["cell"] == "lstm"
    # The user's own words join the base's lexicon, so the adapted model may propose them.
    base_lexicon = load_artifact(base).lexicon
    assert "zorbalina" not in base_lexicon and "Zorbalina" in adapted.lexicon
    assert len(adapted.lexicon) > len(base_lexicon) and "movie" in adapted.lexicon
    assert card["lexicon"]["sources"] == ["reviews.txt", "me.mbox"]


def test_personal_recipe_holds_out_a_tenth_and_keeps_the_base_calibration(
        tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    from model.artifact import update_card
    from training.adapt import PERSONAL_RECIPE, parse_args

    box = mailbox.mbox(tmp_path / "me.mbox")
    for i, text in enumerate(make_tiny_corpus(150, seed=7)):
        msg = EmailMessage()
        msg["From"], msg["Subject"] = "me@example.com", f"note {i}"
        msg.set_content(f"{EMAILS[i % 5]} {text}")
        box.add(msg)
    box.flush()
    base = tmp_path / "base.pt"
    base.write_bytes(tiny_models["gru"].read_bytes())
    calibration = {"slope": 0.9, "per_word": -0.1, "bias": 0.05, "threshold": 0.4, "fitted_on": "mail:dev"}
    inside = {"slope": 0.95, "per_word": -0.2, "bias": 0.1, "threshold": 0.4, "fitted_on": "mail:dev"}
    update_card(base, {"phrase_calibration": calibration, "phrase_calibration_inside": inside})
    argv = ["--from", str(base), "--corpus", str(tmp_path / "me.mbox"), "--out", str(tmp_path / "me.pt"),
            "--work-dir", str(tmp_path / "work"), "--threads", "1", "--personal"]
    args = parse_args(argv)
    assert (args.lr, args.max_passes, args.minutes) == (PERSONAL_RECIPE["lr"], PERSONAL_RECIPE["max_passes"], None)
    assert parse_args([*argv, "--lr", "5e-4"]).lr == 5e-4  # a flag wins over the recipe
    assert parse_args(argv[:-1]).max_passes is None  # the corpus recipe budgets minutes
    adapt_main([*argv, "--dry-run"])
    card = load_artifact(tmp_path / "me.pt").card
    assert card["lineage"]["data"]["valid_split"] == "10% by content hash"
    assert card["lineage"]["data"]["valid"]["docs"] >= 5  # a tenth of 150, by content hash
    assert card["lineage"]["recipe"]["lr"] == PERSONAL_RECIPE["lr"]
    # Ghost text stays calibrated as the base's was, saying where that came from, until refitted.
    assert card["phrase_calibration"] == {**calibration, "inherited_from": "base.pt"}
    assert card["phrase_calibration_inside"] == {**inside, "inherited_from": "base.pt"}
    adapted, original = load_artifact(tmp_path / "me.pt"), load_artifact(base)
    assert adapted.phrase_calibration == original.phrase_calibration
    assert adapted.phrase_calibration_inside == original.phrase_calibration_inside != original.phrase_calibration
    # What adapting had to beat is recorded beside what it reached.
    assert card["lineage"]["base_val_loss"] > 0


def test_adapt_refuses_a_file_that_is_not_an_artifact(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a model")
    with pytest.raises(ValueError):
        adapt_main(["--from", str(bogus), "--corpus", str(bogus), "--out", str(tmp_path / "x.pt"), "--dry-run"])


def test_bf16_autocast_adapts_and_exports_fp32_weights(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    corpus = _aeslc_like(tmp_path / "aeslc-enron-email.jsonl.gz")
    out = tmp_path / "gru-email.pt"
    adapt_main(["--from", str(tiny_models["gru"]), "--corpus", str(corpus), "--out", str(out),
                "--work-dir", str(tmp_path / "work"), "--dry-run", "--threads", "1", "--autocast", "bf16"])
    adapted = load_artifact(out)
    assert adapted.card["lineage"]["recipe"]["autocast"] == "bf16"
    assert adapted.card["checksum"] != load_artifact(tiny_models["gru"]).card["checksum"]
    assert all(p.dtype == torch.float32 for p in adapted.module.state_dict().values() if p.is_floating_point())
    log = [json.loads(line) for line in (tmp_path / "work" / "log.jsonl").read_text().splitlines()]
    assert log and all(torch.isfinite(torch.tensor(r["val_loss"])) for r in log)


def test_an_unknown_autocast_is_refused() -> None:
    from training.train import TrainConfig

    with pytest.raises(ValueError, match="autocast"):
        TrainConfig(autocast="fp8")


def test_a_sender_filter_adapts_on_ones_own_messages_only(tmp_path: Path, tiny_models: dict[str, Path],
                                                          tiny_corpus: Path) -> None:
    box = mailbox.mbox(tmp_path / "all.mbox")
    for i, text in enumerate(make_tiny_corpus(160, seed=9)):
        msg = EmailMessage()
        mine = i % 2 == 0
        msg["From"] = "Me <me@example.com>" if mine else "Quentabulous <q@example.net>"
        msg.set_content(f"{EMAILS[i % 5]} {text}" + ("" if mine else " Quentabulous"))
        box.add(msg)
    box.flush()
    base = tmp_path / "base.pt"
    base.write_bytes(tiny_models["gru"].read_bytes())
    lexicon_main(["--model", str(base), "--corpus", str(tiny_corpus)])
    adapt_main(["--from", str(base), "--corpus", str(tmp_path / "all.mbox"), "--out", str(tmp_path / "me.pt"),
                "--work-dir", str(tmp_path / "work"), "--dry-run", "--threads", "1", "--personal",
                "--sender", "me@example.com"])
    adapted = load_artifact(tmp_path / "me.pt")
    data = adapted.card["lineage"]["data"]
    assert data["sender_filter"] is True and "me@example.com" not in json.dumps(adapted.card)
    assert data["train"]["docs"] + data["valid"]["docs"] == 80  # the 80 of 160 messages I sent
    assert "Quentabulous" not in adapted.lexicon  # nor the others' words

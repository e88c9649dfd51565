"""Training: the CI smoke path, resume, and DDP with two processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.artifact import load_artifact
from model.export import export_checkpoint
from training.corpus import CorpusSpec, prepare_corpus
from training.train import lr_at, parse_args, train


def _dry(tmp_path: Path, corpus: Path, *extra: str) -> list[str]:
    return ["--dry-run", "--corpus", str(corpus), "--out", str(tmp_path / "run"), "--threads", "1", *extra]


def test_dry_run_trains_checkpoints_and_logs(tmp_path: Path, tiny_corpus: Path) -> None:
    cfg, resume = parse_args(_dry(tmp_path, tiny_corpus))
    best = train(cfg, resume)
    ckpt = torch.load(best, weights_only=False)
    assert ckpt["train_config"]["dry_run"] is True
    assert ckpt["model_config"]["cell"] == "gru"
    assert ckpt["tokens_seen"] > 0 and ckpt["tokenizer"]
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log and {"tokens_seen", "val_loss", "val_word_ppl", "tokens_per_second"} <= log[-1].keys()
    assert list((tmp_path / "run" / "snapshots").glob("tokens_*.pt"))


def test_resume_continues_where_it_stopped(tmp_path: Path, tiny_corpus: Path) -> None:
    cfg, _ = parse_args(_dry(tmp_path, tiny_corpus, "--max-tokens", "192"))
    train(cfg)
    first = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    cfg, resume = parse_args(_dry(tmp_path, tiny_corpus, "--max-tokens", "384", "--resume"))
    assert resume
    train(cfg, resume)
    second = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert second["step"] == first["step"] * 2
    assert second["tokens_seen"] == 384
    assert second["stream_position"] != first["stream_position"]


def test_a_budget_in_passes_reads_that_much_of_the_training_text(tmp_path: Path, tiny_corpus: Path) -> None:
    import numpy as np

    cfg, _ = parse_args(_dry(tmp_path, tiny_corpus, "--max-passes", "1.5"))
    train(cfg)
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    rows = cfg.batch_size
    epoch = len(np.load(tmp_path / "run" / "data" / "train.npy")) // rows * rows
    step = cfg.batch_size * cfg.seq_len
    assert round(1.5 * epoch) <= last["tokens_seen"] < round(1.5 * epoch) + step
    assert last["epoch"] == 1  # into the second pass, not past it


def test_config_file_and_flags(tmp_path: Path) -> None:
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"cell": "lstm", "hidden_dim": 64, "lr": 0.01}))
    cfg, _ = parse_args(["--config", str(config), "--hidden-dim", "32"])
    assert (cfg.cell, cfg.hidden_dim, cfg.lr) == ("lstm", 32, 0.01)


def test_warmup_then_decay() -> None:
    cfg, _ = parse_args(["--lr", "1.0", "--warmup-steps", "10", "--min-lr-ratio", "0.1"])
    assert lr_at(0, 0.0, cfg) == 0.1
    assert lr_at(9, 0.0, cfg) == 1.0
    assert lr_at(100, 0.5, cfg) == 0.55
    assert abs(lr_at(100, 1.0, cfg) - 0.1) < 1e-9


def test_ddp_two_processes_with_gloo(tmp_path: Path, tiny_corpus: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={port}",
           "-m", "training.train", *_dry(tmp_path, tiny_corpus)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ckpt = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    # two ranks, each batch_size rows: twice the tokens per optimiser step
    assert ckpt["tokens_seen"] == 2 * ckpt["step"] * 4 * 16


def _weights_after(tmp_path: Path, tiny_corpus: Path, name: str, *extra: str) -> dict:
    cfg, _ = parse_args(["--dry-run", "--corpus", str(tiny_corpus), "--out", str(tmp_path / name), "--threads", "1",
                         *extra])
    return torch.load(train(cfg), weights_only=False)


def test_init_from_an_exported_artifact_continues_its_weights(tmp_path: Path, tiny_corpus: Path) -> None:
    first = _weights_after(tmp_path, tiny_corpus, "first")
    artifact = tmp_path / "first.pt"
    export_checkpoint(tmp_path / "first" / "best.pt", artifact)
    # lr 0: the optimiser changes nothing, so the run must end exactly where the artifact started.
    frozen = _weights_after(tmp_path, tiny_corpus, "frozen", "--init-from", str(artifact), "--lr", "0",
                            "--max-tokens", "128")
    for name, value in first["model"].items():
        assert torch.equal(frozen["model"][name], value), name
    assert frozen["tokenizer"] == first["tokenizer"]  # its corpus was read through the artifact's pieces
    assert frozen["tokens_seen"] == first["tokens_seen"] + 128  # cumulative; the budget was this run's
    assert frozen["init_from"] == {"path": str(artifact), "tokens_seen": first["tokens_seen"],
                                   "wall_seconds": load_artifact(artifact).card["training"]["wall_seconds"]}
    card = export_checkpoint(tmp_path / "frozen" / "best.pt", tmp_path / "frozen.pt")
    assert card["training"]["init_from"]["path"] == str(artifact)
    # From a training checkpoint too, and training then moves the weights.
    moved = _weights_after(tmp_path, tiny_corpus, "moved", "--init-from", str(tmp_path / "first" / "best.pt"))
    assert any(not torch.equal(moved["model"][n], v) for n, v in first["model"].items())


def test_init_from_refuses_what_does_not_fit(tmp_path: Path, tiny_corpus: Path) -> None:
    _weights_after(tmp_path, tiny_corpus, "first")
    source = str(tmp_path / "first" / "best.pt")
    cfg, _ = parse_args(_dry(tmp_path, tiny_corpus, "--init-from", source))
    cfg.hidden_dim = 40
    with pytest.raises(ValueError, match="hidden_dim: weights 48, run 40"):
        train(cfg)
    # A corpus folder tokenised by another tokenizer is not mixed with these weights.
    other = tmp_path / "other-data"
    prepare_corpus(CorpusSpec(path=str(tiny_corpus), max_docs=400, vocab_size=300), other)
    cfg, _ = parse_args(_dry(tmp_path, tiny_corpus, "--init-from", source, "--data-dir", str(other),
                             "--vocab-size", "300"))
    with pytest.raises(ValueError, match="another tokenizer"):
        train(cfg)
    with pytest.raises(ValueError, match="no such file"):
        train(parse_args(_dry(tmp_path, tiny_corpus, "--init-from", str(tmp_path / "missing.pt")))[0])
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="neither a nextword artifact nor a training checkpoint"):
        train(parse_args(_dry(tmp_path, tiny_corpus, "--init-from", str(tmp_path / "junk.pt")))[0])

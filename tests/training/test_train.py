"""Training: the CI smoke path, resume, and DDP with two processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

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

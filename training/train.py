"""Train a GRU or LSTM language model with truncated BPTT.

    python -m training.train --cell gru --corpus ../shared/data/aclImdb_v1.tar.gz \
        --out runs/gru --max-minutes 100 [--resume]

Single process by default; under ``torchrun --nproc_per_node=N`` it trains with DDP (gloo
on CPU), each rank reading its own share of the token streams. The full configuration is
stored in every checkpoint; ``last.pt`` is written at every validation (``--resume``
continues from it, stream position, optimiser and RNG included) and ``best.pt`` keeps the
best validation loss. ``--init-from`` starts from trained weights instead of a random init
(a checkpoint, or an exported artifact such as ``model/artifacts/gru.pt``): the text is read
through that model's own tokenizer, the optimiser and the learning-rate schedule start fresh,
the budget counts this run's tokens, and ``tokens_seen`` keeps counting from the weights'
total. ``log.jsonl`` records the learning curve (tokens seen, loss, piece and word
perplexity, wall time). ``--autocast bf16`` runs the forward pass in bfloat16 (weights,
loss and validation stay fp32). ``--dry-run`` runs a tiny model for a few steps: the CI
smoke path.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from model.artifact import ArtifactError, load_artifact
from model.network import ModelConfig, RNNLanguageModel, count_parameters
from training.corpus import CorpusSpec, prepare_corpus

log = logging.getLogger("training.train")

AUTOCAST = ("fp32", "bf16")


@dataclass
class TrainConfig:
    """Everything that defines a run; saved inside each checkpoint."""

    corpus: str = "../shared/data/aclImdb_v1.tar.gz"
    corpus_format: str | None = None
    split: str = "train"
    valid_split: str | None = None  # None: ~1% of the documents by content hash
    mix_corpus: str | None = None  # another corpus mixed into the training text
    mix_docs: int = 0
    data_dir: str = "runs/data-imdb-8k"
    max_docs: int | None = None
    vocab_size: int = 8000
    out: str = "runs/gru"
    cell: str = "gru"
    emb_dim: int = 256
    hidden_dim: int = 512
    num_layers: int = 1
    dropout: float = 0.1
    batch_size: int = 32
    seq_len: int = 64
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    warmup_steps: int = 200
    clip: float = 1.0
    max_tokens: int | None = None
    max_minutes: float | None = None
    max_passes: float | None = None  # budget in passes over the training text (a personal mailbox's)
    valid_per_mille: int = 10  # without a validation split: documents per thousand that validate
    sender: str | None = None  # mbox/maildir: train only on messages from these addresses
    subject_per_mille: int = 0  # e-mails per thousand read with their subject line before the body
    eval_every: int = 500
    eval_tokens: int = 200_000
    seed: int = 1234
    threads: int | None = None
    device: str = "auto"
    # "bf16": the forward pass under autocast (bf16 matmuls, fp32 weights, loss and
    # validation): 1.5x the tokens per minute on this AVX512-BF16 CPU (docs/models.md).
    autocast: str = "fp32"
    init_from: str | None = None
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.autocast not in AUTOCAST:
            raise ValueError(f"autocast must be one of {AUTOCAST}, got {self.autocast!r}")


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, bool]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--config", help="JSON file of TrainConfig fields (flags override it)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            parser.add_argument(flag, action="store_true", default=None)
        else:
            kind = {"int": int, "float": float}.get(str(f.type).split(" ")[0], str)
            parser.add_argument(flag, type=kind, default=None)
    args = parser.parse_args(argv)
    values = asdict(defaults)
    if args.config:
        values.update(json.loads(Path(args.config).read_text()))
    for f in fields(TrainConfig):
        given = getattr(args, f.name)
        if given is not None:
            values[f.name] = given
    try:
        cfg = TrainConfig(**values)
    except ValueError as exc:
        parser.error(str(exc))
    if cfg.dry_run:
        cfg.max_docs = cfg.max_docs or 400
        cfg.vocab_size = min(cfg.vocab_size, 600)
        cfg.emb_dim, cfg.hidden_dim = 32, 48
        cfg.batch_size, cfg.seq_len = 4, 16
        cfg.max_tokens = cfg.max_tokens or (None if cfg.max_passes else 4 * 16 * 6)
        cfg.eval_every, cfg.eval_tokens, cfg.warmup_steps = 3, 2000, 2
        if cfg.data_dir == TrainConfig.data_dir:
            cfg.data_dir = str(Path(cfg.out) / "data")
    return cfg, args.resume


# ---------------------------------------------------------------------------- helpers
def lr_at(step: int, progress: float, cfg: TrainConfig) -> float:
    """Linear warmup over ``warmup_steps``, then cosine decay to ``min_lr_ratio`` by progress 1."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


class StreamBatcher:
    """Cut one token stream into ``batch`` parallel rows and serve consecutive windows.

    The classic word_language_model layout: row ``i`` reads a contiguous slice of the
    stream, so the recurrent state carries over from one window to the next (truncated
    BPTT). ``position`` is saved in checkpoints so ``--resume`` continues where it stopped.
    """

    def __init__(self, stream: np.ndarray, batch: int, seq_len: int, rank: int = 0, world: int = 1):
        rows = batch * world
        per_row = len(stream) // rows
        if per_row < seq_len + 1:
            raise ValueError(f"stream of {len(stream)} tokens too short for {rows} rows x {seq_len}")
        data = torch.from_numpy(stream[: per_row * rows].astype(np.int64)).view(rows, per_row)
        self.rows = data[rank * batch : (rank + 1) * batch]
        self.seq_len = seq_len
        self.position = 0

    @property
    def tokens_per_epoch(self) -> int:
        return self.rows.numel()

    def next(self) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """(inputs [B,T], targets [B,T], wrapped): ``wrapped`` means a new epoch began."""
        wrapped = False
        if self.position + self.seq_len + 1 > self.rows.size(1):
            self.position, wrapped = 0, True
        chunk = self.rows[:, self.position : self.position + self.seq_len + 1]
        self.position += self.seq_len
        return chunk[:, :-1], chunk[:, 1:], wrapped


def pick_device(name: str) -> torch.device:
    """``auto`` takes a CUDA GPU when there is one, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        # TF32 matmuls: the recurrent and vocabulary GEMMs dominate and tolerate it.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


@dataclass
class InitialWeights:
    """Trained weights a run starts from, with what they need: architecture and tokenizer."""

    path: str
    state_dict: dict[str, torch.Tensor]
    config: ModelConfig
    tokenizer: bytes
    tokens_seen: int
    wall_seconds: float

    def describe(self) -> dict:
        return {"path": self.path, "tokens_seen": self.tokens_seen, "wall_seconds": self.wall_seconds}


def load_initial_weights(path: str) -> InitialWeights:
    """Read a training checkpoint or an exported artifact (its card says how it was trained)."""
    if not Path(path).is_file():
        raise ValueError(f"--init-from {path}: no such file")
    try:
        lm = load_artifact(path)
    except ArtifactError:
        not_ours = ValueError(f"--init-from {path}: neither a nextword artifact nor a training checkpoint")
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # torch raises assorted errors for files that are not its own
            raise not_ours from exc
        if not isinstance(ckpt, dict) or not {"model", "model_config", "tokenizer"} <= ckpt.keys():
            raise not_ours from None
        return InitialWeights(path, ckpt["model"], ModelConfig(**ckpt["model_config"]), bytes(ckpt["tokenizer"]),
                              int(ckpt.get("tokens_seen") or 0), float(ckpt.get("wall_seconds") or 0.0))
    training = lm.card.get("training") or {}
    state = {k: v.detach().clone() for k, v in lm.module.state_dict().items()}
    return InitialWeights(path, state, ModelConfig(**lm.card["config"]), lm.tokenizer.model_proto,
                          int(training.get("tokens_seen") or 0), float(training.get("wall_seconds") or 0.0))


def check_same_architecture(source: ModelConfig, wanted: ModelConfig) -> None:
    """Refuse to continue from weights of another shape, naming the differing fields."""
    keys = ("cell", "vocab_size", "emb_dim", "hidden_dim", "num_layers")
    diff = [f"{k}: weights {getattr(source, k)}, run {getattr(wanted, k)}" for k in keys
            if getattr(source, k) != getattr(wanted, k)]
    if diff:
        raise ValueError("--init-from weights do not fit this run's architecture (" + "; ".join(diff) + ")")


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Weights on the CPU, so checkpoints load anywhere (export runs on CPU)."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


@torch.no_grad()
def evaluate_loss(model: RNNLanguageModel, stream: np.ndarray, max_tokens: int, batch: int = 16) -> float:
    """Mean per-piece cross-entropy over the first ``max_tokens`` of ``stream``."""
    model.eval()
    device = model.embedding.weight.device
    stream = stream[: max_tokens + 1]
    per_row = (len(stream) - 1) // batch
    data = torch.from_numpy(stream[: per_row * batch + 1].astype(np.int64)).to(device)
    inputs = data[:-1].view(batch, per_row)
    targets = data[1:].view(batch, per_row)
    state = model.init_state(batch)
    total, count = 0.0, 0
    for start in range(0, per_row, 128):
        x, y = inputs[:, start : start + 128], targets[:, start : start + 128]
        logits, state = model(x, state)
        total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum").item()
        count += y.numel()
    model.train()
    return total / max(count, 1)


def _save(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- main
def train(cfg: TrainConfig, resume: bool = False) -> Path:
    """Run training; return the path of the best checkpoint."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    is_main = rank == 0
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)

    spec = CorpusSpec(
        path=cfg.corpus, fmt=cfg.corpus_format, split=cfg.split, max_docs=cfg.max_docs, vocab_size=cfg.vocab_size,
        valid_split=cfg.valid_split, mix_path=cfg.mix_corpus, mix_docs=cfg.mix_docs,
        valid_per_mille=cfg.valid_per_mille, sender=cfg.sender, subject_per_mille=cfg.subject_per_mille,
    )
    data_dir = Path(cfg.data_dir)
    init = load_initial_weights(cfg.init_from) if cfg.init_from else None
    given_tokenizer = init.tokenizer if init is not None else None
    if is_main:
        prepare_corpus(spec, data_dir, given_tokenizer)  # tokenizer + token streams, once
    if distributed:
        dist.barrier()
    summary = prepare_corpus(spec, data_dir, given_tokenizer)  # every rank: reuses the prepared folder
    train_stream = np.load(data_dir / "train.npy", mmap_mode="r")
    valid_stream = np.load(data_dir / "valid.npy", mmap_mode="r")
    valid_words = summary["valid"]["words"] + summary["valid"]["docs"]
    valid_pieces = summary["valid"]["pieces"]
    eval_tokens = min(cfg.eval_tokens, valid_pieces - 1)
    # Word perplexity on the evaluated slice: scale pieces to whitespace words (+1 EOS/doc).
    words_per_piece = valid_words / valid_pieces

    torch.manual_seed(cfg.seed + rank)
    random.seed(cfg.seed + rank)
    model_cfg = ModelConfig(
        cell=cfg.cell,
        vocab_size=summary["vocab_size"],
        emb_dim=cfg.emb_dim,
        hidden_dim=cfg.hidden_dim,
        num_layers=cfg.num_layers,
        dropout=cfg.dropout,
    )
    device = pick_device(cfg.device)
    model = RNNLanguageModel(model_cfg)
    if init is not None:
        check_same_architecture(init.config, model_cfg)
        model.load_state_dict(init.state_dict)
    model = model.to(device)  # before the optimiser sees its parameters
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.99),
    )
    batcher = StreamBatcher(np.asarray(train_stream), cfg.batch_size, cfg.seq_len, rank, world)
    # tokens_seen counts every token the weights have trained on; tokens_before, those of --init-from.
    tokens_before = init.tokens_seen if init is not None else 0
    step, tokens_seen, elapsed_before, best_loss, epoch = 0, tokens_before, 0.0, float("inf"), 0
    last_path, best_path = out / "last.pt", out / "best.pt"
    if resume and last_path.exists():
        ckpt = torch.load(last_path, map_location="cpu", weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step, tokens_seen = ckpt["step"], ckpt["tokens_seen"]
        tokens_before = ckpt.get("tokens_before", 0)
        elapsed_before, best_loss = ckpt["wall_seconds"], ckpt["best_val_loss"]
        epoch = ckpt.get("epoch", 0)
        batcher.position = ckpt["stream_position"]
        torch.set_rng_state(ckpt["torch_rng"])
        log.info("resumed from %s at step %d (%d tokens)", last_path, step, tokens_seen)
    elif resume:
        log.info("no %s yet: starting fresh", last_path)

    batcher.rows = batcher.rows.to(device)
    ddp_model: nn.Module = nn.parallel.DistributedDataParallel(model) if distributed else model
    n_params = count_parameters(model)
    if is_main:
        log.info("%s model: %d parameters on %s; %s", cfg.cell, n_params, device, model_cfg)

    tokens_per_step = cfg.batch_size * cfg.seq_len * world
    passes = cfg.max_passes or (1.0 if not cfg.max_minutes else None)  # no budget at all: one pass
    budget_tokens = cfg.max_tokens or (
        max(tokens_per_step, round(passes * batcher.tokens_per_epoch * world)) if passes else None)
    budget_seconds = cfg.max_minutes * 60 if cfg.max_minutes else None
    started = time.time()

    def progress() -> float:
        parts = []
        if budget_tokens:
            parts.append((tokens_seen - tokens_before) / budget_tokens)
        if budget_seconds:
            parts.append((elapsed_before + time.time() - started) / budget_seconds)
        return max(parts)

    def checkpoint(val_loss: float) -> None:
        nonlocal best_loss
        payload = {
            "model": cpu_state_dict(model),
            "model_config": model_cfg.to_dict(),
            "train_config": asdict(cfg),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "epoch": epoch,
            "tokens_seen": tokens_seen,
            "tokens_before": tokens_before,
            "init_from": init.describe() if init is not None else None,
            "wall_seconds": elapsed_before + time.time() - started,
            "stream_position": batcher.position,
            "torch_rng": torch.get_rng_state(),
            "val_loss": val_loss,
            "best_val_loss": min(best_loss, val_loss),
            "parameters": n_params,
            "corpus_summary": summary,
            "tokenizer": (data_dir / "tokenizer.model").read_bytes(),
            "command": " ".join(["python -m training.train", *sys.argv[1:]]),
        }
        _save(last_path, payload)
        # Weights only, for the learning curve (top-1 vs tokens seen) evaluated afterwards.
        (out / "snapshots").mkdir(exist_ok=True)
        torch.save({"model": payload["model"], "model_config": payload["model_config"],
                    "tokens_seen": tokens_seen}, out / "snapshots" / f"tokens_{tokens_seen:011d}.pt")
        if val_loss < best_loss:
            best_loss = val_loss
            _save(best_path, payload)

    bar = tqdm(total=budget_tokens, initial=tokens_seen - tokens_before, unit="tok", unit_scale=True,
               disable=not is_main, dynamic_ncols=True, mininterval=2.0)
    state = model.init_state(cfg.batch_size)
    model.train()
    window_loss, window_tokens, window_start = 0.0, 0, time.time()
    val_word_ppl = float("nan")  # shown on the bar from the first validation on
    while progress() < 1.0:
        inputs, targets, wrapped = batcher.next()
        if wrapped:
            epoch += 1
            state = model.init_state(cfg.batch_size)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, progress(), cfg)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.autocast == "bf16"):
            logits, state = ddp_model(inputs, state.detach())
        state = state.float()
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        optimizer.step()
        step += 1
        tokens_seen += tokens_per_step
        window_loss += loss.item() * inputs.numel()
        window_tokens += inputs.numel()
        bar.update(tokens_per_step)
        if step % 20 == 0:
            rate = window_tokens * world / max(time.time() - window_start, 1e-9)
            bar.set_postfix(loss=f"{window_loss / window_tokens:.3f}", tok_s=f"{rate:,.0f}", epoch=epoch,
                            val_word_ppl=f"{val_word_ppl:.1f}")
        if step % cfg.eval_every == 0 or progress() >= 1.0:
            train_loss = window_loss / max(window_tokens, 1)
            rate = window_tokens * world / max(time.time() - window_start, 1e-9)
            if is_main:
                val_loss = evaluate_loss(model, np.asarray(valid_stream), eval_tokens)
                record = {
                    "step": step,
                    "tokens_seen": tokens_seen,
                    "epoch": epoch,
                    "wall_seconds": round(elapsed_before + time.time() - started, 1),
                    "lr": optimizer.param_groups[0]["lr"],
                    "train_loss": round(train_loss, 4),
                    "val_loss": round(val_loss, 4),
                    "val_piece_ppl": round(math.exp(val_loss), 2),
                    "val_word_ppl": round(math.exp(val_loss / words_per_piece), 2),
                    "tokens_per_second": round(rate),
                }
                val_word_ppl = record["val_word_ppl"]
                with (out / "log.jsonl").open("a") as fh:
                    fh.write(json.dumps(record) + "\n")
                bar.write(json.dumps(record))
                checkpoint(val_loss)
            window_loss, window_tokens, window_start = 0.0, 0, time.time()
    bar.close()
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    if is_main:
        log.info("done: %d steps, %d tokens, best val loss %.4f -> %s", step, tokens_seen, best_loss, best_path)
    return best_path


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg, resume = parse_args(argv)
    train(cfg, resume)


if __name__ == "__main__":
    main()

"""Shared fixtures: a tiny corpus made here, and tiny GRU/LSTM artifacts trained on it.

Training the two tiny models through the real pipeline (corpus -> SentencePiece ->
``training.train`` -> ``model.export``) takes a few seconds and doubles as the
end-to-end check that the whole offline path produces a loadable artifact.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

ADJECTIVES = ["good", "great", "bad", "boring", "wonderful", "terrible", "funny", "beautiful", "predictable",
              "extraordinary", "unforgettable", "mediocre"]
NOUNS = ["movie", "film", "story", "acting", "plot", "ending", "soundtrack", "cinematography", "screenplay"]
OPENERS = ["I think", "Honestly", "In my opinion", "My friends said", "I really felt"]


def make_tiny_corpus(n_docs: int = 600, seed: int = 0) -> list[str]:
    """Short review-like documents: a strongly patterned part plus varied English sentences.

    The pattern gives the tiny model something it can learn in seconds; the varied
    sentences give SentencePiece enough material for whole-word pieces.
    """
    from bench.texts import BUILTIN_PARAGRAPHS

    varied = [s for p in BUILTIN_PARAGRAPHS for s in re.split(r"(?<=[.!?]) ", p)]
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        sentences = []
        for _ in range(rng.randint(1, 4)):
            opener, noun, adj = rng.choice(OPENERS), rng.choice(NOUNS), rng.choice(ADJECTIVES)
            sentences.append(f"{opener} the {noun} was {adj}.")
        docs.append(" ".join(sentences + rng.sample(varied, 2)))
    return docs


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "reviews.txt"
    path.write_text("\n".join(make_tiny_corpus()) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Path) -> dict[str, Path]:
    """{"gru": artifact, "lstm": artifact}, trained briefly on :func:`tiny_corpus`."""
    from model.export import export_checkpoint
    from training.train import TrainConfig, train

    root = tmp_path_factory.mktemp("models")
    paths = {}
    for cell in ("gru", "lstm"):
        cfg = TrainConfig(
            corpus=str(tiny_corpus), data_dir=str(root / "data"), out=str(root / cell), cell=cell,
            vocab_size=600, emb_dim=32, hidden_dim=64, dropout=0.0, batch_size=16, seq_len=24, lr=1e-2,
            warmup_steps=10, max_tokens=16 * 24 * 300, eval_every=150, eval_tokens=2000, threads=1,
        )
        best = train(cfg)
        paths[cell] = root / f"{cell}.pt"
        export_checkpoint(best, paths[cell], evaluation={"note": "tiny test model"})
    return paths


@pytest.fixture(scope="session")
def gru_lm(tiny_models: dict[str, Path]):
    from model.artifact import load_artifact

    return load_artifact(tiny_models["gru"], "gru")


@pytest.fixture(scope="session")
def lstm_lm(tiny_models: dict[str, Path]):
    from model.artifact import load_artifact

    return load_artifact(tiny_models["lstm"], "lstm")

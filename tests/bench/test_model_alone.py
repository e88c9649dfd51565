"""bench.model_alone on a tiny artifact: requests per second at each batch size, through the server's decoder."""

from __future__ import annotations

from pathlib import Path

from bench.model_alone import run_model_alone


def test_model_alone_measures_every_batch_size(tiny_models: dict[str, Path]) -> None:
    docs = ["the movie was great and the plot was good " * 3] * 20
    out = run_model_alone({"gru": tiny_models["gru"]}, [1, 4], 0.3, threads=1, docs=docs)
    sizes = out["gru"]["batch_sizes"]
    assert set(sizes) == {"1", "4"}
    assert all(v["requests_per_s"] > 0 for v in sizes.values())
    assert out["gru"]["best_requests_per_s"] == max(v["requests_per_s"] for v in sizes.values())

"""Model-only CPU latency of the exported artifacts: ``step`` at batch 1 and 64, prefill of 20.

    python -m bench.step_latency --models model/artifacts/gru.pt model/artifacts/lstm.pt --threads 1 2

Mean and p50 over ``--repeats`` calls after warm-up, GRU and LSTM side by side in one run
(this machine is noisy: compare the ratio, not the absolute times).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from model.artifact import load_artifact


def _time(fn, repeats: int) -> dict[str, float]:
    for _ in range(5):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return {"mean_ms": round(statistics.fmean(samples), 3), "p50_ms": round(statistics.median(samples), 3)}


def measure(path: str, threads: int, repeats: int, precision: str = "fp32") -> dict[str, dict[str, float]]:
    torch.set_num_threads(threads)
    lm = load_artifact(path, precision=precision)
    m, v = lm.module, lm.tokenizer.vocab_size
    out = {}
    with torch.inference_mode():
        for batch in (1, 64):
            tokens, state = torch.randint(0, v, (batch,)), m.init_state(batch)
            out[f"step_b{batch}"] = _time(lambda t=tokens, s=state: m.step(t, s), repeats)
        tokens, lengths = torch.randint(0, v, (1, 20)), torch.tensor([20])
        out["prefill_b1_t20"] = _time(lambda: m.prefill(tokens, lengths, m.init_state(1)), repeats)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["model/artifacts/gru.pt", "model/artifacts/lstm.pt"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "fp16"], choices=["fp32", "fp16"])
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    result = {
        f"{Path(p).stem}@{t}thr" + ("" if prec == "fp32" else f"@{prec}"): measure(p, t, args.repeats, prec)
        for prec in args.precisions
        for t in args.threads
        for p in args.models
    }
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()

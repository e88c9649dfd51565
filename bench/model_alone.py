"""The model alone, in process, no HTTP: the ceiling the server is measured against.

The same work the server does for the ``cold`` workload -- one ``model.suggest.suggest``
decoder per request (``k=3``, ``max_words=0``, no prefix cache, the server's default
decode options), over the same kind of prefixes (:func:`bench.workloads.build_plan` with
the same corpus and seed) -- driven synchronously through :func:`model.batching.drive`
in batches of fixed size (1, 8, 32, 64 by default: the sizes the server's engine forms
when idle, moderately and heavily loaded). Each batch size runs for ``seconds`` after a
short warm-up; the result is requests/s per batch size plus the per-batch wall time.

Nothing here queues, parses JSON or crosses a socket, so ``requests_per_s`` at the
server's largest batch is an upper bound on what the server can reach with the same
threads on the same core(s); the sweep runs this pinned to the server's cores with the
server's torch thread count.

Usage::

    python -m bench.model_alone --models gru,lstm --batch-sizes 1,8,32,64 --seconds 3 \\
        [--threads 1] [--corpus ../shared/data/aclImdb_v1.tar.gz --max-docs 2000] [--out x.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_BATCH_SIZES = (1, 8, 32, 64)


def cold_texts(docs: Sequence[str], n: int, seed: int = 0) -> list[str]:
    """``n`` cold-workload prefixes, drawn exactly as the load generator draws them."""
    from bench.workloads import build_plan

    # A constant schedule of n arrivals in 1 s: only the texts are used.
    plan = build_plan("cold", docs, rate=float(n), duration=1.0, seed=seed, arrivals="constant")
    return [r.text for r in plan][:n]


def measure_batch_size(lm: Any, texts: Sequence[str], batch: int, seconds: float, options: Any,
                       max_rows: int = 1024, warmup_batches: int = 2) -> dict[str, Any]:
    """Drive batches of ``batch`` cold requests for about ``seconds``; requests/s and batch times."""
    from model.batching import drive
    from model.suggest import suggest

    def run(i: int) -> float:
        chunk = [texts[(i * batch + j) % len(texts)] for j in range(batch)]
        t0 = time.perf_counter()
        drive(lm.module, [suggest(lm, t, 3, 0, None, options) for t in chunk], max_rows=max_rows)
        return time.perf_counter() - t0

    for i in range(warmup_batches):
        run(i)
    times: list[float] = []
    start = time.perf_counter()
    i = warmup_batches
    while time.perf_counter() - start < seconds or len(times) < 3:
        times.append(run(i))
        i += 1
    wall = time.perf_counter() - start
    ordered = sorted(times)
    return {
        "batch_size": batch,
        "batches": len(times),
        "requests": len(times) * batch,
        "wall_s": round(wall, 3),
        "requests_per_s": round(len(times) * batch / wall, 2),
        "batch_ms_p50": round(ordered[len(ordered) // 2] * 1e3, 3),
        "batch_ms_max": round(ordered[-1] * 1e3, 3),
    }


def run_model_alone(
    models: dict[str, str | Path],
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    seconds: float = 3.0,
    threads: int = 1,
    docs: Sequence[str] | None = None,
    seed: int = 0,
    n_texts: int = 512,
) -> dict[str, Any]:
    """``{backend: {"batch_sizes": {"1": {...}, ...}, "best_requests_per_s": ...}}``."""
    import torch

    from app.config import Settings
    from app.main import engine_config
    from bench.workloads import load_documents
    from model.artifact import load_artifact

    settings = Settings()
    cfg = engine_config(settings)
    texts = cold_texts(docs if docs is not None else load_documents(), n_texts, seed)
    out: dict[str, Any] = {}
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:  # no process-wide torch state outlives the measurement (it runs inside tests too)
        with torch.no_grad():
            for name, path in models.items():
                lm = load_artifact(path, name, settings.precision)
                per: dict[str, Any] = {}
                for b in batch_sizes:
                    per[str(b)] = measure_batch_size(lm, texts, b, seconds, cfg.decode,
                                                     cfg.scheduler.max_batch_rows)
                    print(f"model-alone {name} batch {b}: {per[str(b)]['requests_per_s']:.1f} req/s",
                          file=sys.stderr)
                out[name] = {
                    "batch_sizes": per,
                    "best_requests_per_s": max(v["requests_per_s"] for v in per.values()),
                    "threads": threads,
                    "precision": lm.precision,
                    "decode": {"beam": cfg.decode.beam, "k": 3, "max_words": 0, "cache": None},
                }
    finally:
        torch.set_num_threads(threads_before)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    import model

    artifacts = Path(model.__file__).resolve().parent / "artifacts"
    p = argparse.ArgumentParser(prog="python -m bench.model_alone", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="gru,lstm")
    p.add_argument("--batch-sizes", default=",".join(map(str, DEFAULT_BATCH_SIZES)))
    p.add_argument("--seconds", type=float, default=3.0, help="measured seconds per batch size")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (match the server)")
    p.add_argument("--corpus", default=None)
    p.add_argument("--max-docs", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the JSON here (default: stdout)")
    args = p.parse_args(argv)
    from bench.workloads import load_documents

    docs = load_documents(args.corpus, args.max_docs)
    models = {m: artifacts / f"{m}.pt" for m in args.models.split(",") if m}
    result = run_model_alone(models, [int(b) for b in args.batch_sizes.split(",")], args.seconds,
                             args.threads, docs, args.seed)
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

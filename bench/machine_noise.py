"""What the machine itself adds to one request's latency: idle gaps and stalls (no HTTP).

Two effects in the load report are not the server's, and this measures both in process:

* **idle penalty** -- at low rates (10 requests/s: ~100 ms between arrivals) the server's
  compute time sits well above what back-to-back requests cost. The same cold-workload
  prefixes (:func:`bench.model_alone.cold_texts`) go through :func:`model.suggest.suggest`
  one at a time, back to back or after a sleep, interleaved round by round so that drift
  on a noisy machine hits every gap alike: ``p50_vs_first_gap`` is what the gap costs
  (caches gone cold, a halted vCPU waking), whatever serves the requests.
* **stalls** -- a p99 over ~100 requests is close to their maximum, so one request stalled
  by the host decides it. ``stalls_over_25ms`` counts requests over 25 ms (half the SLO);
  with ``p99_ms`` and ``max_ms`` it shows whether the model path alone has such a tail.

Usage::

    taskset -c 0 python -m bench.machine_noise --model model/artifacts/gru.pt \\
        --corpus ../shared/data/aclImdb_v1.tar.gz --requests 400 --gaps-ms 0,2,10,100 \\
        --out bench/results/machine_noise.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.stats import percentiles


def measure(lm: Any, texts: Sequence[str], gaps_ms: Sequence[float], rounds: int, options: Any) -> dict[str, Any]:
    """Per gap: latency samples (ms) of the same texts, gaps interleaved round by round."""
    from model.batching import drive
    from model.suggest import suggest

    samples: dict[float, list[float]] = {g: [] for g in gaps_ms}
    per_round = max(1, len(texts) // rounds)
    for r in range(rounds):
        chunk = texts[r * per_round : (r + 1) * per_round]
        for gap in gaps_ms:
            for text in chunk:
                if gap > 0:
                    time.sleep(gap / 1000)
                t0 = time.perf_counter()
                drive(lm.module, [suggest(lm, text, 3, 0, None, options)])
                samples[gap].append((time.perf_counter() - t0) * 1000)
    out: dict[str, Any] = {}
    base = statistics.median(samples[gaps_ms[0]])
    for gap, values in samples.items():
        median = statistics.median(values)
        out[f"{gap:g}"] = {
            "n": len(values),
            "mean_ms": round(statistics.fmean(values), 3),
            "p50_ms": round(median, 3),
            "p99_ms": round(percentiles(values, [99])[99], 3),
            "max_ms": round(max(values), 3),
            "stalls_over_25ms": sum(v > 25 for v in values),
            "p50_vs_first_gap": round(median / base, 3),
        }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.machine_noise", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="artifact path")
    parser.add_argument("--corpus", default=None, help="held-out corpus (test split); default: built-in text")
    parser.add_argument("--max-docs", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=200, help="requests per gap")
    parser.add_argument("--rounds", type=int, default=10, help="interleaving rounds")
    parser.add_argument("--gaps-ms", default="0,2,10,100", help="comma-separated idle gaps; the first is the baseline")
    parser.add_argument("--precision", choices=("fp32", "fp16"), default="fp16")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    from bench.model_alone import cold_texts
    from bench.workloads import load_documents
    from model.artifact import load_artifact
    from model.suggest import DecodeOptions

    torch.set_num_threads(args.threads)
    lm = load_artifact(args.model, precision=args.precision)
    texts = cold_texts(load_documents(args.corpus, args.max_docs), args.requests, seed=1)
    gaps = [float(g) for g in args.gaps_ms.split(",")]
    for text in texts[:10]:  # warm-up: TorchScript's first calls
        measure(lm, [text], gaps[:1], 1, DecodeOptions())
    report = {
        "model": args.model,
        "precision": args.precision,
        "threads": args.threads,
        "requests_per_gap": args.requests,
        "gaps": measure(lm, texts, gaps, args.rounds, DecodeOptions()),
        "command": " ".join(["python -m bench.machine_noise", *(argv if argv is not None else sys.argv[1:])]),
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

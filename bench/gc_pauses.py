"""Python's GC pauses while keystrokes are decoded, with CPython's own pace and with the engines' clock.

    python -m bench.gc_pauses --corpus ../shared/data/aclImdb_v1.tar.gz --out bench/results/gc_pauses.json

Replays the typing workload's keystrokes (``bench.workloads.typing_plan``) in process through
:func:`model.suggest.suggest` with a prefix cache of the server's size, one torch thread, the
model as served (fp16), once per policy: ``cpython`` (its thresholds alone) and ``every<N>``
(the server's :class:`app.young_gc.YoungCollector` at N ms, called after each keystroke as an
engine calls it after each pass). ``gc.callbacks`` time every collection. Reports per policy: keystrokes a second,
each generation's collections, their total and longest pause, and the keystrokes' p99 and
longest time (a keystroke that met a collection waited it out, as a served request would).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

import torch

from app.young_gc import YoungCollector
from bench.provenance import git_info, machine_info, utc_now
from bench.stats import percentiles
from bench.workloads import load_documents, typing_plan
from model.artifact import load_artifact
from model.batching import drive
from model.prefix_cache import PrefixStateCache
from model.suggest import suggest


def replay(lm, texts: list[str], cache_bytes: int, interval_ms: float) -> dict:
    """Decode ``texts`` (one keystroke each, in order) and time every GC collection meanwhile."""
    pauses: dict[int, list[float]] = defaultdict(list)
    started = [0.0]

    def timer(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses[info["generation"]].append((time.perf_counter() - started[0]) * 1000)

    cache = PrefixStateCache(cache_bytes)
    collector = YoungCollector(interval_ms)
    keystrokes: list[float] = []
    gc.collect()
    gc.callbacks.append(timer)
    try:
        t0 = time.perf_counter()
        for text in texts:
            a = time.perf_counter()
            drive(lm.module, [suggest(lm, text, k=3, cache=cache, scope=text[:30])])
            collector(time.perf_counter())
            keystrokes.append((time.perf_counter() - a) * 1000)
        elapsed = time.perf_counter() - t0
    finally:
        gc.callbacks.remove(timer)
    p99, longest = percentiles(keystrokes, (99, 100)).values()
    return {
        "keystrokes": len(texts),
        "keystrokes_per_s": round(len(texts) / elapsed, 1),
        "keystroke_p99_ms": round(p99, 3),
        "keystroke_max_ms": round(longest, 3),
        "generations": {
            str(g): {"collections": len(ps), "total_ms": round(sum(ps), 1), "max_ms": round(max(ps), 2)}
            for g, ps in sorted(pauses.items())
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", required=True, help="held-out corpus (test split)")
    parser.add_argument("--model", default="model/artifacts/gru.pt")
    parser.add_argument("--typists", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=45.0, help="of the typists' schedule")
    parser.add_argument("--cache-mb", type=int, default=128, help="the prefix cache (NEXTWORD_CACHE_BYTES)")
    parser.add_argument("--intervals", default="0,20", help="YoungCollector intervals in ms; 0: CPython's pace")
    parser.add_argument("--rounds", type=int, default=2, help="each policy this often, alternating")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    lm = load_artifact(args.model, precision="fp16")
    docs = load_documents(args.corpus, max_docs=2000)
    texts = [r.text for r in typing_plan(tuple(docs), args.typists, args.seconds, random.Random(0))]
    gc.collect()
    gc.freeze()  # as the server does once its models are loaded
    intervals = [float(x) for x in args.intervals.split(",")]
    runs = []
    for round_ in range(args.rounds):
        for interval in intervals if round_ % 2 == 0 else intervals[::-1]:
            result = {"round": round_ + 1, "policy": f"every{interval:g}" if interval > 0 else "cpython",
                      **replay(lm, texts, args.cache_mb << 20, interval)}
            runs.append(result)
            gens = "; ".join(f"gen{g}: {v['collections']} x, {v['total_ms']} ms, max {v['max_ms']} ms"
                             for g, v in result["generations"].items())
            print(f"round {result['round']} {result['policy']:>8}: {result['keystrokes_per_s']} keystrokes/s, "
                  f"p99 {result['keystroke_p99_ms']} ms, max {result['keystroke_max_ms']} ms; {gens}", flush=True)
    meta = {"command": "python -m bench.gc_pauses " + " ".join(argv if argv is not None else sys.argv[1:]),
            "args": vars(args), "git": git_info(), "machine": machine_info(), "finished_at": utc_now()}
    out = {"meta": meta, "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()

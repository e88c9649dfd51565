"""Low-load latency of /v1/complete and the batch sizes a burst forms (the serving issue's figures).

    python -m bench.serve_latency --corpus ../shared/data/aclImdb_v1.tar.gz --out bench/results/serve_latency.json

Starts the server itself (``python -m app`` with the bundled models unless ``--url`` is given),
then for each backend:

* **cold**: sequential requests (one at a time, ``--gap-ms`` apart) with a distinct 20-word
  prefix of a held-out review each, so no prefix is cached: p50/p99 of the client-measured
  round trip and of the server's own ``timing_ms.total``;
* **cached +1 char**: for the same prefixes, first the prefix (which caches its state), then
  the prefix plus one character of the next word; only the second request is timed;
* **burst**: 64 concurrent clients each send one cold request at once; the largest batch the
  engine formed is read from ``/v1/stats`` (``max_batch_seen``) and the batch-size histogram
  from ``/metrics``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.servers import app_server, free_port
from bench.stats import percentiles


def _prefixes(corpus: str | None, n: int, words: int, seed: int) -> list[tuple[str, str]]:
    """(20-word prefix ending in a space, next word) pairs from held-out text."""
    if corpus:
        from training.data import iter_documents

        docs = []
        for i, doc in enumerate(iter_documents(corpus, split="test")):
            if i % 7 == 0:
                docs.append(doc)
            if len(docs) >= 4 * n:
                break
    else:
        from bench.texts import BUILTIN_PARAGRAPHS

        docs = list(BUILTIN_PARAGRAPHS) * (n // len(BUILTIN_PARAGRAPHS) + 1)
    rng = random.Random(seed)
    out = []
    for doc in docs:
        toks = doc.split(" ")
        if len(toks) <= words + 1:
            continue
        start = rng.randint(0, len(toks) - words - 1)
        out.append((" ".join(toks[start : start + words]) + " ", toks[start + words]))
        if len(out) >= n:
            break
    return out


async def _post(client: httpx.AsyncClient, model: str, text: str) -> tuple[float, float]:
    t0 = time.perf_counter()
    # One session, as an editor tab: the prefix cache is private to a session.
    r = await client.post("/v1/complete", json={"text": text, "model": model, "k": 3},
                          headers={"X-Session-Id": "serve-latency"})
    rtt = (time.perf_counter() - t0) * 1000
    r.raise_for_status()
    return rtt, r.json()["timing_ms"]["total"]


def _summary(rtts: list[float], server: list[float]) -> dict[str, Any]:
    return {
        "n": len(rtts),
        "rtt_ms": {f"p{q}": round(v, 2) for q, v in percentiles(rtts, [50, 99]).items()},
        "server_ms": {f"p{q}": round(v, 2) for q, v in percentiles(server, [50, 99]).items()},
    }


async def measure(url: str, models: list[str], prefixes: list[tuple[str, str]], gap_ms: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for model in models:
            for text, _ in prefixes[:5]:  # warm-up, not recorded
                await _post(client, model, "warm up " + text)
            cold_rtt, cold_srv, ext_rtt, ext_srv = [], [], [], []
            for text, _ in prefixes:
                rtt, srv = await _post(client, model, text)
                cold_rtt.append(rtt)
                cold_srv.append(srv)
                await asyncio.sleep(gap_ms / 1000)
            for text, nxt in prefixes:
                await _post(client, model, "Also, " + text)  # caches this context
                await asyncio.sleep(gap_ms / 1000)
                rtt, srv = await _post(client, model, "Also, " + text + nxt[0])
                ext_rtt.append(rtt)
                ext_srv.append(srv)
                await asyncio.sleep(gap_ms / 1000)
            burst_texts = [f"Burst {i}: {t}" for i, (t, _) in enumerate(prefixes[:64])]
            burst = await asyncio.gather(
                *[client.post("/v1/complete", json={"text": t, "model": model, "k": 3}) for t in burst_texts]
            )
            statuses: dict[str, int] = {}
            for r in burst:
                statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
            stats = (await client.get("/v1/stats")).json()["backends"][model]
            out[model] = {
                "cold_20_words": _summary(cold_rtt, cold_srv),
                "cached_plus_one_char": _summary(ext_rtt, ext_srv),
                "burst_64_max_batch": stats["max_batch_seen"],
                "burst_64_statuses": statuses,
                "cache_hits": stats["cache_hits"],
            }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--url", help="measure a running server instead of starting one")
    parser.add_argument("--corpus", help="held-out text (aclImdb test split); default: built-in paragraphs")
    parser.add_argument("--models", default="gru,lstm")
    parser.add_argument("--n", type=int, default=200, help="requests per measurement")
    parser.add_argument("--words", type=int, default=20)
    parser.add_argument("--gap-ms", type=float, default=20.0, help="pause between requests (low load)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the JSON result here")
    args = parser.parse_args(argv)
    prefixes = _prefixes(args.corpus, max(args.n, 64), args.words, args.seed)
    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            # The bundled models with their default settings (inherited NEXTWORD_* variables apply).
            env = {**os.environ, "NEXTWORD_LOG_LEVEL": "warning", "NEXTWORD_DRAIN_GRACE_S": "0"}
            log_path = Path(tempfile.mkdtemp(prefix="nextword-serve-latency-")) / "server.log"
            url = stack.enter_context(app_server(env, free_port(), log_path, "nextword")).base_url
        result = asyncio.run(measure(url, args.models.split(","), prefixes[: args.n], args.gap_ms))
    result["_run"] = {"command": "python -m bench.serve_latency " + " ".join(argv or sys.argv[1:]),
                      "n": args.n, "words": args.words, "gap_ms": args.gap_ms}
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()

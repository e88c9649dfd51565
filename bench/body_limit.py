"""How fast an oversized body is refused: 1 MB posts to a running server, with and without
Content-Length (chunked), against a normal request's round trip on the same connection pool.

    python -m bench.body_limit --out bench/results/body_limit.json

Starts ``python -m app`` (the bundled models) unless ``--url`` is given.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.servers import app_server, free_port, inherited_env
from bench.stats import percentiles

MIB = 1 << 20


def measure(url: str, rounds: int) -> dict:
    big = b'{"text": "' + b"a" * MIB + b'"}'

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    out: dict = {}
    with httpx.Client(base_url=url, timeout=30, trust_env=False) as client:
        client.post("/v1/complete", json={"text": "Thanks for the "})  # warm the connection and the route
        for name, send in (
            ("content_length_1mb", lambda: client.post("/v1/complete", content=big,
                                                       headers={"content-type": "application/json"})),
            ("chunked_1mb", lambda: client.post("/v1/complete", content=chunks(),
                                                headers={"content-type": "application/json"})),
            ("normal_request", lambda: client.post("/v1/complete", json={"text": "Thanks for the "})),
        ):
            times, statuses = [], {}
            for _ in range(rounds):
                t0 = time.perf_counter()
                r = send()
                times.append((time.perf_counter() - t0) * 1000)
                statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
            p = percentiles(times, [50, 99])
            out[name] = {"statuses": statuses, "p50_ms": round(p[50], 2), "p99_ms": round(p[99], 2),
                         "max_ms": round(max(times), 2)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", default=None)
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.url:
        result = measure(args.url, args.rounds)
    else:
        env = inherited_env()
        env.update(NEXTWORD_LOG_LEVEL="warning", NEXTWORD_DRAIN_GRACE_S="0")
        server = app_server(env, free_port(), Path(args.out).with_suffix(".server.log"), "nextword")
        with server:
            result = measure(server.base_url, args.rounds)
    result["command"] = "python -m bench.body_limit " + " ".join(argv if argv is not None else sys.argv[1:])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

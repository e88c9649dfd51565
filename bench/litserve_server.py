"""The peer: a LitServe server over the SAME TorchScript artifact, for the cold workload.

Every request runs the same next-word decoder the nextword server runs
(:func:`model.suggest.suggest`, ``cache=None``, the server's default decode options from
:class:`app.config.Settings`), and the batch LitServe hands to ``predict`` is driven as
one group through :func:`model.batching.drive` -- so the two servers differ only in what
is around the model: LitServe's request batching (``max_batch_size`` requests, waiting
at most ``batch_timeout`` for the batch to fill, then the whole batch runs to completion)
versus nextword's step-level engine (requests join and leave at every model step), and
their HTTP/queueing layers.

``POST /v1/complete`` takes nextword's JSON (``text``, ``k``, ``model``, ``max_words``)
and answers ``{"model", "fragment", "suggestions": [{"word", "prob", "text"}], "completion",
"timing_ms": {"compute"}, "cache_hit": false, "typed_word_prob", "fragment_prob", "subject_read"}``,
so :mod:`bench.loadgen` drives it unchanged. ``GET /health`` is LitServe's readiness probe. What it does not do (on
purpose, it is LitServe's defaults): no admission control (no 503), no prefix cache; a
request that waited longer than ``--timeout`` in LitServe's queue gets 504. An invalid
request fails its whole batch (LitServe's batched loop reports one error per batch).

Usage::

    python -m bench.litserve_server --model gru --port 8100 --max-batch-size 32 \\
        --batch-timeout-ms 1 [--threads 1] [--timeout 2] [--fast-queue]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import litserve as ls
from fastapi import HTTPException

API_PATH = "/v1/complete"


class NextWordAPI(ls.LitAPI):
    """setup / decode_request / batch / predict / unbatch / encode_response over one artifact."""

    def __init__(self, model_name: str, model_path: str | Path, threads: int = 1, **kwargs: Any) -> None:
        super().__init__(api_path=API_PATH, **kwargs)
        self.model_name = model_name
        self.model_path = str(model_path)
        self.threads = threads

    def setup(self, device: Any) -> None:
        import torch

        from app.config import Settings
        from app.main import engine_config, warm_up
        from model.artifact import load_artifact

        torch.set_num_threads(self.threads)
        torch.set_grad_enabled(False)
        settings = Settings()
        cfg = engine_config(settings)
        self.options = cfg.decode
        self.max_rows = cfg.scheduler.max_batch_rows
        # The server's own default precision, so both serve the same weights the same way.
        self.lm = load_artifact(self.model_path, self.model_name, settings.precision)
        warm_up(self.lm, self.options)  # the same warm-up the nextword server does

    # No annotations on ``request`` / the response: LitServe reads them to pick FastAPI's
    # body and response types; left bare, the body is the raw JSON request.
    def decode_request(self, request, **kwargs):  # type: ignore[no-untyped-def]
        if not isinstance(request, dict) or not isinstance(request.get("text"), str):
            raise HTTPException(422, "body must be a JSON object with a string 'text'")
        model = request.get("model") or self.model_name
        if model != self.model_name:
            raise HTTPException(404, f"unknown model {model!r}; available: {self.model_name}")
        k = int(request.get("k", 3))
        max_words = int(request.get("max_words", 0))
        if not 1 <= k <= 10 or not 0 <= max_words <= 8:
            raise HTTPException(422, "k must be 1..10 and max_words 0..8")
        return request["text"], k, max_words

    def batch(self, inputs: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
        return list(inputs)

    def predict(self, x: list[tuple[str, int, int]], **kwargs: Any) -> list[tuple[Any, float]]:
        from model.batching import drive
        from model.suggest import suggest

        # A single (unbatched) request arrives bare when max_batch_size == 1.
        items = x if isinstance(x, list) else [x]
        t0 = time.perf_counter()
        gens = [suggest(self.lm, text, k, max_words, None, self.options) for text, k, max_words in items]
        results = drive(self.lm.module, gens, max_rows=self.max_rows)
        compute_ms = (time.perf_counter() - t0) * 1e3
        out = [(r, compute_ms) for r in results]
        return out if isinstance(x, list) else out[0]

    def unbatch(self, output: list[Any]) -> list[Any]:
        return list(output)

    def encode_response(self, output, **kwargs):  # type: ignore[no-untyped-def]
        result, compute_ms = output
        completion = None
        if result.completion is not None:
            completion = {"text": result.completion[0], "confidence": result.completion[1]}
        return {
            "model": self.model_name,
            "fragment": result.fragment,
            "suggestions": [
                {"word": w, "prob": p, "text": t}
                for (w, p), t in zip(result.suggestions, result.insertions, strict=True)
            ],
            "completion": completion,
            "timing_ms": {"compute": round(compute_ms, 3)},
            "cache_hit": False,
            "typed_word_prob": result.typed_word_prob,
            "fragment_prob": result.fragment_prob,
            "subject_read": result.subject_read,
        }


def build_server(model_name: str, model_path: str | Path, max_batch_size: int, batch_timeout_ms: float,
                 threads: int = 1, timeout: float = 2.0, fast_queue: bool = False) -> ls.LitServer:
    api = NextWordAPI(model_name, model_path, threads=threads, max_batch_size=max_batch_size,
                      batch_timeout=batch_timeout_ms / 1000.0)
    return ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1, timeout=timeout,
                        fast_queue=fast_queue, track_requests=False)


def main(argv: Sequence[str] | None = None) -> int:
    import model

    artifacts = Path(model.__file__).resolve().parent / "artifacts"
    p = argparse.ArgumentParser(prog="python -m bench.litserve_server", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="gru", help="model/artifacts/NAME.pt unless --model-path")
    p.add_argument("--model-path", default=None, help="artifact (default: the bundled one)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8100)
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--batch-timeout-ms", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads in the inference worker")
    p.add_argument("--timeout", type=float, default=2.0, help="LitServe request timeout (queue wait), seconds")
    p.add_argument("--fast-queue", action="store_true", help="LitServe's ZeroMQ queue instead of multiprocessing")
    p.add_argument("--log-level", default="warning")
    args = p.parse_args(argv)
    path = args.model_path or artifacts / f"{args.model}.pt"
    server = build_server(args.model, path, args.max_batch_size, args.batch_timeout_ms, args.threads,
                          args.timeout, args.fast_queue)
    server.run(host=args.host, port=args.port, num_api_servers=1, log_level=args.log_level,
               generate_client_file=False, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The LitServe peer serves what nextword serves: same decoder, options and answers.

Run in a child process: the adapter's ``setup`` sets process-wide torch state (no autograd, one
thread), as it should in LitServe's worker, which must not leak into the other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("litserve")

ROOT = Path(__file__).resolve().parents[2]

PEER = textwrap.dedent("""
    import json, sys
    from bench.litserve_server import NextWordAPI
    from model.batching import drive
    from model.suggest import suggest

    api = NextWordAPI("gru", sys.argv[1], threads=1, max_batch_size=4, batch_timeout=0.001)
    api.setup("cpu")
    texts = ["I think the movie ", "The acting was gr"]
    inputs = [api.decode_request({"text": t, "model": "gru", "k": 3}) for t in texts]
    answers = [api.encode_response(o) for o in api.unbatch(api.predict(api.batch(inputs)))]
    expected = drive(api.lm.module, [suggest(api.lm, t, 3, 0, None, api.options) for t in texts])
    print(json.dumps({"peer": answers, "server_decoder": [[w for w, _ in r.suggestions] for r in expected]}))
""")


def test_the_peer_answers_as_the_server_decoder_does(tiny_models: dict[str, Path]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXTWORD_")}
    done = subprocess.run([sys.executable, "-c", PEER, str(tiny_models["gru"])], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for answer, words in zip(out["peer"], out["server_decoder"], strict=True):
        assert [s["word"] for s in answer["suggestions"]] == words
        assert answer["model"] == "gru" and answer["cache_hit"] is False

"""The LitServe peer serves what nextword serves: same decoder, options and answers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("litserve")

from bench.litserve_server import NextWordAPI
from model.batching import drive
from model.suggest import suggest


def test_the_peer_answers_as_the_server_decoder_does(tiny_models: dict[str, Path], monkeypatch) -> None:
    for key in [k for k in os.environ if k.startswith("NEXTWORD_")]:
        monkeypatch.delenv(key)
    api = NextWordAPI("gru", tiny_models["gru"], threads=1, max_batch_size=4, batch_timeout=0.001)
    api.setup("cpu")
    texts = ["I think the movie ", "The acting was gr"]
    inputs = [api.decode_request({"text": t, "model": "gru", "k": 3}) for t in texts]
    outputs = api.unbatch(api.predict(api.batch(inputs)))
    answers = [api.encode_response(o) for o in outputs]
    expected = drive(api.lm.module, [suggest(api.lm, t, 3, 0, None, api.options) for t in texts])
    for answer, want in zip(answers, expected, strict=True):
        assert [s["word"] for s in answer["suggestions"]] == [w for w, _ in want.suggestions]
        assert answer["model"] == "gru" and answer["cache_hit"] is False

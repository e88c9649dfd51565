"""Batching changes nothing: a request gives the same answer alone or in a batch of 64."""

from __future__ import annotations

import math
import random

from model.batching import ModelCall, drive, drive_stream, run_calls
from model.suggest import suggest
from tests.conftest import make_tiny_corpus


def _prompts(n: int) -> list[str]:
    rng = random.Random(3)
    docs = make_tiny_corpus(n, seed=5)
    prompts = []
    for doc in docs:
        cut = rng.randint(1, len(doc))
        prompts.append(doc[:cut])  # mixed lengths, some inside a word, some after a space
    return prompts


def test_batch_of_64_equals_each_alone(gru_lm, lstm_lm) -> None:
    prompts = _prompts(64)
    assert len({len(p) for p in prompts}) > 20
    for lm in (gru_lm, lstm_lm):
        together = drive(lm.module, [suggest(lm, p, 3, 0) for p in prompts], max_rows=4096)
        for prompt, batched in zip(prompts, together, strict=True):
            alone = drive(lm.module, [suggest(lm, prompt, 3, 0)])[0]
            assert [w for w, _ in batched.suggestions] == [w for w, _ in alone.suggestions], prompt
            for (_, p1), (_, p2) in zip(batched.suggestions, alone.suggestions, strict=True):
                assert abs(math.log(p1) - math.log(p2)) < 1e-5


def test_run_calls_mixes_prefill_and_steps_in_one_call(gru_lm) -> None:
    lm = gru_lm
    zero = lm.zero_state
    long_call = ModelCall([[lm.eos_id, *lm.tokenizer.encode("I think the movie was")]], zero)
    step_call = ModelCall([[5], [6]], zero.repeat(2, 1, 1))
    mixed = run_calls(lm.module, [long_call, step_call])
    alone_long = run_calls(lm.module, [long_call])[0]
    alone_step = run_calls(lm.module, [step_call])[0]
    assert (mixed[0][0] - alone_long[0]).abs().max() < 1e-5
    assert (mixed[1][0] - alone_step[0]).abs().max() < 1e-5
    assert mixed[1][1].shape[0] == 2


def test_drive_stream_keeps_width_decoders_in_flight_and_answers_each_once(gru_lm) -> None:
    lm = gru_lm
    prompts = _prompts(23)
    calls_seen: list[int] = []

    class Counting:
        """The module, counting how many decoders' rows each model call carries."""

        def __getattr__(self, name):
            method = getattr(lm.module, name)

            def call(tokens, *args):
                calls_seen.append(tokens.size(0))
                return method(tokens, *args)

            return call

    expected = drive(lm.module, [suggest(lm, p, 3, 0) for p in prompts])
    streamed = dict(drive_stream(Counting(), (suggest(lm, p, 3, 0) for p in prompts), width=5))
    assert sorted(streamed) == list(range(len(prompts)))
    for i, alone in enumerate(expected):
        assert [w for w, _ in streamed[i].suggestions] == [w for w, _ in alone.suggestions], prompts[i]
    # The first call reads the contexts of the first `width` decoders only (one row each);
    # later calls never carry more than width decoders' beams (up to 6 rows each).
    assert calls_seen[0] == 5
    assert max(calls_seen) <= 5 * 6
    assert list(drive_stream(lm.module, iter([]), width=3)) == []

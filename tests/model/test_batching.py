"""Batching changes nothing: a request gives the same answer alone or in a batch of 64."""

from __future__ import annotations

import math
import random

from model.batching import ModelCall, drive, run_calls
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

"""The seam between decoding and the network: model calls, and how to batch them.

Decoders never call the network. They are generators that *yield* a :class:`ModelCall`
(rows of tokens to feed, and the state each row starts from) and receive the result
(next-piece log-probs and new states, one row each). Whoever drives them decides how to
batch: :func:`run_calls` merges the calls of many generators into one ``step`` or
``prefill`` of the scripted module and splits the result back. The server's engine and
the offline evaluator both drive the same generators through this one function, which is
why the evaluator's numbers describe what the server answers.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor

T = TypeVar("T")

#: (log-probs [rows, V], states [rows, layers, width]) for the rows of one ModelCall.
CallResult = tuple[Tensor, Tensor]
#: A decoder: yields model calls, receives their results, returns its answer.
Decoding = Generator["ModelCall", CallResult, T]


@dataclass
class ModelCall:
    """Feed ``tokens[i]`` (one or more ids) to row ``i`` starting from ``state[i]``."""

    tokens: list[list[int]]
    state: Tensor

    @property
    def rows(self) -> int:
        return len(self.tokens)

    @property
    def num_tokens(self) -> int:
        return sum(len(t) for t in self.tokens)


def run_calls(module: Any, calls: list[ModelCall]) -> list[CallResult]:
    """Execute many calls as ONE network invocation and route each its rows back.

    All rows one token long -> ``module.step``; otherwise ``module.prefill`` with
    right-padding and per-row lengths (the packed RNN does no work on the padding).
    """
    rows = [row for call in calls for row in call.tokens]
    state = torch.cat([call.state for call in calls], dim=0) if len(calls) > 1 else calls[0].state
    # no_grad, not inference_mode: states flow between calls and are indexed and concatenated
    # outside this block; inference tensors there break TorchScript plans that a call with
    # grad enabled elsewhere may have built (seen as "Inference tensors cannot be saved").
    with torch.no_grad():
        if all(len(row) == 1 for row in rows):
            logp, new_state = module.step(torch.tensor([row[0] for row in rows]), state)
        else:
            lengths = torch.tensor([len(row) for row in rows])
            tokens = torch.zeros(len(rows), int(lengths.max()), dtype=torch.long)
            for i, row in enumerate(rows):
                tokens[i, : len(row)] = torch.tensor(row)
            logp, new_state = module.prefill(tokens, lengths, state)
    results: list[CallResult] = []
    start = 0
    for call in calls:
        end = start + call.rows
        results.append((logp[start:end], new_state[start:end]))
        start = end
    return results


def drive(module: Any, decodings: list[Decoding[T]], max_rows: int = 512) -> list[T]:
    """Run decoders to completion synchronously, batching their calls step by step.

    Each iteration gathers the pending call of every unfinished decoder (up to
    ``max_rows`` rows), runs them together, and resumes each with its own result: the
    offline counterpart of the server's engine (used by the evaluator and benchmarks).
    """
    results: list[Any] = [None] * len(decodings)
    for i, value in drive_stream(module, decodings, width=max(len(decodings), 1), max_rows=max_rows):
        results[i] = value
    return results


def drive_stream(
    module: Any, decodings: Iterable[Decoding[T]], width: int, max_rows: int = 512
) -> Iterator[tuple[int, T]]:
    """Like :func:`drive` over a stream: at most ``width`` decoders run, and the next one
    starts as soon as one finishes (continuous batching, as the engine does).

    Yields ``(index in decodings, result)`` as each finishes. Unlike fixed chunks, the batch
    stays full instead of waiting for a chunk's longest member (the evaluator's documents
    differ in length by 10x or more).
    """
    source = enumerate(decodings)
    pending: dict[int, tuple[Decoding[T], ModelCall]] = {}
    done: list[tuple[int, T]] = []
    exhausted = False
    while True:
        while not exhausted and len(pending) < width:
            try:
                i, gen = next(source)
            except StopIteration:
                exhausted = True
                break
            try:
                pending[i] = (gen, next(gen))
            except StopIteration as stop:
                done.append((i, stop.value))
        yield from done
        done.clear()
        if not pending:
            return
        batch: list[int] = []
        rows = 0
        for i, (_, call) in pending.items():
            if batch and rows + call.rows > max_rows:
                break
            batch.append(i)
            rows += call.rows
        outputs = run_calls(module, [pending[i][1] for i in batch])
        for i, out in zip(batch, outputs, strict=True):
            gen = pending[i][0]
            try:
                pending[i] = (gen, gen.send(out))
            except StopIteration as stop:
                del pending[i]
                done.append((i, stop.value))

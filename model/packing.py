"""Inference weight packing: fp16 weights in fbgemm's packed layout, fp32 arithmetic.

On the serving CPU (AVX2, small batches) a step is bound by reading weights: fp32 GEMMs with
a handful of rows run far below peak, while fbgemm's packed fp16 kernels read half the bytes
and are tuned for small batches (measured by ``python -m bench.step_latency``). Activations
stay fp32 and each row is computed on its own, so, unlike int8 dynamic quantization (whose
activation scale is taken over the whole batch), a row's result does not depend on what it
is batched with: batching still changes no answer.

The artifact on disk stays fp32 TorchScript; packing happens at load time from its weights
(:func:`model.artifact.load_artifact` with ``precision="fp16"``).
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from model.network import RNNLanguageModel

PRECISIONS = ("fp32", "fp16")


def packed(model: RNNLanguageModel, precision: str) -> nn.Module:
    """``model`` ready for inference at ``precision`` (``fp32``: unchanged)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return model.eval()
    model = copy.deepcopy(model)  # untie_head() changes the module; leave the caller's alone
    model.untie_head()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return torch.ao.quantization.quantize_dynamic(
            model.eval(), {nn.Linear, nn.GRU, nn.LSTM}, dtype=torch.float16
        )

"""The recurrent language model: one pure ``nn.Module`` for both the GRU and the LSTM backend.

No I/O and no training code lives here. The module is TorchScript-friendly so that
``model.export`` can script it as is; the server only ever sees the scripted artifact.

State convention (the seam the server depends on): one tensor, batch first,
``[batch, layers, state_width]`` where ``state_width`` is ``hidden`` for the GRU and
``2 * hidden`` for the LSTM (``h`` and ``c`` packed side by side). Batch-first means the
engine can ``torch.cat`` states of different requests and index rows back out without
knowing which cell produced them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CELLS = ("gru", "lstm")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters; stored in checkpoints and in the exported model card."""

    cell: str = "gru"
    vocab_size: int = 8000
    emb_dim: int = 256
    hidden_dim: int = 512
    num_layers: int = 1
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {self.cell!r}")
        if min(self.vocab_size, self.emb_dim, self.hidden_dim, self.num_layers) < 1:
            raise ValueError("sizes must be positive")

    def to_dict(self) -> dict:
        return asdict(self)


class RNNLanguageModel(nn.Module):
    """Embedding -> GRU/LSTM -> (projection) -> output tied to the embedding.

    The scripted module carries its own serving form: :meth:`pack_fp16` packs the recurrent,
    projection and output weights as fp16 for fbgemm's small-batch kernels (fp32 arithmetic),
    inside TorchScript, so a server runs exactly what was exported and never needs this file.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.cell = config.cell
        self.vocab_size = config.vocab_size
        self.hidden_dim = config.hidden_dim
        self.num_layers = config.num_layers
        self.state_width = config.hidden_dim * (2 if config.cell == "lstm" else 1)

        self.embedding = nn.Embedding(config.vocab_size, config.emb_dim)
        # Dropout only on non-recurrent connections: input, between layers, output.
        rnn_args = dict(
            input_size=config.emb_dim,
            hidden_size=config.hidden_dim,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        # Exactly one of the two is set. TorchScript resolves ``is not None`` on a module
        # attribute at compile time, so each backend scripts only its own branch.
        self.gru = nn.GRU(**rnn_args) if config.cell == "gru" else None
        self.lstm = nn.LSTM(**rnn_args) if config.cell == "lstm" else None
        self.drop = nn.Dropout(config.dropout)
        # Tie the output to the embedding; project when the sizes differ.
        self.projection = (
            nn.Linear(config.hidden_dim, config.emb_dim, bias=False)
            if config.hidden_dim != config.emb_dim
            else nn.Identity()
        )
        self.output_bias = nn.Parameter(torch.zeros(config.vocab_size))
        # The serving form, empty until pack_fp16() (typed in SERVING_FORM_TYPES for TorchScript).
        self._cells_fp16 = []
        self._projection_fp16 = None
        self._head_fp16 = None
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.normal_(self.embedding.weight, std=0.05)
        if self.lstm is not None:
            h = self.hidden_dim
            for name, param in self.lstm.named_parameters():
                if name.startswith("bias_ih"):
                    # Gates are ordered (input, forget, cell, output): forget bias 1.
                    param.data[h : 2 * h].fill_(1.0)
                elif name.startswith("bias_hh"):
                    param.data[h : 2 * h].fill_(0.0)

    # ----------------------------------------------------------------- state packing
    def _unpack(self, state: Tensor) -> list[Tensor]:
        """[B, L, W] batch-first state -> the cell's own [L, B, H] tensors."""
        s = state.transpose(0, 1).contiguous()
        if self.lstm is not None:
            return [s[:, :, : self.hidden_dim].contiguous(), s[:, :, self.hidden_dim :].contiguous()]
        return [s]

    def _pack(self, parts: list[Tensor]) -> Tensor:
        return torch.cat(parts, dim=2).transpose(0, 1).contiguous()

    def _recur(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        parts = self._unpack(state)
        if len(self._cells_fp16) > 0:
            return self._recur_fp16(x, parts)
        if self.lstm is not None:
            out, (h, c) = self.lstm(x, (parts[0], parts[1]))
            return out, self._pack([h, c])
        assert self.gru is not None
        out, h = self.gru(x, parts[0])
        return out, self._pack([h])

    def _recur_fp16(self, x: Tensor, parts: list[Tensor]) -> tuple[Tensor, Tensor]:
        """:meth:`_recur` on the packed cells (the calls torch's dynamic-quantized RNNs make)."""
        if self.lstm is not None:
            out, h, c = torch.quantized_lstm(x, parts, self._cells_fp16, True, self.num_layers, 0.0, False, False,
                                             True, dtype=torch.float16, use_dynamic=True)
            return out, self._pack([h, c])
        out, h = torch.quantized_gru(x, parts[0], self._cells_fp16, True, self.num_layers, 0.0, False, False, True)
        return out, self._pack([h])

    def _recur_packed_fp16(self, packed: nn.utils.rnn.PackedSequence, state: Tensor) -> Tensor:
        """The state after each row's own last token, rows of mixed lengths, on the packed cells."""
        sorted_indices, unsorted_indices = packed.sorted_indices, packed.unsorted_indices
        assert sorted_indices is not None and unsorted_indices is not None
        parts = [p.index_select(1, sorted_indices) for p in self._unpack(state)]
        if self.lstm is not None:
            _, h, c = torch.quantized_lstm(packed.data, packed.batch_sizes, parts, self._cells_fp16, True,
                                           self.num_layers, 0.0, False, False, dtype=torch.float16, use_dynamic=True)
            return self._pack([h.index_select(1, unsorted_indices), c.index_select(1, unsorted_indices)])
        _, h = torch.quantized_gru(packed.data, packed.batch_sizes, parts[0], self._cells_fp16, True,
                                   self.num_layers, 0.0, False, False)
        return self._pack([h.index_select(1, unsorted_indices)])

    def _recur_ragged(self, x: Tensor, lengths: Tensor, state: Tensor) -> Tensor:
        """Run rows of different lengths; return each row's state after its own last token.

        Rows of one length (always so at batch 1, the common case at low load) take a plain
        sequence call, which skips packing and is faster with fp16-packed cells. Mixed lengths
        are packed, the faster of the exact ways to run them.
        """
        lengths = lengths.to(torch.int64).cpu()
        if bool((lengths == lengths[0]).all()):
            _, new_state = self._recur(x[:, : int(lengths[0])], state)
            return new_state
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        if len(self._cells_fp16) > 0:
            return self._recur_packed_fp16(packed, state)
        parts = self._unpack(state)
        if self.lstm is not None:
            _, (h, c) = self.lstm(packed, (parts[0], parts[1]))
            return self._pack([h, c])
        assert self.gru is not None
        _, h = self.gru(packed, parts[0])
        return self._pack([h])

    # ----------------------------------------------------------------- heads
    def logits(self, hidden: Tensor) -> Tensor:
        """Hidden states [..., H] -> vocabulary logits [..., V] via the tied embedding."""
        head = self._head_fp16
        if head is not None:
            projection = self._projection_fp16
            if projection is not None:
                hidden = torch.ops.quantized.linear_dynamic_fp16(hidden, projection)
            return torch.ops.quantized.linear_dynamic_fp16(hidden, head)
        return F.linear(self.projection(hidden), self.embedding.weight, self.output_bias)

    # ----------------------------------------------------------------- serving form
    @torch.jit.export
    def pack_fp16(self) -> None:
        """Serve from fp16-packed weights (inference only; the parameters stay as they are).

        On a serving CPU at small batches a step is bound by reading weights; fbgemm's packed
        fp16 kernels read half the bytes. Activations stay fp32 and each row is computed on
        its own, so a row's answer does not depend on what it is batched with. The output
        layer gets its own packed copy of the tied embedding (the embedding lookup stays fp32).
        """
        if self.lstm is not None:
            weights = self.lstm._flat_weights
        else:
            assert self.gru is not None
            weights = self.gru._flat_weights
        cells: list[torch.classes.rnn.CellParamsBase] = []
        for layer in range(self.num_layers):
            at = 4 * layer  # per layer: w_ih, w_hh, b_ih, b_hh
            w_ih, w_hh, b_ih, b_hh = weights[at], weights[at + 1], weights[at + 2], weights[at + 3]
            assert w_ih is not None and w_hh is not None and b_ih is not None and b_hh is not None
            cells.append(torch.ops.quantized.make_quantized_cell_params_fp16(
                torch.ops.quantized.linear_prepack_fp16(w_ih.detach(), b_ih.detach()),
                torch.ops.quantized.linear_prepack_fp16(w_hh.detach(), b_hh.detach())))
        if hasattr(self.projection, "weight"):  # resolved when scripting: an nn.Identity has none
            self._projection_fp16 = torch.ops.quantized.linear_prepack_fp16(self.projection.weight.detach(), None)
        self._head_fp16 = torch.ops.quantized.linear_prepack_fp16(self.embedding.weight.detach(),
                                                                 self.output_bias.detach())
        self._cells_fp16 = cells

    def log_probs_from_state(self, state: Tensor) -> Tensor:
        """Next-piece log-probabilities [B, V] from a packed state (top layer's h)."""
        top = state[:, self.num_layers - 1, : self.hidden_dim]
        return torch.log_softmax(self.logits(top), dim=-1)

    # ----------------------------------------------------------------- API
    @torch.jit.export
    def init_state(self, batch: int) -> Tensor:
        """The all-zero start state for ``batch`` rows."""
        w = self.embedding.weight
        return torch.zeros(batch, self.num_layers, self.state_width, dtype=w.dtype, device=w.device)

    def forward(self, tokens: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """Training path: tokens [B, T] -> (logits [B, T, V], state after T tokens)."""
        x = self.drop(self.embedding(tokens))
        out, new_state = self._recur(x, state)
        return self.logits(self.drop(out)), new_state

    @torch.jit.export
    def prefill(self, tokens: Tensor, lengths: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """Consume right-padded tokens [B, T] (row i has ``lengths[i]`` >= 1 real tokens).

        Returns the log-probabilities of the piece after each row's last real token [B, V]
        and the state there. Equivalent to ``lengths[i]`` calls of :meth:`step`.
        """
        x = self.embedding(tokens)
        new_state = self._recur_ragged(x, lengths, state)
        return self.log_probs_from_state(new_state), new_state

    @torch.jit.export
    def step(self, tokens: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One token per row: tokens [B] -> (log-probs [B, V], new state)."""
        x = self.embedding(tokens.unsqueeze(1))
        _, new_state = self._recur(x, state)
        return self.log_probs_from_state(new_state), new_state


# TorchScript reads attribute types from the class's annotations, and needs the objects themselves
# (``from __future__ import annotations`` would leave strings it cannot resolve).
SERVING_FORM_TYPES = {
    "_cells_fp16": list[torch.classes.rnn.CellParamsBase],
    "_projection_fp16": Optional[torch.classes.quantized.LinearPackedParamsBase],  # noqa: UP045 -- not a type
    "_head_fp16": Optional[torch.classes.quantized.LinearPackedParamsBase],  # noqa: UP045
}
RNNLanguageModel.__annotations__ = {**RNNLanguageModel.__annotations__, **SERVING_FORM_TYPES}


def rebuild_eager(config: ModelConfig, state_dict: dict[str, Tensor]) -> RNNLanguageModel:
    """The eager network with the given weights (a checkpoint's, or a loaded TorchScript module's)."""
    model = RNNLanguageModel(config)
    model.load_state_dict(state_dict)
    return model.eval()


def count_parameters(module: nn.Module) -> int:
    """Distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in module.parameters())

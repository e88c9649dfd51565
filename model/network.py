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
    """Embedding -> GRU/LSTM -> (projection) -> output tied to the embedding."""

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
        # Set only by untie_head(): an inference copy of the tied output as its own Linear.
        self.head: nn.Module | None = None
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
        if self.lstm is not None:
            out, (h, c) = self.lstm(x, (parts[0], parts[1]))
            return out, self._pack([h, c])
        assert self.gru is not None
        out, h = self.gru(x, parts[0])
        return out, self._pack([h])

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
        if self.head is not None:
            return self.head(self.projection(hidden))
        return F.linear(self.projection(hidden), self.embedding.weight, self.output_bias)

    def untie_head(self) -> None:
        """Copy the tied output weights into an ``nn.Linear`` of their own (inference only).

        Weight-packing backends (:mod:`model.packing`) rewrite ``nn.Linear`` modules; the tied
        output is a plain ``F.linear`` over the embedding, so it needs its own module first.
        The copy is no longer tied: do not train after this.
        """
        vocab, emb = self.embedding.weight.shape
        head = nn.Linear(emb, vocab)
        with torch.no_grad():
            head.weight.copy_(self.embedding.weight)
            head.bias.copy_(self.output_bias)
        self.head = head

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


def rebuild_eager(config: ModelConfig, state_dict: dict[str, Tensor]) -> RNNLanguageModel:
    """The eager network with the given weights (a checkpoint's, or a loaded TorchScript module's)."""
    model = RNNLanguageModel(config)
    model.load_state_dict(state_dict)
    return model.eval()


def count_parameters(module: nn.Module) -> int:
    """Distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in module.parameters())

"""The network: one module for both cells, prefill == steps, scripted == eager."""

from __future__ import annotations

import pytest
import torch

from model.export import script_model
from model.network import ModelConfig, RNNLanguageModel, count_parameters

CELLS = ("gru", "lstm")


def _model(cell: str, layers: int = 2, hidden: int = 48) -> RNNLanguageModel:
    torch.manual_seed(0)
    return RNNLanguageModel(ModelConfig(cell=cell, vocab_size=97, emb_dim=24, hidden_dim=hidden,
                                        num_layers=layers, dropout=0.3)).eval()


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("row_lengths", [[9, 5, 1, 7], [6, 6, 6, 6], [1, 1, 1, 1]], ids=["mixed", "equal", "ones"])
def test_prefill_equals_steps(cell: str, row_lengths: list[int]) -> None:
    # "equal": every row one length, with padding columns beyond it (the plain, unpacked path)
    model = _model(cell)
    tokens = torch.randint(0, 97, (4, 9))
    lengths = torch.tensor(row_lengths)
    logp, state = model.prefill(tokens, lengths, model.init_state(4))
    for row in range(4):
        s = model.init_state(1)
        for t in range(int(lengths[row])):
            step_logp, s = model.step(tokens[row : row + 1, t], s)
        assert torch.allclose(step_logp, logp[row : row + 1], atol=1e-5)
        assert torch.allclose(s, state[row : row + 1], atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_scripted_matches_eager(cell: str) -> None:
    model = _model(cell)
    scripted = script_model(model)
    tokens = torch.randint(0, 97, (3, 6))
    lengths = torch.tensor([6, 2, 4])
    start = torch.randn(3, 2, model.state_width) * 0.1
    for a, b in zip(model.prefill(tokens, lengths, start), scripted.prefill(tokens, lengths, start), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    for a, b in zip(model.step(tokens[:, 0], start), scripted.step(tokens[:, 0], start), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert torch.equal(scripted.init_state(5), model.init_state(5))


@pytest.mark.parametrize("cell", CELLS)
def test_state_layout_is_batch_first_and_packs_lstm(cell: str) -> None:
    model = _model(cell, layers=3, hidden=16)
    state = model.init_state(2)
    assert state.shape == (2, 3, 16 * (2 if cell == "lstm" else 1))
    logp, new_state = model.step(torch.tensor([1, 2]), state)
    assert logp.shape == (2, 97) and new_state.shape == state.shape
    assert torch.allclose(logp.exp().sum(-1), torch.ones(2), atol=1e-5)


def test_output_is_tied_to_embedding_and_lstm_forget_bias_is_one() -> None:
    lstm = _model("lstm", layers=1, hidden=48)
    assert lstm.projection.weight.shape == (24, 48)  # hidden -> embedding, then the tied matrix
    h = 48
    total = lstm.lstm.bias_ih_l0[h : 2 * h] + lstm.lstm.bias_hh_l0[h : 2 * h]
    assert torch.allclose(total, torch.ones(h))
    same = RNNLanguageModel(ModelConfig(cell="gru", vocab_size=50, emb_dim=16, hidden_dim=16))
    assert isinstance(same.projection, torch.nn.Identity)
    names = [n for n, _ in same.named_parameters()]
    assert not any("output" in n and "weight" in n for n in names)  # no separate output matrix


def test_dropout_only_between_non_recurrent_connections() -> None:
    model = _model("gru", layers=2)
    model.train()
    assert model.gru.dropout == 0.3  # between layers (non-recurrent), never on h -> h
    torch.manual_seed(1)
    a, _ = model(torch.tensor([[1, 2, 3]]), model.init_state(1))
    torch.manual_seed(2)
    b, _ = model(torch.tensor([[1, 2, 3]]), model.init_state(1))
    assert not torch.allclose(a, b)  # training mode: stochastic
    model.eval()
    c, _ = model(torch.tensor([[1, 2, 3]]), model.init_state(1))
    d, _ = model(torch.tensor([[1, 2, 3]]), model.init_state(1))
    assert torch.equal(c, d)


def test_same_recipe_gives_comparable_sizes() -> None:
    gru = RNNLanguageModel(ModelConfig(cell="gru", vocab_size=8000, emb_dim=256, hidden_dim=384))
    lstm = RNNLanguageModel(ModelConfig(cell="lstm", vocab_size=8000, emb_dim=256, hidden_dim=384))
    shared = 8000 * 256 + 8000 + 384 * 256
    assert count_parameters(gru) == shared + 3 * (256 * 384 + 384 * 384 + 2 * 384)
    assert count_parameters(lstm) == shared + 4 * (256 * 384 + 384 * 384 + 2 * 384)


def test_config_rejects_unknown_cell() -> None:
    with pytest.raises(ValueError, match="cell"):
        ModelConfig(cell="transformer")

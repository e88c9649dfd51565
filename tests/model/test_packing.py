"""fp16-packed serving weights: same answers as fp32 within rounding, and still batch-invariant."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.artifact import load_artifact
from model.batching import drive
from model.network import ModelConfig, RNNLanguageModel
from model.packing import packed
from model.suggest import suggest


@pytest.fixture(scope="module", params=["gru", "lstm"])
def both(request: pytest.FixtureRequest, tiny_models: dict[str, Path]):
    path = tiny_models[request.param]
    return load_artifact(path), load_artifact(path, precision="fp16")


def test_packed_weights_give_the_same_log_probs_within_rounding(both) -> None:
    fp32, fp16 = both
    assert (fp32.precision, fp16.precision) == ("fp32", "fp16")
    assert fp16.card == fp32.card  # the same verified file
    tokens, lengths = torch.tensor([[2, 10, 11, 12], [2, 13, 0, 0]]), torch.tensor([4, 2])
    with torch.no_grad():
        a, sa = fp32.module.prefill(tokens, lengths, fp32.module.init_state(2))
        b, sb = fp16.module.prefill(tokens, lengths, fp16.module.init_state(2))
    assert torch.allclose(a, b, atol=1e-2) and torch.allclose(sa, sb, atol=1e-2)


def test_packed_prefill_equals_steps(both) -> None:
    _, lm = both
    ids = [2, 21, 22, 23, 24, 25]
    with torch.no_grad():
        logp_p, state_p = lm.module.prefill(torch.tensor([ids]), torch.tensor([len(ids)]), lm.module.init_state(1))
        state = lm.module.init_state(1)
        for token in ids:
            logp_s, state = lm.module.step(torch.tensor([token]), state)
    assert torch.allclose(logp_p, logp_s, atol=1e-5) and torch.allclose(state_p, state, atol=1e-5)


def test_a_row_does_not_depend_on_its_batch(both) -> None:
    """Unlike int8 dynamic quantisation, nothing is scaled per batch: batching changes no answer."""
    _, lm = both
    with torch.no_grad():
        alone, _ = lm.module.step(torch.tensor([7]), lm.module.init_state(1))
        noisy = lm.module.init_state(4)
        noisy[1:] = 5.0 * torch.randn_like(noisy[1:])  # batchmates with very different ranges
        batched, _ = lm.module.step(torch.tensor([7, 8, 9, 10]), noisy)
    assert torch.allclose(alone[0], batched[0], atol=1e-5)


def test_packed_model_suggests_what_the_fp32_one_does(both) -> None:
    fp32, fp16 = both
    texts = ["I think the movie ", "The acting was gr", "One of the best "]
    answers = [drive(lm.module, [suggest(lm, t, 3) for t in texts]) for lm in (fp32, fp16)]
    for a, b in zip(*answers, strict=True):
        assert [w for w, _ in a.suggestions] == [w for w, _ in b.suggestions]


def test_unknown_precision_is_refused() -> None:
    model = RNNLanguageModel(ModelConfig(cell="gru", vocab_size=20, emb_dim=8, hidden_dim=8))
    with pytest.raises(ValueError, match="precision"):
        packed(model, "int4")

"""The artifact's fp16 serving form: same answers as fp32 within rounding, still batch-invariant,
and refused with the fix named where an artifact lacks it. (That the server runs it without the
network's Python source is tests/app/test_served_as_exported.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model.artifact import ArtifactError, load_artifact, sealed
from model.batching import drive
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


def test_unknown_precision_is_refused(tiny_models: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="precision"):
        load_artifact(tiny_models["gru"], precision="int4")


def test_an_artifact_without_the_serving_form_is_refused_at_fp16_with_the_fix(tiny_models, tmp_path) -> None:
    """A module scripted before ``pack_fp16`` existed: fp16 refuses in one line and names the fix."""
    lm = load_artifact(tiny_models["gru"])

    class Plain(torch.nn.Module):  # the same methods a server calls, minus the serving form
        def __init__(self, inner: torch.jit.ScriptModule) -> None:
            super().__init__()
            self.inner = inner

        @torch.jit.export
        def init_state(self, batch: int) -> torch.Tensor:
            return self.inner.init_state(batch)

    plain = torch.jit.script(Plain(lm.module))
    assert not hasattr(plain, "pack_fp16")
    card = sealed({k: v for k, v in lm.card.items() if k != "checksum"}, lm.tokenizer.model_proto,
                  plain.state_dict(), version=2)
    path = tmp_path / "old.pt"
    torch.jit.save(plain, str(path), _extra_files={"tokenizer.model": lm.tokenizer.model_proto,
                                                   "card.json": json.dumps(card)})
    assert load_artifact(path).precision == "fp32"  # still servable as stored
    with pytest.raises(ArtifactError, match=r"without its fp16 serving form.*model\.export --rescript"):
        load_artifact(path, precision="fp16")

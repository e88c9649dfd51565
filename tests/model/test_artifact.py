"""The exported artifact carries its tokenizer and card, and refuses to load when tampered."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import sentencepiece as spm
import torch

from model.artifact import ArtifactError, load_artifact
from model.export import write_artifact
from model.network import ModelConfig, RNNLanguageModel


def test_card_describes_the_model(gru_lm, tiny_models: dict[str, Path]) -> None:
    card = gru_lm.card
    assert card["config"]["cell"] == "gru"
    assert card["vocab_size"] == gru_lm.tokenizer.vocab_size
    assert card["parameters"] == sum(p.numel() for p in gru_lm.module.parameters())
    assert card["training"]["tokens_seen"] > 0 and card["training"]["wall_seconds"] > 0
    assert card["data"]["train"]["docs"] > 0
    assert len(card["checksum"]) == 64
    assert tiny_models["gru"].stat().st_size < 20_000_000


def test_tokenizer_round_trips_through_the_file(gru_lm, tiny_models: dict[str, Path]) -> None:
    data_dir = tiny_models["gru"].parent / "data"
    original = spm.SentencePieceProcessor(model_file=str(data_dir / "tokenizer.model"))
    for text in ["I think the movie was wonderful.", "Ünïcödé – emoji 🎬 and digits 2024", "MiXeD CaSe"]:
        ids = gru_lm.tokenizer.encode(text)
        assert ids == original.encode(text)
        assert gru_lm.tokenizer.decode(ids) == text  # byte fallback: nothing is lost
        assert 0 not in ids  # never <unk>


def test_tokenizer_keeps_case_and_splits_digits(tmp_path: Path) -> None:
    sp = spm.SentencePieceProcessor(model_proto=_tiny_tokenizer(tmp_path))
    pieces = sp.encode("The film of 2024", out_type=str)
    assert pieces[-4:] == ["2", "0", "2", "4"]
    assert sp.decode(sp.encode("The FILM")) == "The FILM"


def test_same_interface_for_both_backends(gru_lm, lstm_lm) -> None:
    for lm in (gru_lm, lstm_lm):
        state = lm.module.init_state(2)
        logp, new_state = lm.module.step(torch.tensor([3, 4]), state)
        assert logp.shape == (2, lm.tokenizer.vocab_size) and new_state.shape == state.shape
        logp2, _ = lm.module.prefill(torch.tensor([[3, 4], [5, 0]]), torch.tensor([2, 1]), state)
        assert logp2.shape == logp.shape
    assert lstm_lm.zero_state.size(2) == 2 * gru_lm.zero_state.size(2)  # h and c packed


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    sp_bytes = _tiny_tokenizer(tmp_path)
    vocab = spm.SentencePieceProcessor(model_proto=sp_bytes).get_piece_size()
    config = ModelConfig(cell="gru", vocab_size=vocab, emb_dim=8, hidden_dim=8)
    path = tmp_path / "m.pt"
    write_artifact(RNNLanguageModel(config), config, sp_bytes, path)
    load_artifact(path)  # fine
    bad = tmp_path / "bad.pt"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("card.json"):
                card = json.loads(data)
                card["checksum"] = "0" * 64
                data = json.dumps(card).encode()
            dst.writestr(item, data)
    with pytest.raises(ArtifactError, match="checksum"):
        load_artifact(bad)


def test_bad_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no such"):
        load_artifact(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ArtifactError, match="not a readable TorchScript"):
        load_artifact(junk)
    plain = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(plain))
    with pytest.raises(ArtifactError, match="missing"):
        load_artifact(plain)


def _tiny_tokenizer(tmp_path: Path) -> bytes:
    from training.corpus import train_tokenizer

    docs = ["the movie was good in 2024", "The film was bad in 1999", "a great story of 1920"] * 50
    train_tokenizer(docs, 300, tmp_path / "sp.model")
    return (tmp_path / "sp.model").read_bytes()


# --------------------------------------------------------------------------- copies of the real artifacts

BUNDLED = Path(__file__).resolve().parents[2] / "model" / "artifacts"


def _rewrite_member(src: Path, dst: Path, suffix: str, change) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            zout.writestr(item, change(data) if item.filename.endswith(suffix) else data)


def _one_line_refusal(path: Path, name: str | None = None) -> str:
    with pytest.raises(ArtifactError) as exc:
        load_artifact(path, name)
    reason = str(exc.value)
    assert "\n" not in reason and len(reason) < 300, reason
    return reason


@pytest.fixture(scope="module")
def real_gru() -> Path:
    path = BUNDLED / "gru.pt"
    if not path.is_file():
        pytest.skip("bundled artifact not present")
    return path


def test_a_truncated_artifact_is_refused(real_gru: Path, tmp_path: Path) -> None:
    cut = tmp_path / "gru.pt"
    cut.write_bytes(real_gru.read_bytes()[: real_gru.stat().st_size // 2])
    assert "not a readable" in _one_line_refusal(cut)


def test_flipped_weight_bytes_are_refused(real_gru: Path, tmp_path: Path) -> None:
    def flip(data: bytes) -> bytes:
        middle = len(data) // 2
        return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]

    with zipfile.ZipFile(real_gru) as z:
        biggest = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size).filename
    bad = tmp_path / "gru.pt"
    _rewrite_member(real_gru, bad, biggest, flip)
    reason = _one_line_refusal(bad)
    assert "checksum" in reason or "not a readable" in reason


def test_a_malformed_or_edited_card_is_refused(real_gru: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.pt"
    _rewrite_member(real_gru, broken, "card.json", lambda data: data[: len(data) // 2])
    assert "card" in _one_line_refusal(broken)
    edited = tmp_path / "edited.pt"
    _rewrite_member(real_gru, edited, "card.json",
                    lambda data: json.dumps({**json.loads(data), "format_version": 2, "parameters": 1}).encode())
    assert "checksum" in _one_line_refusal(edited)


def test_a_gru_served_under_the_lstm_name_is_refused(real_gru: Path, tmp_path: Path) -> None:
    swapped = tmp_path / "lstm.pt"
    swapped.write_bytes(real_gru.read_bytes())
    assert "it is a gru model" in _one_line_refusal(swapped, "lstm")
    assert "it is a gru model" in _one_line_refusal(swapped, "lstm-email")
    assert load_artifact(swapped, "my-model").card["config"]["cell"] == "gru"  # other names say nothing


def test_weights_that_are_not_what_the_card_says_are_refused(tmp_path: Path) -> None:
    sp_bytes = _tiny_tokenizer(tmp_path)
    vocab = spm.SentencePieceProcessor(model_proto=sp_bytes).get_piece_size()
    gru = ModelConfig(cell="gru", vocab_size=vocab, emb_dim=8, hidden_dim=8)
    path = tmp_path / "m.pt"
    write_artifact(RNNLanguageModel(gru), gru, sp_bytes, path)
    from model.artifact import sealed

    lying = tmp_path / "lying.pt"
    module = torch.jit.load(str(path))

    def lstm_card(data: bytes) -> bytes:
        card = json.loads(data)
        card["config"]["cell"] = "lstm"
        return json.dumps(sealed(card, sp_bytes, module.state_dict())).encode()

    _rewrite_member(path, lying, "card.json", lstm_card)
    assert "card says lstm" in _one_line_refusal(lying)


def test_the_checksum_covers_the_card(gru_lm) -> None:
    from model.artifact import checksum

    weights = gru_lm.module.state_dict()
    card = {"format_version": 2, "config": {"cell": "gru"}, "note": "a"}
    assert checksum(b"tok", weights, card) != checksum(b"tok", weights, {**card, "note": "b"})
    assert checksum(b"tok", weights, card) == checksum(b"tok", weights, {**card, "checksum": "x"})


# --------------------------------------------------------------------------- the lexicon


def test_the_lexicon_travels_in_the_artifact_and_survives_rewrites(tiny_models: dict[str, Path], tmp_path: Path
                                                                   ) -> None:
    from model.artifact import update_card
    from model.export import rescript
    from model.lexicon import Lexicon

    path = tmp_path / "gru.pt"
    path.write_bytes(tiny_models["gru"].read_bytes())
    assert load_artifact(path).lexicon is None  # written without one: proposes any string
    card = update_card(path, {}, Lexicon(["Movie", "film"]), {"sources": ["reviews.txt"], "min_count": 2})
    assert card["lexicon"]["words"] == 2 and card["lexicon"]["sources"] == ["reviews.txt"]
    lm = load_artifact(path)
    assert "movie" in lm.lexicon and "FILM" in lm.lexicon and "filmm" not in lm.lexicon
    update_card(path, {"evaluation": {"note": "new figures"}})  # a card update keeps the lexicon
    assert len(load_artifact(path).lexicon) == 2
    again = tmp_path / "again.pt"
    rescript(path, again)  # and so does re-exporting with the current network code
    assert load_artifact(again).card["lexicon"] == load_artifact(path).card["lexicon"]
    assert "movie" in load_artifact(again).lexicon


def test_a_changed_missing_or_undescribed_lexicon_is_refused(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    from model.artifact import LEXICON_FILE, update_card
    from model.lexicon import Lexicon

    path = tmp_path / "gru.pt"
    path.write_bytes(tiny_models["gru"].read_bytes())
    update_card(path, {}, Lexicon(["movie", "film"]))
    changed = tmp_path / "changed.pt"
    _rewrite_member(path, changed, LEXICON_FILE, lambda _: Lexicon(["movie", "film", "filmm"]).to_bytes())
    assert "lexicon changed" in _one_line_refusal(changed)

    def drop_lexicon(src: Path, dst: Path) -> None:
        with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
            for item in zin.infolist():
                if not item.filename.endswith(LEXICON_FILE):
                    zout.writestr(item, zin.read(item))

    missing = tmp_path / "missing.pt"
    drop_lexicon(path, missing)
    assert "missing" in _one_line_refusal(missing)
    from model.artifact import sealed

    lm = load_artifact(path)
    planted = tmp_path / "planted.pt"  # a lexicon beside a card that names none (sealed again, so it is valid)
    unnamed = sealed({k: v for k, v in lm.card.items() if k != "lexicon"}, lm.tokenizer.model_proto,
                     lm.module.state_dict())
    _rewrite_member(path, planted, "card.json", lambda _: json.dumps(unnamed).encode())
    assert "does not describe" in _one_line_refusal(planted)


def test_models_with_the_same_lexicon_share_it(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    from model.artifact import update_card
    from model.lexicon import Lexicon

    paths = [tmp_path / "gru.pt", tmp_path / "lstm.pt"]
    for cell, path in zip(("gru", "lstm"), paths, strict=True):
        path.write_bytes(tiny_models[cell].read_bytes())
        update_card(path, {}, Lexicon(["movie", "film"]))
    gru, lstm = (load_artifact(p) for p in paths)
    assert gru.lexicon is lstm.lexicon  # one set in memory for both

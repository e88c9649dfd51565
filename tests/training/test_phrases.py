"""Ghost-text measurement: acceptance, calibration error on hand-made examples, Platt fitting."""

from __future__ import annotations

import math

import pytest

from model.decoder import PhraseCalibration, PhraseCandidate, choose_phrase
from training.phrases import (
    Observed,
    boundaries,
    expected_calibration_error,
    fit_platt,
    inside_words,
    operating_point,
    reliability,
)


def test_ece_of_a_hand_made_example():
    # Bin [0.2, 0.3): confidences 0.25 x4, accepted 1 of 4 -> |0.25 - 0.25| = 0
    # Bin [0.9, 1.0]: confidences 0.9 x2 and 1.0 x2 (mean 0.95), accepted 2 of 4 -> |0.95 - 0.5| = 0.45
    conf = [0.25] * 4 + [0.9, 0.9, 1.0, 1.0]
    hits = [True, False, False, False, True, False, True, False]
    assert expected_calibration_error(conf, hits) == pytest.approx(4 / 8 * 0 + 4 / 8 * 0.45)
    assert expected_calibration_error([0.7] * 10, [True] * 7 + [False] * 3) == pytest.approx(0.0)
    assert expected_calibration_error([], []) == 0.0
    rows = reliability(conf, hits)
    assert [(r["count"], round(r["accepted"], 2)) for r in rows] == [(4, 0.25), (4, 0.5)]


def test_boundaries_are_word_starts_after_a_space():
    doc = "Thanks, Ann. I will send (the) report."
    assert [ctx for ctx, _ in boundaries(doc)] == ["", "Thanks, ", "Thanks, Ann. ", "Thanks, Ann. I ",
                                                   "Thanks, Ann. I will ", "Thanks, Ann. I will send (the) "]
    assert dict(boundaries(doc))["Thanks, Ann. I will "] == "send (the) report."


def test_inside_words_are_every_keystroke_within_a_boundary_word():
    from training.phrases import inside_words

    doc = "Thanks, Ann. I will send (the) report."
    typed = [t for t, _ in inside_words(doc)]
    assert typed[:6] == ["T", "Th", "Tha", "Than", "Thank", "Thanks, A"]  # "I" has no inside; "(the)" is no word start
    assert "Thanks, Ann. I will send (the) repor" in typed and "Thanks, Ann. I will send (the) report" not in typed
    assert dict(inside_words(doc))["Thanks, Ann. I will send (the) rep"] == "report."


def test_mid_word_collection_runs_the_servers_conditioning(gru_lm):
    """Both conditionings observe the same keystrokes; the search's never makes a phrase less likely."""
    from training.phrases import collect

    docs = ["I think the movie was great and the acting was good."]
    first = collect(gru_lm, docs, max_words=2, positions="inside", conditioning="first-piece")
    search = collect(gru_lm, docs, max_words=2, positions="inside", conditioning="search")
    assert len(first) == len(search) == sum(len(w) - 1 for w in docs[0].rstrip(".").split())
    assert any(obs for obs in search)
    for loose, tight in zip(first, search, strict=True):
        best_loose = max((o.logp for o in loose), default=-math.inf)
        best_tight = max((o.logp for o in tight), default=-math.inf)
        assert best_tight >= best_loose - 1e-6


def test_acceptance_is_exact_and_ends_at_a_word_boundary():
    from training.phrases import is_accepted

    assert is_accepted(" send you the report", "send you the report by Friday.")
    assert is_accepted("report.", "report. Thanks")
    assert not is_accepted("report", "reports are due")  # the writer typed a longer word
    assert not is_accepted("send the", "send you the report")
    assert not is_accepted("", "anything")


def _observed(p_true: float, logp: float, n: int, words: int = 1) -> list[Observed]:
    hits = round(n * p_true)
    return [Observed(words, logp, False, i < hits, 8) for i in range(n)]


def test_platt_scaling_recovers_an_overconfident_model():
    # The model says 0.8 but the writer accepts 40%; it says 0.2 and the writer accepts 5%.
    obs = _observed(0.4, math.log(0.8), 500) + _observed(0.05, math.log(0.2), 500)
    cal = fit_platt(obs)
    assert cal.confidence(math.log(0.8), 1) == pytest.approx(0.4, abs=0.02)
    assert cal.confidence(math.log(0.2), 1) == pytest.approx(0.05, abs=0.02)
    assert PhraseCalibration().confidence(math.log(0.8), 1) == pytest.approx(0.8)  # the identity


def test_min_logp_never_prunes_a_phrase_that_would_be_shown():
    for cal in (PhraseCalibration(slope=1.3, per_word=0.4, bias=-0.2), PhraseCalibration(0.8, -0.5, 0.3)):
        floor = cal.min_logp(0.5, 5)
        # Below the floor no phrase of 1-5 words reaches 0.5; just above it the best one does.
        assert all(cal.confidence(floor - 1e-3, words) < 0.5 for words in range(1, 6))
        assert max(cal.confidence(floor + 1e-3, words) for words in range(1, 6)) >= 0.5
    assert PhraseCalibration().min_logp(0.0, 5) == float("-inf")


def test_the_confident_phrase_that_saves_most_is_shown():
    cal = PhraseCalibration()
    # Typed " " before each: " let" inserts 3 characters, " let me know" 10, " let me know if you" 17.
    short = PhraseCandidate(" let", math.log(0.9), 1, typed=1)
    mid = PhraseCandidate(" let me know", math.log(0.6), 3, typed=1)
    long_ = PhraseCandidate(" let me know if you", math.log(0.2), 5, typed=1)
    chosen, conf = choose_phrase([short, mid, long_], cal, 0.5)  # 0.6 x 9 keystrokes beats 0.9 x 2
    assert chosen == mid and conf == pytest.approx(0.6)
    chosen, conf = choose_phrase([short, mid, long_], cal, 0.95)  # none is confident: the likeliest, to hide
    assert chosen == short and conf < 0.95
    assert choose_phrase([], cal, 0.5) is None


def test_a_longer_confident_phrase_gives_way_to_a_surer_shorter_one():
    """The longest confident phrase is not always shown: 0.9 x 9 keystrokes beats 0.45 x 16."""
    cal = PhraseCalibration()
    mid = PhraseCandidate(" let me know", math.log(0.9), 3, typed=1)
    long_ = PhraseCandidate(" let me know if you", math.log(0.45), 5, typed=1)
    assert choose_phrase([mid, long_], cal, 0.4)[0] == mid
    surer_long = PhraseCandidate(" let me know if you", math.log(0.6), 5, typed=1)  # 0.6 x 16 beats 0.9 x 9
    assert choose_phrase([mid, surer_long], cal, 0.4)[0] == surer_long


def test_operating_point_counts_coverage_and_exact_match():
    cal = PhraseCalibration()
    found = [
        # 0.6 x 9 keystrokes beats 0.9 x 3: the 2-word one is shown
        [Observed(1, math.log(0.9), False, True, 4), Observed(2, math.log(0.6), False, False, 10)],
        [Observed(1, math.log(0.3), False, True, 4)],  # below 0.5: nothing shown
        [Observed(1, math.log(0.7), True, True, 5)],
        [],
    ]
    point = operating_point(found, cal, 0.5)
    assert point["boundaries"] == 4 and point["shown"] == 2
    assert point["coverage"] == 0.5 and point["exact_match"] == 0.5 and point["mean_words"] == 1.5
    assert point["exact_match_at_words"] == {"1": {"shown": 1, "exact_match": 1.0},
                                             "2": {"shown": 1, "exact_match": 0.0}}


def test_a_kept_calibration_can_leave_out_the_fit_documents(tmp_path, tiny_models):
    """With --not-on-fit-docs a run on the card's calibration reports on the documents a fitted run does."""
    import gzip
    import json

    from training.phrases import main as phrases_main

    shared = ["Please send the budget report by Monday.", "The meeting is moved to Friday at noon."]
    records = [{"split": "dev", "text": t} for t in shared]
    records += [{"split": "test", "text": t} for t in [*shared, "Thanks for the gas numbers, see you then."]]
    corpus = tmp_path / "mail.jsonl.gz"
    with gzip.open(corpus, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)
    docs = {}
    for flags in ([], ["--not-on-fit-docs"]):
        out = tmp_path / f"run{len(flags)}"
        phrases_main(["--model", str(tiny_models["gru"]), "--corpus", str(corpus), "--keep-calibration",
                      "--fit-docs", "2", "--threshold", "0.4", "--out", str(out), *flags])
        docs[bool(flags)] = json.loads(out.with_suffix(".json").read_text())["eval_docs"]
    assert docs == {False: 3, True: 1}


def test_a_fit_inside_words_writes_its_own_calibration_and_leaves_the_boundaries(tmp_path, tiny_models):
    """--positions inside --write-card fits at every keystroke inside a word and stores the fit apart."""
    import gzip
    import json
    import shutil

    from model.artifact import load_artifact
    from training.phrases import main as phrases_main

    texts = ["Please send the budget report by Monday.", "The meeting is moved to Friday at noon.",
             "Thanks for the gas numbers, see you then."]
    records = [{"split": split, "text": t} for split in ("dev", "test") for t in texts]
    corpus = tmp_path / "mail.jsonl.gz"
    with gzip.open(corpus, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)
    model = tmp_path / "gru.pt"
    shutil.copy(tiny_models["gru"], model)
    before = load_artifact(model).card.get("phrase_calibration")
    phrases_main(["--model", str(model), "--corpus", str(corpus), "--fit-docs", "3", "--eval-docs", "3",
                  "--threshold", "0.4", "--positions", "inside", "--conditioning", "search", "--write-card",
                  "--out", str(tmp_path / "inside")])
    result = json.loads((tmp_path / "inside.json").read_text())
    card = load_artifact(model).card
    assert result["positions"] == "inside"
    assert result["fit_boundaries"] == sum(len(list(inside_words(t))) for t in texts)  # fitted at every keystroke
    assert card.get("phrase_calibration") == before
    fitted = {k: card["phrase_calibration_inside"][k] for k in ("slope", "per_word", "bias")}
    assert fitted == result["calibration"]
    assert card["phrase_calibration_inside"]["fitted_on"] == "mail.jsonl.gz:dev"

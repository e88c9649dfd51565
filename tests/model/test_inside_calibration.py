"""Ghost text that completes a typed fragment is calibrated apart from ghost text at a word boundary."""

from __future__ import annotations

import copy

from model.batching import drive
from model.decoder import PhraseCalibration
from model.suggest import suggest

SURE = PhraseCalibration(bias=50.0)  # any phrase: confidence ~1
NEVER = PhraseCalibration(bias=-50.0)  # any phrase: confidence ~0


def test_the_card_keeps_both_and_falls_back_to_the_boundaries():
    card = {"phrase_calibration": {"slope": 0.9, "per_word": -0.1, "bias": 0.2}}
    assert PhraseCalibration.from_card(card, inside=True) == PhraseCalibration(0.9, -0.1, 0.2)
    card["phrase_calibration_inside"] = {"slope": 1.1, "per_word": 0.0, "bias": -0.3, "fitted_on": "mail:dev"}
    assert PhraseCalibration.from_card(card, inside=True) == PhraseCalibration(1.1, 0.0, -0.3)
    assert PhraseCalibration.from_card(card) == PhraseCalibration(0.9, -0.1, 0.2)
    assert PhraseCalibration.from_card({}, inside=True) == PhraseCalibration()


def test_a_fragment_is_completed_under_the_inside_calibration_and_a_boundary_under_the_other(gru_lm):
    inside_sure = copy.copy(gru_lm)
    inside_sure.phrase_calibration, inside_sure.phrase_calibration_inside = NEVER, SURE
    mid, boundary = drive(gru_lm.module, [suggest(inside_sure, "the movie was gr", 3, 3),
                                          suggest(inside_sure, "the movie was ", 3, 3)])
    assert mid.completion is not None and mid.completion[1] > 0.99
    assert boundary.completion is None
    boundary_sure = copy.copy(gru_lm)
    boundary_sure.phrase_calibration, boundary_sure.phrase_calibration_inside = SURE, NEVER
    mid, boundary = drive(gru_lm.module, [suggest(boundary_sure, "the movie was gr", 3, 3),
                                          suggest(boundary_sure, "the movie was ", 3, 3)])
    assert mid.completion is None
    assert boundary.completion is not None and boundary.completion[1] > 0.99

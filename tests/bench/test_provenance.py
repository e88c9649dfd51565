"""bench.provenance: model-card facts and the stamps every result file carries."""

from __future__ import annotations

import datetime as dt

from bench import provenance


def test_find_top1() -> None:
    assert provenance.find_top1({"top1": 0.31, "top3": 0.5}) == 0.31
    assert provenance.find_top1({"test": {"top1": 0.2}}) == 0.2
    assert provenance.find_top1(None) is None and provenance.find_top1({"ppl": 3.0}) is None


def test_model_facts_of_a_missing_artifact_say_so() -> None:
    facts = provenance.model_facts(["no-such-model"])["no-such-model"]
    assert facts == {"path": "model/artifacts/no-such-model.pt", "file_bytes": None, "card": None}


def test_utc_now_is_to_the_second() -> None:
    stamp = dt.datetime.fromisoformat(provenance.utc_now())
    assert stamp.tzinfo is not None and stamp.utcoffset() == dt.timedelta(0) and stamp.microsecond == 0

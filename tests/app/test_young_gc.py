"""The engines collect Python's young GC generation on a clock (app/young_gc.py)."""

from __future__ import annotations

import gc
import time

import pytest

from app.young_gc import OLDER_EVERY, YoungCollector


@pytest.fixture
def collected(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The generations ``gc.collect`` was asked for (nothing is collected)."""
    calls: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda generation=2: calls.append(generation) or 0)
    return calls


def test_the_young_generation_is_collected_once_an_interval_has_passed(collected: list[int]) -> None:
    collector = YoungCollector(20)
    t = time.perf_counter()
    collector(t + 0.005)  # too soon after it started
    assert collected == []
    for _ in range(2 * OLDER_EVERY):
        t += 0.021
        collector(t)
        collector(t + 0.010)  # within the same interval: nothing more
    # Young collections, and every OLDER_EVERY-th one takes the middle generation with it.
    assert collected == ([0] * (OLDER_EVERY - 1) + [1]) * 2


def test_an_interval_of_0_leaves_collection_to_cpython(collected: list[int]) -> None:
    collector = YoungCollector(0)
    for step in range(100):
        collector(time.perf_counter() + step)
    assert collected == []


async def test_a_serving_engine_paces_the_collector_the_settings_name(start_app, make_settings) -> None:
    async with start_app(make_settings(gc_interval_ms=5)) as client:
        engine = client.engine("gru")
        assert engine.collector is not None and engine.collector.interval_s == pytest.approx(0.005)
        assert engine.collector is client.engine("lstm").collector  # one pace for the whole process
        before = engine.collector.collections
        for i in range(20):
            r = await client.post("/v1/complete", json={"text": f"the movie was {i} ", "model": "gru"})
            assert r.status_code == 200
            time.sleep(0.006)  # between requests, so that each pass finds the interval over
        assert engine.collector.collections > before

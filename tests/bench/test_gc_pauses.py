"""bench.gc_pauses times every GC collection while keystrokes are decoded, under either pace."""

from __future__ import annotations

from bench.gc_pauses import replay


def test_a_young_collection_clock_collects_and_every_collection_is_timed(gru_lm) -> None:
    sentence = "the movie was great and the acting was good"
    texts = [sentence[:i] for i in range(1, len(sentence) + 1)] * 3
    clocked = replay(gru_lm, texts, 1 << 20, interval_ms=0.001)  # a collection after every keystroke
    assert clocked["keystrokes"] == len(texts) and clocked["keystroke_max_ms"] >= clocked["keystroke_p99_ms"] > 0
    young = clocked["generations"]["0"]
    assert young["collections"] >= len(texts) * 0.8 and young["max_ms"] <= young["total_ms"]
    assert clocked["generations"]["1"]["collections"] >= len(texts) // 10 * 0.8  # every tenth takes gen 1 too
    cpython = replay(gru_lm, texts, 1 << 20, interval_ms=0)
    assert sum(g["collections"] for g in cpython["generations"].values()) < young["collections"]

"""bench.ab without servers: arm parsing, the rotation that interleaves arms, sample pooling."""

from __future__ import annotations

import pytest

from bench import REPO
from bench.ab import Arm, ok_latencies, parse_arm, rotated
from bench.run_summary import cpu_ms_per_answer, merged_status_counts
from bench.stats import summarize


def test_parse_arm_reads_directory_and_settings() -> None:
    arm = parse_arm("off=.:NEXTWORD_BATCHING=false:NEXTWORD_MAX_WAIT_MS=0")
    assert arm.name == "off" and arm.directory == REPO
    assert arm.env == {"NEXTWORD_BATCHING": "false", "NEXTWORD_MAX_WAIT_MS": "0"}
    assert parse_arm(f"base={REPO}").env == {}
    assert parse_arm(f"base={REPO}").module == "app"
    floor = parse_arm("floor=.@bench.floor_app:NEXTWORD_RUNNER=uvicorn")
    assert (floor.directory, floor.module, floor.env) == (REPO, "bench.floor_app", {"NEXTWORD_RUNNER": "uvicorn"})


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("no-directory", "NAME=DIR"),
        ("x=.:BATCHING=false", "not a NEXTWORD_"),
        ("x=.:NEXTWORD_BATCHING", "not a NEXTWORD_"),
        ("x=/nonexistent/checkout", "not a nextword checkout"),
    ],
)
def test_parse_arm_rejects_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_arm(text)


def test_rotation_gives_every_arm_every_position() -> None:
    arms = [Arm(n, REPO) for n in "abc"]
    orders = [[a.name for a in rotated(arms, r)] for r in range(3)]
    assert orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]
    for position in range(3):
        assert {order[position] for order in orders} == {"a", "b", "c"}


def test_pooling_keeps_measured_200s_only() -> None:
    result = {
        "samples": {
            "latency_ms": [5.0, 7.0, 9.0, 11.0, None, 100.0],
            "status": ["200", "200", "503", "200", "timeout", "200"],
            "warmup": [True, False, False, False, False, False],
        }
    }
    latencies = ok_latencies(result)
    assert latencies == [7.0, 11.0, 100.0]
    summary = summarize(latencies)
    assert summary["count"] == 3 and summary["p50"] == 11.0 and summary["max"] == 100.0


def test_status_counts_sum_every_outcome_over_rounds() -> None:
    # An overload A/B is read by its 504s and 503s as much as by its latencies.
    runs = [{"status_counts": {"200": 10, "503": 4}}, {"status_counts": {"200": 7, "504": 1, "timeout": 2}}, {}]
    assert merged_status_counts(runs) == {"200": 17, "503": 4, "504": 1, "timeout": 2}


def test_cpu_per_answer_counts_every_200_and_only_200s() -> None:
    result = {"status_counts": {"200": 2, "503": 1, "ReadError": 1}, "status_counts_warmup": {"200": 1}}
    assert cpu_ms_per_answer(10.0, 10.3, result) == 100.0  # 0.3 s over three 200s, warm-up included
    assert cpu_ms_per_answer(None, 10.3, result) is None  # the server was gone
    assert cpu_ms_per_answer(1.0, 2.0, {"status_counts": {"503": 1}}) is None

"""bench.paired_ratio without servers: the ABBA order, the per-round ratios and their summary."""

from __future__ import annotations

import pytest

from bench.paired_ratio import main, parse_pair, ratios, round_order, summary


def _round(ours: float | None, peer: float | None, p99: tuple[float, float] = (30.0, 40.0)) -> dict:
    return {"nextword": {"cpu_ms_per_request": ours, "p99_ms": p99[0]},
            "litserve": {"cpu_ms_per_request": peer, "p99_ms": p99[1]}}


def test_rounds_alternate_which_side_goes_first() -> None:
    orders = [round_order(i) for i in range(4)]
    assert orders == [("nextword", "litserve"), ("litserve", "nextword")] * 2


def test_ratio_is_taken_within_each_round() -> None:
    # The machine is twice as slow in round 2: both sides' CPU doubles, the round's ratio does not move.
    rounds = [_round(2.0, 8.0), _round(4.0, 16.0), _round(2.2, 8.0)]
    assert ratios(rounds) == [0.25, 0.25, 0.275]
    s = summary(rounds)
    assert (s["ratio_median"], s["ratio_min"], s["ratio_max"]) == (0.25, 0.25, 0.275)
    assert s["nextword_cpu_ms"] == [2.0, 4.0, 2.2] and s["litserve_p99_ms"] == [40.0, 40.0, 40.0]


def test_a_round_missing_either_side_is_left_out() -> None:
    rounds = [_round(None, 8.0), _round(2.0, None), _round(2.0, 0.0), _round(3.0, 10.0)]
    assert ratios(rounds) == [0.3]
    assert summary([_round(None, None)])["ratio_median"] is None


def test_pairs_are_parsed_or_refused() -> None:
    assert parse_pair("440,80", ",", "rates") == (440.0, 80.0)
    assert parse_pair("32:5", ":", "litserve") == (32.0, 5.0)
    with pytest.raises(ValueError, match="two values"):
        parse_pair("440", ",", "rates")


def test_bad_rates_exit_2_before_any_server_starts(tmp_path, capsys) -> None:
    assert main(["--corpus", str(tmp_path / "none"), "--rates", "440", "--out", str(tmp_path / "x.json")]) == 2
    assert "expected two values" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()

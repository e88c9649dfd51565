"""bench.sweep without servers: config expansion, the SLO judge, the rate search, overload summary."""

from __future__ import annotations

import pytest

from bench import sweep
from bench.sweep import (
    Slo,
    Sweep,
    Target,
    choose_litserve,
    estimate_seconds,
    expand_configs,
    judge,
    ladder_rates,
    nextword_env,
    options_from_args,
    parser,
    recovery_seconds,
    search_max_rate,
    select_configs,
    summarize_overload,
    typing_snap,
)

# --------------------------------------------------------------------------- configurations


def test_default_expansion() -> None:
    keys = [t.key for t in expand_configs()]
    assert len(keys) == len(set(keys)) == 14
    # cold: batching on/off, cache on only; typing: the full 2x2; LitServe on cold only.
    for b in ("gru", "lstm"):
        assert f"nextword-{b}-batch-on-cache-on-cold" in keys
        assert f"nextword-{b}-batch-off-cache-on-cold" in keys
        assert f"nextword-{b}-batch-on-cache-off-cold" not in keys
        for batching in ("on", "off"):
            for cache in ("on", "off"):
                assert f"nextword-{b}-batch-{batching}-cache-{cache}-typing" in keys
        assert f"litserve-{b}-cold" in keys
        assert f"litserve-{b}-typing" not in keys
    # nextword first, LitServe last.
    assert keys[-2:] == ["litserve-gru-cold", "litserve-lstm-cold"]


def test_expansion_options_and_selection() -> None:
    full = expand_configs(cache_off_workloads=("cold", "typing"), litserve=False)
    assert len(full) == 16 and all(t.server == "nextword" for t in full)
    one = expand_configs(backends=("lstm",), workloads=("cold",))
    assert [t.key for t in one] == ["nextword-lstm-batch-on-cache-on-cold", "nextword-lstm-batch-off-cache-on-cold",
                                    "litserve-lstm-cold"]
    picked = select_configs(expand_configs(), ["nextword-gru-*-typing", "litserve-lstm-*"])
    assert [t.key for t in picked] == [
        "nextword-gru-batch-on-cache-on-typing", "nextword-gru-batch-on-cache-off-typing",
        "nextword-gru-batch-off-cache-on-typing", "nextword-gru-batch-off-cache-off-typing", "litserve-lstm-cold"]
    assert select_configs(one, []) == one
    assert Target("nextword", "gru", "cold").is_default
    assert not Target("nextword", "gru", "cold", batching=False).is_default


def test_default_sweep_fits_the_time_budget() -> None:
    opts = options_from_args(parser().parse_args([]))
    targets = expand_configs(opts.backends, opts.workloads, cache_off_workloads=opts.cache_off_workloads)
    assert 10 * 60 < estimate_seconds(opts, targets) <= 25 * 60
    assert opts.server_cpus != opts.generator_cpus or opts.server_cpus is None


def test_quick_options() -> None:
    opts = options_from_args(parser().parse_args(["--quick"]))
    assert opts.backends == ("gru",) and opts.rates() == [10.0, 40.0] and opts.search_steps == 0
    targets = select_configs(expand_configs(opts.backends, opts.workloads), opts.configs)
    assert {t.backend for t in targets} == {"gru"}
    assert "litserve-gru-cold" in [t.key for t in targets]
    assert estimate_seconds(opts, targets) < 5 * 60


def test_nextword_env_loads_only_the_backend_and_toggles() -> None:
    env = nextword_env(Target("nextword", "lstm", "typing", batching=False, cache=False), 12345, threads=1)
    assert env["NEXTWORD_MODELS"] == "lstm=model/artifacts/lstm.pt"
    assert env["NEXTWORD_DEFAULT_MODEL"] == "lstm" and env["NEXTWORD_PORT"] == "12345"
    assert env["NEXTWORD_BATCHING"] == "false" and env["NEXTWORD_CACHE_BYTES"] == "0"
    on = nextword_env(Target("nextword", "gru", "cold"), 1, threads=2)
    assert on["NEXTWORD_BATCHING"] == "true" and "NEXTWORD_CACHE_BYTES" not in on and on["NEXTWORD_THREADS"] == "2"


# --------------------------------------------------------------------------- SLO judge


def _result(measured: int = 100, ok: int = 100, p99: float | None = 20.0, behind: bool = False) -> dict:
    return {"requests": {"measured": measured, "ok": ok}, "latency_ms_ok": {"p99": p99}, "behind_schedule": behind}


def test_judge() -> None:
    slo = Slo(p99_ms=50.0, max_error_fraction=0.01)
    assert judge(_result(), slo) == (True, "ok")
    assert judge(_result(p99=50.0), slo) == (True, "ok")
    assert judge(_result(p99=50.1), slo) == (False, "p99")
    assert judge(_result(measured=1000, ok=991), slo) == (True, "ok")  # 0.9% errors
    assert judge(_result(measured=100, ok=99), slo) == (False, "errors")  # 1% is not < 1%
    assert judge(_result(behind=True), slo) == (False, "generator")
    assert judge(_result(measured=0, ok=0, p99=None), slo) == (False, "errors")


# --------------------------------------------------------------------------- search


def test_ladder_rates() -> None:
    assert ladder_rates(10, 2, 80) == [10, 20, 40, 80]
    assert ladder_rates(10, 2, 100) == [10, 20, 40, 80, 100]
    with pytest.raises(ValueError):
        ladder_rates(10, 1, 100)


def _fake(boundary: float):  # p99 grows with rate and crosses 50 ms exactly at ``boundary``
    calls: list[float] = []

    def measure(rate: float) -> float:
        calls.append(rate)
        return 5.0 + 45.0 * rate / boundary

    return measure, calls


@pytest.mark.parametrize("boundary", [13.0, 55.0, 180.0, 333.0, 1000.0])
def test_search_finds_the_boundary(boundary: float) -> None:
    measure, calls = _fake(boundary)
    out = search_max_rate(measure, ladder_rates(10, 2, 1280), lambda p99: p99 <= 50.0, rel_tol=0.01, max_steps=20)
    assert out.status == "boundary"
    assert out.max_rate is not None and out.first_fail is not None
    assert out.max_rate <= boundary < out.first_fail
    assert (out.first_fail - out.max_rate) / out.max_rate <= 0.01
    assert [r for r, _ in out.points] == calls  # every measurement is recorded, in order
    ladder_part = [r for r in calls if r in ladder_rates(10, 2, 1280)]
    assert max(ladder_part) >= boundary  # the ladder went past saturation


def test_search_respects_the_step_budget() -> None:
    measure, calls = _fake(180.0)
    out = search_max_rate(measure, ladder_rates(10, 2, 1280), lambda p99: p99 <= 50.0, rel_tol=0.0, max_steps=3)
    # ladder 10..160 pass, 320 fails; then 240 F, 200 F, 180 P.
    assert calls == [10, 20, 40, 80, 160, 320, 240, 200, 180]
    assert (out.max_rate, out.first_fail) == (180, 200)


def test_search_never_saturating_and_first_point_failing() -> None:
    top = search_max_rate(lambda r: 1.0, [10, 20, 40], lambda p99: p99 <= 50.0)
    assert (top.status, top.max_rate, top.first_fail) == ("ladder_top", 40, None)
    # Fails at 10, passes at 5 (one step down), then bisects 5..10.
    measure, calls = _fake(7.0)
    low = search_max_rate(measure, [10, 20], lambda p99: p99 <= 50.0, rel_tol=0.0, max_steps=1)
    assert calls == [10, 5, 7.5]
    assert (low.status, low.max_rate, low.first_fail) == ("boundary", 5, 7.5)
    # Fails even one step down: not measured below.
    measure, calls = _fake(1.0)
    none = search_max_rate(measure, [10, 20], lambda p99: p99 <= 50.0)
    assert calls == [10, 5]
    assert (none.status, none.max_rate, none.first_fail) == ("first_point_failed", None, 5)


def test_search_with_typing_snap_uses_whole_typists() -> None:
    boundary = 60.0  # req/s; typists are ~4.44 req/s each
    measure, calls = _fake(boundary)
    out = search_max_rate(measure, ladder_rates(10, 2, 640), lambda p99: p99 <= 50.0, rel_tol=0.0,
                          max_steps=20, snap=typing_snap)
    per_typist = 1 / sweep_mean_gap()
    assert all(abs(r / per_typist - round(r / per_typist)) < 1e-9 for r in calls)
    assert len(calls) == len(set(calls))
    assert out.max_rate <= boundary < out.first_fail
    assert round((out.first_fail - out.max_rate) / per_typist) == 1  # adjacent typist counts


def sweep_mean_gap() -> float:
    from bench.workloads import MEAN_KEYSTROKE_GAP_S

    return MEAN_KEYSTROKE_GAP_S


# --------------------------------------------------------------------------- overload / LitServe choice


def _run(counts: dict, n503_ra: int, p99: float | None, samples: dict | None = None, rate: float = 10.0) -> dict:
    return {
        "config": {"rate": rate},
        "status_counts": counts,
        "overload": {"503": counts.get("503", 0), "503_with_retry_after": n503_ra,
                     "retry_after_values": {"1": n503_ra}},
        "throughput": {"offered_rps": rate, "ok_rps": rate},
        "latency_ms_ok": {"p50": 10.0, "p99": p99},
        "behind_schedule": False,
        "behind_schedule_reasons": [],
        "generator_cpu": {"cpu_fraction_of_core": 0.1},
        "samples": samples,
    }


def test_summarize_overload() -> None:
    # Low stream: intended every 0.5 s over 6 s; overload ends at 4 s; window [4, 6).
    times = [i * 0.5 for i in range(12)]
    lat = [900.0] * 8 + [40.0, 30.0, 20.0, 10.0]
    low = _run({"200": 12}, 0, 900.0, {"intended_s": times, "latency_ms": lat, "status": ["200"] * 12})
    over = _run({"200": 50, "503": 150}, 150, 700.0, rate=300.0)
    out = summarize_overload(over, low, overload_s=4.0, deadline_ms=1000.0, over_rate=300.0, base_rate=100.0,
                             factor=3.0)
    assert out["only_200_or_503_retry_after"] and out["accepted_p99_within_deadline"]
    assert out["status_counts"] == {"200": 62, "503": 150}
    assert (out["recovery_requests"], out["recovery_ok"], out["recovery_p99_ms"]) == (4, 4, 40.0)
    assert out["recovery_s"] == 0.0 and out["recovery_normal_ms"] == 50.0
    assert out["low_during_overload_p99_ms"] == 900.0
    assert out["low_after_drop"] == [[0.0, 40.0, "200"], [0.5, 30.0, "200"], [1.0, 20.0, "200"], [1.5, 10.0, "200"]]
    bad = summarize_overload(_run({"200": 10, "503": 5, "504": 1}, 4, 1200.0), low, 4.0, 1000.0, 30.0, 10.0, 3.0)
    assert not bad["only_200_or_503_retry_after"] and not bad["accepted_p99_within_deadline"]


def test_choose_litserve() -> None:
    def t(mb: int, ms: float, p99: float | None, reason: str, err: float = 0.0) -> dict:
        return {"max_batch_size": mb, "batch_timeout_ms": ms, "latency_ms_ok": {"p99": p99}, "reason": reason,
                "error_fraction": err}

    assert choose_litserve([t(8, 1, 80.0, "p99"), t(32, 5, 40.0, "ok"), t(64, 1, 60.0, "p99")]) == (32, 5.0)
    assert choose_litserve([t(8, 1, 900.0, "errors", 0.5), t(64, 5, 800.0, "errors", 0.2)]) == (64, 5.0)
    assert choose_litserve([{"max_batch_size": 8, "batch_timeout_ms": 1, "error": "boom"}]) == sweep.LITSERVE_DEFAULT


def test_find_top1() -> None:
    assert sweep.find_top1({"top1": 0.31, "top3": 0.5}) == 0.31
    assert sweep.find_top1({"test": {"top1": 0.2}}) == 0.2
    assert sweep.find_top1(None) is None and sweep.find_top1({"ppl": 3.0}) is None


def test_overload_probe_rate_defaults_to_twice_the_model_alone_best(tmp_path) -> None:
    opts = options_from_args(parser().parse_args(["--out", str(tmp_path / "s.json")]))
    sweep = Sweep(opts, [])
    assert sweep._model_alone_best("gru") is None  # model alone not run: the caller falls back
    sweep.results["model_alone"] = {"results": {"gru": {"batch_sizes": {
        "1": {"requests_per_s": 120.0}, "64": {"requests_per_s": 245.0}, "8": {"requests_per_s": 190.0}}}}}
    assert sweep._model_alone_best("gru") == 245.0 and sweep._model_alone_best("lstm") is None


def test_recovery_seconds_is_when_the_low_stream_settles_for_good() -> None:
    drop = 4.0
    times = [3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5]
    slow_then_normal = {"intended_s": times, "latency_ms": [900.0, 300.0, 80.0, 20.0, 60.0, 20.0, 15.0],
                        "status": ["200"] * 7}
    assert recovery_seconds(slow_then_normal, drop, 50.0) == 2.0  # the 60 ms at 5.5 s resets it
    assert recovery_seconds({**slow_then_normal, "latency_ms": [900.0] + [10.0] * 6}, drop, 50.0) == 0.0
    assert recovery_seconds({**slow_then_normal, "status": ["200"] * 6 + ["503"]}, drop, 50.0) is None

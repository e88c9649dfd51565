"""bench.configs: the configuration matrix, its selection by pattern, each configuration's settings."""

from __future__ import annotations

from bench.configs import LITSERVE_DEFAULT, Target, choose_litserve, expand_configs, nextword_env, select_configs


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


def test_nextword_env_loads_only_the_backend_and_toggles() -> None:
    env = nextword_env(Target("nextword", "lstm", "typing", batching=False, cache=False), 12345, threads=1)
    assert env["NEXTWORD_MODELS"] == "lstm=model/artifacts/lstm.pt"
    assert env["NEXTWORD_DEFAULT_MODEL"] == "lstm" and env["NEXTWORD_PORT"] == "12345"
    assert env["NEXTWORD_BATCHING"] == "false" and env["NEXTWORD_CACHE_BYTES"] == "0"
    on = nextword_env(Target("nextword", "gru", "cold"), 1, threads=2)
    assert on["NEXTWORD_BATCHING"] == "true" and "NEXTWORD_CACHE_BYTES" not in on and on["NEXTWORD_THREADS"] == "2"


def test_choose_litserve() -> None:
    def t(mb: int, ms: float, p99: float | None, reason: str, err: float = 0.0) -> dict:
        return {"max_batch_size": mb, "batch_timeout_ms": ms, "latency_ms_ok": {"p99": p99}, "reason": reason,
                "error_fraction": err}

    assert choose_litserve([t(8, 1, 80.0, "p99"), t(32, 5, 40.0, "ok"), t(64, 1, 60.0, "p99")]) == (32, 5.0)
    assert choose_litserve([t(8, 1, 900.0, "errors", 0.5), t(64, 5, 800.0, "errors", 0.2)]) == (64, 5.0)
    assert choose_litserve([{"max_batch_size": 8, "batch_timeout_ms": 1, "error": "boom"}]) == LITSERVE_DEFAULT

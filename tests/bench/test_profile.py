"""bench.profile: py-spy's collapsed stacks are sorted into the parts the analysis names."""

from __future__ import annotations

import pytest

from bench.profile import PARTS, parse_collapsed, part_of, summarize_samples

ROOT = "_run_module_as_main (<frozen runpy>:198);main (app/__main__.py:16)"
WORKER = "Thread._bootstrap (threading.py:1002);InferenceEngine._worker (app/engine.py:376)"


@pytest.mark.parametrize(
    ("stack", "part"),
    [
        # torch runs inside run_calls: the model's time, wherever the call came from
        (f"{WORKER};InferenceEngine._run (app/engine.py:400);run_calls (model/batching.py:64)", "model calls"),
        (f"{WORKER};InferenceEngine._advance (app/engine.py:300);suggest (model/suggest.py:99);"
         "next_words (model/decoder.py:198)", "decoder"),
        (f"{WORKER};InferenceEngine._advance (app/engine.py:300);next_words (model/decoder.py:210);"
         "_expand (model/decoder.py:114);StepMemo.put (model/prefix_cache.py:182);"
         "PrefixStateCache.insert (model/prefix_cache.py:138)", "prefix cache"),
        (f"{WORKER};InferenceEngine._finish (app/engine.py:276);"
         "EngineMetrics.request_done (app/metrics.py:90);Histogram.observe (prometheus_client/metrics.py:600)",
         "metrics"),
        (WORKER, "engine loop"),
        (f"{ROOT};HttpToolsProtocol.data_received (uvicorn/protocols/http/httptools_impl.py:174)", "HTTP path"),
        (f"{ROOT};complete (app/routers/complete.py:70);_encode (app/routers/complete.py:90)", "HTTP path"),
        (f"{ROOT};Runner.run (asyncio/runners.py:118)", "waiting"),
        (f"{WORKER};InferenceEngine._wait_for_batch (app/engine.py:330);Condition.wait (threading.py:331)",
         "waiting"),
        ("some_library_call (somewhere.py:1)", "other"),
    ],
)
def test_a_sample_goes_to_the_part_of_its_innermost_known_frame(stack, part):
    assert part_of(stack.split(";")) == part


def test_summary_counts_parts_and_how_busy_the_core_was():
    raw = [
        f"{WORKER};run_calls (model/batching.py:64) 30",
        f"{WORKER};run_calls (model/batching.py:58) 10",
        f"{WORKER};next_words (model/decoder.py:198) 10",
        f"{ROOT};Runner.run (asyncio/runners.py:118) 150",
        "",
    ]
    stacks = parse_collapsed(raw)
    assert len(stacks) == 4 and stacks[0][1] == 30
    summary = summarize_samples(stacks, rate_hz=100, seconds=2.0)  # 200 possible samples
    assert summary["samples"] == 200
    assert summary["busy_samples"] == 50
    assert summary["busy_fraction_of_wall"] == pytest.approx(0.25)
    assert set(summary["parts"]) == set(PARTS)
    assert summary["parts"]["model calls"]["share_of_busy"] == pytest.approx(0.8)
    assert summary["parts"]["decoder"]["fraction_of_wall"] == pytest.approx(0.05)
    assert summary["parts"]["waiting"]["share_of_busy"] is None  # waiting is not busy
    assert summary["top_busy_lines"][0] == {"frame": "run_calls (model/batching.py:64)", "samples": 30}


def test_per_request_figures_leave_out_the_models_work_and_the_waiting():
    raw = [
        f"{WORKER};run_calls (model/batching.py:64) 40",
        f"{WORKER};next_words (model/decoder.py:198) 10",
        f"{ROOT};Response.__call__ (starlette/responses.py:160) 6",
        f"{WORKER};EngineMetrics.request_done (app/metrics.py:120) 2",
        f"{ROOT};Runner.run (asyncio/runners.py:118) 142",
    ]
    summary = summarize_samples(parse_collapsed(raw), rate_hz=100, seconds=2.0, requests=40)
    assert summary["ms_per_request"]["model calls"] == pytest.approx(10.0)  # 0.4 s over 40 requests
    assert summary["ms_per_request"]["HTTP path"] == pytest.approx(1.5)
    assert summary["serving_ms_per_request"] == pytest.approx(2.0)  # HTTP path + metrics, not model nor waiting
    assert "serving_ms_per_request" not in summarize_samples(parse_collapsed(raw), rate_hz=100, seconds=2.0)

"""The step-batching engine: batching and the prefix cache change no answer; admission control,
deadlines and cancellation behave; the engine answers exactly what the offline driver answers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from typing import Any

import pytest

from app.config import Settings
from app.engine import (
    EngineConfig,
    EngineStopped,
    InferenceEngine,
    Overloaded,
)
from app.main import engine_config
from app.metrics import Metrics
from app.scheduler import steps_then_reads
from model.batching import ModelCall, drive
from model.suggest import DecodeOptions, SuggestResult, suggest

LOG_TOL = 1e-5
OPENERS = ["I think", "Honestly", "In my opinion", "My friends said", "I really felt"]
NOUNS = ["movie", "film", "story", "acting", "plot", "ending", "soundtrack", "screenplay"]
LONG_TEXT = ("I think the movie was great. Honestly the plot was predictable. " * 60)[:3500]


def close_log(p: float, q: float) -> bool:
    return abs(math.log(p) - math.log(q)) < LOG_TOL


def assert_same_answer(a: dict, b: dict, what: str = "") -> None:
    """Two /v1/complete bodies agree: same fragment and words, probabilities equal in log space."""
    assert a["fragment"] == b["fragment"], what
    wa = [s["word"] for s in a["suggestions"]]
    wb = [s["word"] for s in b["suggestions"]]
    assert wa == wb, (what, wa, wb)
    for sa, sb in zip(a["suggestions"], b["suggestions"], strict=True):
        assert close_log(sa["prob"], sb["prob"]), (what, sa, sb)
    ca, cb = a["completion"], b["completion"]
    assert (ca is None) == (cb is None), (what, ca, cb)
    if ca is not None:
        assert ca["text"] == cb["text"], (what, ca, cb)
        assert close_log(ca["confidence"], cb["confidence"]), (what, ca, cb)


def assert_same_result(a: SuggestResult, b: SuggestResult, what: str = "") -> None:
    assert a.fragment == b.fragment, what
    assert [w for w, _ in a.suggestions] == [w for w, _ in b.suggestions], (what, a.suggestions, b.suggestions)
    for (_, pa), (_, pb) in zip(a.suggestions, b.suggestions, strict=True):
        assert close_log(pa, pb), (what, pa, pb)
    assert (a.completion is None) == (b.completion is None), (what, a.completion, b.completion)
    if a.completion is not None and b.completion is not None:
        assert a.completion[0] == b.completion[0], (what, a.completion, b.completion)
        assert close_log(a.completion[1], b.completion[1]), (what, a.completion, b.completion)


def varied_requests(n: int = 32) -> list[dict[str, Any]]:
    """``n`` different requests: empty fragments, partial words, long and short contexts, phrases."""
    out = []
    for i in range(n):
        opener, noun = OPENERS[i % len(OPENERS)], NOUNS[i % len(NOUNS)]
        text = f"{opener} the {noun} was "
        if i % 4 == 1:
            text += "gr"[: 1 + i % 2]
        elif i % 4 == 2:
            text = f"The {noun} was good. " * (1 + i % 5) + opener[: 2 + i % 3]
        elif i % 4 == 3:
            text = f"{opener} the {noun[:3]}"
        out.append({"text": text, "k": 1 + i % 10, "max_words": (i // 2) % 4})
    assert len({r["text"] for r in out}) == n
    return out


async def post_all(client, bodies: list[dict[str, Any]], session: str | None = None) -> list[dict]:
    headers = {"X-Session-Id": session} if session else None
    responses = await asyncio.wait_for(
        asyncio.gather(*(client.post("/v1/complete", json=b, headers=headers) for b in bodies)), timeout=120
    )
    for r in responses:
        assert r.status_code == 200, r.text
    return [r.json() for r in responses]


async def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


# --------------------------------------------------------------------------- batching


async def test_batching_forms_batches_and_changes_no_answer(start_app, make_settings):
    requests = [{**r, "model": model} for model in ("gru", "lstm") for r in varied_requests(32)]

    # Batched: everything concurrently; a few ms of batching window so batches surely form.
    async with start_app(make_settings(max_wait_ms=20, cache_bytes=0)) as c:
        batched = await post_all(c, requests)
        for model in ("gru", "lstm"):
            engine = c.engine(model)
            assert 1 < engine.max_batch_seen <= c.state.settings.max_batch, engine.max_batch_seen
            assert engine.in_flight == 0
        stats = (await c.get("/v1/stats")).json()["backends"]
        assert stats["gru"]["max_batch_seen"] > 1 and stats["lstm"]["max_batch_seen"] > 1
        assert stats["gru"]["count"] == 32 and stats["lstm"]["count"] == 32

    # Unbatched: one request at a time, each alone.
    async with start_app(make_settings(batching=False, cache_bytes=0)) as c:
        alone = []
        for body in requests:
            alone.extend(await post_all(c, [body]))
        assert c.engine("gru").max_batch_seen == 1 and c.engine("lstm").max_batch_seen == 1

    for body, a, b in zip(requests, batched, alone, strict=True):
        assert a["model"] == b["model"] == body["model"]
        assert len(a["suggestions"]) <= body["k"]
        assert_same_answer(a, b, what=repr(body))
    assert any(a["completion"] is not None for a in batched)  # phrase searches were batched too


async def test_unbatched_engine_still_serves_concurrent_requests(start_app, make_settings):
    async with start_app(make_settings(batching=False)) as c:
        answers = await post_all(c, varied_requests(12))
        assert len(answers) == 12
        assert c.engine("gru").max_batch_seen == 1


# --------------------------------------------------------------------------- prefix cache


def typing_sequence(sentence: str) -> list[str]:
    return [sentence[: i + 1] for i in range(len(sentence))]


@pytest.mark.parametrize("model", ["gru", "lstm"])
async def test_prefix_cache_changes_no_answer(start_app, make_settings, model):
    """Typing char by char: cache on == cache off, and the cached app actually hits."""
    texts = typing_sequence("I think the movie was great ") + typing_sequence("I think the film was bad. Hon")
    bodies = [{"text": t, "model": model, "k": 5, "max_words": 2} for t in texts]

    async def run(settings) -> tuple[list[dict], dict]:
        async with start_app(settings) as c:
            answers = []
            for body in bodies:  # one keystroke after the other, like a typist
                answers.extend(await post_all(c, [body], session="typist-1"))
            stats = (await c.get("/v1/stats")).json()["backends"][model]
            return answers, stats

    uncached, stats_off = await run(make_settings(cache_bytes=0))
    cached, stats_on = await run(make_settings())

    for body, a, b in zip(bodies, cached, uncached, strict=True):
        assert_same_answer(a, b, what=repr(body["text"]))
    assert stats_off["cache_hits"] == 0 and stats_off["cache_entries"] == 0
    assert not any(b["cache_hit"] for b in uncached)
    assert stats_on["cache_hits"] > len(bodies) // 2, stats_on
    assert stats_on["cache_entries"] > 0
    assert sum(a["cache_hit"] for a in cached) == stats_on["cache_hits"]
    # A keystroke inside a word reuses the context's state: no model work for the context.
    assert cached[texts.index("I think the mo")]["cache_hit"]


async def test_the_prefix_cache_is_private_to_a_session(start_app, make_settings):
    """A typist with another session key, typing the same text, gets no hit from the first typist's
    entries; the same key keeps its hits; a request without a key uses no cache; every answer is
    the same either way."""
    texts = typing_sequence("I think the movie was great ")
    bodies = [{"text": t, "k": 3, "max_words": 2} for t in texts]
    async with start_app(make_settings()) as c:
        first = [(await post_all(c, [b], session="alice"))[0] for b in bodies]
        second = [(await post_all(c, [b], session="bob"))[0] for b in bodies]
        again = [(await post_all(c, [b], session="alice"))[0] for b in bodies]
        keyless = [(await post_all(c, [b]))[0] for b in bodies]
    assert sum(a["cache_hit"] for a in first) > len(bodies) // 2  # alice reuses her own keystrokes
    # bob's first keystrokes of each word would hit alice's entries if the cache were shared
    assert [a["cache_hit"] for a in second] == [a["cache_hit"] for a in first]
    assert all(a["cache_hit"] for a in again)  # alice's whole history is still hers
    assert not any(a["cache_hit"] for a in keyless)
    for a, b, c2, d in zip(first, second, again, keyless, strict=True):
        assert_same_answer(a, b)
        assert_same_answer(a, c2)
        assert_same_answer(a, d)


async def test_a_malformed_session_header_is_a_422(client):
    for bad in ("", "x" * 129, "has space", "tab\there"):
        r = await client.post("/v1/complete", json={"text": "a"}, headers={"X-Session-Id": bad})
        assert r.status_code == 422, (bad, r.status_code)


# --------------------------------------------------------------------------- admission control


async def test_overload_rejects_fast_and_recovers(start_app, make_settings):
    # queue_limit=2 and a long batching window: the first two requests hold the queue while
    # the window is open, so the rest must be turned away at once.
    settings = make_settings(queue_limit=2, max_wait_ms=300, deadline_ms=30_000)
    body = {"text": LONG_TEXT, "max_words": 8}
    async with start_app(settings) as c:

        async def timed_post() -> tuple[Any, float]:
            t0 = time.perf_counter()
            r = await c.post("/v1/complete", json=body)
            return r, time.perf_counter() - t0

        results = await asyncio.wait_for(asyncio.gather(*(timed_post() for _ in range(40))), timeout=120)
        statuses = [r.status_code for r, _ in results]
        assert set(statuses) <= {200, 503}, statuses
        rejected = [(r, dt) for r, dt in results if r.status_code == 503]
        assert rejected, "queue_limit=2 with 40 concurrent requests must reject some"
        assert statuses.count(200) >= 1
        for r, dt in rejected:
            assert int(r.headers["retry-after"]) >= 1
            assert "overloaded" in r.json()["detail"]
            assert dt < min(2.0, settings.deadline_ms / 1000 / 10), f"a 503 took {dt:.3f} s"
        # Recovery: nothing left admitted, and the next request is served.
        await wait_until(lambda: c.engine().in_flight == 0)
        r = await c.post("/v1/complete", json={"text": "I think the "})
        assert r.status_code == 200, r.text
        text = (await c.get("/metrics")).text
        assert 'nextword_requests_total{backend="gru",status="ok"}' in text
        assert f'nextword_overloaded_total{{backend="gru",reason="queue full"}} {len(rejected)}.0' in text
        assert 'nextword_overloaded_total{backend="lstm",reason="too much work ahead"} 0.0' in text


async def test_stale_queue_rejects_new_work_before_deadlines_expire(start_app, make_settings):
    # A queue is "full" in time as well as in length: once the oldest queued request has
    # waited longer than max_queue_wait_ms, newcomers get 503 at once instead of a 504 later.
    # Each request must cost real work or the queue never builds up: the cache off (identical
    # requests would be answered from it) and the context read 8 tokens per iteration.
    settings = make_settings(batching=False, queue_limit=1000, max_queue_wait_ms=20, deadline_ms=30_000,
                             cache_bytes=0, prefill_chunk=8)
    body = {"text": LONG_TEXT, "max_words": 8}
    async with start_app(settings) as c:
        # The backlog is queued on the engine directly: in-process HTTP clients reach the
        # server too unevenly to build a queue reliably.
        engine = c.engine()
        first = [asyncio.ensure_future(engine.complete(LONG_TEXT, 3, 8)) for _ in range(20)]
        await wait_until(lambda: engine.queue_depth >= 10)
        await asyncio.sleep(0.05)  # the oldest queued has now waited > max_queue_wait_ms
        t0 = time.perf_counter()
        late = await c.post("/v1/complete", json=body)
        assert late.status_code == 503, late.text
        assert time.perf_counter() - t0 < 1.0 and int(late.headers["retry-after"]) >= 1
        assert all(r.result.suggestions for r in await asyncio.gather(*first))  # the admitted are served
        r = await c.post("/v1/complete", json={"text": "I think the "})
        assert r.status_code == 200


@pytest.mark.parametrize("overrides", [
    pytest.param({"max_wait_ms": 20}, id="expires-in-queue"),
    pytest.param({"batching": False, "prefill_chunk": 4}, id="expires-while-computing"),
])
async def test_deadline_gives_504(start_app, make_settings, overrides):
    async with start_app(make_settings(deadline_ms=1, **overrides)) as c:
        t0 = time.perf_counter()
        r = await c.post("/v1/complete", json={"text": LONG_TEXT, "max_words": 8})
        assert r.status_code == 504, r.text
        assert r.headers["content-type"].startswith("application/json")
        assert "deadline" in r.json()["detail"]
        assert time.perf_counter() - t0 < 5
        await wait_until(lambda: c.engine().in_flight == 0)
        text = (await c.get("/metrics")).text
        assert 'nextword_requests_total{backend="gru",status="DeadlineExceeded"} 1.0' in text


# --------------------------------------------------------------------------- engine directly


class CallSpy:
    """Stands in for a scripted module: records the row lengths of every call, then delegates.

    The first context read is held for ``hold_first_read_s``, so a test can submit requests
    that arrive while it runs (they then meet the first request's beam step in one iteration).
    """

    def __init__(self, module: Any, hold_first_read_s: float = 0.0) -> None:
        self.module = module
        self.hold_first_read_s = hold_first_read_s
        self.calls: list[tuple[str, list[int]]] = []

    def init_state(self, batch: int):
        return self.module.init_state(batch)

    def step(self, tokens, state):
        self.calls.append(("step", [1] * len(tokens)))
        return self.module.step(tokens, state)

    def prefill(self, tokens, lengths, state):
        self.calls.append(("prefill", lengths.tolist()))
        if len(self.calls) == 1:
            time.sleep(self.hold_first_read_s)
        return self.module.prefill(tokens, lengths, state)


def test_steps_then_reads_splits_one_iteration_into_two_calls():
    def pending(*rows: int) -> Any:
        request = type("Pending", (), {})()
        request.call = ModelCall([[7] * n for n in rows], None)  # type: ignore[arg-type]
        return request

    beam, read, one_piece_context, other_beam, other_read = (
        pending(1, 1, 1, 1, 1, 1), pending(30), pending(1), pending(1, 1), pending(5)
    )
    groups = steps_then_reads([beam, read, one_piece_context, other_beam, other_read])
    assert groups == [[beam, one_piece_context, other_beam], [read, other_read]]
    assert steps_then_reads([read]) == [[read]]
    assert steps_then_reads([]) == []


async def test_beam_steps_never_wait_inside_a_context_read(gru_lm):
    """Requests arriving while another is being answered: their context reads and its beam step are
    due in the same iteration, yet a beam step never rides along in a context read's call, while
    steps still batch with steps and reads with reads."""
    spy = CallSpy(gru_lm.module, hold_first_read_s=0.2)
    lm = dataclasses.replace(gru_lm, module=spy)
    engine, _ = make_engine(lm, max_wait_ms=20, cache_bytes=0, max_queue_wait_ms=60_000, deadline_ms=60_000)
    try:
        first, *rest = varied_requests(16)
        early = asyncio.ensure_future(engine.complete(first["text"], first["k"], first["max_words"]))
        await wait_until(lambda: spy.calls)  # the first request's context read is running (held)
        later = [engine.complete(b["text"], b["k"], b["max_words"]) for b in rest]
        await asyncio.wait_for(asyncio.gather(early, *later), timeout=60)
    finally:
        engine.stop()
    reads = [lengths for kind, lengths in spy.calls if kind == "prefill"]
    steps = [lengths for kind, lengths in spy.calls if kind == "step"]
    assert reads and all(min(lengths) >= 2 for lengths in reads), reads
    assert max(len(lengths) for lengths in reads) > 1  # several requests' contexts read in one call
    assert max(len(lengths) for lengths in steps) > 10  # beams of several requests (beam <= 10) in one call


def config_of(**overrides: Any) -> EngineConfig:
    """The engine configuration the server would build from settings with ``overrides``."""
    decode = overrides.pop("decode", None)
    config = engine_config(Settings(_env_file=None, models="", **overrides))
    return dataclasses.replace(config, decode=decode) if decode is not None else config


def make_engine(lm, **config: Any) -> tuple[InferenceEngine, Metrics]:
    metrics = Metrics()
    engine = InferenceEngine(lm, config_of(**config), metrics.for_backend(lm.name, 60))
    engine.start()
    return engine, metrics


def outcome_count(metrics: Metrics, backend: str, status: str) -> float:
    value = metrics.registry.get_sample_value("nextword_requests_total", {"backend": backend, "status": status})
    return value or 0.0


async def test_cancelled_request_in_queue_is_dropped(gru_lm):
    engine, metrics = make_engine(gru_lm, max_wait_ms=300, cache_bytes=0)
    try:
        task = asyncio.create_task(engine.complete(LONG_TEXT, 3, 8))
        await wait_until(lambda: engine.in_flight == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await wait_until(lambda: engine.in_flight == 0)
        assert engine.iterations == 0, "the cancelled request must never reach the model"
        assert outcome_count(metrics, "gru", "EngineStopped") == 1
        assert outcome_count(metrics, "gru", "ok") == 0
        # The engine is fine afterwards.
        answer = await asyncio.wait_for(engine.complete("I think the ", 3), timeout=30)
        assert answer.result.suggestions
    finally:
        engine.stop()


async def test_cancelled_request_mid_computation_is_dropped(gru_lm):
    # One token per prefill call and the whole context read: well over a thousand model calls.
    engine, metrics = make_engine(gru_lm, batching=False, cache_bytes=0,
                                  decode=DecodeOptions(prefill_chunk=1, context_pieces=0))
    needed = len(gru_lm.tokenizer.encode(LONG_TEXT))
    assert needed > 1000
    try:
        task = asyncio.create_task(engine.complete(LONG_TEXT, 3, 8))
        await wait_until(lambda: engine.iterations >= 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await wait_until(lambda: engine.in_flight == 0)
        done_at = engine.iterations
        await asyncio.sleep(0.05)
        assert engine.iterations == done_at, "no more model calls after the request was dropped"
        assert done_at < needed, "the request was dropped, not run to completion"
        assert outcome_count(metrics, "gru", "EngineStopped") == 1
        assert outcome_count(metrics, "gru", "ok") == 0
    finally:
        engine.stop()


async def test_engine_rejects_over_queue_limit_and_after_stop(gru_lm):
    engine, metrics = make_engine(gru_lm, queue_limit=1, max_wait_ms=200)
    try:
        first = engine.submit("I think the ", 3)
        with pytest.raises(Overloaded) as exc:
            engine.submit("I think the ", 3)
        assert exc.value.retry_after >= 1
        assert metrics.registry.get_sample_value(
            "nextword_overloaded_total", {"backend": "gru", "reason": "queue full"}) == 1.0
        answer = await asyncio.wait_for(first.future, timeout=30)
        assert answer.result.suggestions
        await wait_until(lambda: engine.in_flight == 0)
        again = engine.submit("Honestly the ", 3)  # the slot is free again once the first finished
        assert (await asyncio.wait_for(again.future, timeout=30)).result.suggestions
    finally:
        engine.stop()
    assert not engine.running
    with pytest.raises(EngineStopped):
        engine.submit("I think the ", 3)


@pytest.mark.parametrize("cache_bytes", [0, 1 << 20], ids=["no-cache", "cache"])
@pytest.mark.parametrize("model", ["gru", "lstm"])
async def test_engine_answer_equals_offline_drive(gru_lm, lstm_lm, make_settings, model, cache_bytes):
    """The engine answers exactly what the offline driver answers for the same request."""
    lm = {"gru": gru_lm, "lstm": lstm_lm}[model]
    options = engine_config(make_settings()).decode
    # Admission is not under test: a slow or busy machine must not turn the burst below into 503s.
    config = config_of(cache_bytes=cache_bytes, decode=options, max_queue_wait_ms=60_000, deadline_ms=60_000)
    engine = InferenceEngine(lm, config)
    engine.start()
    try:
        for body in varied_requests(16):
            text, k, max_words = body["text"], body["k"], body["max_words"]
            online = (await asyncio.wait_for(engine.complete(text, k, max_words), timeout=30)).result
            [offline] = drive(lm.module, [suggest(lm, text, k, max_words, None, options)])
            assert_same_result(online, offline, what=repr(body))
        # Concurrent submissions, merged into shared model calls, agree with offline too.
        bodies = varied_requests(16)
        online_all = await asyncio.wait_for(
            asyncio.gather(*(engine.complete(b["text"], b["k"], b["max_words"]) for b in bodies)), timeout=60
        )
        for b, answer in zip(bodies, online_all, strict=True):
            [offline] = drive(lm.module, [suggest(lm, b["text"], b["k"], b["max_words"], None, options)])
            assert_same_result(answer.result, offline, what=repr(b))
    finally:
        engine.stop()


async def test_idle_engine_stops_holding_requests_for_a_batch_window_at_low_rates(gru_lm):
    """The batch window pays only when batchmates are likely: at 2 requests/s it is skipped."""
    engine, _ = make_engine(gru_lm, max_wait_ms=100, cache_bytes=0)
    try:
        first = await engine.complete("I think the ", 3)
        assert first.timing.queue_ms >= 90  # nothing known about arrivals yet: the window applies
        for _ in range(4):
            await asyncio.sleep(0.5)
            answer = await engine.complete("I think the ", 3)
        assert answer.timing.queue_ms < 50
    finally:
        engine.stop()


# --------------------------------------------------------------------------- faults


class FaultyModule:
    """The real module, except that chosen calls raise (``fail`` maps 'step'/'prefill' to an exception)."""

    def __init__(self, module: Any, fail: dict[str, BaseException]) -> None:
        self.module = module
        self.fail = fail

    def _maybe_fail(self, kind: str) -> None:
        exc = self.fail.pop(kind, None)
        if exc is not None:
            raise exc

    def step(self, tokens, state):
        self._maybe_fail("step")
        return self.module.step(tokens, state)

    def prefill(self, tokens, lengths, state):
        self._maybe_fail("prefill")
        return self.module.prefill(tokens, lengths, state)

    def init_state(self, batch: int):
        return self.module.init_state(batch)


class WorkerKilled(BaseException):
    """Escapes every ``except Exception``: stands for whatever could kill the worker thread."""


@pytest.mark.parametrize("kind", ["step", "prefill"])
async def test_a_model_fault_fails_that_iterations_requests_and_the_engine_goes_on(gru_lm, kind):
    from app.engine import ModelFault

    lm = dataclasses.replace(gru_lm, module=FaultyModule(gru_lm.module, {kind: RuntimeError("cuda on fire")}))
    engine, metrics = make_engine(lm, cache_bytes=0, deadline_ms=5_000)
    try:
        with pytest.raises(ModelFault) as exc:
            await asyncio.wait_for(engine.complete("I think the movie ", 3, 3), timeout=6)
        assert len(exc.value.error_id) == 12 and exc.value.error_id in str(exc.value)
        assert engine.running and engine.dead is None and engine.in_flight == 0
        answer = await asyncio.wait_for(engine.complete("I think the movie ", 3, 3), timeout=6)
        assert answer.result.suggestions
        assert outcome_count(metrics, "gru", "ModelFault") == 1
    finally:
        engine.stop()


async def test_a_dead_worker_fails_pending_and_new_requests_at_once(gru_lm):
    from app.engine import EngineDead

    lm = dataclasses.replace(gru_lm, module=FaultyModule(gru_lm.module, {"step": WorkerKilled()}))
    engine, _ = make_engine(lm, cache_bytes=0, deadline_ms=2_000, max_wait_ms=50)
    started = time.monotonic()
    pending = [asyncio.ensure_future(engine.complete(f"I think the {n} ", 3, 2)) for n in NOUNS]
    results = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), timeout=3)
    assert time.monotonic() - started < 2.0 + 1.0  # nobody waits past deadline + 1 s
    assert results and all(isinstance(r, EngineDead) for r in results), results
    assert engine.dead == "WorkerKilled" and not engine.running and engine.in_flight == 0
    with pytest.raises(EngineDead):
        engine.submit("I think ", 3)
    stop_started = time.monotonic()
    engine.stop()  # shutdown still completes
    assert time.monotonic() - stop_started < 1.0


async def test_http_after_a_model_fault_and_after_the_worker_died(start_app, make_settings, gru_lm):
    faulty = FaultyModule(gru_lm.module, {})

    def loader(path, name):
        from model.artifact import load_artifact

        lm = load_artifact(path, name)
        return dataclasses.replace(lm, module=faulty) if name == "gru" else lm

    async with start_app(make_settings(deadline_ms=2_000), loader) as c:
        faulty.fail["step"] = RuntimeError("boom")
        r = await c.post("/v1/complete", json={"text": "I think the ", "model": "gru"})
        assert r.status_code == 500 and r.json()["detail"].startswith("model error (id ")
        assert (await c.post("/v1/complete", json={"text": "I think the ", "model": "gru"})).status_code == 200
        assert (await c.get("/healthz")).status_code == 200

        faulty.fail["step"] = WorkerKilled()
        started = time.monotonic()
        r = await c.post("/v1/complete", json={"text": "Honestly the ", "model": "gru"})
        assert r.status_code == 503 and time.monotonic() - started < 3.0
        assert (await c.post("/v1/complete", json={"text": "I think ", "model": "gru"})).status_code == 503
        assert (await c.post("/v1/complete", json={"text": "I think ", "model": "lstm"})).status_code == 200
        health = await c.get("/healthz")
        assert health.status_code == 503 and health.json()["backends"] == ["gru"]
        ready = await c.get("/readyz")
        assert ready.status_code == 503 and "gru" in ready.json()["status"]


class StuckModule(FaultyModule):
    """The real module, except that the next prefill hangs for ``stuck_s`` (a wedged model call)."""

    def __init__(self, module: Any, stuck_s: float) -> None:
        super().__init__(module, {})
        self.stuck_s = stuck_s

    def prefill(self, tokens, lengths, state):
        stuck, self.stuck_s = self.stuck_s, 0.0
        time.sleep(stuck)
        return self.module.prefill(tokens, lengths, state)


async def test_a_wedged_model_call_still_gets_a_504_by_the_backstop(start_app, make_settings, gru_lm):
    # The engine cannot expire a request inside a model call that never returns; the route's
    # backstop answers it anyway, at its deadline plus the margin.
    from app.routers.complete import BACKSTOP_MARGIN_S

    stuck = StuckModule(gru_lm.module, 0.0)

    def loader(path, name):
        from model.artifact import load_artifact

        lm = load_artifact(path, name)
        return dataclasses.replace(lm, module=stuck) if name == "gru" else lm

    async with start_app(make_settings(deadline_ms=200, cache_bytes=0), loader) as c:
        stuck.stuck_s = 200 / 1000 + BACKSTOP_MARGIN_S + 1.5
        started = time.monotonic()
        r = await c.post("/v1/complete", json={"text": "I think the ", "model": "gru"})
        waited = time.monotonic() - started
        assert r.status_code == 504 and "deadline" in r.json()["detail"]
        assert 200 / 1000 + BACKSTOP_MARGIN_S - 0.05 < waited < 200 / 1000 + BACKSTOP_MARGIN_S + 1.0

"""The HTTP contract, router by router: /v1/complete, /v1/models, health, observability, demo.

Every app here serves the tiny GRU/LSTM models of ``tests/conftest.py`` (near-random, trained
for seconds), so the tests assert structure and invariants, not particular words -- except
where the tiny corpus makes a word certain (a long enough fragment of a corpus word).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from pathlib import Path

import httpx
import pytest

from app.schemas import CompleteResponse
from model.artifact import load_artifact

RESPONSE_FIELDS = {"model", "fragment", "suggestions", "completion", "timing_ms", "cache_hit", "typed_word_prob",
                   "fragment_prob", "subject_read"}
LONG_TEXT = ("I think the movie was great. Honestly the plot was predictable. " * 80)[:4000]


def check_answer(body: dict, k: int | None = None) -> None:
    """The response schema and the invariants every answer obeys."""
    assert set(body) == RESPONSE_FIELDS
    CompleteResponse.model_validate(body)  # the body is built by hand: it must match the declared schema
    assert isinstance(body["model"], str)
    assert isinstance(body["fragment"], str)
    assert isinstance(body["cache_hit"], bool)
    assert set(body["timing_ms"]) == {"queue", "compute", "total"}
    assert all(isinstance(v, int | float) and v >= 0 for v in body["timing_ms"].values())
    suggestions = body["suggestions"]
    assert isinstance(suggestions, list)
    if k is not None:
        assert len(suggestions) <= k
    words = [s["word"] for s in suggestions]
    probs = [s["prob"] for s in suggestions]
    assert all(isinstance(w, str) and w for w in words)
    assert len(set(words)) == len(words), f"duplicate suggestions: {words}"
    assert all(isinstance(p, float) and 0.0 < p <= 1.0 for p in probs), probs
    assert probs == sorted(probs, reverse=True), "suggestions must be sorted by probability"
    assert all(w.startswith(body["fragment"]) for w in words), (body["fragment"], words)
    assert body["fragment"] not in words, "a suggestion must add something to what was typed"
    # Inserted after the caret, each text completes the word as typed (with a space only when untyped).
    for s in suggestions:
        assert s["text"].lstrip(" ") == s["word"][len(body["fragment"]):], s
        assert not (body["fragment"] and s["text"].startswith(" ")), s
    assert 0.0 <= body["typed_word_prob"] <= 1.0
    assert 0.0 < body["fragment_prob"] <= 1.0 or not probs
    if not body["fragment"]:
        assert body["typed_word_prob"] == 0.0 and body["fragment_prob"] == 1.0
    # Probabilities given what is typed: the typed word and its completions are disjoint events.
    assert sum(probs) + body["typed_word_prob"] <= 1.0 + 1e-6, (probs, body["typed_word_prob"])
    completion = body["completion"]
    if completion is not None:
        assert set(completion) == {"text", "confidence"}
        assert isinstance(completion["text"], str)
        assert 0.0 < completion["confidence"] <= 1.0


def check_error(r, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body.get("detail"), body
    return body


# --------------------------------------------------------------------------- POST /v1/complete: answers


async def test_complete_happy_path(client):
    r = await client.post("/v1/complete", json={"text": "I think the movie was ", "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    check_answer(body, k=5)
    assert body["model"] == "gru"  # the settings' default model
    assert body["fragment"] == ""
    assert 1 <= len(body["suggestions"]) <= 5
    assert body["completion"] is None  # max_words defaults to 0: next word only


@pytest.mark.parametrize("model", ["gru", "lstm"])
async def test_complete_echoes_requested_model(client, model):
    r = await client.post("/v1/complete", json={"text": "Honestly the ", "model": model})
    assert r.status_code == 200, r.text
    check_answer(r.json(), k=3)
    assert r.json()["model"] == model


async def test_default_model_comes_from_settings(start_app, make_settings):
    async with start_app(make_settings(default_model="lstm")) as c:
        r = await c.post("/v1/complete", json={"text": "I think the "})
        assert r.status_code == 200, r.text
        assert r.json()["model"] == "lstm"
        stats = (await c.get("/v1/stats")).json()["backends"]
        assert stats["lstm"]["count"] == 1 and stats["gru"]["count"] == 0


async def test_suggestions_keep_to_the_models_lexicon_unless_settings_say_not(start_app, make_settings, gru_lm):
    """A model that carries a lexicon proposes only its words; KNOWN_WORDS=false lifts that."""
    import dataclasses

    from model.lexicon import Lexicon

    text = {"text": "I think the movie was ", "k": 6}
    free = [s["word"] for s in (await _complete_with(start_app, make_settings, gru_lm, text))["suggestions"]]
    lexicon = Lexicon(free[1:])
    kept = await _complete_with(start_app, make_settings, dataclasses.replace(gru_lm, lexicon=lexicon), text)
    assert [s["word"] for s in kept["suggestions"]] == free[1:]
    anything = await _complete_with(start_app, make_settings, dataclasses.replace(gru_lm, lexicon=lexicon), text,
                                    known_words=False)
    assert [s["word"] for s in anything["suggestions"]] == free


async def _complete_with(start_app, make_settings, lm, body: dict, **settings) -> dict:
    async with start_app(make_settings(models="gru=/served/by/the/loader.pt", **settings),
                         loader=lambda path, name: lm) as c:
        r = await c.post("/v1/complete", json=body)
        assert r.status_code == 200, r.text
        return r.json()


async def test_a_subject_is_read_by_a_model_that_reads_subjects_only(start_app, make_settings, gru_lm):
    """The e-mail's subject is context for a model whose card says it reads one; the answer says whether it was."""
    import dataclasses

    reader = dataclasses.replace(gru_lm, card={**gru_lm.card, "reads_subject": True})
    body = {"text": "I think the ", "k": 5}
    plain = await _complete_with(start_app, make_settings, reader, body)
    read = await _complete_with(start_app, make_settings, reader, {**body, "subject": "The acting"})
    blank = await _complete_with(start_app, make_settings, reader, {**body, "subject": "  "})
    ignored = await _complete_with(start_app, make_settings, gru_lm, {**body, "subject": "The acting"})
    for answer in (plain, read, blank, ignored):
        check_answer(answer, k=5)
    assert read["subject_read"] and not plain["subject_read"] and not blank["subject_read"]
    assert read["suggestions"] != plain["suggestions"] == blank["suggestions"]
    assert not ignored["subject_read"]
    assert [s["word"] for s in ignored["suggestions"]] == [s["word"] for s in plain["suggestions"]]


@pytest.mark.parametrize("k", [1, 2, 3, 7, 10])
async def test_k_bounds_the_number_of_suggestions(client, k):
    r = await client.post("/v1/complete", json={"text": "I think the movie was ", "k": k})
    assert r.status_code == 200, r.text
    check_answer(r.json(), k=k)
    assert len(r.json()["suggestions"]) >= 1


async def test_default_k_is_three(client):
    r = await client.post("/v1/complete", json={"text": "My friends said the "})
    assert r.status_code == 200
    assert 1 <= len(r.json()["suggestions"]) <= 3


@pytest.mark.parametrize("model", ["gru", "lstm"])
@pytest.mark.parametrize("text,fragment", [
    ("I think the mo", "mo"),
    ("Honestly the fi", "fi"),
    ("My friends said the story was te", "te"),
    ("I really fe", "fe"),
    ("In my opinion the screenpl", "screenpl"),
])
async def test_fragment_is_completed(client, model, text, fragment):
    r = await client.post("/v1/complete", json={"text": text, "model": model, "k": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    check_answer(body, k=10)
    assert body["fragment"] == fragment
    assert body["suggestions"], "a corpus fragment should have completions"
    assert all(s["word"].startswith(fragment) for s in body["suggestions"])


@pytest.mark.parametrize("text", ["I think the movie was ", "I think the movie was great. ", "x ", " "])
async def test_text_ending_with_space_has_no_fragment(client, text):
    r = await client.post("/v1/complete", json={"text": text})
    assert r.status_code == 200, r.text
    assert r.json()["fragment"] == ""


SENTENCE_RE = re.compile(r"(?P<opener>[A-Za-z ]+?) the (?P<noun>[a-z]+) was (?P<adj>[a-z]+)\.")


def corpus_grammar(corpus: Path) -> dict[str, str]:
    """{word: a context after which the tiny corpus makes that word likely}, read from the corpus."""
    contexts: dict[str, str] = {"the": "I think ", "was": "I think the movie "}
    for m in SENTENCE_RE.finditer(corpus.read_text(encoding="utf-8")):
        contexts.setdefault(m["noun"], "I think the ")
        contexts.setdefault(m["adj"], "I think the movie was ")
        first = m["opener"].strip().split()[0]
        contexts.setdefault(first, "The movie was good. ")  # openers start a sentence
    return contexts


@pytest.mark.parametrize("model", ["gru", "lstm"])
@pytest.mark.parametrize("pieces", ["one", "several"])
async def test_one_and_multi_piece_words_are_found_from_their_fragment(
    client, gru_lm, lstm_lm, tiny_corpus, model, pieces
):
    """A word that is ONE piece and a word that needs SEVERAL are both found when typed.

    The tiny tokenizer decides which corpus words are single pieces; they are picked here.
    """
    lm = {"gru": gru_lm, "lstm": lstm_lm}[model]
    grammar = corpus_grammar(tiny_corpus)
    candidates = sorted(grammar)
    if pieces == "one":  # of two letters or more: a typed fragment must leave something to complete
        chosen = [w for w in candidates if len(lm.tokenizer.encode(" " + w)) == 1 and len(w) >= 2]
    else:
        chosen = [w for w in candidates if len(lm.tokenizer.encode(" " + w)) >= 3 and len(w) >= 4][:4]
    if not chosen:
        pytest.skip(f"the tiny {model} tokenizer has no {pieces}-piece corpus word")
    for word in chosen:
        fragment = word[: max(1, len(word) - 2)]
        text = grammar[word] + fragment
        r = await client.post("/v1/complete", json={"text": text, "model": model, "k": 10})
        assert r.status_code == 200, r.text
        body = r.json()
        check_answer(body, k=10)
        assert body["fragment"] == fragment
        found = [s["word"] for s in body["suggestions"]]
        assert word in found, (word, len(lm.tokenizer.encode(" " + word)), text, found)


@pytest.mark.parametrize("model", ["gru", "lstm"])
@pytest.mark.parametrize("text", ["I think the movie was ", "I think the mo", "Honestly"])
async def test_phrase_completion_with_zero_threshold(client, model, text):
    r = await client.post("/v1/complete", json={"text": text, "model": model, "max_words": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    check_answer(body)
    assert body["completion"] is not None
    assert body["completion"]["text"].strip(), body["completion"]


async def test_phrase_completion_below_threshold_is_null(start_app, make_settings):
    async with start_app(make_settings(completion_threshold=1.0)) as c:
        r = await c.post("/v1/complete", json={"text": "I think the movie was ", "max_words": 3})
        assert r.status_code == 200, r.text
        body = r.json()
        check_answer(body)
        assert body["completion"] is None
        assert body["suggestions"]  # suggestions do not depend on the phrase threshold


# --------------------------------------------------------------------------- POST /v1/complete: errors


@pytest.mark.parametrize("payload", [
    pytest.param({}, id="missing-text"),
    pytest.param({"k": 3}, id="missing-text-with-k"),
    pytest.param({"text": None}, id="null-text"),
    pytest.param({"text": 5}, id="int-text"),
    pytest.param({"text": ["a"]}, id="list-text"),
    pytest.param({"text": "a", "k": "many"}, id="str-k"),
    pytest.param({"text": "a", "k": 2.5}, id="float-k"),
    pytest.param({"text": "a", "max_words": "x"}, id="str-max_words"),
    pytest.param({"text": "a", "model": 3}, id="int-model"),
    pytest.param({"text": "a", "k": 0}, id="k-0"),
    pytest.param({"text": "a", "k": 11}, id="k-11"),
    pytest.param({"text": "a", "k": -1}, id="k-negative"),
    pytest.param({"text": "a", "max_words": 9}, id="max_words-9"),
    pytest.param({"text": "a", "max_words": -1}, id="max_words-negative"),
    pytest.param({"text": "a", "temperature": 0.7}, id="extra-field"),
    pytest.param({"text": "a", "subject": 3}, id="int-subject"),
    pytest.param({"text": "a", "subject": None}, id="null-subject"),
    pytest.param({"text": "a", "subject": "s" * 1001}, id="subject-over-1000-chars"),
])
async def test_invalid_bodies_are_422(client, payload):
    check_error(await client.post("/v1/complete", json=payload), 422)


@pytest.mark.parametrize("content", [b'{"text": "abc"', b"not json", b"", b"[1, 2]", b'"just a string"'])
async def test_malformed_json_is_422(client, content):
    r = await client.post("/v1/complete", content=content, headers={"content-type": "application/json"})
    check_error(r, 422)


async def test_text_over_the_limit_is_413_and_a_long_e_mail_is_answered(client):
    check_error(await client.post("/v1/complete", json={"text": "a" * 50_001}), 413)
    e_mail = (LONG_TEXT + " ") * 12 + "I think the mo"  # 48,026 characters: read from its end
    r = await client.post("/v1/complete", json={"text": e_mail})
    assert r.status_code == 200, r.text
    assert r.json()["fragment"] == "mo" and r.json()["suggestions"]


async def test_text_limit_follows_settings(start_app, make_settings):
    async with start_app(make_settings(max_text_chars=12)) as c:
        body = check_error(await c.post("/v1/complete", json={"text": "I think the m"}), 413)
        assert "12" in body["detail"]
        assert (await c.post("/v1/complete", json={"text": "I think the "})).status_code == 200


async def test_unknown_model_is_404(client):
    body = check_error(await client.post("/v1/complete", json={"text": "a", "model": "transformer"}), 404)
    assert "transformer" in body["detail"]


async def test_model_not_configured_is_404(start_app, make_settings, tiny_models):
    async with start_app(make_settings(models=f"gru={tiny_models['gru']}")) as c:
        body = check_error(await c.post("/v1/complete", json={"text": "I think ", "model": "lstm"}), 404)
        assert "lstm" in body["detail"]
        assert (await c.post("/v1/complete", json={"text": "I think ", "model": "gru"})).status_code == 200
        models = (await c.get("/v1/models")).json()
        assert [m["name"] for m in models["models"]] == ["gru"]


async def test_cache_budget_is_one_bound_over_all_models(start_app, make_settings, tiny_models):
    """Serving one more model must not add memory: the prefix caches share CACHE_BYTES."""
    models = f"gru={tiny_models['gru']},lstm={tiny_models['lstm']},gru2={tiny_models['gru']}"
    async with start_app(make_settings(models=models, cache_bytes=3_000_000)) as c:
        budgets = [engine.cache.max_bytes for engine in c.state.engines.values()]
        assert len(budgets) == 3 and sum(budgets) <= 3_000_000 and min(budgets) == 1_000_000


async def test_not_ready_while_loading_then_ready(start_app, make_settings):
    """Readiness during startup: 503 + Retry-After until every model is loaded, then 200."""
    gate = threading.Event()

    def slow_loader(path, name):
        assert gate.wait(60), "test never released the loader"
        return load_artifact(path, name)

    try:
        async with start_app(make_settings(), slow_loader, ready=False) as c:
            assert (await c.get("/healthz")).status_code == 200  # alive while loading
            r = await c.get("/readyz")
            assert r.status_code == 503
            assert r.headers["retry-after"] == "1"
            assert r.json()["status"] == "loading"
            r = await c.post("/v1/complete", json={"text": "I think the "})
            body = check_error(r, 503)
            assert int(r.headers["retry-after"]) >= 1
            assert "loading" in body["detail"]
            # validation and routing still answer while loading
            check_error(await c.post("/v1/complete", json={"text": "a", "k": 0}), 422)
            check_error(await c.post("/v1/complete", json={"text": "a", "model": "nope"}), 404)
            assert (await c.get("/v1/models")).status_code == 200
            assert (await c.get("/metrics")).status_code == 200
            assert (await c.get("/v1/stats")).status_code == 200

            gate.set()
            await c.wait_ready()
            assert (await c.get("/healthz")).status_code == 200
            ready = (await c.get("/readyz")).json()
            assert ready == {"status": "ready", "models": ["gru", "lstm"]}
            r = await c.post("/v1/complete", json={"text": "I think the "})
            assert r.status_code == 200, r.text
    finally:
        gate.set()


async def test_load_failure_reported_by_readyz(start_app, make_settings, tmp_path, tiny_models):
    missing = tmp_path / "missing.pt"
    async with start_app(make_settings(models=f"gru={tiny_models['gru']},lstm={missing}"), ready=False) as c:
        for _ in range(1000):
            r = await c.get("/readyz")
            if r.json()["status"] != "loading":
                break
            await asyncio.sleep(0.02)
        assert r.status_code == 503
        assert r.json()["status"].startswith("failed")
        assert "'lstm'" in r.json()["status"]  # names the backend ...
        assert "missing.pt" not in r.text and str(tmp_path) not in r.text  # ... and no local path
        assert (await c.get("/healthz")).status_code == 200
        check_error(await c.post("/v1/complete", json={"text": "I think "}), 503)


async def test_loader_exception_reported_by_readyz(start_app, make_settings):
    def broken(path, name):
        raise RuntimeError("disk on fire")

    async with start_app(make_settings(), broken, ready=False) as c:
        for _ in range(500):
            r = await c.get("/readyz")
            if r.json()["status"] != "loading":
                break
            await asyncio.sleep(0.01)
        assert r.status_code == 503
        assert r.json()["status"] == "failed: backend 'gru' could not be loaded (RuntimeError; see the server log)"


async def test_draining_after_shutdown(start_app):
    async with start_app() as c:
        await c.shutdown()
        r = await c.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == "draining"
        assert (await c.get("/healthz")).status_code == 200
        check_error(await c.post("/v1/complete", json={"text": "I think "}), 503)


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"),
    pytest.param(" ", id="one-space"),
    pytest.param("      ", id="only-spaces"),
    pytest.param("\n\t \r\n", id="only-whitespace"),
    pytest.param("😀🎉👍", id="emoji"),
    pytest.param("I think the movie was 😀 gr", id="emoji-then-fragment"),
    pytest.param("café crème brûlée ", id="accents"),
    pytest.param("日本語のテキスト", id="cjk"),
    pytest.param("Привет как де", id="cyrillic"),
    pytest.param("\x00\x01\x02\x07\x1b[31m", id="control-chars"),
    pytest.param("I think\x00 the\x0b mo", id="embedded-nul"),
    pytest.param("I think the movie <br /> was ", id="html-br"),
    pytest.param("!!!???...,,,;;;", id="only-punctuation"),
    pytest.param("(((", id="open-parens"),
    pytest.param("'", id="apostrophe"),
    pytest.param("don'", id="apostrophe-fragment"),
    pytest.param("\u200b\u200d\ufeff", id="zero-width"),
    pytest.param("\ud7ff\ue000\U0010fffd", id="odd-codepoints"),
    pytest.param(LONG_TEXT, id="4000-chars"),
    pytest.param("x" * 4000, id="4000-char-word"),
    pytest.param("a " * 2000, id="4000-chars-of-one-letter-words"),
])
@pytest.mark.parametrize("model", ["gru", "lstm"])
async def test_weird_input_never_500(client, text, model):
    r = await client.post("/v1/complete", json={"text": text, "model": model, "k": 5, "max_words": 3})
    assert r.status_code == 200, (r.status_code, r.text)
    check_answer(r.json(), k=5)


# --------------------------------------------------------------------------- GET /v1/models


async def test_models_lists_both_with_cards(client, gru_lm, lstm_lm):
    r = await client.get("/v1/models")
    assert r.status_code == 200
    body = r.json()
    assert body["default"] == "gru"
    assert [m["name"] for m in body["models"]] == ["gru", "lstm"]
    for m, lm in zip(body["models"], (gru_lm, lstm_lm), strict=True):
        card = m["card"]
        assert isinstance(card["parameters"], int) and card["parameters"] > 0
        assert card["vocab_size"] == lm.tokenizer.vocab_size
        assert re.fullmatch(r"[0-9a-f]{64}", card["checksum"])
        assert card["checksum"] == lm.card["checksum"]
        assert card["config"]["cell"] == m["name"]


# --------------------------------------------------------------------------- health


async def test_healthz_always_200(client):
    r = await client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


async def test_readyz_when_ready(client):
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "models": ["gru", "lstm"]}


# --------------------------------------------------------------------------- observability


async def test_metrics_after_requests(start_app):
    async with start_app() as client:
        await _check_metrics_after_requests(client)


async def _check_metrics_after_requests(client) -> None:
    for model in ("gru", "lstm"):
        r = await client.post("/v1/complete", json={"text": "I think the ", "model": model})
        assert r.status_code == 200
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    for name in ("nextword_request_seconds", "nextword_queue_seconds", "nextword_compute_seconds",
                 "nextword_step_seconds", "nextword_batch_requests", "nextword_batch_rows", "nextword_step_tokens",
                 "nextword_queue_depth", "nextword_in_flight", "nextword_requests_total",
                 "nextword_prefix_cache_bytes"):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
    for backend in ("gru", "lstm"):
        assert f'nextword_requests_total{{backend="{backend}",status="ok"}} 1.0' in text
        assert f'nextword_request_seconds_count{{backend="{backend}"}} 1.0' in text
        assert f'nextword_in_flight{{backend="{backend}"}} 0.0' in text
        assert f'nextword_queue_depth{{backend="{backend}"}} 0.0' in text
    metric_lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert all(ln.startswith("nextword_") for ln in metric_lines), "only this app's registry is exported"


async def test_stats_reports_both_backends(start_app):
    async with start_app() as client:
        await _check_stats(client)


async def _check_stats(client) -> None:
    for model, n in (("gru", 3), ("lstm", 2)):
        for i in range(n):
            r = await client.post("/v1/complete", json={"text": f"I think the movie was {'g' * i}", "model": model})
            assert r.status_code == 200
    r = await client.get("/v1/stats")
    assert r.status_code == 200
    body = r.json()
    assert body["window_seconds"] == 60.0
    assert set(body["backends"]) == {"gru", "lstm"}
    for model, n in (("gru", 3), ("lstm", 2)):
        s = body["backends"][model]
        assert s["count"] == n
        assert 0 < s["p50_ms"] <= s["p99_ms"]
        for key in ("p90_ms", "queue_depth", "in_flight", "max_batch_seen", "cache_hits", "cache_misses",
                    "cache_entries"):
            assert key in s
        assert s["in_flight"] == 0 and s["queue_depth"] == 0


async def test_stats_empty_before_any_request(start_app):
    async with start_app() as client:
        s = (await client.get("/v1/stats")).json()["backends"]["gru"]
        assert s["count"] == 0 and s["p50_ms"] is None and s["p99_ms"] is None


# --------------------------------------------------------------------------- docs and demo page


async def test_docs_and_openapi(client):
    r = await client.get("/docs")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    spec = (await client.get("/openapi.json")).json()
    assert "/v1/complete" in spec["paths"]
    assert "/v1/models" in spec["paths"]
    responses = spec["paths"]["/v1/complete"]["post"]["responses"]
    assert {"200", "404", "408", "413", "422", "503", "504"} <= set(responses)


async def test_demo_page_is_served(client):
    r = await client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "<html" in r.text.lower()
    assert 'id="editor"' in r.text
    assert "/v1/complete" in r.text


def test_answer_checks_catch_malformed_answers():
    """The check helper itself: a malformed answer is caught (guards against vacuous tests)."""
    movie = {"word": "movie", "prob": 0.5, "text": "vie"}
    good = {"model": "gru", "fragment": "mo", "suggestions": [movie],
            "completion": None, "timing_ms": {"queue": 0.1, "compute": 1.0, "total": 1.1}, "cache_hit": False,
            "typed_word_prob": 0.01, "fragment_prob": 0.02, "subject_read": False}
    check_answer(good, k=1)
    untyped = {"word": "movie", "prob": 0.5, "text": " movie"}
    check_answer({**good, "fragment": "", "suggestions": [untyped], "typed_word_prob": 0.0, "fragment_prob": 1.0})
    for bad in (
        {**good, "suggestions": [{"word": "film", "prob": 0.5, "text": "film"}]},
        {**good, "suggestions": [{**movie, "prob": 0.2}, {"word": "mood", "prob": 0.3, "text": "od"}]},
        {**good, "suggestions": [{**movie, "prob": 1.5}]},
        {**good, "suggestions": [{**movie, "prob": 0.0}]},
        {**good, "typed_word_prob": 0.6},  # the typed word and its completions add up to more than 1
        {**good, "fragment": "", "suggestions": [untyped], "typed_word_prob": 0.0,
         "fragment_prob": 0.3},  # nothing typed: nothing to condition on
        {**good, "extra": 1},
        {**good, "suggestions": [{"word": "mo", "prob": 0.5, "text": ""}]},  # repeats what was typed
        {**good, "fragment": "", "suggestions": [untyped]},  # typed nothing, yet a typed word
        {**good, "suggestions": [{**movie, "text": "movie"}]},  # would insert the fragment again
        {**good, "suggestions": [{**movie, "text": " vie"}]},  # a space inside the word
    ):
        with pytest.raises(AssertionError):
            check_answer(bad)


# --------------------------------------------------------------------------- models by name


async def test_any_number_of_named_models_are_served(start_app, make_settings, tiny_models):
    """NEXTWORD_MODELS names each backend; requests, listing, stats and metrics use the names."""
    spec = f"gru={tiny_models['gru']},gru-email={tiny_models['gru']},my.lstm_2={tiny_models['lstm']}"
    async with start_app(make_settings(models=spec)) as c:
        listed = (await c.get("/v1/models")).json()
        assert [m["name"] for m in listed["models"]] == ["gru", "gru-email", "my.lstm_2"]
        assert listed["default"] == "gru-email"  # the e-mail GRU answers when a request names none
        r = await c.post("/v1/complete", json={"text": "Thanks for the "})
        assert r.status_code == 200 and r.json()["model"] == "gru-email"
        r = await c.post("/v1/complete", json={"text": "Thanks for the ", "model": "my.lstm_2"})
        assert r.status_code == 200 and r.json()["model"] == "my.lstm_2"
        body = check_error(await c.post("/v1/complete", json={"text": "a", "model": "lstm"}), 404)
        assert "gru, gru-email, my.lstm_2" in body["detail"]
        metrics = (await c.get("/metrics")).text
        assert 'backend="gru-email"' in metrics and 'backend="my.lstm_2"' in metrics


async def test_a_folder_of_artifacts_is_served_by_file_name(start_app, make_settings, tiny_models, tmp_path):
    folder = tmp_path / "artifacts"
    folder.mkdir()
    (folder / "lstm-email.pt").write_bytes(tiny_models["lstm"].read_bytes())
    (folder / "gru.pt").write_bytes(tiny_models["gru"].read_bytes())
    async with start_app(make_settings(models=str(folder))) as c:
        listed = (await c.get("/v1/models")).json()
        assert [m["name"] for m in listed["models"]] == ["gru", "lstm-email"]
        assert listed["default"] == "gru"  # no gru-email here: the first
        r = await c.post("/v1/complete", json={"text": "I think ", "model": "lstm-email"})
        assert r.status_code == 200, r.text


async def test_a_long_model_name_is_not_echoed_whole(client):
    r = await client.post("/v1/complete", json={"text": "a", "model": "x" * 50_000})
    check_error(r, 422)
    assert len(r.text) < 500
    body = check_error(await client.post("/v1/complete", json={"text": "a", "model": "y" * 64}), 404)
    assert len(body["detail"]) < 300


@pytest.mark.parametrize("spec", ["gru=", "=a.pt", "gru=a.pt,gru=b.pt", "bad name=a.pt", "-x=a.pt"])
def test_malformed_model_lists_are_refused_at_startup(make_settings, spec):
    with pytest.raises(ValueError):
        make_settings(models=spec)


def test_a_default_model_that_is_not_served_is_refused(make_settings):
    with pytest.raises(ValueError, match="default_model"):
        make_settings(default_model="gru-email")


# --------------------------------------------------------------------------- hostile input


async def test_a_lone_surrogate_is_a_422_not_a_500(client):
    r = await client.post("/v1/complete", content=b'{"text": "hi \\ud800 there "}',
                          headers={"content-type": "application/json"})
    body = check_error(r, 422)
    assert "surrogate" in json.dumps(body)


async def test_invalid_utf8_is_a_4xx(client):
    r = await client.post("/v1/complete", content=b'{"text": "caf\xe9 "}', headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500


@pytest.mark.parametrize("payload", [{"text": "a", "k": "3"}, {"text": "a", "k": True}, {"text": "a", "max_words": 2.5},
                                     {"text": 5}, {"text": "a", "model": 3}])
async def test_numbers_are_numbers_and_strings_strings(client, payload):
    """Strict where JSON is: "3" is not a number (a client bug to surface), but 2.0 is an integer."""
    check_error(await client.post("/v1/complete", json=payload), 422)
    assert (await client.post("/v1/complete", json={"text": "a ", "k": 2.0})).status_code == 200


async def test_a_model_name_is_bounded(client):
    check_error(await client.post("/v1/complete", json={"text": "a", "model": "m" * 65}), 422)


async def test_an_oversized_body_is_refused_before_it_is_parsed(start_app, make_settings):
    async with start_app(make_settings(max_body_bytes=4096)) as c:
        r = await c.post("/v1/complete", content=b"{" + b" " * 10_000, headers={"content-type": "application/json"})
        body = check_error(r, 413)  # not a 422 for the broken JSON: it was never parsed
        assert "4096" in body["detail"]

        async def chunks():  # no Content-Length: counted as it streams
            for _ in range(10):
                yield b" " * 1000

        r = await c.post("/v1/complete", content=chunks(), headers={"content-type": "application/json"})
        check_error(r, 413)
        ok = await c.post("/v1/complete", json={"text": "I think the "})
        assert ok.status_code == 200, ok.text


async def test_models_serve_a_public_card_without_commands_or_paths(client, tiny_models):
    listed = (await client.get("/v1/models")).text
    assert "command" not in listed and str(tiny_models["gru"].parent) not in listed
    assert "data_dir" not in listed
    cards = [m["card"] for m in (await client.get("/v1/models")).json()["models"]]
    assert [card["reads_subject"] for card in cards] == [False, False]  # a client can tell a subject is ignored


# --------------------------------------------------------------------------- operators


async def test_api_keys_when_configured(start_app, make_settings):
    async with start_app(make_settings(api_keys=["s3cret", "other"])) as c:
        body = {"text": "I think the "}
        r = await c.post("/v1/complete", json=body)
        assert check_error(r, 401) and r.headers["www-authenticate"] == "Bearer"
        check_error(await c.post("/v1/complete", json=body, headers={"Authorization": "Bearer wrong"}), 401)
        ok = await c.post("/v1/complete", json=body, headers={"Authorization": "Bearer other"})
        assert ok.status_code == 200, ok.text
        assert (await c.get("/readyz")).status_code == 200  # probes need no key


async def test_no_api_key_needed_by_default(client):
    assert (await client.post("/v1/complete", json={"text": "I think the "})).status_code == 200


async def test_metrics_on_a_port_of_their_own(start_app, make_settings):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with start_app(make_settings(metrics_port=port)) as c:
        assert (await c.get("/metrics")).status_code == 404
        await c.post("/v1/complete", json={"text": "I think the "})
        async with httpx.AsyncClient() as operator:
            text = (await operator.get(f"http://127.0.0.1:{port}/metrics")).text
        assert 'nextword_requests_total{backend="gru",status="ok"} 1.0' in text


async def test_http_answers_are_counted_by_model_and_code(start_app):
    async with start_app() as c:
        await c.post("/v1/complete", json={"text": "I think "})
        await c.post("/v1/complete", json={"text": "I think ", "model": "nope"})
        text = (await c.get("/metrics")).text
    assert 'nextword_http_responses_total{backend="gru",code="200"} 1.0' in text
    assert 'nextword_http_responses_total{backend="unknown",code="404"} 1.0' in text

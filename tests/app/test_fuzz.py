"""Fuzzing: schemathesis against the running app's own OpenAPI schema, and Hypothesis
properties of the text path. No 5xx, every response as the schema says, no exception."""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.main import create_app
from model.text import normalize_prompt, split_fragment, words
from tests.app.conftest import tiny_settings, wait_http_ready


@pytest.fixture(scope="module")
def served(tiny_models: dict[str, Path]) -> Iterator[str]:
    """A real uvicorn server on a free port, serving the tiny models."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(tiny_settings(tiny_models, port=port, deadline_ms=10_000.0))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_http_ready(url)
    yield url
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def api_schema(served: str):
    return schemathesis.openapi.from_url(served + "/openapi.json")


def test_schemathesis_finds_no_5xx_and_no_schema_violation(api_schema):
    """Every operation of the app's own OpenAPI schema, >= 1,000 generated requests in all."""
    cases: Counter[str] = Counter()
    for result in api_schema.get_all_operations():
        operation = result.ok()
        budget = 1000 if operation.method.upper() == "POST" else 25

        @given(case=operation.as_strategy())
        @settings(max_examples=budget, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                  derandomize=True)
        def check(case) -> None:
            label = case.operation.label
            response = case.call(timeout=30)
            cases[label] += 1
            assert response.status_code < 500, (label, response.status_code, response.text[:300])
            case.validate_response(response)

        check()
    assert sum(cases.values()) >= 1000, cases
    assert cases["POST /v1/complete"] >= 900, cases


# --------------------------------------------------------------------------- the text path

HOSTILE = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(categories=("Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Mn", "So"))),
    st.text(alphabet="\u200f\u202e\u2066\u0000\ufeff \t\n abcxyz'"),
    st.just("😀" * 4000),
    st.tuples(st.text(max_size=20), st.integers(0xD800, 0xDFFF).map(chr), st.text(max_size=20)).map("".join),
)


@given(HOSTILE)
@settings(max_examples=300, deadline=None)
def test_text_helpers_never_raise(text):
    prompt = normalize_prompt(text)
    context, fragment = split_fragment(prompt)
    assert context + fragment == prompt
    assert all(w for w in words(prompt))


@given(text=HOSTILE, k=st.integers(1, 10), max_words=st.integers(0, 8))
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_unicode_gets_an_answer_or_a_4xx(served, text, k, max_words):
    # json.dumps escapes lone surrogates as \\udXXX, as a browser's JSON.stringify does.
    body = json.dumps({"text": text, "k": k, "max_words": max_words}).encode()
    r = httpx.post(served + "/v1/complete", content=body, headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code in (200, 413, 422), (r.status_code, r.text[:300])
    if r.status_code == 200:
        body = r.json()
        assert len(body["suggestions"]) <= k
        assert all(s["word"] for s in body["suggestions"])

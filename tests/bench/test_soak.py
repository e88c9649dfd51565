"""The soak's pieces: the request mix and the summary arithmetic (the run itself is not in CI)."""

from __future__ import annotations

import asyncio
import json
import random

from bench.soak import HOSTILE, cache_bytes, plan_request, refusals, stalled_upload, summarize
from bench.workloads import load_documents, word_lists


def test_the_mix_has_every_kind_and_valid_bodies():
    docs = [("", d) for d in load_documents(None)]
    words = [(w, "") for w in word_lists([d for _, d in docs]) if len(w) >= 7]
    rng = random.Random(0)
    typists: dict = {}
    kinds = [plan_request(rng, docs, words, ["gru", "lstm-email"], typists) for _ in range(2000)]
    seen = {k for k, _, _ in kinds}
    assert {"cold", "phrase", "typing"} <= seen and seen & {name for name, _ in HOSTILE}
    for kind, body, session in kinds:
        if kind in ("cold", "phrase", "typing"):
            payload = json.loads(body)
            assert payload["model"] in ("gru", "lstm-email") and payload["text"]
            assert session, "valid requests carry a session key, as the demo page's do"
    # A typist keeps one session while typing, so its keystrokes can reuse its own cache entries.
    typing_sessions = [session for kind, _, session in kinds if kind == "typing"]
    assert len(set(typing_sessions)) <= 20 < len(typing_sessions)
    assert not any("subject" in json.loads(body) for kind, body, _ in kinds if kind in ("cold", "phrase", "typing"))


def test_requests_carry_their_e_mails_subject():
    """With subjects every valid request sends its own e-mail's subject, as the demo page does."""
    texts = load_documents(None)
    docs = [(f"about {i}", d) for i, d in enumerate(texts)]
    words = [(d.split(), s) for s, d in docs]
    rng = random.Random(1)
    typists: dict = {}
    for _ in range(500):
        kind, body, _ = plan_request(rng, docs, words, ["gru-email"], typists)
        if kind in ("cold", "phrase", "typing"):
            payload = json.loads(body)
            i = int(payload["subject"].split()[1])
            assert texts[i].startswith(payload["text"])


def test_cache_bytes_sums_every_backend():
    text = (
        "# HELP nextword_prefix_cache_bytes Prefix-state cache size\n"
        "# TYPE nextword_prefix_cache_bytes gauge\n"
        'nextword_prefix_cache_bytes{backend="gru"} 1024.0\n'
        'nextword_prefix_cache_bytes{backend="lstm"} 2048.0\n'
        "# HELP other_total x\n# TYPE other_total counter\nother_total 5.0\n"
    )
    assert cache_bytes(text) == 3072.0


def test_refusals_sum_every_backend_by_reason():
    text = (
        "# HELP nextword_overloaded_total Requests refused\n"
        "# TYPE nextword_overloaded_total counter\n"
        'nextword_overloaded_total{backend="gru",reason="queue full"} 3.0\n'
        'nextword_overloaded_total{backend="lstm",reason="queue full"} 2.0\n'
        'nextword_overloaded_total{backend="lstm",reason="too much work ahead"} 7.0\n'
        'nextword_overloaded_created{backend="lstm",reason="queue full"} 1.7e9\n'
    )
    assert refusals(text) == {"queue full": 5.0, "too much work ahead": 7.0}
    assert refusals("") == {}  # a server without the counter


def test_summary_reports_growth_after_the_first_minute_and_judges_statuses():
    rss = [(t, 100_000 if t < 60 else 200_000 + t) for t in range(0, 600)]
    raw = {"statuses": {"cold": {"200": 90, "503": 10}, "hostile": {"413": 3, "422": 5}},
           "latencies_ms_by_kind": {"cold": [10.0] * 90},
           "rss": rss, "retry_after_missing": 0, "open_files": [(0, 30), (1, 95), (2, 41)]}
    s = summarize(raw, 40.0, 600)
    assert (s["open_files_max"], s["open_files_last"]) == (95, 41)
    assert s["rss_mib_at_60s"] == round(200_060 / 1024, 1)
    assert s["rss_growth_after_first_minute"] == round(200_599 / 200_060 - 1, 4)
    assert s["rss_growth_second_half"] == round(200_599 / 200_300 - 1, 4)  # from the middle, t = 299.5 s
    assert s["p999_ms"] == 10.0 and s["max_ms"] == 10.0
    assert s["only_200_503_for_valid"] and s["hostile_only_4xx"] and s["server_5xx"] == 0
    raw["statuses"]["typing"] = {"500": 1}
    bad = summarize(raw, 40.0, 600)
    assert not bad["only_200_503_for_valid"] and bad["server_5xx"] == 1


def test_summary_shows_the_slowest_answers_a_p99_hides():
    raw = {"statuses": {"cold": {"200": 1998}, "phrase": {"200": 2}},
           "latencies_ms_by_kind": {"cold": [10.0] * 1997 + [400.0], "phrase": [500.0, 1020.0]},
           "rss": [(0, 1), (1, 1)], "retry_after_missing": 0, "open_files": []}
    s = summarize(raw, 40.0, 60)
    assert s["p99_ms"] == 10.0
    assert (s["p999_ms"], s["max_ms"]) == (400.0, 1020.0)  # nearest rank: the 1,998th of 2,000
    by_kind = s["latency_by_kind"]
    assert by_kind["phrase"]["max"] == 1020.0 and by_kind["cold"]["max"] == 400.0


def test_a_stalled_upload_reports_what_the_server_did():
    """The soak's stalled client: a head, part of its body, then silence; it reads the answer to the end."""

    async def scenario() -> tuple[str, bytes]:
        got: list[bytes] = []

        async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got.append(await reader.readuntil(b"Thanks for the"))
            writer.write(b'HTTP/1.1 408 Request Timeout\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}')
            await writer.drain()
            writer.close()

        srv = await asyncio.start_server(server, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        async with srv:
            status = await stalled_upload(f"http://127.0.0.1:{port}", dict(HOSTILE)["stalled_body"])
        return status, got[0]

    status, sent = asyncio.run(scenario())
    assert status == "408"
    assert sent.startswith(b"POST /v1/complete HTTP/1.1\r\n") and b"Content-Length: 60" in sent

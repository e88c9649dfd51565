"""Tests of the open-loop load generator (bench.loadgen, .openloop, .run_summary, .workloads, .stats).

The timing tests run the generator against a deliberately slow fake HTTP server (raw
asyncio, its own thread and event loop, 127.0.0.1, a free port) and check the two
properties that make a load generator honest: requests go out on schedule whatever the
server does (open loop), and latency is measured from the intended send time (so stalls
and generator queueing are not omitted). Each run lasts about a second; tolerances are
loose because the test machine may be busy.
"""

from __future__ import annotations

import ast
import asyncio
import itertools
import json
import random
import sys
import threading
import time
import types
import typing
from collections import defaultdict
from pathlib import Path

import pytest

from bench import loadgen
from bench.loadgen import run_load
from bench.openloop import LoadConfig
from bench.run_summary import answered_all, format_summary
from bench.servers import free_port
from bench.stats import nearest_rank, percentiles, summarize
from bench.texts import BUILTIN_PARAGRAPHS
from bench.workloads import (
    MAX_PREFIX_WORDS,
    MIN_PREFIX_WORDS,
    WORKLOADS,
    build_plan,
    constant_schedule,
    load_documents,
    load_subjects,
    poisson_schedule,
    typing_plan,
    typing_start,
    typists_for_rate,
)

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- fake server


class FakeServer:
    """A minimal keep-alive HTTP/1.1 server imitating ``POST /v1/complete``.

    ``delay``: seconds every request takes. ``stall_after``/``stall_s``: when request
    number ``stall_after`` (0-based) arrives, the server freezes for ``stall_s`` seconds:
    nothing that arrives in that window is answered before it ends (like a long GC
    pause or a stuck batch). ``overload_every``: every n-th request (n, 2n, ... counting
    from 1) gets 503 with ``Retry-After: 1``. ``close_connection``: answer with
    ``Connection: close`` and hang up. ``idle_timeout``: hang up on a keep-alive
    connection idle that long (as uvicorn does after 5 s).
    """

    def __init__(
        self,
        delay: float = 0.0,
        stall_after: int | None = None,
        stall_s: float = 0.0,
        overload_every: int = 0,
        close_connection: bool = False,
        idle_timeout: float | None = None,
    ) -> None:
        self.delay = delay
        self.stall_after = stall_after
        self.stall_s = stall_s
        self.overload_every = overload_every
        self.close_connection = close_connection
        self.idle_timeout = idle_timeout
        self.connections = 0
        self.stall_until = 0.0
        self.arrivals: list[float] = []
        self.bodies: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeServer:
        self._thread.start()
        assert self._ready.wait(5), "fake server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        async with asyncio.timeout(self.idle_timeout):
            if not await reader.readline():
                return False
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        now = time.perf_counter()
        n = len(self.arrivals)
        self.arrivals.append(now)
        self.bodies.append(json.loads(body))
        if n == self.stall_after:
            self.stall_until = now + self.stall_s
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        start = max(now, self.stall_until)
        await asyncio.sleep(start + self.delay - time.perf_counter())
        self.in_flight -= 1
        if self.overload_every and (n + 1) % self.overload_every == 0:
            payload = b'{"detail":"overloaded"}'
            head = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
        else:
            req = self.bodies[n]
            payload = json.dumps(
                {
                    "model": req["model"],
                    "fragment": "",
                    "suggestions": [{"word": "the", "prob": 0.5}],
                    "completion": None,
                    "timing_ms": {"queue": 1.0, "compute": 2.0, "total": 3.0},
                }
            ).encode()
            head = "HTTP/1.1 200 OK\r\n"
        if self.close_connection:
            head += "Connection: close\r\n"
        head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        writer.write(head.encode() + payload)
        await writer.drain()
        return not self.close_connection


def _run(server_url: str, **overrides: object) -> dict:
    cfg = LoadConfig(url=server_url, warmup=0.0, arrivals="constant", seed=0, timeout=5.0)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return asyncio.run(run_load(cfg))


# --------------------------------------------------------------------------- percentiles


def test_percentiles_nearest_rank_hand_computed() -> None:
    samples = [7.0, 1.0, 9.0, 3.0, 5.0, 10.0, 2.0, 8.0, 4.0, 6.0]  # 1..10, shuffled
    # rank = ceil(q/100 * 10): p0 -> 1 (min), p25 -> 3, p50 -> 5, p90 -> 9, p99 -> 10
    assert percentiles(samples, [0, 25, 50, 90, 99, 100]) == {
        0: 1.0,
        25: 3.0,
        50: 5.0,
        90: 9.0,
        99: 10.0,
        100: 10.0,
    }
    thousand = list(range(1, 1001))
    # 99.9% of 1000 is exactly rank 999 (no float round-up to 1000); p99 is rank 990.
    assert nearest_rank(99.9, 1000) == 999
    assert percentiles(thousand, [99, 99.9]) == {99: 990, 99.9: 999}
    assert percentiles([42.0], [50, 99.9]) == {50: 42.0, 99.9: 42.0}
    s = summarize([1.0, 2.0, 3.0, 10.0])
    assert s == {
        "count": 4,
        "p50": 2.0,
        "p90": 10.0,
        "p99": 10.0,
        "p99.9": 10.0,
        "max": 10.0,
        "min": 1.0,
        "mean": 4.0,
    }
    with pytest.raises(ValueError):
        percentiles([], [50])
    with pytest.raises(ValueError):
        percentiles([1.0], [101])
    assert summarize([])["p99"] is None


# --------------------------------------------------------------------------- workloads


def test_schedules_are_fixed_up_front() -> None:
    assert constant_schedule(50, 1.0) == [i / 50 for i in range(50)]
    a = poisson_schedule(1000, 10.0, random.Random(1))
    assert a == poisson_schedule(1000, 10.0, random.Random(1))
    assert a == sorted(a) and a[0] == 0.0 and a[-1] < 10.0
    assert 9600 < len(a) < 10400  # mean 10000, sd 100


def test_long_context_workload_sends_about_1500_characters_cut_after_a_word() -> None:
    long_doc = " ".join(f"word{i}" for i in range(600))  # ~4,700 characters
    docs = [long_doc, "too short to use"]
    plan = build_plan("cold-long", docs, rate=50, duration=1.0, seed=1)
    assert plan and all(long_doc.startswith(r.text) for r in plan)
    for r in plan:
        assert 1400 <= len(r.text) <= 1500 and r.text.endswith(" ") and (r.k, r.max_words) == (3, 0)
    with pytest.raises(ValueError, match="longer than"):
        build_plan("cold-long", ["too short to use"], rate=50, duration=1.0)


def test_cold_and_phrase_prefixes_end_at_word_boundary() -> None:
    docs = list(BUILTIN_PARAGRAPHS)
    for workload, max_words in (("cold", 0), ("phrase", 5)):
        plan = build_plan(workload, docs, rate=100, duration=2.0, warmup=0.5, seed=3)
        assert plan and [r.at for r in plan] == sorted(r.at for r in plan)
        assert any(r.warmup for r in plan) and not all(r.warmup for r in plan)
        for r in plan:
            assert r.text.endswith(" ") and not r.text.endswith("  ")
            assert MIN_PREFIX_WORDS <= len(r.text.split()) <= MAX_PREFIX_WORDS
            assert any(d.startswith(r.text) for d in docs)
            assert (r.k, r.max_words) == (3, max_words)
            assert r.warmup == (r.at < 0.5)
    # same seed, same texts, whatever the arrival process
    a = build_plan("cold", docs, rate=50, duration=1.0, seed=7, arrivals="constant")
    b = build_plan("cold", docs, rate=50, duration=1.0, seed=7, arrivals="poisson")
    n = min(len(a), len(b))
    assert [r.text for r in a[:n]] == [r.text for r in b[:n]]


def test_typing_requests_extend_previous_by_one_character() -> None:
    docs = list(BUILTIN_PARAGRAPHS)
    plan = typing_plan(docs, typists=5, duration=10.0, rng=random.Random(0), warmup=1.0, start="empty")
    assert [r.at for r in plan] == sorted(r.at for r in plan)
    by_typist: dict[int, list] = defaultdict(list)
    for r in plan:
        by_typist[r.typist].append(r)
    assert set(by_typist) == set(range(5))
    for reqs in by_typist.values():
        assert len(reqs[0].text) == 1
        for prev, cur in itertools.pairwise(reqs):
            assert cur.text == prev.text + cur.text[-1]  # exactly one more character
            assert 0.15 - 1e-9 <= cur.at - prev.at <= 0.30 + 1e-9
            assert (cur.k, cur.max_words) == (3, 0)
    # fragment completion is exercised: many keystrokes end mid-word
    assert sum(not r.text.endswith(" ") for r in plan) > len(plan) / 2
    # total rate is set by the typists (~4.44 req/s each), not by --rate
    assert 5 * 10 / 0.30 <= len(plan) <= 5 * 10 / 0.15
    p1 = build_plan("typing", docs, rate=1, duration=2.0, typists=3, seed=1)
    p2 = build_plan("typing", docs, rate=999, duration=2.0, typists=3, seed=1, arrivals="constant")
    assert p1 == p2
    assert typists_for_rate(89) == 20


def test_typists_join_over_the_warm_up_not_all_at_once() -> None:
    """Each typist's first request reads its whole prefix cold: spread over the warm-up, as a load
    test ramps its users up, they do not arrive as one burst whose backlog a stateful server would
    still be working off when measurement starts; every typist is typing by then."""
    def first_requests(plan: list) -> list[float]:
        firsts: dict[int, float] = {}
        for r in plan:  # sorted by time
            firsts.setdefault(r.typist, r.at)
        return list(firsts.values())

    docs = list(BUILTIN_PARAGRAPHS)
    plan = typing_plan(docs, typists=60, duration=12.0, rng=random.Random(0), warmup=2.0)
    firsts = first_requests(plan)
    assert len(firsts) == 60 and max(firsts) < 2.0
    assert max(firsts) - min(firsts) > 1.5  # spread over the warm-up, not one gap
    assert sum(at < 0.3 for at in firsts) < 20
    assert all(r.warmup == (r.at < 2.0) for r in plan)
    # Without a warm-up they still start within one keystroke gap, out of lock-step.
    assert max(first_requests(typing_plan(docs, typists=20, duration=3.0, rng=random.Random(0)))) <= 0.3


def test_typing_restarts_a_finished_document() -> None:
    plan = typing_plan(["ab"], typists=1, duration=2.0, rng=random.Random(0))
    assert [r.text for r in plan[:5]] == ["a", "ab", "a", "ab", "a"]


def test_typists_start_after_a_cold_style_prefix_by_default() -> None:
    """Each document is typed on from a 5-40-word prefix (the cold workload's contexts),
    one character a keystroke, so contexts are as long as the cold workload's from the first
    keystroke on, not the first few words of every document."""
    doc = " ".join(f"w{i}" for i in range(100))
    plan = build_plan("typing", [doc], rate=1, duration=30.0, typists=4, seed=3)
    by_typist: dict[int, list] = defaultdict(list)
    for r in plan:
        by_typist[r.typist].append(r)
    firsts = [reqs[0].text for reqs in by_typist.values()]
    for first in firsts:
        typed = first[:-1]  # the box held this when the typist started
        assert typed.endswith(" ") and doc.startswith(first)
        assert 5 <= len(typed.split()) <= 40
    assert len(set(firsts)) > 1  # drawn, not fixed
    for reqs in by_typist.values():
        for prev, cur in itertools.pairwise(reqs):
            assert cur.text == prev.text + cur.text[-1] or len(cur.text) < len(prev.text)  # next char, or a new doc
    # a document too short for a 5-word prefix is typed from the start
    assert typing_start("a b c", random.Random(0)) == 0
    with pytest.raises(ValueError, match="typing start"):
        typing_plan([doc], typists=1, duration=1.0, rng=random.Random(0), start="middle")


def test_every_workload_can_send_each_documents_subject(tmp_path: Path) -> None:
    """Subjects go with the requests drawn from their e-mail; the texts and times stay the same."""
    docs = list(BUILTIN_PARAGRAPHS)
    subjects = [f"subject {i}" for i in range(len(docs))]
    long_docs = [d * 8 for d in docs]
    for workload in WORKLOADS:
        texts = long_docs if workload == "cold-long" else docs
        plain = build_plan(workload, texts, rate=50, duration=2.0, typists=3, seed=2)
        with_subjects = build_plan(workload, texts, rate=50, duration=2.0, typists=3, seed=2, subjects=subjects)
        assert [(r.at, r.text) for r in plain] == [(r.at, r.text) for r in with_subjects]
        for r in with_subjects:
            assert texts[int(r.subject.split()[1])].startswith(r.text)
            assert r.payload("gru-email")["subject"] == r.subject
        assert "subject" not in plain[0].payload("gru-email")
    with pytest.raises(ValueError, match="subjects for"):
        build_plan("cold", docs, rate=50, duration=1.0, subjects=subjects[:2])
    # Subjects are read from an e-mail corpus, in the order of its documents.
    corpus = tmp_path / "mail.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in [
        {"text": "first message body here", "subject": "Lunch", "split": "test"},
        {"text": "a message without a subject line", "split": "test"},
        {"text": "a training message", "subject": "Other", "split": "train"}]))
    assert load_documents(corpus) == ["first message body here", "a message without a subject line"]
    assert load_subjects(corpus) == ["Lunch", ""]
    plain_text = tmp_path / "reviews.txt"
    plain_text.write_text("no subjects in here at all\n")
    with pytest.raises(ValueError, match="subject"):
        load_subjects(plain_text)
    with pytest.raises(ValueError, match="e-mail corpus"):
        LoadConfig(workload="cold", subjects=True).validate()


def test_corpus_is_read_through_training_data(tmp_path: Path) -> None:
    corpus = tmp_path / "held_out.txt"
    corpus.write_text(
        "one two three four five six seven\n\nalpha beta gamma delta epsilon zeta eta\n"
    )
    assert load_documents(corpus) == [
        "one two three four five six seven",
        "alpha beta gamma delta epsilon zeta eta",
    ]
    assert load_documents(corpus, max_docs=1) == ["one two three four five six seven"]


# --------------------------------------------------------------------------- open loop


def test_send_rate_does_not_shrink_against_slow_server() -> None:
    """50 req/s for 1 s against a 200 ms server: all 50 go out on schedule, ~10 in flight."""
    with FakeServer(delay=0.2) as srv:
        result = _run(srv.url, rate=50, duration=1.0)
    assert result["requests"]["measured"] == 50
    assert result["status_counts"] == {"200": 50}
    assert len(srv.arrivals) == 50
    # arrival times at the server follow the schedule (a closed loop would take >= 10 s); one
    # stall of the test machine may delay a few of them, never the run as a whole
    first = srv.arrivals[0]
    late = [(i, round(t - first, 3)) for i, t in enumerate(srv.arrivals) if abs((t - first) - i / 50) >= 0.1]
    assert len(late) <= 5, late
    assert srv.arrivals[-1] - first < 49 / 50 + 0.3
    assert srv.max_in_flight >= 5
    lat = result["latency_ms_ok"]
    assert lat["count"] == 50 and lat["p50"] >= 200 and lat["max"] < 600
    assert result["schedule_lag_ms"]["max"] < 100
    thr = result["throughput"]
    assert thr["offered_rps"] == 50 and thr["sent_rps"] > 45
    assert result["server_timing_ms"]["queue"]["p50"] == 1.0
    assert result["server_timing_ms"]["compute"]["max"] == 2.0
    assert all(b["model"] == "gru" and b["k"] == 3 and b["max_words"] == 0 for b in srv.bodies)
    json.dumps(result)  # JSON-ready


def test_server_stall_shows_in_latency_measured_from_intended_time() -> None:
    """A 500 ms freeze at request 10 (t=0.2 s): requests sent into it wait it out."""
    with FakeServer(delay=0.01, stall_after=10, stall_s=0.5) as srv:
        result = _run(srv.url, rate=50, duration=1.0)
    assert result["status_counts"] == {"200": 50}
    intended = result["samples"]["intended_s"]
    latency = result["samples"]["latency_ms"]
    # the generator kept sending during the stall: ~25 requests arrived inside it
    stall_start = srv.arrivals[10]
    inside = [t for t in srv.arrivals if stall_start <= t < stall_start + 0.5]
    assert len(inside) >= 20
    assert result["schedule_lag_ms"]["max"] < 100
    # the request that hit the stall first waited ~500 ms; later ones less, linearly
    assert latency[10] >= 480
    for i in range(11, 30):
        expected = latency[10] - (intended[i] - intended[10]) * 1e3
        assert abs(latency[i] - expected) < 60, (i, latency[i], expected)
    # before and well after the stall, latency is just the server's 10 ms
    assert max(latency[:9]) < 100 and max(latency[40:]) < 100
    assert result["latency_ms_ok"]["max"] >= 480
    assert result["latency_ms_ok"]["p90"] >= 200


def test_generator_queueing_counts_as_latency_and_is_flagged() -> None:
    """One connection, 100 ms server, 40 req/s: the generator must fall behind and say so."""
    with FakeServer(delay=0.1) as srv:
        result = _run(srv.url, rate=40, duration=0.25, concurrency_limit=1)
    assert result["status_counts"] == {"200": 10}
    assert srv.max_in_flight == 1
    assert result["behind_schedule"] is True
    assert any("connection slots" in r for r in result["behind_schedule_reasons"])
    assert any("send lag" in r for r in result["behind_schedule_reasons"])
    # latency from intended time grows with the queue; service time stays ~100 ms
    assert result["latency_ms_ok"]["max"] >= 600
    assert result["service_time_ms_ok"]["p50"] < 300
    assert result["schedule_lag_ms"]["max"] >= 500
    assert result["throughput"]["sent_rps"] < 20
    assert "BEHIND SCHEDULE" in format_summary(result)


def test_503_with_retry_after_and_connection_errors_are_counted() -> None:
    with FakeServer(overload_every=2) as srv:
        result = _run(srv.url, rate=50, duration=0.4)
    assert result["status_counts"] == {"200": 10, "503": 10}
    assert result["overload"]["503"] == 10
    assert result["overload"]["503_with_retry_after"] == 10
    assert result["overload"]["retry_after_values"] == {"1": 10}
    assert result["latency_ms"]["count"] == 20 and result["latency_ms_ok"]["count"] == 10

    dead = _run(f"http://127.0.0.1:{free_port()}", rate=20, duration=0.1)
    assert dead["status_counts"] == {"connect_error": 2}
    assert dead["latency_ms_ok"]["count"] == 0 and dead["latency_ms_ok"]["p99"] is None
    assert "connect_error=2" in format_summary(dead)


def test_cli_writes_json_and_prints_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.json"
    with FakeServer(delay=0.005) as srv:
        rc = loadgen.main(
            [
                "--url",
                srv.url,
                "--model",
                "lstm",
                "--workload",
                "phrase",
                "--rate",
                "50",
                "--duration",
                "0.3",
                "--warmup",
                "0.1",
                "--arrivals",
                "constant",
                "--out",
                str(out),
            ]
        )
    assert rc == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and printed[0].startswith("lstm phrase: offered 50.0 req/s")
    result = json.loads(out.read_text())
    assert result["requests"] == {
        "planned": 20,
        "warmup": 5,
        "measured": 15,
        "sent": 15,
        "http_responses": 15,
        "ok": 15,
    }
    assert result["status_counts_warmup"] == {"200": 5}
    assert len(srv.bodies) == 20
    assert all(b["model"] == "lstm" and b["max_words"] == 5 for b in srv.bodies)
    assert len(result["samples"]["latency_ms"]) == 20
    for key in ("process_time_s", "rusage_user_s", "cpu_fraction_of_core", "wall_s"):
        assert key in result["generator_cpu"]
    assert {"p50", "p99", "max"} <= set(result["schedule_lag_ms"])
    assert isinstance(result["behind_schedule"], bool)


def test_run_load_accepts_a_dict_and_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown config keys"):
        asyncio.run(run_load({"rate": 10, "durration": 1}))
    with pytest.raises(ValueError, match="workload"):
        asyncio.run(run_load({"workload": "bogus"}))


def test_keepalive_transport_reuses_and_recovers_connections() -> None:
    """Connections are reused; server hang-ups (Connection: close, idle timeout) cost nothing."""
    with FakeServer(delay=0.01) as srv:
        reused = _run(srv.url, rate=50, duration=0.4)
    assert reused["status_counts"] == {"200": 20}
    assert reused["connections_opened"] == srv.connections <= 3
    with FakeServer(close_connection=True) as srv:
        closed = _run(srv.url, rate=50, duration=0.2)
    assert closed["status_counts"] == {"200": 10}
    assert closed["connections_opened"] == srv.connections == 10
    with FakeServer(idle_timeout=0.03) as srv:
        idle = _run(srv.url, rate=10, duration=0.5)
    assert idle["status_counts"] == {"200": 5}
    assert srv.connections == 5


def test_stock_httpcore_transport_still_works() -> None:
    with FakeServer(overload_every=2) as srv:
        result = _run(srv.url, rate=50, duration=0.2, transport="httpcore")
    assert result["status_counts"] == {"200": 5, "503": 5}
    assert result["overload"]["503_with_retry_after"] == 5
    assert result["connections_opened"] is None


def test_locustfile_is_valid_python_with_a_cold_user() -> None:
    source = (REPO / "bench" / "locustfile.py").read_text()
    tree = ast.parse(source)
    assert any(isinstance(n, ast.ClassDef) and n.name == "ColdUser" for n in tree.body)


def test_locustfile_user_posts_cold_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a stand-in ``locust`` module, the user builds contract-shaped cold requests."""
    stub = types.ModuleType("locust")
    stub.HttpUser = object  # type: ignore[attr-defined]
    stub.between = lambda lo, hi: (lo, hi)  # type: ignore[attr-defined]
    stub.task = lambda fn: fn  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "locust", stub)
    monkeypatch.delitem(sys.modules, "bench.locustfile", raising=False)
    import bench.locustfile as lf

    calls: list[tuple[str, dict]] = []
    outcomes: list[str] = []

    class FakeResponse:
        status_code = 503
        headers: typing.ClassVar[dict[str, str]] = {"Retry-After": "1"}

        def success(self) -> None:
            outcomes.append("ok")

        def failure(self, why: str) -> None:
            outcomes.append(why)

        def __enter__(self) -> FakeResponse:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    class FakeClient:
        def post(self, path: str, json: dict, **kwargs: object) -> FakeResponse:
            calls.append((path, json))
            return FakeResponse()

    user = lf.ColdUser()
    user.client = FakeClient()
    user.on_start()
    user.complete()
    monkeypatch.delitem(sys.modules, "bench.locustfile")
    ((path, payload),) = calls
    assert path == "/v1/complete"
    assert payload["model"] == "gru" and payload["k"] == 3 and payload["max_words"] == 0
    assert payload["text"].endswith(" ")
    assert outcomes == ["503 overloaded (Retry-After: 1)"]


def test_answered_all_counts_warm_up_answers_too():
    """Server CPU over a run is spent on warm-up requests as well: CPU per request divides by both."""
    result = {"status_counts": {"200": 90, "503": 4}, "status_counts_warmup": {"200": 10}}
    assert answered_all(result) == 100
    assert answered_all({"status_counts": {"503": 3}}) == 0

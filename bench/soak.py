"""Soak: a long mixed load at a fixed rate, with the server's memory sampled every second.

    python -m bench.soak --minutes 10 --corpus ../shared/data/aeslc-enron-email.jsonl.gz \
        --out bench/results/soak.json

Without ``--rate`` it first offers the mix far beyond capacity (``--probe-rate``) to a fresh
server for ``--probe-seconds`` and soaks at ``--load-share`` (70%) of the rate it answered.

Starts ``python -m app`` with the bundled models (all four, as served by default), pinned to
``--server-cpus``, and sends an open-loop Poisson mix: cold prefixes, typing keystrokes,
phrase requests (``max_words=5``) spread over every served model, and hostile requests (an
oversized body, a lone surrogate, broken JSON, an unknown and an over-long model name, wrong
types, a body that stops halfway). Every valid request carries an ``X-Session-Id`` as the demo page's would: one per
typist, a fresh one per cold or phrase request, so the prefix caches fill as in production.
With ``--subjects`` (an e-mail corpus) every valid request also carries its e-mail's subject,
as the demo page sends it.
Every second it reads the server's resident set size from ``/proc/<pid>/status`` and its open
files (sockets included) from ``/proc/<pid>/fd``, and every
five seconds the prefix caches' bytes from ``/metrics``.

Reports: RSS over time (PNG), its growth after the first minute and in the second half, status
counts by kind, p50/p99/p99.9/max of the valid requests' answers (all, and by kind) and the
server's refusals by the rule that refused (``nextword_overloaded_total`` at the end). Valid
requests must get only 200 or 503 + Retry-After; hostile ones only 4xx. ``--server-dir`` serves
another checkout's code (a worktree) and ``--server-env`` other settings under this load generator,
for an A/B of the served code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench import REPO
from bench.provenance import git_info
from bench.servers import app_server, free_port, inherited_env
from bench.stats import rounded
from bench.stats import summarize as latency_summary
from bench.transport import KeepAliveTransport
from bench.workloads import PlannedRequest, load_documents, load_subjects, typing_start, usable_documents, word_prefix

log = logging.getLogger("bench.soak")

HOSTILE: list[tuple[str, bytes]] = [
    ("oversized", b'{"text": "' + b"a" * (1 << 20) + b'"}'),
    ("surrogate", b'{"text": "hi \\ud800 there "}'),
    ("broken_json", b'{"text": "unterminated'),
    ("unknown_model", b'{"text": "Thanks ", "model": "transformer"}'),
    ("long_model", json.dumps({"text": "a", "model": "m" * 5000}).encode()),
    ("wrong_type", b'{"text": "a", "k": "3"}'),
    # Sent raw: a head declaring 60 bytes, then half of them and silence (a client that lost its network).
    ("stalled_body", b'{"text": "Thanks for the'),
]
HOSTILE_KINDS = frozenset(name for name, _ in HOSTILE)
#: Raw request head of the stalled upload.
STALLED_HEAD = (b"POST /v1/complete HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
                b"Content-Length: 60\r\n\r\n")


async def stalled_upload(url: str, part: bytes) -> str:
    """Send a head and part of its body, then wait: the status the server answers, or "closed"."""
    where = httpx.URL(url)
    reader, writer = await asyncio.open_connection(where.host, where.port)
    try:
        writer.write(STALLED_HEAD + part)
        await writer.drain()
        reply = await reader.read()  # until the server closes the connection
    finally:
        writer.close()
    return reply.split(b" ", 2)[1].decode() if reply.startswith(b"HTTP/1.1 ") else "closed"


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _body(text: str, model: str, subject: str, max_words: int = 0) -> bytes:
    """A ``/v1/complete`` body, as the load generator writes it."""
    return json.dumps(PlannedRequest(0.0, text, max_words=max_words, subject=subject).payload(model)).encode()


def open_files(pid: int) -> int | None:
    """How many file descriptors (sockets included) the process holds: a connection leak shows here."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def plan_request(rng: random.Random, docs: list[tuple[str, str]], words: list[tuple[list[str], str]],
                 models: list[str], typists: dict[int, tuple[str, str, int]]) -> tuple[str, bytes, str | None]:
    """One request of the mix: (kind, JSON body, session key); documents are (subject, text)."""
    roll = rng.random()
    model = rng.choice(models)
    fresh_session = f"s{rng.getrandbits(64):016x}"
    if roll < 0.05:
        return (*rng.choice(HOSTILE), None)
    if roll < 0.40:
        doc_words, subject = rng.choice(words)
        return "cold", _body(word_prefix(doc_words, rng), model, subject), fresh_session
    if roll < 0.55:
        doc_words, subject = rng.choice(words)
        return "phrase", _body(word_prefix(doc_words, rng), model, subject, max_words=5), fresh_session
    typist = rng.randrange(20)
    subject, doc, pos = typists.get(typist) or (*rng.choice(docs), 0)
    if pos == 0 or pos >= len(doc):
        subject, doc = rng.choice(docs)
        pos = typing_start(doc, rng)
    typists[typist] = (subject, doc, pos + 1)
    return "typing", _body(doc[: pos + 1], models[typist % len(models)], subject), f"typist-{typist}"


def samples(metrics_text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample named ``name`` in a Prometheus exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    return [(sample.labels, sample.value) for family in text_string_to_metric_families(metrics_text)
            for sample in family.samples if sample.name == name]


def refusals(metrics_text: str) -> dict[str, float]:
    """Requests refused at admission, all backends together, by the rule that refused."""
    out: Counter[str] = Counter()
    for labels, value in samples(metrics_text, "nextword_overloaded_total"):
        out[labels["reason"]] += value
    return dict(out)


def cache_bytes(metrics_text: str) -> float:
    """The prefix caches' bytes, all backends together, from the Prometheus exposition."""
    return sum(value for _, value in samples(metrics_text, "nextword_prefix_cache_bytes"))


async def soak(url: str, pid: int, rate: float, seconds: float, docs: list[tuple[str, str]], models: list[str],
               seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    words = [(w, docs[i][0]) for i, w in usable_documents([d for _, d in docs]) if len(w) >= 7]
    if not words:
        raise ValueError("no document has 7 words or more")
    typists: dict[int, tuple[str, str, int]] = {}
    statuses: dict[str, Counter[str]] = {}
    latencies: dict[str, list[float]] = {}  # of the 200s, by kind
    retry_after_missing = 0
    rss: list[tuple[float, int]] = []
    cached: list[tuple[float, float]] = []
    files: list[tuple[float, int]] = []
    start = time.monotonic()
    pending: set[asyncio.Task[None]] = set()

    async def send(client: httpx.AsyncClient, kind: str, body: bytes, session: str | None) -> None:
        nonlocal retry_after_missing
        t0 = time.monotonic()
        headers = {"content-type": "application/json"} | ({"x-session-id": session} if session else {})
        try:
            if kind == "stalled_body":
                async with asyncio.timeout(60):  # the server's own limit is 10 s
                    status = await stalled_upload(url, body)
            else:
                async with asyncio.timeout(30):  # the transport has no timeouts of its own
                    r = await client.post(url + "/v1/complete", content=body, headers=headers)
                status = str(r.status_code)
                if r.status_code == 503 and "retry-after" not in r.headers:
                    retry_after_missing += 1
                if kind not in HOSTILE_KINDS and r.status_code == 200:
                    latencies.setdefault(kind, []).append((time.monotonic() - t0) * 1000)
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            status = f"error:{type(exc).__name__}"
        statuses.setdefault("hostile" if kind in HOSTILE_KINDS else kind, Counter())[status] += 1

    async def sample_memory(client: httpx.AsyncClient) -> None:
        tick = 0
        while time.monotonic() - start < seconds:
            value, fds = rss_kib(pid), open_files(pid)
            if value is not None:
                rss.append((round(time.monotonic() - start, 2), value))
            if fds is not None:
                files.append((round(time.monotonic() - start, 2), fds))
            if tick % 5 == 0:
                try:
                    async with asyncio.timeout(5):
                        r = await client.get(url + "/metrics")
                    cached.append((round(time.monotonic() - start, 2), cache_bytes(r.text)))
                except (httpx.HTTPError, TimeoutError):
                    pass
            tick += 1
            await asyncio.sleep(1.0)

    # The load generator's O(1) keep-alive transport: httpx's stock pool costs more CPU per
    # request the more connections it holds, and an overloaded server makes it hold many.
    async with httpx.AsyncClient(timeout=30, trust_env=False, transport=KeepAliveTransport()) as client:
        sampler = asyncio.create_task(sample_memory(client))
        next_at = 0.0
        while next_at < seconds:
            delay = start + next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            kind, body, session = plan_request(rng, docs, words, models, typists)
            task = asyncio.create_task(send(client, kind, body, session))
            pending.add(task)
            task.add_done_callback(pending.discard)
            next_at += rng.expovariate(rate)
        await asyncio.gather(*pending)
        await sampler
        refused: dict[str, float] | None = None  # None: the server did not say
        try:
            async with asyncio.timeout(5):
                refused = refusals((await client.get(url + "/metrics")).text)
        except (httpx.HTTPError, TimeoutError):
            log.warning("could not read the refusals from /metrics at the end")
    return {"statuses": {k: dict(v) for k, v in statuses.items()}, "latencies_ms_by_kind": latencies, "rss": rss,
            "cache_bytes": cached, "open_files": files, "retry_after_missing": retry_after_missing,
            "refused": refused}


def second_half_growth(rss: list[tuple[float, int]]) -> float | None:
    """The most the RSS rose in the run's second half, over its value at the middle.

    Bounded caches fill early, so a server that does not leak is flat by then; growth after the
    first minute alone cannot tell the caches filling from a leak.
    """
    if len(rss) < 2:
        return None
    middle = rss[-1][0] / 2
    half = [v for t, v in rss if t >= middle]
    return round(max(half) / half[0] - 1, 4)


def summarize(raw: dict[str, Any], rate: float, seconds: float) -> dict[str, Any]:
    rss = raw["rss"]
    after_first_minute = [v for t, v in rss if t >= 60] or [v for _, v in rss]
    baseline = after_first_minute[0] if after_first_minute else None
    by_kind = raw["latencies_ms_by_kind"]
    latency = rounded(latency_summary([v for values in by_kind.values() for v in values], (50, 99, 99.9)), 2)
    valid = {k: v for k, v in raw["statuses"].items() if k != "hostile"}
    valid_codes = Counter()
    for counts in valid.values():
        valid_codes.update(counts)
    return {
        "rate": rate,
        "seconds": seconds,
        "statuses": raw["statuses"],
        "valid_statuses": dict(valid_codes),
        "only_200_503_for_valid": set(valid_codes) <= {"200", "503"} and raw["retry_after_missing"] == 0,
        "hostile_only_4xx": all(k.startswith("4") for k in raw["statuses"].get("hostile", {})),
        "server_5xx": sum(n for counts in raw["statuses"].values() for k, n in counts.items() if k.startswith("5")
                          and k != "503"),
        "p50_ms": latency["p50"],
        "p99_ms": latency["p99"],
        # The tail a deadline cuts: a 504 is the one request in tens of thousands that the p99 hides.
        "p999_ms": latency["p99.9"],
        "max_ms": latency["max"],
        "latency_by_kind": {kind: rounded(latency_summary(values, (50, 99, 99.9)), 2)
                            for kind, values in sorted(by_kind.items())},
        "refused_by_reason": raw.get("refused"),
        "rss_mib_first": round(rss[0][1] / 1024, 1) if rss else None,
        "rss_mib_at_60s": round(baseline / 1024, 1) if baseline else None,
        "rss_mib_last": round(rss[-1][1] / 1024, 1) if rss else None,
        "rss_mib_max_after_60s": round(max(after_first_minute) / 1024, 1) if after_first_minute else None,
        "rss_growth_after_first_minute": round(max(after_first_minute) / baseline - 1, 4) if baseline else None,
        "rss_growth_second_half": second_half_growth(rss),
        "rss_samples": rss,
        "cache_mib_last": round(raw["cache_bytes"][-1][1] / 2**20, 1) if raw.get("cache_bytes") else None,
        "cache_bytes_samples": raw.get("cache_bytes", []),
        "open_files_max": max((n for _, n in raw.get("open_files", [])), default=None),
        "open_files_last": raw["open_files"][-1][1] if raw.get("open_files") else None,
        "open_files_samples": raw.get("open_files", []),
    }


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s[0] / 60 for s in summary["rss_samples"]]
    v = [s[1] / 1024 for s in summary["rss_samples"]]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(t, v, label="server RSS")
    cached = summary.get("cache_bytes_samples") or []
    if cached:
        ax.plot([c[0] / 60 for c in cached], [c[1] / 2**20 for c in cached], label="prefix caches")
    ax.axvline(1.0, color="grey", linestyle=":", label="first minute")
    ax.set(xlabel="minutes", ylabel="MiB", ylim=(0, max(v) * 1.1 if v else 1),
           title=f"soak at {summary['rate']:g} req/s: RSS growth after 1 min "
                 f"{100 * (summary['rss_growth_after_first_minute'] or 0):.1f}%")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def served_models(url: str) -> list[str]:
    return [m["name"] for m in httpx.get(url + "/v1/models", timeout=10).json()["models"]]


def saturation_probe(env: dict[str, str], out: Path, args: argparse.Namespace,
                     docs: list[tuple[str, str]]) -> dict[str, Any]:
    """The mix offered far beyond capacity on a fresh server: valid requests answered 200 per second."""
    server = app_server(env, free_port(), out.with_suffix(".probe.log"), "nextword-probe", args.server_cpus or None,
                        cwd=args.server_dir)
    with server:
        assert server.proc is not None
        models = served_models(server.base_url)
        raw = asyncio.run(soak(server.base_url, server.proc.pid, args.probe_rate, args.probe_seconds, docs, models,
                               args.seed + 1))
    answered = sum(counts.get("200", 0) for kind, counts in raw["statuses"].items() if kind != "hostile")
    sent = sum(sum(counts.values()) for kind, counts in raw["statuses"].items() if kind != "hostile")
    return {"offered_per_s": args.probe_rate, "seconds": args.probe_seconds, "valid_sent": sent,
            "answered_per_s": round(answered / args.probe_seconds, 1),
            "statuses": raw["statuses"]}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=None,
                   help="requests per second; default: --load-share of the rate a saturation probe measures")
    p.add_argument("--load-share", type=float, default=0.7, help="share of the saturating rate to soak at")
    p.add_argument("--probe-rate", type=float, default=300.0, help="offered rate of the saturation probe")
    p.add_argument("--probe-seconds", type=float, default=20.0)
    p.add_argument("--corpus", default=None, help="held-out documents (its test split)")
    p.add_argument("--max-docs", type=int, default=500)
    p.add_argument("--server-cpus", default="0", help="taskset list for the server ('' to not pin)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--server-dir", type=Path, default=REPO,
                   help="the checkout whose server is soaked (a worktree, for an A/B); default this one")
    p.add_argument("--server-env", action="append", default=[], metavar="NEXTWORD_VAR=VALUE",
                   help="a server setting (repeatable), e.g. NEXTWORD_GC_INTERVAL_MS=0")
    p.add_argument("--subjects", action="store_true",
                   help="send each e-mail's subject with its requests, as the demo page does (an e-mail --corpus)")
    p.add_argument("--out", required=True, help="JSON result; the RSS plot goes next to it (.png)")
    args = p.parse_args(argv)
    if args.subjects and args.corpus is None:
        p.error("--subjects needs an e-mail --corpus")
    texts = load_documents(args.corpus, args.max_docs)
    subjects = load_subjects(args.corpus, args.max_docs) if args.subjects else [""] * len(texts)
    docs = list(zip(subjects, texts, strict=True))
    env = inherited_env()
    env.update(NEXTWORD_THREADS=str(args.threads), NEXTWORD_LOG_LEVEL="warning", NEXTWORD_DRAIN_GRACE_S="0")
    for setting in args.server_env:
        name, eq, value = setting.partition("=")
        if not eq or not name.startswith("NEXTWORD_"):
            p.error(f"--server-env {setting!r} is not NEXTWORD_VAR=VALUE")
        env[name] = value
    out = Path(args.out)
    probe: dict[str, Any] | None = None
    rate = args.rate
    if rate is None:
        probe = saturation_probe(env, out, args, docs)
        rate = round(args.load_share * probe["answered_per_s"], 1)
        log.info("saturation probe: %s; soaking at %.1f req/s", probe, rate)
    server = app_server(env, free_port(), out.with_suffix(".server.log"), "nextword", args.server_cpus or None,
                        cwd=args.server_dir)
    url = server.base_url
    with server:
        assert server.proc is not None
        models = served_models(url)
        log.info("soak: %s at %.1f req/s for %.1f min over %s", url, rate, args.minutes, models)
        raw = asyncio.run(soak(url, server.proc.pid, rate, args.minutes * 60, docs, models, args.seed))
    summary = {**summarize(raw, rate, args.minutes * 60), "models": models, "saturation_probe": probe,
               "documents_with_subject": sum(1 for subject, _ in docs if subject),
               "git": git_info(), "server_git": git_info(args.server_dir),
               "command": "python -m bench.soak " + " ".join(argv if argv is not None else sys.argv[1:])}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1))
    plot(summary, out.with_suffix(".png"))
    log.info("%s", {k: v for k, v in summary.items() if k != "rss_samples"})
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where the server's core goes under load: py-spy samples of a pinned server, sorted into parts.

    python -m bench.profile --backend gru --rate 40 --out bench/results/profile_gru_40.json \\
        --corpus ../shared/data/aclImdb_v1.tar.gz

Starts ``python -m app`` as the sweep does (only ``--backend`` loaded, pinned to ``--server-cpus``
with one torch thread), offers it a workload (``--workload``, cold by default; typing is
served at about ``--rate`` by that many typists) through :mod:`bench.loadgen`
(open loop, from this process on ``--generator-cpus``), and meanwhile records the server with
``py-spy record --nonblocking --format raw`` (Python frames; the time inside a torch call is
charged to the Python line that made it). Each sample's stack is put in one part
(:func:`part_of`): waiting (the event loop in its poll, the engine waiting for work, idle
pool threads), the model's calls, the decoder, the prefix cache, the engine's own loop,
metrics, the HTTP path (uvicorn, Starlette, FastAPI, pydantic, the routers) or other.
The output names each part's share of the busy samples and of the wall time the profile
covered, next to the load run's latencies, so a miss can be read against where the time went.

Why this tool and not a flame graph alone: the sweep's bars are decided by the p99 at rates
where the core is far from saturated, so "how busy is the core, and with what" is the
question; the raw stacks are kept beside the summary (``--stacks``) for flame graphs.

py-spy is in the ``bench`` extra; it needs ptrace rights over the server (root, or
``kernel.yama.ptrace_scope = 0``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.configs import Target, nextword_env
from bench.loadgen import run_load
from bench.openloop import LoadConfig
from bench.provenance import git_info, machine_info, utc_now
from bench.servers import app_server, free_port, pin_this_process, pinned
from bench.workloads import WORKLOADS, load_documents, typists_for_rate

log = logging.getLogger(__name__)

#: Parts in the order they are reported; ``waiting`` is not counted as busy.
PARTS = ("model calls", "decoder", "prefix cache", "engine loop", "metrics", "HTTP path", "other", "waiting")

#: A sample whose innermost frame is one of these is a thread waiting for something to do.
_WAITING_LEAVES = (
    "Runner.run (asyncio/runners.py",  # uvloop's poll: the event loop thread with nothing to run
    "Condition.wait (threading.py",  # the engine worker waiting for requests
    "_worker (concurrent/futures/thread.py",  # idle threads of asyncio.to_thread's pool
    "Event.wait (threading.py",
    "Thread.join (threading.py",
    "select (selectors.py",
)

#: (part, substrings of a frame), checked from the innermost frame outwards: the first
#: frame that matches decides the sample's part.
_FRAME_PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("model calls", ("run_calls (model/batching.py",)),
    ("prefix cache", ("model/prefix_cache.py",)),
    ("metrics", ("prometheus_client/", "app/metrics.py")),
    ("decoder", ("model/decoder.py", "model/suggest.py", "model/text.py", "model/tokenizer.py")),
    ("engine loop", ("app/engine.py", "app/scheduler.py")),
    ("HTTP path", ("uvicorn/", "starlette/", "fastapi/", "pydantic", "app/routers/", "app/main.py",
                   "json/", "httptools", "h11/", "asyncio/", "anyio/", "granian/", "app/limits.py", "app/deps.py")),
)


def parse_collapsed(lines: Iterable[str]) -> list[tuple[list[str], int]]:
    """py-spy's ``--format raw`` output (``frame;frame;... count`` per line, outermost first)."""
    stacks = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        stacks.append((stack.split(";"), int(count)))
    return stacks


def part_of(frames: Sequence[str]) -> str:
    """The part one sample belongs to (see the module docstring); ``frames`` outermost first."""
    if not frames:
        return "other"
    if frames[-1].startswith(_WAITING_LEAVES):
        return "waiting"
    for frame in reversed(frames):
        for part, needles in _FRAME_PARTS:
            if any(n in frame for n in needles):
                return part
    return "other"


#: The parts that are the model's work: everything else busy is the cost of serving it.
MODEL_PARTS = ("model calls", "decoder", "prefix cache")


def summarize_samples(stacks: Sequence[tuple[list[str], int]], rate_hz: float, seconds: float,
                      requests: int | None = None) -> dict[str, Any]:
    """Samples per part, each part's share of the busy samples and of the covered wall time.

    ``busy_fraction_of_wall`` is busy samples / (rate x seconds): with the server pinned to one
    core and one thread doing work at a time (the GIL), this is about how busy that core was.
    With ``requests`` (answered in the covered time), each part's CPU milliseconds per request
    too, and ``serving_ms_per_request``: the busy time outside :data:`MODEL_PARTS` (HTTP path,
    metrics, engine loop, other) per request, the figure the HTTP-path work is measured by.
    """
    counts: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    for frames, n in stacks:
        part = part_of(frames)
        counts[part] += n
        if part != "waiting" and frames:
            leaves[frames[-1]] += n
    busy = sum(n for part, n in counts.items() if part != "waiting")
    possible = rate_hz * seconds
    summary: dict[str, Any] = {
        "samples": sum(counts.values()),
        "busy_samples": busy,
        "busy_fraction_of_wall": round(busy / possible, 4) if possible else None,
        "parts": {
            part: {
                "samples": counts.get(part, 0),
                "share_of_busy": round(counts.get(part, 0) / busy, 4) if busy and part != "waiting" else None,
                "fraction_of_wall": round(counts.get(part, 0) / possible, 4) if possible else None,
            }
            for part in PARTS
        },
        "top_busy_lines": [{"frame": frame, "samples": n} for frame, n in leaves.most_common(15)],
    }
    if requests:
        per_request = {part: round(counts.get(part, 0) / rate_hz * 1000 / requests, 4) for part in PARTS}
        summary["requests"] = requests
        summary["ms_per_request"] = per_request
        summary["serving_ms_per_request"] = round(
            sum(v for part, v in per_request.items() if part not in (*MODEL_PARTS, "waiting")), 4)
    return summary


def record(pid: int, seconds: float, rate_hz: int, out: Path, cpus: str | None) -> subprocess.Popen[bytes]:
    """Start ``py-spy record`` on ``pid`` (returns at once; wait on the process)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    argv = [exe, "record", "--pid", str(pid), "--rate", str(rate_hz), "--duration", str(round(seconds)),
            "--format", "raw", "--nonblocking", "--output", str(out)]
    return subprocess.Popen(pinned(argv, cpus), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def profile(opts: argparse.Namespace) -> dict[str, Any]:
    pin_this_process(opts.generator_cpus)
    docs = load_documents(opts.corpus, opts.max_docs)
    target = Target("nextword", opts.backend, opts.workload)
    port = free_port()
    env = nextword_env(target, port, opts.threads)
    logdir = Path(tempfile.mkdtemp(prefix="nextword-profile-"))
    stacks_path = Path(opts.stacks) if opts.stacks else logdir / "stacks.txt"
    server = app_server(env, port, logdir / "server.log", f"nextword-{opts.backend}", opts.server_cpus,
                        cwd=Path(opts.app_dir).resolve())
    url = server.base_url
    with server:
        assert server.proc is not None
        cfg = LoadConfig(url=url, model=opts.backend, workload=opts.workload, rate=opts.rate,
                         duration=opts.seconds, warmup=opts.warmup, seed=opts.seed, corpus=opts.corpus,
                         max_docs=opts.max_docs, typists=typists_for_rate(opts.rate), keep_samples=False)

        async def load_and_profile() -> tuple[dict[str, Any], str]:
            task = asyncio.create_task(run_load(cfg, documents=docs))
            await asyncio.sleep(opts.warmup)  # profile the measured part only
            # ``taskset`` execs the server in place: the group leader is the Python process.
            spy = record(server.proc.pid, opts.seconds, opts.rate_hz, stacks_path, opts.generator_cpus)
            result = await task
            out, _ = await asyncio.to_thread(spy.communicate, None, opts.seconds + 30)
            if spy.returncode != 0:
                raise RuntimeError(f"py-spy failed ({spy.returncode}): {out.decode(errors='replace')[-2000:]}")
            return result, out.decode(errors="replace")

        result, spy_log = asyncio.run(load_and_profile())
    # The profile covers the measured part of the load run: its 200s are the requests it answered.
    answered = result["status_counts"].get("200", 0)
    summary = summarize_samples(parse_collapsed(stacks_path.read_text().splitlines()), opts.rate_hz, opts.seconds,
                                answered)
    return {
        "command": "python -m bench.profile " + " ".join(opts.argv),
        "date": utc_now(),
        "git": git_info(),
        "machine": machine_info(),
        "backend": opts.backend,
        "workload": opts.workload,
        "rate": opts.rate,
        "seconds": opts.seconds,
        "sampling_hz": opts.rate_hz,
        "server_cpus": opts.server_cpus,
        "threads": opts.threads,
        "load": {
            "offered_rps": result["throughput"]["offered_rps"],
            "ok_rps": result["throughput"]["ok_rps"],
            "latency_ms_ok": result["latency_ms_ok"],
            "status_counts": result["status_counts"],
            "behind_schedule": result["behind_schedule"],
        },
        "profile": summary,
        "app_dir": opts.app_dir,
        "stacks": str(stacks_path) if opts.stacks else None,
        "py_spy": spy_log.strip().splitlines()[-2:] if spy_log.strip() else [],
    }


def format_summary(res: Mapping[str, Any]) -> str:
    p = res["profile"]
    lat = res["load"]["latency_ms_ok"]
    lines = [f"{res['backend']} {res.get('workload', 'cold')} at {res['rate']:g} req/s: "
             f"p50 {lat['p50']} p99 {lat['p99']} ms; "
             f"core busy {100 * p['busy_fraction_of_wall']:.0f}% of {res['seconds']:g} s ({p['busy_samples']} samples)"]
    for part, v in p["parts"].items():
        if part == "waiting":
            continue
        per = (p.get("ms_per_request") or {}).get(part)
        lines.append(f"  {part:13s} {100 * (v['share_of_busy'] or 0):5.1f}% of busy, "
                     f"{100 * (v['fraction_of_wall'] or 0):5.1f}% of wall" + (f", {per:.3f} ms/request" if per else ""))
    if p.get("serving_ms_per_request") is not None:
        lines.append(f"  serving (outside the model's parts): {p['serving_ms_per_request']:.3f} ms CPU per request")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="gru", help="a model name (model/artifacts/NAME.pt)")
    p.add_argument("--workload", choices=WORKLOADS, default="cold")
    p.add_argument("--rate", type=float, default=40.0, help="offered requests/s (typing: typists for about this)")
    p.add_argument("--seconds", type=float, default=20.0, help="profiled (and measured) seconds")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--rate-hz", type=int, default=100, help="py-spy samples per second")
    p.add_argument("--corpus", help="held-out text (aclImdb test split); default: built-in paragraphs")
    p.add_argument("--max-docs", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--server-cpus", default="0")
    p.add_argument("--generator-cpus", default="1")
    p.add_argument("--stacks", help="keep py-spy's collapsed stacks here (flame graph input)")
    p.add_argument("--app-dir", default=".", help="the checkout whose app is served (a worktree of another commit)")
    p.add_argument("--out", help="write the JSON summary here")
    args = p.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness probe otherwise
    res = profile(args)
    log.info("%s", format_summary(res))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
        log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

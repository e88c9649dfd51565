"""Replicas behind nginx, here as local processes: session-hash vs round-robin routing, and a
replica killed under load.

    python -m bench.fleet --replicas 2 --corpus ../shared/data/aeslc-enron-email.jsonl.gz \
        --out bench/results/fleet.json

Each replica is ``python -m app`` serving one model (``--model``, default ``gru-email``) with one
torch thread, pinned to its own core; nginx renders ``deploy/nginx/nginx.conf`` with the
replicas' ports (round robin: the ``hash`` line removed). The load is the typing workload,
one session per typist (``X-Session-Id``).

1. **Routing**, for each mode on fresh replicas: a ladder of typing rates; per rate p50/p99 and
   the prefix-cache hit rate summed over the replicas; the max rate at p99 <= ``--slo-ms``.
2. **Kill** (hash routing): a fixed rate for ``--kill-seconds``; one replica is SIGKILLed at a
   third of it and restarted at two thirds. Status counts, p99 per second, how long until p99
   is back under the SLO, and the share of sessions that moved (probed through nginx, which
   names the replica in ``X-Upstream``) while it was down and after it came back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench import REPO
from bench.loadgen import run_load
from bench.openloop import LoadConfig
from bench.run_summary import answered_all
from bench.server_metrics import metrics_delta, scrape_metrics
from bench.servers import ServerProcess, app_server, cpu_seconds, free_port, inherited_env
from bench.stats import percentiles
from bench.workloads import MEAN_KEYSTROKE_GAP_S, load_documents

log = logging.getLogger("bench.fleet")
NGINX_CONF = REPO / "deploy" / "nginx" / "nginx.conf"


def render_nginx(ports: list[int], listen: int, workdir: Path, routing: str) -> Path:
    """deploy/nginx/nginx.conf with local upstreams, port and paths; ``routing`` hash or roundrobin."""
    text = NGINX_CONF.read_text()
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in ports)
    text = re.sub(r"(        server api-\d+:8000[^\n]*\n)+", servers + "\n", text)
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    text = text.replace("pid /tmp/nextword-nginx.pid;", f"pid {workdir}/nginx.pid;")
    text = text.replace("/tmp/nginx-", f"{workdir}/nginx-")
    # The replica that answered, for the kill test's session probes.
    text = text.replace("            proxy_pass http://nextword;", "            proxy_pass http://nextword;\n"
                        "            add_header X-Upstream $upstream_addr always;")
    if routing == "roundrobin":
        text = text.replace("        hash $session_key consistent;\n", "")
    conf = workdir / "nginx.conf"
    conf.write_text(text)
    return conf


class Fleet:
    """N replicas (one core each) and nginx in front."""

    def __init__(self, replicas: int, model: str, routing: str, workdir: Path, cache_bytes: int | None = None) -> None:
        self.model, self.routing, self.workdir, self.cache_bytes = model, routing, workdir, cache_bytes
        self.ports = [free_port() for _ in range(replicas)]
        self.listen = free_port()
        self.url = f"http://127.0.0.1:{self.listen}"
        self.servers = [self._replica(i) for i in range(replicas)]
        conf = render_nginx(self.ports, self.listen, workdir, routing)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proxy = ServerProcess([nginx, "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"], dict(os.environ),
                                   self.url, "/readyz", workdir / "nginx.log", "nginx")

    def _replica(self, i: int) -> ServerProcess:
        env = inherited_env()
        env.update(NEXTWORD_MODELS=f"{self.model}=model/artifacts/{self.model}.pt", NEXTWORD_THREADS="1",
                   NEXTWORD_LOG_LEVEL="warning", NEXTWORD_DRAIN_GRACE_S="0")
        if self.cache_bytes is not None:
            env["NEXTWORD_CACHE_BYTES"] = str(self.cache_bytes)
        cpus = str(i % (os.cpu_count() or 1))
        return app_server(env, self.ports[i], self.workdir / f"replica-{i}.log", f"replica-{i}", cpus)

    def __enter__(self) -> Fleet:
        for s in self.servers:
            s.start()
        self.proxy.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.proxy.stop()
        for s in self.servers:
            s.stop()

    def cache_counts(self) -> dict[str, float]:
        with httpx.Client(trust_env=False, timeout=5) as client:
            totals: Counter[str] = Counter()
            for s in self.servers:
                totals.update(scrape_metrics(client, s.base_url))
        return dict(totals)

    def cpu_seconds(self) -> float:
        """CPU time the replicas have used so far, all together."""
        return sum(cpu_seconds(s.proc.pid) or 0.0 for s in self.servers if s.proc is not None)

    def owners(self, sessions: list[str]) -> dict[str, str | None]:
        """Which replica nginx sends each session to (one probe request each)."""
        out: dict[str, str | None] = {}
        with httpx.Client(trust_env=False, timeout=5) as client:
            for key in sessions:
                try:
                    r = client.get(self.url + "/healthz", headers={"X-Session-Id": key})
                    out[key] = r.headers.get("x-upstream", "").split(",")[-1].strip() or None
                except httpx.HTTPError:
                    out[key] = None
        return out


def typing_run(url: str, model: str, rate: float, seconds: float, docs: list[str], seed: int) -> dict[str, Any]:
    typists = max(1, round(rate * MEAN_KEYSTROKE_GAP_S))
    cfg = LoadConfig(url=url, model=model, workload="typing", rate=rate, duration=seconds, warmup=2.0, seed=seed,
                     typists=typists, keep_samples=True)
    return asyncio.run(run_load(cfg, docs))


def routing_ladder(args: argparse.Namespace, docs: list[str], routing: str) -> dict[str, Any]:
    points = []
    with tempfile.TemporaryDirectory() as tmp, \
            Fleet(args.replicas, args.model, routing, Path(tmp), args.cache_bytes) as fleet:
        for rate in args.rates:
            before, cpu_before = fleet.cache_counts(), fleet.cpu_seconds()
            result = typing_run(fleet.url, args.model, rate, args.duration, docs, args.seed)
            cpu = fleet.cpu_seconds() - cpu_before
            delta = metrics_delta(before, fleet.cache_counts())
            lat = result["latency_ms_ok"]
            answered = answered_all(result)
            point = {"rate": rate, "ok_rps": result["throughput"]["ok_rps"], "p50_ms": lat.get("p50"),
                     "p99_ms": lat.get("p99"), "statuses": result["status_counts"],
                     "cache_hit_rate": delta.get("cache_hit_rate"),
                     # warm-up requests included on both sides: the replicas' CPU over every 200
                     "replica_cpu_ms_per_request": round(1000 * cpu / answered, 2) if answered else None}
            log.info("%s %s", routing, point)
            points.append(point)
    ok = [p for p in points if p["p99_ms"] is not None and p["p99_ms"] <= args.slo_ms
          and set(p["statuses"]) <= {"200"}]
    passing_prefix = []
    for p in points:  # the ladder's max rate: every rate up to it met the SLO
        if p not in ok:
            break
        passing_prefix.append(p)
    return {"routing": routing, "points": points,
            "max_rate_at_slo": passing_prefix[-1]["rate"] if passing_prefix else None}


def kill_test(args: argparse.Namespace, docs: list[str]) -> dict[str, Any]:
    seconds = args.kill_seconds
    sessions = [f"typist-{i}" for i in range(200)]
    with tempfile.TemporaryDirectory() as tmp, Fleet(args.replicas, args.model, "hash", Path(tmp)) as fleet:
        before = fleet.owners(sessions)
        events: dict[str, float] = {}
        during: dict[str, str | None] = {}
        victim = fleet.servers[-1]

        def chaos() -> None:
            t0 = time.monotonic()
            time.sleep(2.0 + seconds / 3)  # 2 s of warm-up first
            assert victim.proc is not None
            os.killpg(victim.proc.pid, signal.SIGKILL)
            events["killed_at_s"] = time.monotonic() - t0 - 2.0
            time.sleep(1.0)
            during.update(fleet.owners(sessions))
            time.sleep(max(0.0, 2.0 + 2 * seconds / 3 - (time.monotonic() - t0)))
            victim.start()
            events["restarted_at_s"] = time.monotonic() - t0 - 2.0
            events["ready_at_s"] = events["restarted_at_s"] + (victim.ready_after_s or 0.0)

        thread = threading.Thread(target=chaos)
        thread.start()
        result = typing_run(fleet.url, args.model, args.kill_rate, seconds, docs, args.seed)
        thread.join()
        time.sleep(6.0)  # past nginx's fail_timeout: the restarted replica is back in the ring
        after = fleet.owners(sessions)
    s = result["samples"]
    rows = [(t - 2.0, lat, st) for t, lat, st, w in zip(s["intended_s"], s["latency_ms"], s["status"], s["warmup"],
                                                          strict=True) if not w]
    per_second: dict[int, list[float]] = {}
    for t, lat, st in rows:
        if lat is not None and st == "200":
            per_second.setdefault(int(t), []).append(lat)
    p99 = {sec: round(percentiles(v, [99])[99], 1) for sec, v in sorted(per_second.items())}
    killed = events.get("killed_at_s", 0.0)
    late = [sec for sec, v in p99.items() if sec >= int(killed) and v > args.slo_ms]
    recovered_after = (max(late) + 1 - killed) if late else 0.0
    moved = [k for k in sessions if during.get(k) != before.get(k)]
    moved_back = [k for k in moved if after.get(k) == before.get(k)]
    return {
        "rate": args.kill_rate, "seconds": seconds, **{k: round(v, 2) for k, v in events.items()},
        "statuses": dict(Counter(st for _, _, st in rows)),
        "statuses_after_kill": dict(Counter(st for t, _, st in rows if t >= killed)),
        "p99_per_second_ms": p99,
        "p99_back_under_slo_after_s": round(recovered_after, 1),
        "sessions_probed": len(sessions),
        "moved_while_down": round(len(moved) / len(sessions), 3),
        "moved_back_after_restart": round(len(moved_back) / max(len(moved), 1), 3),
        "moved_for_good": round(sum(after.get(k) != before.get(k) for k in sessions) / len(sessions), 3),
    }


def plot(result: dict[str, Any], path: Path) -> None:
    """p99 and prefix-cache hit rate against the offered rate, one line per routing mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lat, hits) = plt.subplots(1, 2, figsize=(10, 3.8))
    for ladder in result.get("routing", []):
        rates = [p["rate"] for p in ladder["points"]]
        label = f"{ladder['routing']} (max {ladder['max_rate_at_slo'] or 0:g} req/s at the SLO)"
        lat.plot(rates, [p["p99_ms"] for p in ladder["points"]], marker="o", label=label)
        hits.plot(rates, [p["cache_hit_rate"] for p in ladder["points"]], marker="o", label=ladder["routing"])
    slo = result.get("slo_ms", 50.0)
    lat.axhline(slo, color="grey", linestyle=":", label=f"SLO {slo:g} ms")
    lat.set(xlabel="typing keystrokes offered (req/s)", ylabel="p99 (ms)", yscale="log")
    hits.set(xlabel="typing keystrokes offered (req/s)", ylabel="prefix-cache hit rate", ylim=(0, 1.02))
    cache = result.get("cache_bytes")
    fig.suptitle(f"{result.get('replicas', 2)} replicas behind nginx, {result.get('model')}; cache per replica: "
                 f"{'default' if cache is None else f'{cache / 2**20:g} MiB'}")
    for ax in (lat, hits):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--model", default="gru-email")
    p.add_argument("--corpus", default=None)
    p.add_argument("--max-docs", type=int, default=300)
    p.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=[20.0, 40.0, 60.0, 80.0])
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--slo-ms", type=float, default=50.0)
    p.add_argument("--kill-rate", type=float, default=30.0)
    p.add_argument("--kill-seconds", type=float, default=30.0)
    p.add_argument("--skip", default="", help="comma list of: routing, kill")
    p.add_argument("--cache-bytes", type=int, default=None,
                   help="each replica's NEXTWORD_CACHE_BYTES (default: the server's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="JSON result; the plot goes next to it (.png)")
    p.add_argument("--replot", action="store_true", help="only redraw the plot of an existing --out")
    args = p.parse_args(argv)
    if args.replot:
        plot(json.loads(Path(args.out).read_text()), Path(args.out).with_suffix(".png"))
        return 0
    docs = load_documents(args.corpus, args.max_docs)
    skip = set(filter(None, args.skip.split(",")))
    out: dict[str, Any] = {"command": "python -m bench.fleet " + " ".join(argv if argv is not None else sys.argv[1:]),
                           "replicas": args.replicas, "model": args.model, "slo_ms": args.slo_ms,
                           "cache_bytes": args.cache_bytes}
    if "routing" not in skip:
        out["routing"] = [routing_ladder(args, docs, r) for r in ("hash", "roundrobin")]
    if "kill" not in skip:
        out["kill"] = kill_test(args, docs)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    if "routing" in out:
        plot(out, Path(args.out).with_suffix(".png"))
    log.info("%s", json.dumps({k: v for k, v in out.items()}, default=str)[:3000])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""SIGTERM under load, on a real server process: readiness turns 503 first, every request
gets an HTTP answer, and the process exits 0 within grace + deadline + a margin.

The load behaves as a balancer does: it sends until its readiness probe sees the 503, then
stops sending (in-flight requests must still be answered); connections are kept alive.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.app.conftest import wait_http_ready

GRACE_S = 1.5
DEADLINE_S = 1.0
MARGIN_S = 4.0
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_sigterm_under_load_drains_cleanly(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXTWORD_")}
    env.update(NEXTWORD_MODELS=f"gru={tiny_models['gru']},lstm={tiny_models['lstm']}", NEXTWORD_PORT=str(port),
               NEXTWORD_DRAIN_GRACE_S=str(GRACE_S), NEXTWORD_DEADLINE_MS=str(DEADLINE_S * 1000),
               NEXTWORD_THREADS="1", NEXTWORD_LOG_LEVEL="warning", NEXTWORD_GRACEFUL_TIMEOUT_S="5")
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http_ready(url, 90, alive=lambda: proc.poll() is None)

        outcomes: Counter[str] = Counter()
        lock = threading.Lock()
        stop = threading.Event()
        out_of_rotation = threading.Event()

        def load() -> None:
            # As a balancer sends: until its readiness probe sees the 503, then no new requests.
            with httpx.Client(timeout=10) as client:
                while not stop.is_set() and not out_of_rotation.is_set():
                    try:
                        r = client.post(url + "/v1/complete", json={"text": "I think the movie was ", "max_words": 3})
                        what = str(r.status_code)
                    except httpx.ConnectError:
                        what = "refused"  # the listener is closed: nothing was accepted, nothing lost
                    except httpx.HTTPError as exc:
                        what = f"broken:{type(exc).__name__}"  # accepted, then no answer: a drain bug
                    with lock:
                        outcomes[what] += 1

        workers = [threading.Thread(target=load) for _ in range(4)]
        for w in workers:
            w.start()
        time.sleep(1.0)
        sent_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        ready_states: list[tuple[float, int | str]] = []
        while proc.poll() is None and time.monotonic() - sent_at < GRACE_S + DEADLINE_S + MARGIN_S:
            try:
                status: int | str = httpx.get(url + "/readyz", timeout=1).status_code
            except httpx.HTTPError:
                status = "closed"
            ready_states.append((time.monotonic() - sent_at, status))
            if status != 200:
                out_of_rotation.set()
            time.sleep(0.05)
        code = proc.wait(timeout=GRACE_S + DEADLINE_S + MARGIN_S)
        took = time.monotonic() - sent_at
        stop.set()
        for w in workers:
            w.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert code == 0, (tmp_path / "server.log").read_text()
    assert took < GRACE_S + DEADLINE_S + MARGIN_S
    statuses = [s for _, s in ready_states]
    assert 503 in statuses, ready_states
    first_closed = statuses.index("closed") if "closed" in statuses else len(statuses)
    assert 503 in statuses[:first_closed], "readiness must say 503 before the listener closes"
    assert all(s != 200 for s in statuses), "never ready again once draining"
    assert not [k for k in outcomes if k.startswith("broken")], (outcomes, ready_states)
    assert set(outcomes) <= {"200", "503", "refused"}, outcomes
    assert outcomes["200"] > 0

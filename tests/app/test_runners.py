"""The app under each runner ``python -m app`` offers: the same answers, the read limits, and a
clean exit on SIGTERM.

uvicorn with its default parser and loop is what every other server-level test runs; here
the alternatives an operator can pick (``docs/http_path.md``): granian, and uvicorn with the
pure-Python parser and the stdlib loop.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.app.conftest import wait_http_ready
from tests.app.test_drain import ROOT, _free_port


def sent_and_closed(port: int, data: bytes) -> tuple[bytes, float]:
    """Send ``data``, then read until the server closes: (what it answered, seconds it took)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as conn:
        conn.sendall(data)
        start, reply = time.monotonic(), b""
        while chunk := conn.recv(4096):
            reply += chunk
        return reply, time.monotonic() - start


RUNNERS = {
    "granian": {"NEXTWORD_RUNNER": "granian"},
    "uvicorn-h11-asyncio": {"NEXTWORD_RUNNER": "uvicorn", "NEXTWORD_HTTP": "h11", "NEXTWORD_LOOP": "asyncio"},
}


@pytest.mark.slow
@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_each_runner_serves_the_contract_and_exits_cleanly(runner: str, tiny_models: dict[str, Path],
                                                           tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXTWORD_")}
    env.update(NEXTWORD_MODELS=f"gru={tiny_models['gru']}", NEXTWORD_PORT=str(port), NEXTWORD_THREADS="1",
               NEXTWORD_LOG_LEVEL="info", NEXTWORD_DRAIN_GRACE_S="0", NEXTWORD_GRACEFUL_TIMEOUT_S="5",
               NEXTWORD_READ_TIMEOUT_S="1", **RUNNERS[runner])
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_http_ready(url, 90, alive=lambda: proc.poll() is None)
            with httpx.Client(base_url=url, timeout=10) as client:
                ok = client.post("/v1/complete", json={"text": "the movie was ", "k": 2},
                                 headers={"X-Session-Id": "tab-1"})
                bad_body = client.post("/v1/complete", json={"text": 5})
                bad_header = client.post("/v1/complete", json={"text": "hi"}, headers={"X-Session-Id": "a b"})
                unknown = client.post("/v1/complete", json={"text": "hi", "model": "nope"})
            half_head = sent_and_closed(port, b"POST /v1/complete HTTP/1.1\r\nHost: x\r\n")
            half_body = sent_and_closed(port, b"POST /v1/complete HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                                              b"\r\nContent-Length: 30\r\n\r\n{\"text\": ")
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
    server_log = log_path.read_text(errors="replace")
    assert ok.status_code == 200, ok.text
    assert ok.json()["model"] == "gru" and len(ok.json()["suggestions"]) == 2
    assert bad_body.status_code == 422 and bad_body.json()["detail"][0]["loc"] == ["body", "text"]
    assert bad_header.status_code == 422 and bad_header.json()["detail"][0]["loc"] == ["header", "X-Session-Id"]
    assert unknown.status_code == 404
    assert half_head[0] == b"" and half_head[1] < 5  # closed at the read limit, no answer
    assert half_body[0].startswith(b"HTTP/1.1 408") and half_body[1] < 5
    assert code == 0, server_log
    assert "engine gru stopped" in server_log, server_log  # the lifespan's shutdown ran: engines stopped

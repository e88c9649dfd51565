"""bench.servers: how every tool starts, pins and stops the servers it measures."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import REPO, servers
from bench.servers import (
    ServerProcess,
    app_server,
    cpu_seconds,
    free_port,
    inherited_env,
    litserve_server,
    parse_cpus,
    pinned,
    tree_cpu_seconds,
)


def test_parse_cpus() -> None:
    assert parse_cpus("0") == {0}
    assert parse_cpus("0,2") == {0, 2}
    assert parse_cpus("0-2,5") == {0, 1, 2, 5}
    assert parse_cpus("") is None and parse_cpus(None) is None


def test_pinned_uses_taskset_only_when_there_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers.shutil, "which", lambda name: "/usr/bin/taskset")
    assert pinned(["x", "-y"], "1") == ["taskset", "-c", "1", "x", "-y"]
    assert pinned(["x"], None) == ["x"]
    monkeypatch.setattr(servers.shutil, "which", lambda name: None)
    assert pinned(["x"], "1") == ["x"]


def test_inherited_env_drops_every_nextword_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXTWORD_BATCHING", "false")
    monkeypatch.setenv("BENCH_TEST_KEEP", "1")
    env = inherited_env()
    assert env["BENCH_TEST_KEEP"] == "1"
    assert not any(k.startswith("NEXTWORD_") for k in env)


def test_app_server_runs_python_m_app_on_the_port_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers.shutil, "which", lambda name: "/usr/bin/taskset")
    server = app_server({"NEXTWORD_PORT": "1", "A": "b"}, 8123, Path("/tmp/x.log"), "nw", cpus="0")
    assert server.argv == ["taskset", "-c", "0", sys.executable, "-m", "app"]
    assert server.env == {"NEXTWORD_PORT": "8123", "A": "b"}
    assert (server.base_url, server.ready_path, server.cwd) == ("http://127.0.0.1:8123", "/readyz", REPO)
    other = app_server({}, 8124, Path("/tmp/y.log"), "arm", cwd=Path("/tmp"))
    assert other.argv == [sys.executable, "-m", "app"] and other.cwd == Path("/tmp")


def test_litserve_server_is_the_peer_with_its_settings() -> None:
    server = litserve_server("lstm", 32, 5.0, 1, 2.0, Path("/tmp/l.log"), "peer")
    port = server.base_url.rsplit(":", 1)[1]
    assert server.argv == [sys.executable, "-m", "bench.litserve_server", "--model", "lstm", "--port", port,
                           "--max-batch-size", "32", "--batch-timeout-ms", "5", "--threads", "1", "--timeout", "2"]
    assert server.ready_path == "/health" and not any(k.startswith("NEXTWORD_") for k in server.env)


def test_a_server_is_started_until_ready_and_stopped_with_its_group(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    server = ServerProcess(argv, dict(os.environ), f"http://127.0.0.1:{port}", "/", tmp_path / "http.log", "http",
                           cwd=tmp_path)
    with server:
        assert server.proc is not None and server.proc.poll() is None
        assert server.ready_after_s is not None
    assert server.proc.poll() is not None


def test_a_server_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; print('no model here'); sys.exit(3)"]
    server = ServerProcess(argv, dict(os.environ), f"http://127.0.0.1:{free_port()}", "/", tmp_path / "bad.log",
                           "bad")
    with pytest.raises(RuntimeError, match=r"bad exited with 3:\nno model here"):
        server.start(timeout=30)


def test_cpu_seconds_reads_a_process_cpu_time_and_none_once_gone():
    before = cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:  # burn 0.3 s of CPU
        pass
    after = cpu_seconds(os.getpid())
    assert before is not None and after is not None and after - before >= 0.2
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert cpu_seconds(child.pid) is None


def test_tree_cpu_seconds_counts_the_children():
    """A parent that only waits on a busy child: its tree's CPU is the child's."""
    script = "import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', " \
             "'import time; t = time.process_time() + 0.5\\nwhile time.process_time() < t: pass\\ntime.sleep(5)']); " \
             "time.sleep(5)"
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        time.sleep(2.0)
        own, tree = cpu_seconds(parent.pid), tree_cpu_seconds(parent.pid)
        assert own is not None and tree is not None and tree - own >= 0.4
    finally:
        parent.kill()
        parent.wait()

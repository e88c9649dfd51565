"""Server subprocesses for every bench tool: start on a free port, wait until ready, pin, stop.

The sweep, the A/B, the profiler, the soak, the fleet, the body-limit and serve-latency
checks all measure a server they start themselves. Starting them one way means every tool
gets the same guarantees: a port nobody else holds, the server (and every process it
forks) in its own process group so stopping it leaves nothing behind, its output in a log
file rather than interleaved with the tool's, and the same CPU pinning.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from bench import REPO


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_cpus(text: str | None) -> set[int] | None:
    """"0", "0,1", "0-1" -> a CPU set; None/"" -> None (no pinning)."""
    if not text:
        return None
    cpus: set[int] = set()
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            cpus.update(range(int(a), int(b) + 1))
        else:
            cpus.add(int(part))
    return cpus


def pinned(argv: list[str], cpus: str | None) -> list[str]:
    """``argv`` under ``taskset -c cpus`` when possible (else unpinned: recorded in meta)."""
    if cpus and shutil.which("taskset"):
        return ["taskset", "-c", cpus, *argv]
    return argv


def pin_this_process(cpus: str | None) -> None:
    """Pin the calling process (the load generator) to ``cpus`` where the OS allows it."""
    wanted = parse_cpus(cpus)
    if wanted and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, wanted)


def can_pin() -> bool:
    """Whether both servers (``taskset``) and this process (``sched_setaffinity``) can be pinned here."""
    return bool(shutil.which("taskset")) and hasattr(os, "sched_setaffinity")


def inherited_env() -> dict[str, str]:
    """This process's environment without ``NEXTWORD_*``: a server's settings are the caller's alone."""
    return {k: v for k, v in os.environ.items() if not k.startswith("NEXTWORD_")}


class ServerProcess:
    """A server subprocess in its own process group: start, wait until ready, stop."""

    def __init__(self, argv: list[str], env: Mapping[str, str], base_url: str, ready_path: str,
                 log_path: Path, name: str, cwd: Path = REPO) -> None:
        self.argv, self.env, self.base_url, self.ready_path = argv, dict(env), base_url, ready_path
        self.log_path, self.name, self.cwd = log_path, name, cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_after_s: float | None = None

    def start(self, timeout: float = 180.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logf = self.log_path.open("wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        logf.close()
        with httpx.Client(trust_env=False, timeout=2.0) as client:
            while time.perf_counter() - t0 < timeout:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(self.base_url + self.ready_path).status_code == 200:
                        self.ready_after_s = round(time.perf_counter() - t0, 2)
                        return
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the server's process group (LitServe forks workers), then SIGKILL."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group is ours alone
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
            deadline = time.time() + wait
            while time.time() < deadline:
                if self.proc.poll() is not None and not _group_alive(pgid):
                    return
                time.sleep(0.1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(1)

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (from field 3, state), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` so far (``/proc/<pid>/stat``), or None if gone."""
    fields = _stat(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


def tree_cpu_seconds(pid: int) -> float | None:
    """:func:`cpu_seconds` of ``pid`` and every live descendant (LitServe runs its model in child
    processes), or None if ``pid`` is gone."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))  # field 4: the parent
    own = cpu_seconds(pid)
    if own is None:
        return None
    total, todo = own, list(children.get(pid, []))
    while todo:
        child = todo.pop()
        total += cpu_seconds(child) or 0.0
        todo.extend(children.get(child, []))
    return total


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def app_server(env: Mapping[str, str], port: int, log_path: Path, name: str, cpus: str | None = None,
               cwd: Path = REPO, module: str = "app") -> ServerProcess:
    """``python -m app`` (or ``module``) from ``cwd`` on ``port``, pinned to ``cpus``, ready when /readyz says so.

    ``env`` is the server's whole environment; its ``NEXTWORD_PORT`` is set to ``port``.
    """
    return ServerProcess(pinned([sys.executable, "-m", module], cpus), {**env, "NEXTWORD_PORT": str(port)},
                         f"http://127.0.0.1:{port}", "/readyz", log_path, name, cwd=cwd)


def litserve_server(backend: str, max_batch: int, timeout_ms: float, threads: int, queue_timeout_s: float,
                    log_path: Path, name: str, cpus: str | None = None) -> ServerProcess:
    """The LitServe peer (:mod:`bench.litserve_server`) on a free port, pinned to ``cpus``, ready at /health."""
    port = free_port()
    argv = pinned([sys.executable, "-m", "bench.litserve_server", "--model", backend, "--port", str(port),
                   "--max-batch-size", str(max_batch), "--batch-timeout-ms", f"{timeout_ms:g}",
                   "--threads", str(threads), "--timeout", f"{queue_timeout_s:g}"], cpus)
    return ServerProcess(argv, inherited_env(), f"http://127.0.0.1:{port}", "/health", log_path, name)

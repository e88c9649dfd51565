"""bench.fleet's nginx rendering: local upstreams, and the hash line only for session routing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bench.fleet import render_nginx


@pytest.mark.parametrize("routing", ["hash", "roundrobin"])
def test_render_nginx(tmp_path: Path, routing: str) -> None:
    conf = render_nginx([18001, 18002, 18003], 18080, tmp_path, routing).read_text()
    assert conf.count("server 127.0.0.1:180") == 3 and "api-1" not in conf
    assert "listen 127.0.0.1:18080;" in conf and "X-Upstream" in conf
    assert ("hash $session_key consistent;" in conf) == (routing == "hash")
    if shutil.which("nginx"):
        run = subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr


def test_plot_draws_both_routing_ladders(tmp_path):
    from bench.fleet import plot

    ladder = [{"rate": r, "p99_ms": 10.0 * r, "cache_hit_rate": 0.9} for r in (1.0, 2.0)]
    result = {"replicas": 2, "model": "gru-email", "slo_ms": 50.0, "cache_bytes": None,
              "routing": [{"routing": m, "points": ladder, "max_rate_at_slo": 2.0} for m in ("hash", "roundrobin")]}
    plot(result, tmp_path / "fleet.png")
    assert (tmp_path / "fleet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

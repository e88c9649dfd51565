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

"""Deployment files checked offline: the Grafana dashboard asks only for metrics the server
exports; the nginx config parses (when nginx is installed); the Kubernetes base builds and
validates (when kubectl and kubernetes-validate are installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


async def test_every_dashboard_query_names_an_exported_metric(start_app):
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "nextword.json").read_text())
    async with start_app() as c:
        await c.post("/v1/complete", json={"text": "I think the "}, headers={"X-Session-Id": "s"})
        await c.post("/v1/complete", json={"text": "I think the m"}, headers={"X-Session-Id": "s"})
        exported = {line.split("{")[0].split(" ")[0] for line in (await c.get("/metrics")).text.splitlines()
                    if line and not line.startswith("#")}
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = set(re.findall(r"\bnextword_[a-z_]+", target["expr"]))
            assert names, (panel["title"], target["expr"])
            assert names <= exported, (panel["title"], sorted(names - exported))


def test_the_nginx_config_parses(tmp_path: Path):
    nginx = shutil.which("nginx")
    if nginx is None:
        pytest.skip("nginx not installed (apt-get install -y nginx)")
    text = (DEPLOY / "nginx" / "nginx.conf").read_text().replace("api-1:8000", "127.0.0.1:18001")
    text = text.replace("api-2:8000", "127.0.0.1:18002")
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    run = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "hash $session_key consistent" in text and "non_idempotent" in text


def test_the_kubernetes_base_builds_and_validates(tmp_path: Path):
    beside_python = Path(sys.executable).parent / "kubernetes-validate"  # the venv's, when not on PATH
    kubectl = shutil.which("kubectl")
    validate = shutil.which("kubernetes-validate") or (str(beside_python) if beside_python.exists() else None)
    if kubectl is None or validate is None:
        pytest.skip("kubectl or kubernetes-validate not installed")
    built = subprocess.run([kubectl, "kustomize", str(DEPLOY / "k8s")], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    out = tmp_path / "all.yaml"
    out.write_text(built.stdout)
    kinds = set(re.findall(r"^kind: (\w+)", built.stdout, re.M))
    assert {"Deployment", "Service", "Ingress", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds, kinds
    checked = subprocess.run([validate, "--strict", str(out)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr

"""The server runs the TorchScript that was exported: it answers with the network's source gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SERVER_WITHOUT_NETWORK = textwrap.dedent("""
    import json, sys, time
    sys.modules["model.network"] = None  # any import of it now raises ImportError
    from fastapi.testclient import TestClient
    from app.config import Settings
    from app.main import create_app

    settings = Settings(_env_file=None, models=sys.argv[1], precision="fp16", threads=1, log_level="warning")
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz").text
            time.sleep(0.05)
        answers = {}
        for name in ("gru", "lstm"):
            r = client.post("/v1/complete", json={"text": "I think the movie ", "model": name, "max_words": 3})
            answers[name] = [r.status_code, r.json()]
    answers["network_imported"] = sys.modules["model.network"] is not None
    print(json.dumps(answers))
""")


def test_server_answers_with_the_network_source_unimportable(tiny_models: dict[str, Path]) -> None:
    models = f"gru={tiny_models['gru']},lstm={tiny_models['lstm']}"
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("NEXTWORD_")}
    done = subprocess.run([sys.executable, "-c", SERVER_WITHOUT_NETWORK, models], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    assert answers.pop("network_imported") is False
    for name, (status, body) in answers.items():
        assert status == 200, (name, body)
        assert body["model"] == name and body["suggestions"], body

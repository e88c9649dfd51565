"""Where a measurement came from: commit, machine, packages, models and the time it was taken.

Every result file a bench tool writes carries these stamps, so a number can be traced to
the code, the hardware and the model artifact that produced it, and a report can say so
rather than guess.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import REPO

ARTIFACTS = REPO / "model" / "artifacts"


def utc_now() -> str:
    """The current UTC time, to the second, as the result files write it."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpu_count": os.cpu_count()}
    with contextlib.suppress(Exception):
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        info["cpu_model"] = fields.get("Model name")
        info["cpus"] = fields.get("CPU(s)")
        info["threads_per_core"] = fields.get("Thread(s) per core")
        info["hypervisor"] = fields.get("Hypervisor vendor")
    return info


def git_info(checkout: Path = REPO) -> dict[str, Any]:
    """The commit of ``checkout`` (this repository by default) and whether its tree differs from it."""
    def git(*args: str) -> str | None:
        with contextlib.suppress(Exception):
            r = subprocess.run(["git", *args], cwd=checkout, capture_output=True, text=True, timeout=10)
            if r.returncode == 0:
                return r.stdout.strip()
        return None

    status = git("status", "--porcelain")
    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in ("torch", "litserve", "fastapi", "uvicorn", "httpx"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def find_top1(evaluation: Any) -> float | None:
    """``top1`` of a card's evaluation: at its top level or one level down (e.g. per split)."""
    if not isinstance(evaluation, dict):
        return None
    if isinstance(evaluation.get("top1"), int | float):
        return float(evaluation["top1"])
    for value in evaluation.values():
        if isinstance(value, dict) and isinstance(value.get("top1"), int | float):
            return float(value["top1"])
    return None


def model_facts(backends: Sequence[str]) -> dict[str, Any]:
    """File size and model-card facts (top-1 from card["evaluation"] when present)."""
    out: dict[str, Any] = {}
    for b in backends:
        path = ARTIFACTS / f"{b}.pt"
        facts: dict[str, Any] = {"path": str(path.relative_to(REPO)), "file_bytes": None, "card": None}
        if path.is_file():
            facts["file_bytes"] = path.stat().st_size
            with contextlib.suppress(Exception):
                import zipfile

                with zipfile.ZipFile(path) as zf:
                    name = next(n for n in zf.namelist() if n.endswith("extra/card.json"))
                    card = json.loads(zf.read(name))
                facts["card"] = {
                    "parameters": card.get("parameters"),
                    "checksum": card.get("checksum"),
                    "evaluation": card.get("evaluation"),
                    "top1": find_top1(card.get("evaluation")),
                    "tokens_seen": (card.get("training") or {}).get("tokens_seen"),
                    "config": card.get("config"),
                }
        out[b] = facts
    return out

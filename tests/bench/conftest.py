"""Fixtures of the bench tests: a tiny hand-made sweep result, read by the report's tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TINY_SWEEP = Path(__file__).parent / "fixtures" / "tiny_sweep.json"


@pytest.fixture(scope="module")
def tiny_sweep() -> dict:
    return json.loads(TINY_SWEEP.read_text())

"""Load generators, sweeps and reports run against the nextword server (nothing outside bench imports it)."""

from pathlib import Path

#: The checkout the tools start servers in and read provenance (commit, artifacts) from.
REPO = Path(__file__).resolve().parents[1]

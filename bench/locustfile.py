"""Locust users for nextword's cold workload (closed loop; for load *shape*, not latency).

**Locust is closed-loop**: each simulated user sends a request, waits for its response,
then waits ``wait_time`` before sending the next. When the server stalls, every user is
stuck waiting, so the requests that real, independent users would have sent during the
stall are never sent and never measured. Locust's percentiles therefore suffer from
*coordinated omission*: they under-report exactly the tail you care about, and its
request rate quietly drops as the server slows down. Use Locust to drive a realistic mix
or to watch the server under a number of concurrent users; use ``python -m bench.loadgen``
(open loop, latency from the intended send time, ``behind_schedule`` check) for the
latency numbers you report.

Run (Locust is not a dependency of the service; install it separately)::

    locust -f bench/locustfile.py --host http://127.0.0.1:8000 -u 50 -r 10 -t 1m --headless

Environment: ``NEXTWORD_MODEL`` (``gru``/``lstm``, default ``gru``), ``NEXTWORD_CORPUS``
(held-out corpus path; built-in paragraphs when unset), ``NEXTWORD_MAX_DOCS``,
``NEXTWORD_SEED``. Requests are the loadgen's ``cold`` workload: a 5-40-word prefix
ending with a space, ``k=3``, ``max_words=0``. 503 responses count as failures named
``503 overloaded``.

This module imports :mod:`locust` at the top, so it is only importable where Locust is
installed; nothing else in the project imports it.
"""

from __future__ import annotations

import itertools
import os
import random

from locust import HttpUser, between, task

from bench.workloads import cold_request, load_documents, word_lists

_MODEL = os.environ.get("NEXTWORD_MODEL", "gru")
_MAX_DOCS = int(os.environ["NEXTWORD_MAX_DOCS"]) if os.environ.get("NEXTWORD_MAX_DOCS") else None
# Loaded once per Locust process and shared by its users.
_WORD_LISTS = word_lists(load_documents(os.environ.get("NEXTWORD_CORPUS") or None, _MAX_DOCS))
_SEED = int(os.environ.get("NEXTWORD_SEED", "0"))
_USER_IDS = itertools.count()


class ColdUser(HttpUser):
    """One user asking for next-word suggestions after finishing a word, then pausing."""

    wait_time = between(0.15, 0.3)

    def on_start(self) -> None:
        """Give each user its own seeded RNG so runs are repeatable but users differ."""
        self.rng = random.Random(f"{_SEED}-{next(_USER_IDS)}")

    @task
    def complete(self) -> None:
        """POST one cold request; a 503 (with or without Retry-After) is a failure."""
        text, k, max_words = cold_request(_WORD_LISTS, self.rng)
        payload = {"text": text, "model": _MODEL, "k": k, "max_words": max_words}
        with self.client.post(
            "/v1/complete", json=payload, name="/v1/complete [cold]", catch_response=True
        ) as resp:
            if resp.status_code == 200:
                resp.success()
            elif resp.status_code == 503:
                resp.failure(f"503 overloaded (Retry-After: {resp.headers.get('Retry-After')})")
            else:
                resp.failure(f"HTTP {resp.status_code}")

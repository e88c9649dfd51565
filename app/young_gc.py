"""Collect Python's young GC generation on a clock, from the engine threads.

CPython collects its young generation when the tracked objects allocated since the last
collection, less those freed, pass a threshold (700). A full prefix cache frees an old entry
(its tensors, notes and keys) for each one it stores, so the frees cancel the allocations and the
young generation grows unchecked: replaying keystrokes in process it held 20,000-114,000 objects
when a collection finally came, and scanning them took 20-83 ms while every request waited, a
pause that takes several times its own length to drain from the queue near full load
(``python -m bench.gc_pauses``; bench/results/cpu_per_request.md, design 11). Collecting it on a
clock keeps each pause to a few milliseconds.
"""

from __future__ import annotations

import gc
import time

#: Every this many young collections the middle generation is collected with it, as CPython's own
#: thresholds (700, 10, 10) would, so survivors do not pile up there for one long pause.
OLDER_EVERY = 10


class YoungCollector:
    """``collector(now)`` after each engine pass that ran the model: collects once ``interval_ms``
    has passed since the last collection by any engine (one collector serves all of a server's
    engines: the heap is the process's); 0 leaves collection to CPython's thresholds."""

    def __init__(self, interval_ms: float) -> None:
        self.interval_s = interval_ms / 1000.0
        self.collections = 0
        self._last = time.perf_counter()

    def __call__(self, now: float) -> None:
        if self.interval_s <= 0 or now - self._last < self.interval_s:
            return
        self._last = now  # engine threads race here at worst into one extra, harmless collection
        self.collections += 1
        gc.collect(1 if self.collections % OLDER_EVERY == 0 else 0)

"""The step-batching inference engine: one per backend, one worker thread each.

Every request is a decoder generator (:func:`model.suggest.suggest`) that yields model
calls. The worker thread owns the TorchScript module and loops, Orca-style, at the level
of single model steps:

1. admit newly queued requests (their first call: a prefill chunk, or a beam step
   straight away when the prefix cache already holds their context);
2. if batching, wait until ``max_batch`` requests have work or the *oldest* queued
   request has waited ``max_wait_ms`` (Triton's rule: the clock is the request's, not
   the loop's);
3. merge the pending calls of up to ``max_batch`` requests into two model calls
   (:func:`model.batching.run_calls`): first ONE ``step`` for every request whose call
   is one token a row (beam steps of ongoing requests), then ONE ``prefill`` for the
   context reads of new ones (:func:`steps_then_reads` says why not one call for both);
   resume each generator with its rows.

Requests join and leave at every iteration. The asyncio side only enqueues and awaits a
future. Admission control: at most ``queue_limit`` requests are queued or running, and
none is admitted while the oldest queued request has waited over ``max_queue_wait_ms``
(the queue's sojourn time, as CoDel uses it: a full queue in *time*, whatever its length)
or while the work already admitted would take longer than that to finish (admitted
requests x the engine's measured busy time per answered request); the next request is
rejected at once (:class:`Overloaded` -> 503 + Retry-After) instead of letting latency
grow until deadlines expire. Each request carries a deadline covering queueing and compute; one past it
is dropped (:class:`DeadlineExceeded`), as is one whose client went away (``cancel``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch

from model.artifact import LanguageModel
from model.batching import Decoding, ModelCall, run_calls
from model.prefix_cache import PrefixStateCache
from model.suggest import DecodeOptions, SuggestResult, suggest

log = logging.getLogger(__name__)

#: Iterations the admission cost estimate looks back over, and answers it needs first.
COST_WINDOW_ITERATIONS = 256
COST_MIN_ANSWERS = 8


class EngineError(RuntimeError):
    """Base class: the engine could not answer this request."""


class Overloaded(EngineError):
    """The queue is full; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("server overloaded: queue full")
        self.retry_after = retry_after


class DeadlineExceeded(EngineError):
    """The request's deadline passed before it finished."""


class EngineStopped(EngineError):
    """The engine is draining or stopped."""


@dataclass
class EngineConfig:
    batching: bool = True
    # 16, not 64: under overload every iteration is full, and a request spends one whole
    # iteration per model call it needs (a context read, then a beam step per piece, up to
    # ~10); at 64 an iteration took ~100-150 ms here and the slowest accepted request 1.0 s,
    # at 16 it took 0.58 s for 10% fewer answers (bench/results/ab_max_batch.json). Below
    # saturation batches are smaller than either.
    max_batch: int = 16
    max_batch_rows: int = 1024
    max_wait_ms: float = 1.0
    queue_limit: int = 256
    max_queue_wait_ms: float = 250.0
    deadline_ms: float = 1000.0
    cache_bytes: int = 64 * 1024 * 1024
    decode: DecodeOptions = field(default_factory=DecodeOptions)


@dataclass
class Timing:
    queue_ms: float
    compute_ms: float
    total_ms: float


@dataclass
class EngineResult:
    result: SuggestResult
    timing: Timing


@dataclass
class _Request:
    gen: Decoding[SuggestResult]
    future: asyncio.Future[EngineResult]
    loop: asyncio.AbstractEventLoop
    enqueued: float
    deadline: float
    started: float | None = None
    call: ModelCall | None = None
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class IterationStats:
    """What one model call did (fed to metrics by the observer; an iteration makes one or two)."""

    requests: int
    rows: int
    tokens: int
    seconds: float


class InferenceEngine:
    """Step-level batching over one loaded model (see the module docstring)."""

    def __init__(self, lm: LanguageModel, config: EngineConfig, observer: Any = None) -> None:
        self.lm = lm
        self.config = config
        self.cache = PrefixStateCache(config.cache_bytes)
        self.observer = observer  # app.metrics.EngineMetrics or None
        self._inbox: deque[_Request] = deque()
        self._active: list[_Request] = []
        self._cond = threading.Condition()
        self._admitted = 0  # queued + running, guarded by _cond
        self._running = False
        self._thread: threading.Thread | None = None
        self.max_batch_seen = 0
        self.iterations = 0
        self._ema_iteration_s = 0.005
        # Busy seconds per answered request over recent iterations (None until measured):
        # how long the admitted work will take, for admission control.
        self._recent_work: deque[tuple[float, int]] = deque()
        self._recent_seconds = 0.0
        self._recent_answers = 0
        self._cost_per_request_s: float | None = None
        # Smoothed gap between arrivals: the batch window is only worth waiting for when
        # another request is likely to arrive inside it (see _window_worth_waiting).
        self._ema_gap_s = 0.0
        self._last_arrival: float | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._running = True
        self._thread = threading.Thread(target=self._worker, name=f"engine-{self.lm.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting work, let in-flight requests finish (up to ``timeout``), then stop."""
        with self._cond:
            self._running = False
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._running and self._thread is not None and self._thread.is_alive()

    @property
    def queue_depth(self) -> int:
        return len(self._inbox)

    @property
    def in_flight(self) -> int:
        return self._admitted

    # ------------------------------------------------------------------ asyncio side
    def submit(self, text: str, k: int = 3, max_words: int = 0) -> _Request:
        """Admit a request or raise :class:`Overloaded` / :class:`EngineStopped` at once."""
        loop = asyncio.get_running_loop()
        now = time.perf_counter()
        gen = suggest(self.lm, text, k, max_words, self.cache if self.config.cache_bytes else None,
                      self.config.decode)
        req = _Request(gen, loop.create_future(), loop, now, now + self.config.deadline_ms / 1000)
        with self._cond:
            if not self._running:
                raise EngineStopped("engine is not running")
            if (self._admitted >= self.config.queue_limit
                    or self._queue_wait_ms(now) > self.config.max_queue_wait_ms
                    or self._work_ahead_ms() > self.config.max_queue_wait_ms):
                raise Overloaded(retry_after=self._retry_after())
            self._admitted += 1
            self._inbox.append(req)
            if self._last_arrival is not None:
                self._ema_gap_s = 0.8 * self._ema_gap_s + 0.2 * (now - self._last_arrival)
            self._last_arrival = now
            self._cond.notify()
        return req

    async def complete(self, text: str, k: int = 3, max_words: int = 0) -> EngineResult:
        req = self.submit(text, k, max_words)
        try:
            return await req.future
        finally:
            req.cancel()  # no-op when finished; drops the work if the caller went away

    def _queue_wait_ms(self, now: float) -> float:
        """How long the oldest queued request has waited (0 when none waits)."""
        try:
            return (now - self._inbox[0].enqueued) * 1000
        except IndexError:  # the worker emptied the queue meanwhile
            return 0.0

    def _work_ahead_ms(self) -> float:
        """How long the admitted requests will take to answer, by the measured cost (0 if unknown).

        The queue's sojourn time alone lets a burst in: by the time the oldest has waited
        ``max_queue_wait_ms``, hundreds may be queued behind it, and those then miss their
        deadline (seen as 504s when the sweep's saturation probe offered ~470 req/s to an
        engine answering ~100).
        """
        cost = self._cost_per_request_s
        return self._admitted * cost * 1000 if cost is not None else 0.0

    def _record_work(self, seconds: float, answered: int) -> None:
        """Fold one iteration into the busy-time-per-answer estimate (worker thread).

        ``seconds`` times the iteration's model calls (and the decoder resumes between them),
        not the worker's whole pass: timing the whole pass (admission, expiry, GIL waits) was
        tried and measured, and it made the estimate taken at low load, where nothing batches,
        so high that a 64-request burst on an idle server got 19-39 of its 64 requests
        rejected (``bench.serve_latency``; 10-17 with this estimate), though batched they
        finish well inside the deadline.
        """
        self._recent_work.append((seconds, answered))
        self._recent_seconds += seconds
        self._recent_answers += answered
        if len(self._recent_work) > COST_WINDOW_ITERATIONS:
            old_seconds, old_answers = self._recent_work.popleft()
            self._recent_seconds -= old_seconds
            self._recent_answers -= old_answers
        if self._recent_answers >= COST_MIN_ANSWERS:
            self._cost_per_request_s = self._recent_seconds / self._recent_answers

    def _retry_after(self) -> float:
        # Roughly how long the current backlog takes to drain, at least one second.
        backlog = self._admitted / max(self.config.max_batch, 1)
        return max(1.0, round(backlog * self._ema_iteration_s * 4, 1))

    # ------------------------------------------------------------------ worker side
    def _finish(self, req: _Request, result: EngineResult | None = None, error: Exception | None = None) -> None:
        with self._cond:
            self._admitted -= 1
        req.gen.close()
        if self.observer is not None:  # before the answer goes out, so metrics never lag a response
            self.observer.request_done(req, result, error)

        def resolve() -> None:
            if req.future.done():
                return
            if error is not None and req.cancelled:
                req.future.cancel()  # nobody awaits it any more: no "exception never retrieved"
            elif error is not None:
                req.future.set_exception(error)
            else:
                req.future.set_result(result)  # type: ignore[arg-type]

        with contextlib.suppress(RuntimeError):  # the event loop is gone (shutdown)
            req.loop.call_soon_threadsafe(resolve)

    def _advance(self, req: _Request, value: Any) -> None:
        """Resume a request's generator; record its next call or finish it."""
        try:
            req.call = req.gen.send(value) if value is not None else next(req.gen)
        except StopIteration as stop:
            now = time.perf_counter()
            started = req.started if req.started is not None else now
            timing = Timing(
                queue_ms=(started - req.enqueued) * 1000,
                compute_ms=(now - started) * 1000,
                total_ms=(now - req.enqueued) * 1000,
            )
            self._finish(req, EngineResult(stop.value, timing))
        except Exception as exc:  # a decoding bug must fail one request, not the engine
            log.exception("request failed in decoder")
            self._finish(req, error=exc)

    def _admit(self, limit: int) -> None:
        """Move up to ``limit`` queued requests into the active set (FIFO)."""
        while self._inbox and len(self._active) < limit:
            req = self._inbox.popleft()
            if req.cancelled:
                self._finish(req, error=EngineStopped("client went away"))
                continue
            req.started = time.perf_counter()
            self._active.append(req)
            self._advance(req, None)

    def _drop_expired(self) -> None:
        now = time.perf_counter()
        keep: list[_Request] = []
        for req in self._active:
            if req.cancelled or req.future.cancelled():
                self._finish(req, error=EngineStopped("client went away"))
            elif now > req.deadline:
                self._finish(req, error=DeadlineExceeded("deadline passed"))
            else:
                keep.append(req)
        self._active = keep
        for req in list(self._inbox):
            if now > req.deadline or req.cancelled:
                self._inbox.remove(req)
                err = DeadlineExceeded("deadline passed in queue") if not req.cancelled else EngineStopped("gone")
                self._finish(req, error=err)

    def _wait_for_batch(self) -> None:
        """Block until there is work, and (batching) until the batch is full or the oldest waited enough."""
        cfg = self.config
        with self._cond:
            while self._running and not self._inbox and not self._active:
                self._cond.wait(0.1)
            if not cfg.batching or cfg.max_wait_ms <= 0:
                return
            while self._running and self._inbox and len(self._active) + len(self._inbox) < cfg.max_batch:
                oldest = self._inbox[0].enqueued
                remaining = oldest + cfg.max_wait_ms / 1000 - time.perf_counter()
                if remaining <= 0 or self._active or not self._window_worth_waiting():
                    # Ongoing requests never stall: new arrivals join at the next step.
                    return
                self._cond.wait(remaining)

    def _window_worth_waiting(self) -> bool:
        """Wait for batchmates only when arrivals come faster than one per two windows.

        An idle engine that waits ``max_wait_ms`` for company at 10 requests/s adds that
        wait to almost every request and gains nothing; under a burst the gaps are short
        and the window fills the batch. (Once work is in flight, new arrivals join at the
        next step anyway: continuous batching needs no window.)
        """
        return self._ema_gap_s < 2 * self.config.max_wait_ms / 1000

    def _worker(self) -> None:
        torch.set_grad_enabled(False)
        limit = self.config.max_batch if self.config.batching else 1
        while True:
            self._wait_for_batch()
            if not self._running and not self._active and not self._inbox:
                break
            self._iterate(limit)
        log.info("engine %s stopped after %d iterations", self.lm.name, self.iterations)

    def _iterate(self, limit: int) -> None:
        """One pass: drop what expired, admit newcomers, run one iteration's model calls."""
        if not self._running:
            # Draining: finish what is running, reject what never started.
            while self._inbox:
                self._finish(self._inbox.popleft(), error=EngineStopped("server shutting down"))
        self._drop_expired()
        self._admit(limit)
        rows = 0
        chosen: list[_Request] = []
        for req in [r for r in self._active if r.call is not None][:limit]:
            assert req.call is not None
            if chosen and rows + req.call.rows > self.config.max_batch_rows:
                break
            chosen.append(req)
            rows += req.call.rows
        self._active = [r for r in self._active if r.call is not None]
        if not chosen:
            return
        t0 = time.perf_counter()
        for group in steps_then_reads(chosen):
            self._run(group)
        elapsed = time.perf_counter() - t0
        self._ema_iteration_s = 0.9 * self._ema_iteration_s + 0.1 * elapsed
        self.iterations += 1
        self._record_work(elapsed, sum(1 for r in chosen if r.call is None))
        self._active = [r for r in self._active if r.call is not None]

    def _run(self, group: list[_Request]) -> None:
        """One model call for ``group``'s pending calls; resume each request with its rows."""
        calls: list[ModelCall] = [r.call for r in group]  # type: ignore[misc]
        t0 = time.perf_counter()
        outputs = run_calls(self.lm.module, calls)
        if self.observer is not None:
            rows = sum(c.rows for c in calls)
            tokens = sum(c.num_tokens for c in calls)
            self.observer.iteration(IterationStats(len(group), rows, tokens, time.perf_counter() - t0))
        self.max_batch_seen = max(self.max_batch_seen, len(group))
        for req, out in zip(group, outputs, strict=True):
            req.call = None
            self._advance(req, out)


def steps_then_reads(requests: list[_Request]) -> list[list[_Request]]:
    """Split one iteration's requests into two model calls: one-token steps first, then context reads.

    Why not one call: merged, a request's beam step (6 rows of one token, ~1.4 ms alone) waits
    for a newcomer's context read (~30 pieces read one by one), and rows of unequal length
    take the packed variable-length path, slower on this CPU than either call alone; so a
    request about to finish was held back by one that had just started, and in every sweep
    batching on reached a lower rate at the p99 SLO than batching off. Apart, steps still
    batch with steps and context reads with context reads (rows sharing each weight read),
    and the requests nearest their answer go first.
    """
    steps: list[_Request] = []
    reads: list[_Request] = []
    for req in requests:
        assert req.call is not None
        (steps if req.call.num_tokens == req.call.rows else reads).append(req)
    return [group for group in (steps, reads) if group]

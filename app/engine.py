"""The step-batching inference engine's executor: one per backend, one worker thread each.

Every request is a decoder generator (:func:`model.suggest.suggest`) that yields model
calls. The worker thread owns the TorchScript module and loops, Orca-style, at the level
of single model steps; :class:`app.scheduler.Scheduler` decides everything but the work:

1. drop what expired or was cancelled, start queued requests (their first call: a context
   read, or a beam step straight away when the prefix cache holds their context);
2. if batching, wait for batchmates as long as the scheduler says (``batch_wait_s``);
3. run the chosen requests' pending calls as at most two model calls
   (:func:`model.batching.run_calls`; :func:`app.scheduler.steps_then_reads`) and resume
   each generator with its rows.

Lock discipline: the inbox (which ``submit`` appends to) is touched only while holding
``_cond``; the worker takes it once per pass, to wait for work, expire and start requests,
and releases it for everything else, so ``submit`` never waits on the model. The running set,
the cost estimate and retirements are the worker's alone and need no lock
(:mod:`app.scheduler`): taking it three or more times per pass was a visible share of a
request's serving CPU.

Faults stay contained (vLLM's ``EngineDeadError`` pattern): an exception in a model call
fails that iteration's requests with :class:`ModelFault` (an error id, logged with the
traceback) and the loop carries on; if the worker thread dies anyway, every pending and every
new request fails at once with :class:`EngineDead`, and ``dead`` says why (``/healthz`` turns
503 so an orchestrator restarts the process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from app.scheduler import (
    DeadlineExceeded,
    EngineError,
    EngineStopped,
    Overloaded,
    Scheduler,
    SchedulerConfig,
    steps_then_reads,
)
from model.artifact import LanguageModel
from model.batching import Decoding, ModelCall, run_calls
from model.prefix_cache import PrefixStateCache
from model.suggest import DecodeOptions, SuggestResult, suggest

__all__ = [
    "DeadlineExceeded", "EngineConfig", "EngineDead", "EngineError", "EngineResult", "EngineStopped",
    "InferenceEngine", "ModelFault", "Overloaded", "Timing",
]

log = logging.getLogger(__name__)


class ModelFault(EngineError):
    """A model call raised: this request failed, the engine carries on (``error_id`` is in the log)."""

    def __init__(self, error_id: str) -> None:
        super().__init__(f"model error (id {error_id})")
        self.error_id = error_id


class EngineDead(EngineError):
    """The backend's worker is gone: nothing more will be answered until the process restarts."""


@dataclass(frozen=True)
class EngineConfig:
    """Built from :class:`app.config.Settings` by :func:`app.main.engine_config` (no defaults here)."""

    scheduler: SchedulerConfig
    deadline_ms: float
    cache_bytes: int
    decode: DecodeOptions


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

    def __init__(self, lm: LanguageModel, config: EngineConfig, observer: Any = None,
                 collector: Callable[[float], None] | None = None) -> None:
        self.lm = lm
        self.collector = collector  # app.young_gc.YoungCollector, called after each pass that ran the model
        self.config = config
        self.cache = PrefixStateCache(config.cache_bytes)
        self.observer = observer  # app.metrics.EngineMetrics or None
        self.scheduler: Scheduler[_Request] = Scheduler(config.scheduler)
        self._cond = threading.Condition()
        self._running = False
        self._thread: threading.Thread | None = None
        self.max_batch_seen = 0
        self.dead: str | None = None  # why the worker died, once it has

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
        return self._running and self.dead is None and self._thread is not None and self._thread.is_alive()

    @property
    def queue_depth(self) -> int:
        return len(self.scheduler.inbox)

    @property
    def in_flight(self) -> int:
        return self.scheduler.admitted

    @property
    def iterations(self) -> int:
        return self.scheduler.iterations

    # ------------------------------------------------------------------ asyncio side
    def submit(self, text: str, k: int = 3, max_words: int = 0, session: str | None = None,
               subject: str = "") -> _Request:
        """Admit a request or raise :class:`Overloaded` / :class:`EngineStopped` / :class:`EngineDead` at once.

        ``session`` scopes the prefix cache: a request reuses only what its own session cached. A
        request without one uses no cache at all (nothing of it is kept for anyone else to probe).
        ``subject``: the e-mail's subject, read by a model that learnt to (``model.suggest.header_ids``).
        """
        loop = asyncio.get_running_loop()
        now = time.perf_counter()
        cache = self.cache if self.config.cache_bytes and session is not None else None
        gen = suggest(self.lm, text, k, max_words, cache, self.config.decode, scope=session or "", subject=subject)
        req = _Request(gen, loop.create_future(), loop, now, now + self.config.deadline_ms / 1000)
        try:
            with self._cond:
                if self.dead is not None:
                    raise EngineDead(f"backend {self.lm.name} is down")
                if not self._running:
                    raise EngineStopped("engine is not running")
                self.scheduler.admit(req, now)
                self._cond.notify()
        except Overloaded as exc:
            if self.observer is not None:
                self.observer.refused(exc.reason)
            raise
        return req

    async def complete(self, text: str, k: int = 3, max_words: int = 0, session: str | None = None,
                       subject: str = "") -> EngineResult:
        req = self.submit(text, k, max_words, session, subject)
        try:
            return await req.future
        finally:
            req.cancel()  # no-op when finished; drops the work if the caller went away

    # ------------------------------------------------------------------ worker side
    def _finish(self, req: _Request, result: EngineResult | None = None, error: Exception | None = None) -> None:
        req.gen.close()
        if self.observer is not None:  # before the answer goes out, so metrics never lag a response
            self.observer.request_done(req, result, error)
        # After the metrics: once in_flight no longer counts a request, its outcome is recorded.
        self.scheduler.retire()  # worker thread only: no lock (see the module docstring)

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
            req.call = None
            now = time.perf_counter()
            started = req.started if req.started is not None else now
            timing = Timing(
                queue_ms=(started - req.enqueued) * 1000,
                compute_ms=(now - started) * 1000,
                total_ms=(now - req.enqueued) * 1000,
            )
            self._finish(req, EngineResult(stop.value, timing))
        except Exception:  # a decoding bug must fail one request, not the engine
            self._fail([req], "decoder")

    def _fail(self, reqs: list[_Request], where: str) -> None:
        """Fail ``reqs`` with one error id, logged with the traceback being handled."""
        error_id = uuid.uuid4().hex[:12]
        log.exception("%s failed in backend %s (error id %s, %d requests)", where, self.lm.name, error_id, len(reqs))
        for req in reqs:
            req.call = None
            self._finish(req, error=ModelFault(error_id))

    def _worker(self) -> None:
        torch.set_grad_enabled(False)
        try:
            while self._pass():
                pass
            log.info("engine %s stopped after %d iterations", self.lm.name, self.iterations)
        except BaseException as exc:  # the thread is dying: nobody may be left waiting
            self._die(exc)

    def _die(self, exc: BaseException) -> None:
        log.critical("engine %s died: %r", self.lm.name, exc, exc_info=exc)
        with self._cond:
            self.dead = type(exc).__name__
            stranded = self.scheduler.drain_inbox() + self.scheduler.active
            self.scheduler.active = []
        for req in stranded:
            self._finish(req, error=EngineDead(f"backend {self.lm.name} is down"))

    def _pass(self) -> bool:
        """One pass of the loop: wait for work, do the bookkeeping, run one iteration. False: stop."""
        sched = self.scheduler
        with self._cond:
            while self._running and not sched.inbox and not sched.active:
                self._cond.wait(0.1)
            while self._running and (wait := sched.batch_wait_s(time.perf_counter())) > 0:
                self._cond.wait(wait)
            if not self._running and not sched.inbox and not sched.active:
                return False
            # Draining: finish what is running, reject what never started.
            refused = sched.drain_inbox() if not self._running else []
            now = time.perf_counter()
            gone = sched.expire(now)
            started = sched.start(now)
        for req in refused:
            self._finish(req, error=EngineStopped("server shutting down"))
        for req, error in gone:
            self._finish(req, error=error)
        for req in started:
            self._advance(req, None)
        chosen = sched.choose()
        if not chosen:
            return True
        t0 = time.perf_counter()
        for group in steps_then_reads(chosen):
            self._run(group)
        now = time.perf_counter()
        sched.record(now - t0, sum(1 for r in chosen if r.call is None))
        if self.collector is not None:
            self.collector(now)
        return True

    def _run(self, group: list[_Request]) -> None:
        """One model call for ``group``'s pending calls; resume each request with its rows."""
        calls: list[ModelCall] = [r.call for r in group]  # type: ignore[misc]
        t0 = time.perf_counter()
        try:
            outputs = run_calls(self.lm.module, calls)
        except Exception:  # this iteration's requests fail; the engine goes on
            self._fail(group, "model call")
            return
        if self.observer is not None:
            rows = sum(c.rows for c in calls)
            tokens = sum(c.num_tokens for c in calls)
            self.observer.iteration(IterationStats(len(group), rows, tokens, time.perf_counter() - t0))
        self.max_batch_seen = max(self.max_batch_seen, len(group))
        for req, out in zip(group, outputs, strict=True):
            req.call = None
            self._advance(req, out)

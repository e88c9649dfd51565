"""The engine's scheduler: admission, batch choice, expiry and the one cost estimate.

Pure bookkeeping: no threads, no locks, no clock of its own (every method that needs the
time takes ``now``), no model. :class:`app.engine.InferenceEngine` (the executor) owns the
thread, the lock and the model calls; tests drive these methods directly with a fake clock.
The inbox is shared between the threads that admit and the worker, so whatever touches it
runs under the executor's lock; the running set, the cost estimate and the retired count
are written by the worker alone (:meth:`choose`, :meth:`record`, :meth:`retire` need no lock).

Admission (:meth:`Scheduler.admit`): at most ``queue_limit`` requests are queued or running,
and none is admitted while the oldest queued request has waited over ``max_queue_wait_ms``
(the queue's sojourn time, as CoDel uses it) or while the work already admitted would take
longer than that to finish (admitted requests x measured busy seconds per answered request).
A rejected request gets :class:`Overloaded` with a Retry-After from the same estimate.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from model.batching import ModelCall

#: Iterations the cost estimate looks back over, and answers it needs before it is trusted.
COST_WINDOW_ITERATIONS = 256
COST_MIN_ANSWERS = 8


#: Why :meth:`Scheduler.admit` refuses a request (the ``reason`` label of ``nextword_overloaded_total``).
REFUSALS = QUEUE_FULL, QUEUE_TOO_OLD, TOO_MUCH_WORK_AHEAD = ("queue full", "queue too old", "too much work ahead")


class EngineError(RuntimeError):
    """Base class: the engine could not answer this request."""


class Overloaded(EngineError):
    """Too much work is admitted already (``reason`` says by which rule); retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: float, reason: str) -> None:
        super().__init__(f"server overloaded: {reason}")
        self.retry_after = retry_after
        self.reason = reason


class DeadlineExceeded(EngineError):
    """The request's deadline passed before it finished."""


class EngineStopped(EngineError):
    """The engine is draining or stopped, or the client went away."""


@dataclass(frozen=True)
class SchedulerConfig:
    batching: bool
    max_batch: int
    max_batch_rows: int
    max_wait_ms: float
    queue_limit: int
    max_queue_wait_ms: float


class Ticket(Protocol):
    """What the scheduler reads of a request (the executor's request object has these)."""

    enqueued: float
    deadline: float
    started: float | None
    call: ModelCall | None
    cancelled: bool


T = TypeVar("T", bound=Ticket)


@dataclass
class CostEstimate:
    """Busy seconds per answered request over the last iterations (``None`` until measured)."""

    window: int = COST_WINDOW_ITERATIONS
    min_answers: int = COST_MIN_ANSWERS
    _recent: deque[tuple[float, int]] = field(default_factory=deque)
    _seconds: float = 0.0
    _answers: int = 0
    per_request_s: float | None = None

    def record(self, seconds: float, answered: int) -> None:
        self._recent.append((seconds, answered))
        self._seconds += seconds
        self._answers += answered
        if len(self._recent) > self.window:
            old_seconds, old_answers = self._recent.popleft()
            self._seconds -= old_seconds
            self._answers -= old_answers
        if self._answers >= self.min_answers:
            self.per_request_s = self._seconds / self._answers


class Scheduler(Generic[T]):
    """Queued (``inbox``) and running (``active``) requests, and the rules that move them."""

    def __init__(self, config: SchedulerConfig) -> None:
        self.config = config
        self.inbox: deque[T] = deque()
        self.active: list[T] = []
        self._admits = 0  # written under the executor's lock
        self._retires = 0  # written by the worker alone: retiring takes no lock
        self.cost = CostEstimate()
        self.iterations = 0
        # Smoothed gap between arrivals: the batch window is only worth waiting for when
        # another request is likely to arrive inside it.
        self._ema_gap_s = 0.0
        self._last_arrival: float | None = None

    @property
    def admitted(self) -> int:
        """Requests queued or running (read without the lock it may be one high: never too low)."""
        return self._admits - self._retires

    @property
    def limit(self) -> int:
        """Requests whose calls may share one iteration."""
        return self.config.max_batch if self.config.batching else 1

    # ------------------------------------------------------------------ arrivals
    def admit(self, req: T, now: float) -> None:
        """Queue ``req`` or raise :class:`Overloaded` at once."""
        reason = self.refusal(now)
        if reason is not None:
            raise Overloaded(self.retry_after(), reason)
        self._admits += 1
        self.inbox.append(req)
        if self._last_arrival is not None:
            self._ema_gap_s = 0.8 * self._ema_gap_s + 0.2 * (now - self._last_arrival)
        self._last_arrival = now

    def refusal(self, now: float) -> str | None:
        """Why a request arriving now is refused (one of :data:`REFUSALS`), or ``None``."""
        cfg = self.config
        if self.admitted >= cfg.queue_limit:
            return QUEUE_FULL
        if self.queue_wait_s(now) * 1000 > cfg.max_queue_wait_ms:
            return QUEUE_TOO_OLD
        if self.work_ahead_s() * 1000 > cfg.max_queue_wait_ms:
            return TOO_MUCH_WORK_AHEAD
        return None

    def queue_wait_s(self, now: float) -> float:
        """How long the oldest queued request has waited (0 when none waits)."""
        return now - self.inbox[0].enqueued if self.inbox else 0.0

    def work_ahead_s(self) -> float:
        """How long the admitted requests will take to answer, by the measured cost (0 if unknown).

        The queue's sojourn time alone lets a burst in: by the time the oldest has waited
        ``max_queue_wait_ms``, hundreds may be queued behind it, and those then miss their deadline.
        """
        cost = self.cost.per_request_s
        return self.admitted * cost if cost is not None else 0.0

    def retry_after(self) -> float:
        """Seconds until the admitted backlog is answered, by the same estimate; at least one."""
        return float(max(1, math.ceil(self.work_ahead_s())))

    # ------------------------------------------------------------------ the worker's pass
    def batch_wait_s(self, now: float) -> float:
        """How long to wait for batchmates before running (0: run now).

        Batching waits while the batch is not full and the *oldest* queued request has waited
        less than ``max_wait_ms`` (Triton's rule: the clock is the request's); never while
        requests are running (newcomers join them at the next step), and never when arrivals
        are sparse (an idle engine waiting for company adds the window to every request).
        """
        cfg = self.config
        if not cfg.batching or cfg.max_wait_ms <= 0 or not self.inbox or self.active:
            return 0.0
        if len(self.inbox) >= cfg.max_batch or self._ema_gap_s >= 2 * cfg.max_wait_ms / 1000:
            return 0.0
        return max(0.0, self.inbox[0].enqueued + cfg.max_wait_ms / 1000 - now)

    def expire(self, now: float) -> list[tuple[T, EngineError]]:
        """Remove requests that were cancelled or are past their deadline; the caller finishes them."""
        gone: list[tuple[T, EngineError]] = []

        def keep(req: T, where: str) -> bool:
            error = _why_gone(req, now, where)
            if error is not None:
                gone.append((req, error))
            return error is None

        self.active = [r for r in self.active if keep(r, "")]
        if any(_why_gone(r, now, "") for r in self.inbox):
            self.inbox = deque(r for r in self.inbox if keep(r, " in queue"))
        return gone

    def start(self, now: float) -> list[T]:
        """Move queued requests into the running set, oldest first, up to the batch limit."""
        started: list[T] = []
        while self.inbox and len(self.active) + len(started) < self.limit:
            req = self.inbox.popleft()
            req.started = now
            started.append(req)
        self.active.extend(started)
        return started

    def drain_inbox(self) -> list[T]:
        """Everything still queued (shutting down: the caller rejects it)."""
        waiting, self.inbox = list(self.inbox), deque()
        return waiting

    def choose(self) -> list[T]:
        """The running requests whose pending calls share this iteration (batch and row limits)."""
        self.active = [r for r in self.active if r.call is not None]
        chosen: list[T] = []
        rows = 0
        for req in self.active[: self.limit]:
            assert req.call is not None
            if chosen and rows + req.call.rows > self.config.max_batch_rows:
                break
            chosen.append(req)
            rows += req.call.rows
        return chosen

    def record(self, seconds: float, answered: int) -> None:
        """One iteration's model-call time and the requests it answered (the cost estimate)."""
        self.iterations += 1
        self.cost.record(seconds, answered)
        self.active = [r for r in self.active if r.call is not None]

    def retire(self) -> None:
        """A request left (answered, failed or dropped): its admission slot is free."""
        self._retires += 1


def _why_gone(req: Ticket, now: float, where: str) -> EngineError | None:
    if req.cancelled:
        return EngineStopped("client went away")
    if now > req.deadline:
        return DeadlineExceeded(f"deadline passed{where}")
    return None


def steps_then_reads(requests: list[T]) -> list[list[T]]:
    """Split one iteration's requests into two model calls: one-token steps first, then context reads.

    Why not one call: merged, a request's beam step waits for a newcomer's whole context read,
    and rows of unequal length take the packed variable-length path, slower on a CPU than
    either call alone (bench/results/ab_steps_then_reads.json). Apart, steps still batch with
    steps and reads with reads, and the requests nearest their answer go first.
    """
    steps: list[T] = []
    reads: list[T] = []
    for req in requests:
        assert req.call is not None
        (steps if req.call.num_tokens == req.call.rows else reads).append(req)
    return [group for group in (steps, reads) if group]

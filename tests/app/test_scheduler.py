"""The scheduler alone: admission, batch window, expiry, batch choice, the cost estimate.

No threads and no sleeps: every decision takes the time as an argument (a fake clock).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from app.scheduler import DeadlineExceeded, EngineStopped, Overloaded, Scheduler, SchedulerConfig
from model.batching import ModelCall


@dataclass
class Req:
    enqueued: float
    deadline: float
    started: float | None = None
    call: ModelCall | None = None
    cancelled: bool = False


def config(**overrides) -> SchedulerConfig:
    values = dict(batching=True, max_batch=4, max_batch_rows=32, max_wait_ms=2.0, queue_limit=8,
                  max_queue_wait_ms=250.0)
    values.update(overrides)
    return SchedulerConfig(**values)


def call(rows: int, tokens_per_row: int = 1) -> ModelCall:
    return ModelCall([[1] * tokens_per_row for _ in range(rows)], torch.zeros(rows, 1, 1))


def req(t: float, deadline_s: float = 1.0) -> Req:
    return Req(enqueued=t, deadline=t + deadline_s)


def test_queue_limit_rejects_at_once_and_a_retired_slot_is_reusable():
    s = Scheduler(config(queue_limit=2))
    s.admit(req(0.0), 0.0)
    s.admit(req(0.0), 0.0)
    with pytest.raises(Overloaded) as exc:
        s.admit(req(0.0), 0.0)
    assert exc.value.retry_after >= 1 and exc.value.reason == "queue full"
    s.retire()
    s.admit(req(0.0), 0.0)
    assert s.admitted == 2


def test_an_old_queue_rejects_new_work():
    s = Scheduler(config(max_queue_wait_ms=250))
    s.admit(req(0.0), 0.0)
    s.admit(req(0.2), 0.2)  # the oldest has waited 200 ms: fine
    with pytest.raises(Overloaded) as exc:
        s.admit(req(0.3), 0.3)  # 300 ms > 250 ms
    assert exc.value.reason == "queue too old"


def test_admitted_work_ahead_rejects_a_burst_and_sets_retry_after():
    s = Scheduler(config(queue_limit=1000, max_queue_wait_ms=250))
    s.record(1.0, 10)  # measured: 100 ms of busy time per answered request
    for _ in range(3):
        s.admit(req(0.0), 0.0)  # 0, 100, 200 ms of work ahead
    with pytest.raises(Overloaded) as exc:
        s.admit(req(0.0), 0.0)  # 300 ms ahead > 250 ms
    assert exc.value.retry_after == 1.0 and exc.value.reason == "too much work ahead"
    for _ in range(3):
        s.retire()
    s.record(100.0, 0)  # the estimate now says ~10 s a request: the backlog of one drains in 10 s
    s.admit(req(0.0), 0.0)
    assert s.retry_after() == pytest.approx(round(s.work_ahead_s() + 0.5), abs=1)


def test_cost_estimate_waits_for_enough_answers_then_follows_a_window():
    s = Scheduler(config())
    s.record(0.5, 3)
    assert s.cost.per_request_s is None  # too few answers to trust
    s.record(0.5, 7)
    assert s.cost.per_request_s == pytest.approx(0.1)
    for _ in range(s.cost.window):
        s.record(0.01, 1)
    assert s.cost.per_request_s == pytest.approx(0.01)  # the old, slow iterations have left the window


def test_batch_window_waits_for_the_oldest_request_then_not_at_all():
    s = Scheduler(config(max_wait_ms=2.0))
    s.admit(req(10.0), 10.0)
    assert s.batch_wait_s(10.0005) == pytest.approx(0.0015)
    assert s.batch_wait_s(10.003) == 0.0  # the oldest waited its 2 ms
    s.start(10.003)
    s.admit(req(10.004), 10.004)
    assert s.batch_wait_s(10.004) == 0.0  # work is running: newcomers join it at the next step


def test_batch_window_is_skipped_when_arrivals_are_sparse_or_the_batch_is_full():
    s = Scheduler(config(max_wait_ms=2.0, max_batch=2, queue_limit=100, max_queue_wait_ms=1e9))
    for t in (0.0, 0.5, 1.0, 1.5):  # two arrivals a second
        s.admit(req(t), t)
        s.start(t)
        s.active.clear()
    s.admit(req(2.0), 2.0)
    assert s.batch_wait_s(2.0) == 0.0
    dense = Scheduler(config(max_wait_ms=2.0, max_batch=2))
    dense.admit(req(0.0), 0.0)
    dense.admit(req(0.0001), 0.0001)
    assert dense.batch_wait_s(0.0001) == 0.0  # full batch: go


def test_batching_off_runs_one_request_at_a_time():
    s = Scheduler(config(batching=False))
    for _ in range(3):
        s.admit(req(0.0), 0.0)
    assert len(s.start(0.0)) == 1 and s.batch_wait_s(0.0) == 0.0


def test_expiry_and_cancellation_in_queue_and_while_running():
    s = Scheduler(config(max_batch=2))
    running_late, running_gone, waiting_late, waiting_ok = req(0.0, 1.0), req(0.0, 5.0), req(0.0, 1.0), req(0.0, 5.0)
    for r in (running_late, running_gone, waiting_late, waiting_ok):
        s.admit(r, 0.0)
    assert s.start(0.0) == [running_late, running_gone]
    running_gone.cancelled = True
    gone = dict((id(r), type(e)) for r, e in s.expire(2.0))
    assert gone == {id(running_late): DeadlineExceeded, id(running_gone): EngineStopped,
                    id(waiting_late): DeadlineExceeded}
    assert s.active == [] and list(s.inbox) == [waiting_ok]


def test_start_is_fifo_and_stamps_the_start_time():
    s = Scheduler(config(max_batch=2))
    reqs = [req(0.001 * i) for i in range(3)]
    for r in reqs:
        s.admit(r, r.enqueued)
    assert s.start(0.5) == reqs[:2]
    assert reqs[0].started == 0.5 and reqs[2].started is None


def test_choose_respects_the_row_limit_and_skips_finished_requests():
    s = Scheduler(config(max_batch=4, max_batch_rows=10))
    reqs = [req(0.0) for _ in range(4)]
    for r in reqs:
        s.admit(r, 0.0)
    s.start(0.0)
    reqs[0].call, reqs[1].call, reqs[2].call, reqs[3].call = call(6), None, call(6), call(3)
    assert s.choose() == [reqs[0]]  # 6 + 6 rows would pass the limit of 10
    assert reqs[1] not in s.active  # finished: no longer running

"""When each job was claimable, for the priority_order and fifo_order checkers.

A claim window is the real-time span from a claim's invoke to its ok. The
claim's database operation ran somewhere inside it. A job K was available for
the whole window of a claim C when:

- the step that made K claimable (its enqueue ok, or a fail ok with QUEUED,
  release ok, recover requeue or retry ok) was recorded before C's invoke;
- K was ready by then: its `run_at` is at or before the database time of
  that step, or of another operation recorded before C's invoke;
- the claim or cancel that next took K was invoked after C's ok.

Each of these facts shows K was QUEUED and runnable when C's database
operation ran, provided the database clock does not go backwards. A claim
whose ok was never recorded may have taken K unseen. When a later step of K
carries a newer token than any recorded claim, K's availability before that
step is dropped, because the history cannot tell when it ended.

The sweep inserts each availability into a structure when it starts and
runs each claim's query at its invoke. A structure only needs the latest end
among the availabilities it received: one that already ended has an end
before the current invoke and cannot beat a claim's ok time.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.checkers.index import EnqueuedJob, HistoryIndex, Step
from harness.checkers.verdict import Violation, violation
from harness.history import Event, FinalState, JobRecord

__all__ = ["Availability", "ClaimWindow", "collect", "describe_pass_over", "sweep"]

_REQUEUE_STEPS = frozenset({"fail", "release", "recover", "retry"})


@dataclass(frozen=True)
class Availability:
    """A span during which one job was QUEUED."""

    job: str
    queue: str
    priority: int
    seq: int
    start_t: float  # ok time of the step that made the job claimable
    start_position: int
    end_t: float  # invoke time of the claim or cancel that took it, or +inf
    run_at: float | None
    start_db_time: float | None
    first: bool  # started by the enqueue

    @property
    def ready_at_start(self) -> bool:
        if self.run_at is None:
            return True
        return self.start_db_time is not None and self.run_at <= self.start_db_time


@dataclass(frozen=True)
class ClaimWindow:
    """One claim ok and the real-time span of its operation."""

    job: str
    token: int | None
    queue: str
    priority: int
    seq: int
    invoke_t: float
    invoke_position: int
    ok_t: float
    first: bool  # the claim ended the availability that the enqueue started


def _makes_available(step: Step) -> bool:
    if step.kind == "enqueue":
        return True
    return step.kind in _REQUEUE_STEPS and step.state == "QUEUED"


def _takes(step: Step) -> bool:
    return step.kind == "claim" or (step.kind == "cancel" and step.state == "CANCELLED")


def _attributes(
    info: EnqueuedJob | None, steps: list[Step]
) -> tuple[str, int, int] | None:
    """Return the job's (queue, priority, seq), or None if any is unknown."""
    queue = info.queue if info is not None else None
    priority = info.priority if info is not None else None
    seq = info.seq if info is not None else None
    for step in steps:
        if step.kind == "claim":
            priority = priority if priority is not None else step.event.get("priority")
            seq = seq if seq is not None else step.event.get("seq")
    if queue is None or priority is None or seq is None:
        return None
    return queue, priority, seq


def _job_spans(
    job: str,
    attributes: tuple[str, int, int],
    steps: list[Step],
    record: JobRecord | None,
) -> tuple[list[Availability], list[ClaimWindow]]:
    queue, priority, seq = attributes
    spans: list[Availability] = []
    windows: list[ClaimWindow] = []

    def close(start: Step, end_t: float) -> Availability:
        span = Availability(
            job=job,
            queue=queue,
            priority=priority,
            seq=seq,
            start_t=start.t,
            start_position=start.position,
            end_t=end_t,
            run_at=start.run_at,
            start_db_time=start.db_time,
            first=start.kind == "enqueue",
        )
        spans.append(span)
        return span

    current: Step | None = None
    for step in steps:
        if _makes_available(step):
            current = step
        elif _takes(step):
            span = None
            if current is not None and step.invoke_t is not None:
                span = close(current, step.invoke_t)
            invoke_t, invoke_position = step.invoke_t, step.invoke_position
            if (
                step.kind == "claim"
                and invoke_t is not None
                and invoke_position is not None
            ):
                windows.append(
                    ClaimWindow(
                        job=job,
                        token=step.token,
                        queue=queue,
                        priority=priority,
                        seq=seq,
                        invoke_t=invoke_t,
                        invoke_position=invoke_position,
                        ok_t=step.t,
                        first=span is not None and span.first,
                    )
                )
            current = None
        elif current is not None and step.token is not None:
            if step.token > current.epoch:
                current = None  # an unrecorded claim took the job

    if current is not None and record is not None:
        if record["state"] == "QUEUED" and record["token"] <= current.epoch:
            close(current, math.inf)
    return spans, windows


def collect(
    history: Sequence[Event], final: FinalState, index: HistoryIndex | None = None
) -> tuple[list[Availability], list[ClaimWindow], int]:
    """Return every availability span and claim window.

    The third value counts claims skipped because their job's queue,
    priority or seq is unknown.
    """
    index = index or HistoryIndex.build(history, final)
    records = {record["job"]: record for record in final["jobs"]}
    spans: list[Availability] = []
    windows: list[ClaimWindow] = []
    skipped = 0
    for job, steps in index.steps.items():
        attributes = _attributes(index.enqueued.get(job), steps)
        if attributes is None:
            skipped += sum(1 for step in steps if step.kind == "claim")
            continue
        job_spans, job_windows = _job_spans(job, attributes, steps, records.get(job))
        spans += job_spans
        windows += job_windows
    return spans, windows, skipped


def sweep(
    history: Sequence[Event],
    spans: Sequence[Availability],
    windows: Sequence[ClaimWindow],
    insert: Callable[[Availability], None],
    query: Callable[[ClaimWindow], None],
) -> None:
    """Feed `insert` and `query` in history order.

    A span reaches `insert` only after the history has moved past its start
    time and it is ready, and a window reaches `query` at its invoke. So
    every span inserted before a query started strictly before the invoke.
    """
    spans_at: dict[int, list[Availability]] = defaultdict(list)
    for span in spans:
        spans_at[span.start_position].append(span)
    windows_at: dict[int, list[ClaimWindow]] = defaultdict(list)
    for window in windows:
        windows_at[window.invoke_position].append(window)

    waiting: list[tuple[float, int, Availability]] = []  # not ready: by run_at
    staged: list[Availability] = []  # started at the current time
    floor_db_time = -math.inf  # max db_time of oks recorded before now
    staged_db_time = -math.inf
    current_t: float | None = None
    for position, event in enumerate(history):
        if event["t"] != current_t:
            current_t = event["t"]
            floor_db_time = max(floor_db_time, staged_db_time)
            for span in staged:
                if span.ready_at_start:
                    insert(span)
                else:
                    assert span.run_at is not None
                    heapq.heappush(waiting, (span.run_at, span.start_position, span))
            staged.clear()
            while waiting and waiting[0][0] <= floor_db_time:
                insert(heapq.heappop(waiting)[2])

        for window in windows_at.get(position, ()):
            query(window)
        staged += spans_at.get(position, ())
        db_time = event.get("db_time")
        if event["type"] == "ok" and db_time is not None:
            staged_db_time = max(staged_db_time, db_time)


def describe_pass_over(
    window: ClaimWindow, witness: Availability, rule: str
) -> Violation:
    """Build the violation for a claim that passed over an available job."""
    until = (
        "never taken"
        if witness.end_t == float("inf")
        else f"taken at t={witness.end_t:.3f}"
    )
    return violation(
        window.job,
        f"claim of job {window.job} (priority {window.priority}, seq "
        f"{window.seq}, token {window.token}) ran from t={window.invoke_t:.3f} "
        f"to t={window.ok_t:.3f} while job {witness.job} (priority "
        f"{witness.priority}, seq {witness.seq}) in queue {window.queue} was "
        f"available throughout: {rule} (available from t={witness.start_t:.3f}, "
        f"{until})",
        tokens=[window.token],
        times=[window.invoke_t, window.ok_t, witness.start_t],
    )

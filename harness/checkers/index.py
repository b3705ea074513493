"""Indexes over a finalized history that several checkers share.

Each function makes one pass over the history plus dict look-ups. The
per-job step lists are sorted, but they come out of the pass almost in
order, so the sort is close to linear.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from harness.history import Event, FinalState, JobRecord, Pairing, pair_operations

__all__ = [
    "ENDING_WRITES",
    "HistoryIndex",
    "FAULT_EVENTS",
    "FENCED_WRITES",
    "EnqueuedJob",
    "Step",
    "enqueued_jobs",
    "final_jobs",
    "job_steps",
    "recovered_pairs",
]

# Writes that carry a fencing token and succeed only for the current lease.
FENCED_WRITES = frozenset({"renew", "complete", "fail", "release", "finish_cancelled"})
# Fenced writes that end an attempt.
ENDING_WRITES = frozenset({"complete", "fail", "release", "finish_cancelled"})
# Info events that the fault injector records.
FAULT_EVENTS = frozenset(
    {
        "kill",
        "pause",
        "resume",
        "terminate",
        "restart",
        "db_stop",
        "db_start",
        "latency_start",
        "latency_end",
        "clock_skew",
    }
)

StepKind = Literal[
    "enqueue",
    "claim",
    "renew",
    "complete",
    "fail",
    "release",
    "finish_cancelled",
    "recover",
    "cancel",
    "retry",
]

# Order of steps within one token epoch: the claim opens it, renewals follow,
# a write ending the attempt closes it, and tokenless operator steps (cancel
# of a queued job, retry of a failed one) come after that end.
_RANK: dict[str, int] = {
    "enqueue": 0,
    "claim": 1,
    "renew": 2,
    "complete": 3,
    "fail": 3,
    "release": 3,
    "finish_cancelled": 3,
    "recover": 3,
    "cancel": 4,
    "retry": 4,
}
_DEFAULT_STATE: dict[str, str | None] = {
    "enqueue": "QUEUED",
    "claim": "RUNNING",
    "renew": "RUNNING",
    "complete": "SUCCESS",
    "fail": None,  # QUEUED, FAILED or CANCELLED, given by the event
    "release": "QUEUED",
    "finish_cancelled": "CANCELLED",
    "cancel": None,  # CANCELLED, or RUNNING when cancellation was only requested
    "retry": "QUEUED",
}


@dataclass(frozen=True)
class EnqueuedJob:
    """A job whose enqueue was acknowledged, with its fixed attributes.

    A field missing from the ok event is taken from the invoke, then from the
    final state.
    """

    job: str
    t: float  # time of the enqueue ok
    queue: str | None
    priority: int | None
    seq: int | None
    max_retries: int | None
    run_at: float | None
    db_time: float | None


@dataclass(frozen=True)
class Step:
    """One accepted state change of one job, from an ``ok`` event.

    `epoch` is the fencing token the step belongs to: the claim's token for
    a claim and the writes under it, 0 before the first claim, and the latest
    token recorded for the job for tokenless steps (``cancel``, ``retry``).
    """

    kind: StepKind
    job: str
    token: int | None
    epoch: int
    state: str | None  # the job's state after the step
    t: float
    invoke_t: float | None
    db_time: float | None
    run_at: float | None
    position: int  # of the ok event in the history
    invoke_position: int | None
    event: Event

    @property
    def sort_key(self) -> tuple[int, int, int]:
        return (self.epoch, _RANK[self.kind], self.position)


def final_jobs(final: FinalState) -> dict[str, JobRecord]:
    return {record["job"]: record for record in final["jobs"]}


def enqueued_jobs(
    history: Sequence[Event], pairing: Pairing, final: FinalState | None = None
) -> dict[str, EnqueuedJob]:
    """Return each acknowledged job by id, from its first ``enqueue`` ok."""
    records = final_jobs(final) if final is not None else {}
    jobs: dict[str, EnqueuedJob] = {}
    for position, event in enumerate(history):
        job = event.get("job")
        if event["type"] != "ok" or event["f"] != "enqueue" or not job or job in jobs:
            continue
        invoke_position = pairing.invoke_of.get(position)
        invoke = history[invoke_position] if invoke_position is not None else None
        sources: list[Mapping[str, Any]] = [event]
        if invoke is not None:
            sources.append(invoke)
        if job in records:
            sources.append(records[job])
        jobs[job] = EnqueuedJob(
            job=job,
            t=event["t"],
            queue=_as_str(_first_value("queue", sources)),
            priority=_as_int(_first_value("priority", sources)),
            seq=_as_int(event.get("seq")),
            max_retries=_as_int(_first_value("max_retries", sources)),
            run_at=_as_float(event.get("run_at")),
            db_time=event.get("db_time"),
        )
    return jobs


def _first_value(name: str, sources: Sequence[Mapping[str, Any]]) -> object:
    for source in sources:
        if source.get(name) is not None:
            return source[name]
    return None


def _as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _as_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _as_float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def recovered_pairs(event: Event) -> Iterator[tuple[str, int, str, float | None]]:
    """Yield (job, token, new state, run_at) for each job a recover ok moved.

    Entries are ``[job, token]`` or ``[job, token, run_at]``. Without a
    run_at, a requeued job is runnable at once.
    """
    moved: tuple[tuple[str, Any], ...] = (
        ("QUEUED", event.get("requeued")),
        ("FAILED", event.get("failed")),
        ("CANCELLED", event.get("cancelled")),
    )
    for state, entries in moved:
        for entry in entries or ():
            run_at = _as_float(entry[2]) if len(entry) > 2 else None
            yield str(entry[0]), int(entry[1]), state, run_at


def _step(
    history: Sequence[Event],
    pairing: Pairing,
    position: int,
    kind: StepKind,
    job: str,
    token: int | None,
    epoch: int,
    state: str | None,
    run_at: float | None,
) -> Step:
    event = history[position]
    invoke_position = pairing.invoke_of.get(position)
    invoke_t = history[invoke_position]["t"] if invoke_position is not None else None
    return Step(
        kind=kind,
        job=job,
        token=token,
        epoch=epoch,
        state=state,
        t=event["t"],
        invoke_t=invoke_t,
        db_time=event.get("db_time"),
        run_at=run_at,
        position=position,
        invoke_position=invoke_position,
        event=event,
    )


def job_steps(history: Sequence[Event], pairing: Pairing) -> dict[str, list[Step]]:
    """Return every job's accepted state changes, in the order they took effect.

    Steps are ordered by token epoch, then by their rank in an epoch, then by
    history position. This order does not depend on database times, which
    some events lack, nor on when a paused process got to record its result.
    """
    steps: dict[str, list[Step]] = defaultdict(list)
    latest_token: dict[str, int] = {}

    for position, event in enumerate(history):
        job = event.get("job")
        token = event.get("token")
        if job and isinstance(token, int):
            latest_token[job] = max(latest_token.get(job, 0), token)
        if event["type"] != "ok":
            continue

        f = event["f"]
        if f == "recover":
            for moved_job, moved_token, state, run_at in recovered_pairs(event):
                steps[moved_job].append(
                    _step(history, pairing, position, "recover", moved_job,
                          moved_token, moved_token, state, run_at)
                )  # fmt: skip
            continue
        if f not in _RANK or not job:
            continue

        kind = cast(StepKind, f)
        if kind == "enqueue":
            epoch = 0
        elif token is not None:
            epoch = token
        else:
            epoch = latest_token.get(job, 0)
        after = event.get("state") or _DEFAULT_STATE[kind]
        run_at = _as_float(event.get("run_at"))
        steps[job].append(
            _step(history, pairing, position, kind, job, token, epoch, after, run_at)
        )

    for job_list in steps.values():
        job_list.sort(key=lambda step: step.sort_key)
    return dict(steps)


@dataclass(frozen=True)
class HistoryIndex:
    """The indexes of one history, built once and shared by the checkers.

    Every checker builds its own when none is passed in. `run_all` builds
    one for all of them, which saves most of their work.
    """

    pairing: Pairing
    steps: dict[str, list[Step]]
    enqueued: dict[str, EnqueuedJob]

    @classmethod
    def build(cls, history: Sequence[Event], final: FinalState) -> HistoryIndex:
        pairing = pair_operations(history)
        return cls(
            pairing=pairing,
            steps=job_steps(history, pairing),
            enqueued=enqueued_jobs(history, pairing, final),
        )

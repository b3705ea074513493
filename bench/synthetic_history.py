"""Seeded synthetic chaos-run histories for timing the checkers.

The events follow the format that `harness.recording` writes: one
enqueuer process enqueues every job, and worker processes claim, execute
and complete them, with a lease renewal on some jobs and one failed attempt
followed by a retry on others. The history is legal, so every checker
should pass it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

WORKERS = 4
QUEUE = "default"
MAX_RETRIES = 3
LEASE_TTL_S = 30.0
RENEW_FRACTION = 0.2
RETRY_FRACTION = 0.1
START_EPOCH_S = 1_700_000_000.0


@dataclass
class _Recorder:
    """Event list that numbers events and operations per process and advances time."""

    rng: random.Random
    events: list[dict[str, Any]] = field(default_factory=list)
    t: float = 1000.0
    next_index: dict[str, int] = field(default_factory=dict)
    next_op: dict[str, int] = field(default_factory=dict)

    @property
    def db_time(self) -> float:
        return START_EPOCH_S + self.t

    def op(self, process: str) -> int:
        self.next_op[process] = self.next_op.get(process, 0) + 1
        return self.next_op[process]

    def record(self, process: str, event_type: str, f: str, **fields: Any) -> None:
        self.t += self.rng.uniform(0.0001, 0.002)
        index = self.next_index.get(process, 0)
        self.next_index[process] = index + 1
        self.events.append(
            {
                "i": index,
                "t": self.t,
                "process": process,
                "pid": 1000 + len(self.next_index),
                "worker": f"{process}-{1000 + len(self.next_index)}",
                "type": event_type,
                "f": f,
                "db_time": None,
                **fields,
            }
        )

    def call(
        self,
        process: str,
        f: str,
        invoke: dict[str, Any],
        ok: dict[str, Any],
        outcome: str = "ok",
    ) -> None:
        op = self.op(process)
        self.record(process, "invoke", f, op=op, **invoke)
        self.record(process, outcome, f, op=op, **ok)


def _run_attempt(
    recorder: _Recorder,
    job: str,
    token: int,
    seq: int,
    process: str,
    succeeds: bool,
    effects: list[dict[str, Any]],
) -> None:
    claimed_at = recorder.db_time
    recorder.call(
        process,
        "claim",
        {"job": None, "token": None, "queues": [QUEUE]},
        {
            "job": job,
            "token": token,
            "attempts": token,
            "priority": 5,
            "seq": seq,
            "db_time": claimed_at,
            "lease_expires_at": claimed_at + LEASE_TTL_S,
        },
    )
    ids = {"job": job, "token": token}
    recorder.call(
        process, "execute", {**ids, "attempts": token, "job_type": "work"}, ids
    )
    effects.append({"job": job, "token": token, "process": process})
    if recorder.rng.random() < RENEW_FRACTION:
        renewed_at = recorder.db_time
        recorder.call(
            process,
            "renew",
            ids,
            {
                **ids,
                "db_time": renewed_at,
                "lease_expires_at": renewed_at + LEASE_TTL_S,
                "cancel_requested": False,
            },
        )
    if succeeds:
        recorder.call(
            process,
            "complete",
            ids,
            {**ids, "state": "SUCCESS", "db_time": recorder.db_time},
        )
        return
    retry_at = recorder.db_time + 0.5
    recorder.call(
        process,
        "fail",
        {**ids, "error_type": "InjectedFailure"},
        {
            **ids,
            "state": "QUEUED",
            "attempts": token,
            "run_at": retry_at,
            "db_time": None,
        },
    )


def _job_ids() -> Iterator[str]:
    counter = 0
    while True:
        counter += 1
        yield f"{counter:024x}"


def make_history(
    target_events: int, seed: int = 1
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Return `(history, final)` with about `target_events` events."""
    rng = random.Random(seed)
    recorder = _Recorder(rng)
    effects: list[dict[str, Any]] = []
    jobs: list[dict[str, Any]] = []
    ids = _job_ids()
    recorder.record("enqueuer", "info", "start")
    for index in range(WORKERS):
        recorder.record(f"w{index}", "info", "worker_start")

    seq = 0
    while len(recorder.events) < target_events:
        seq += 1
        job = next(ids)
        enqueued_at = recorder.db_time
        recorder.call(
            "enqueuer",
            "enqueue",
            {"job": None, "queue": QUEUE, "priority": 5, "job_type": "work"},
            {
                "job": job,
                "seq": seq,
                "priority": 5,
                "queue": QUEUE,
                "max_retries": MAX_RETRIES,
                "run_at": enqueued_at,
                "db_time": enqueued_at,
            },
        )
        token = 1
        if rng.random() < RETRY_FRACTION:
            process = f"w{rng.randrange(WORKERS)}"
            _run_attempt(recorder, job, token, seq, process, False, effects)
            token += 1
        process = f"w{rng.randrange(WORKERS)}"
        _run_attempt(recorder, job, token, seq, process, True, effects)
        jobs.append(
            {
                "job": job,
                "state": "SUCCESS",
                "attempts": token,
                "token": token,
                "max_retries": MAX_RETRIES,
                "priority": 5,
                "seq": seq,
                "queue": QUEUE,
                "run_at": enqueued_at,
            }
        )

    history = sorted(recorder.events, key=lambda event: event["t"])
    for position, event in enumerate(history):
        event["i"] = position
    return history, {"jobs": jobs, "effects": effects}

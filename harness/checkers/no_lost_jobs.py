"""no_lost_jobs: every acknowledged enqueue ends SUCCESS, FAILED or CANCELLED."""

from __future__ import annotations

from collections.abc import Sequence

from harness.checkers.index import HistoryIndex, final_jobs
from harness.checkers.verdict import Verdict, Violation, make_verdict, violation
from harness.history import TERMINAL_STATES, Event, FinalState


def check(
    history: Sequence[Event], final: FinalState, *, index: HistoryIndex | None = None
) -> Verdict:
    """Check that each job with an ``enqueue`` ok is in a terminal final state.

    `checked` counts acknowledged enqueues.
    """
    index = index or HistoryIndex.build(history, final)
    enqueued = index.enqueued
    records = final_jobs(final)
    violations: list[Violation] = []
    for job, info in enqueued.items():
        record = records.get(job)
        if record is None:
            violations.append(
                violation(
                    job,
                    f"job {job} was acknowledged by an enqueue at t={info.t:.3f} "
                    "but is missing from the final state",
                    times=[info.t],
                )
            )
        elif record["state"] not in TERMINAL_STATES:
            violations.append(
                violation(
                    job,
                    f"job {job} ended {record['state']} (attempts "
                    f"{record['attempts']}, token {record['token']}); expected "
                    "SUCCESS, FAILED or CANCELLED",
                    tokens=[record["token"]],
                    times=[info.t],
                )
            )
    return make_verdict(len(enqueued), violations)

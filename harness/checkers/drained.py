"""drained: after the last fault heals, every job ends within the drain timeout."""

from __future__ import annotations

from collections.abc import Sequence

from harness.checkers.index import FAULT_EVENTS, HistoryIndex, final_jobs
from harness.checkers.verdict import Verdict, Violation, make_verdict, violation
from harness.history import TERMINAL_STATES, Event, FinalState


def last_fault_t(history: Sequence[Event]) -> float | None:
    """Return the time of the last fault event, normally the last heal."""
    times = [
        event["t"]
        for event in history
        if event["type"] == "info" and event["f"] in FAULT_EVENTS
    ]
    return max(times) if times else None


def check(
    history: Sequence[Event],
    final: FinalState,
    *,
    drain_timeout_s: float,
    index: HistoryIndex | None = None,
) -> Verdict:
    """Check that every acknowledged job reached a terminal state in time.

    The drain starts at the last fault event (``resume``, ``restart``,
    ``db_start`` and so on), or at the start of the history if there is
    none, and for a job enqueued later, at its enqueue ok. The job must be
    SUCCESS, FAILED or CANCELLED in the final state, and the last step that
    put it there must be recorded no later than ``drain_timeout_s`` after the
    drain start. A terminal job with no recorded terminal step counts in
    ``stats["no_end_time"]``. `checked` counts acknowledged jobs.
    """
    index = index or HistoryIndex.build(history, final)
    enqueued, steps = index.enqueued, index.steps
    records = final_jobs(final)
    healed_t = last_fault_t(history)
    if healed_t is None:
        healed_t = history[0]["t"] if history else 0.0

    violations: list[Violation] = []
    no_end_time = 0
    for job, info in enqueued.items():
        deadline_t = max(healed_t, info.t) + drain_timeout_s
        record = records.get(job)
        if record is None or record["state"] not in TERMINAL_STATES:
            state = record["state"] if record is not None else "missing"
            violations.append(
                violation(
                    job,
                    f"job {job} is {state} at the end of the run; it had to end "
                    f"by t={deadline_t:.3f}, {drain_timeout_s:g}s after the drain "
                    f"started at t={max(healed_t, info.t):.3f}",
                    tokens=[record["token"] if record is not None else None],
                    times=[info.t],
                )
            )
            continue

        ends = [
            step
            for step in steps.get(job, ())
            if step.state in TERMINAL_STATES and step.kind != "renew"
        ]
        if not ends:
            no_end_time += 1
            continue
        end = ends[-1]
        if end.t > deadline_t:
            violations.append(
                violation(
                    job,
                    f"job {job} ended {end.state} at t={end.t:.3f}, "
                    f"{end.t - deadline_t:.3f}s after its drain deadline "
                    f"t={deadline_t:.3f}",
                    tokens=[end.token],
                    times=[info.t, end.t],
                )
            )
    return make_verdict(len(enqueued), violations, {"no_end_time": no_end_time})

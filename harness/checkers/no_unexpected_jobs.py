"""no_unexpected_jobs: no job appears that was never enqueued."""

from __future__ import annotations

from collections.abc import Sequence

from harness.checkers.index import HistoryIndex
from harness.checkers.verdict import Verdict, Violation, make_verdict, violation
from harness.history import Event, FinalState


def check(
    history: Sequence[Event], final: FinalState, *, index: HistoryIndex | None = None
) -> Verdict:
    """Check that every job in the final state or in a claim ok was enqueued.

    A job is expected if an ``enqueue`` ok returned its id. An enqueue with an
    ``unknown`` outcome may have inserted a job whose id was never recorded, so up to
    that many unexpected jobs are tolerated and counted in
    ``stats["explained_by_unknown_enqueues"]``. Past that count, every
    unexpected job is a violation, because the history cannot tell which of
    them the unknown enqueues inserted. `checked` counts distinct jobs seen.
    """
    index = index or HistoryIndex.build(history, final)
    enqueued = index.enqueued
    unknown_enqueues = sum(
        1 for event in history if event["type"] == "unknown" and event["f"] == "enqueue"
    )

    # Where each job was first seen: (description, time or None, token).
    seen: dict[str, tuple[str, float | None, int | None]] = {}
    for event in history:
        job = event.get("job")
        if event["type"] == "ok" and event["f"] == "claim" and job and job not in seen:
            seen[job] = (
                f"a claim at t={event['t']:.3f}",
                event["t"],
                event.get("token"),
            )
    for record in final["jobs"]:
        seen.setdefault(record["job"], ("the final state", None, record["token"]))

    unexpected = [job for job in seen if job not in enqueued]
    violations: list[Violation] = []
    if len(unexpected) > unknown_enqueues:
        for job in unexpected:
            where, t, token = seen[job]
            violations.append(
                violation(
                    job,
                    f"job {job} appears in {where} but no enqueue returned it; "
                    f"{len(unexpected)} such jobs, and only {unknown_enqueues} "
                    "enqueues had an unknown outcome",
                    tokens=[token],
                    times=[t],
                )
            )
    stats = {
        "unknown_enqueues": unknown_enqueues,
        "explained_by_unknown_enqueues": 0 if violations else len(unexpected),
    }
    return make_verdict(len(seen), violations, stats)

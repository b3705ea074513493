"""priority_order: a claim never passes over a better-priority job in its queue."""

from __future__ import annotations

from collections.abc import Sequence

from harness.checkers.availability import (
    Availability,
    ClaimWindow,
    collect,
    describe_pass_over,
    sweep,
)
from harness.checkers.index import HistoryIndex
from harness.checkers.verdict import Verdict, Violation, make_verdict
from harness.history import Event, FinalState


def check(
    history: Sequence[Event], final: FinalState, *, index: HistoryIndex | None = None
) -> Verdict:
    """Check that no claim took priority p while a better job was available.

    For every claim ok of a job with priority p in queue q, no job of q with
    a priority number below p may have been available for the whole claim
    window, as defined in `harness.checkers.availability`. `checked` counts
    claim windows, and ``stats["skipped_claims"]`` counts claims of jobs
    whose queue or priority is unknown.
    """
    spans, windows, skipped = collect(history, final, index)
    # Latest-ending span received so far, per (queue, priority).
    latest: dict[tuple[str, int], Availability] = {}
    violations: list[Violation] = []

    def insert(span: Availability) -> None:
        key = (span.queue, span.priority)
        current = latest.get(key)
        if current is None or span.end_t > current.end_t:
            latest[key] = span

    def query(window: ClaimWindow) -> None:
        for priority in range(window.priority):
            witness = latest.get((window.queue, priority))
            if witness is not None and witness.end_t > window.ok_t:
                rule = "a lower priority number must be claimed first"
                violations.append(describe_pass_over(window, witness, rule))
                return

    sweep(history, spans, windows, insert, query)
    return make_verdict(len(windows), violations, {"skipped_claims": skipped})

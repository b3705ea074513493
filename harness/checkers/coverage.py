"""coverage: the events a scenario expects happened at least once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from harness.checkers.duplicates import summarize
from harness.checkers.index import FENCED_WRITES, HistoryIndex, recovered_pairs
from harness.checkers.verdict import Verdict, Violation, make_verdict, violation
from harness.history import Event, FinalState
from harness.scenario import COVERAGE_EVENTS

# Coverage events that are info events of the same name.
_INFO_EVENTS = frozenset(
    {"kill", "pause", "terminate", "restart", "db_stop", "latency_start", "clock_skew"}
)


def _event_names(event: Event) -> Iterable[str]:
    """Yield the coverage events that one history event shows."""
    kind, f = event["type"], event["f"]
    if kind == "info" and f in _INFO_EVENTS:
        yield f
    elif kind == "ok" and f == "fail":
        if event.get("state") == "QUEUED":
            yield "retry"
        elif event.get("state") == "FAILED":
            yield "retry_exhausted"
    elif kind == "ok" and f == "recover":
        if event.get("requeued") or event.get("failed") or event.get("cancelled"):
            yield "recovery"
        if event.get("failed"):
            yield "retry_exhausted"
    elif kind == "ok" and f == "release":
        yield "release"
    elif kind == "ok" and f in ("cancel", "finish_cancelled"):
        yield "cancel"
    elif kind == "fail" and f in FENCED_WRITES and event.get("error") == "stale":
        yield "stale_write_rejected"
        if f == "renew":
            yield "lease_lost"
    if kind == "unknown" and event.get("error"):
        yield "db_error"


def count_events(
    history: Sequence[Event], final: FinalState, index: HistoryIndex | None = None
) -> Counter[str]:
    """Count every coverage event in the history, including zero counts.

    ``recovery_after_kill`` counts recoveries of a (job, token) claimed by a
    process that a ``kill`` event hit before the recovery. ``worker_crash``
    counts ``worker_exit`` events with a non-zero exit code from a process
    that no ``kill`` or ``terminate`` event hit.
    """
    counts: Counter[str] = Counter(dict.fromkeys(COVERAGE_EVENTS, 0))
    claimed_by: dict[tuple[str, int], tuple[str, int | None]] = {}
    killed: set[tuple[str, int | None]] = set()
    signalled: set[tuple[str, int | None]] = set()
    for event in history:
        counts.update(_event_names(event))
        process = (event["process"], event.get("pid"))
        kind, f = event["type"], event["f"]
        job, token = event.get("job"), event.get("token")
        if kind == "ok" and f == "claim" and job and isinstance(token, int):
            claimed_by[(job, token)] = process
        elif kind == "info" and f in ("kill", "terminate"):
            signalled.add(process)
            if f == "kill":
                killed.add(process)
        elif kind == "info" and f == "worker_exit":
            if event.get("exit_code") not in (0, None) and process not in signalled:
                counts["worker_crash"] += 1
        elif kind == "ok" and f == "recover":
            for moved_job, moved_token, _, _ in recovered_pairs(event):
                if claimed_by.get((moved_job, moved_token)) in killed:
                    counts["recovery_after_kill"] += 1
    counts["duplicate_execution"] = summarize(history, final, index=index)["jobs"]
    return counts


def check(
    history: Sequence[Event],
    final: FinalState,
    expect: Sequence[str],
    *,
    index: HistoryIndex | None = None,
) -> Verdict:
    """Check that each event in `expect` happened at least once.

    `checked` counts expected events, and ``stats`` contains the count of every
    coverage event, so a report can show what a run exercised.
    """
    counts = count_events(history, final, index)
    violations: list[Violation] = [
        violation(None, f"expected event {name!r} never happened in this run")
        for name in expect
        if counts[name] == 0
    ]
    return make_verdict(len(expect), violations, dict(counts))

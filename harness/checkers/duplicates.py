"""duplicates: jobs whose handler ran more than once, and why (not an invariant).

At-least-once delivery makes re-execution legal, so this summary counts and
explains it instead of failing the run.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import TypedDict

from harness.checkers.index import HistoryIndex, Step
from harness.history import Event, FinalState

__all__ = ["DuplicateJob", "DuplicateSummary", "summarize"]

# Fault events that explain an expired lease, best explanation first, and
# whether they target the holding process (True) or the whole database.
_CAUSES: tuple[tuple[str, bool, str], ...] = (
    ("kill", True, "lease expired after its worker was killed"),
    ("worker_exit", True, "lease expired after its worker exited"),
    ("pause", True, "lease expired while its worker was paused"),
    ("db_stop", False, "lease expired during a database restart"),
    ("latency_start", True, "lease expired under injected latency"),
    ("clock_skew", True, "lease expired under clock skew"),
)


class DuplicateJob(TypedDict):
    """One job that ran more than once, with a reason for each extra run."""

    job: str
    tokens: list[int]  # every token that ran the handler, in order
    reasons: list[str]


class DuplicateSummary(TypedDict):
    jobs: int
    extra_executions: int
    by_reason: dict[str, int]
    details: list[DuplicateJob]


def _executions(history: Sequence[Event], final: FinalState) -> dict[str, Counter[int]]:
    """Count handler runs per (job, token) from execute invokes and effects.

    A token counts the larger of its execute invokes and its effects, since
    a crash may leave an invoke without an effect and a lost history line an
    effect without an invoke.
    """
    invokes: dict[str, Counter[int]] = defaultdict(Counter)
    for event in history:
        job, token = event.get("job"), event.get("token")
        if event["type"] == "invoke" and event["f"] == "execute" and job and token:
            invokes[job][token] += 1
    effects: dict[str, Counter[int]] = defaultdict(Counter)
    for effect in final["effects"]:
        effects[effect["job"]][effect["token"]] += 1

    runs: dict[str, Counter[int]] = {}
    for job in invokes.keys() | effects.keys():
        tokens = invokes[job].keys() | effects[job].keys()
        runs[job] = Counter(
            {token: max(invokes[job][token], effects[job][token]) for token in tokens}
        )
    return runs


class _Faults:
    """Fault times per process and for the database, for bisecting."""

    def __init__(self, history: Sequence[Event]) -> None:
        names = {name for name, _, _ in _CAUSES}
        self.by_process: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.database: dict[str, list[float]] = defaultdict(list)
        for event in history:
            if event["type"] == "info" and event["f"] in names:
                self.by_process[(event["f"], event["process"])].append(event["t"])
                self.database[event["f"]].append(event["t"])

    def happened(
        self, name: str, targeted: bool, process: str, start_t: float, end_t: float
    ) -> bool:
        times = self.by_process[(name, process)] if targeted else self.database[name]
        index = bisect.bisect_left(times, start_t)
        return index < len(times) and times[index] <= end_t


def _reason(previous: list[Step], faults: _Faults) -> str:
    """Explain why the attempt of one token was run again by a later token."""
    claim = next((step for step in previous if step.kind == "claim"), None)
    for step in previous:
        if step.kind == "fail" and step.state == "QUEUED":
            return "retry after the handler failed"
        if step.kind == "release":
            return "released by a stopping worker"
        if step.kind == "recover" and claim is not None:
            process = claim.event["process"]
            for name, targeted, reason in _CAUSES:
                if faults.happened(name, targeted, process, claim.t, step.t):
                    return reason
            return "lease expired while the handler ran"
    return "unknown: no step of the earlier token shows how it ended"


def summarize(
    history: Sequence[Event], final: FinalState, *, index: HistoryIndex | None = None
) -> DuplicateSummary:
    """List the jobs whose handler ran more than once, with a reason per re-run.

    A second run under the same token is reported as such: the worker ran
    one claim twice. Otherwise each later token's run is explained by how
    the previous token's attempt ended: a retry, a release, or an expired
    lease, with the fault that most likely caused the expiry.
    """
    steps = (index or HistoryIndex.build(history, final)).steps
    faults = _Faults(history)
    details: list[DuplicateJob] = []
    by_reason: Counter[str] = Counter()
    for job, runs in sorted(_executions(history, final).items()):
        if sum(runs.values()) <= 1:
            continue
        tokens = sorted(runs)
        by_token: dict[int | None, list[Step]] = defaultdict(list)
        for step in steps.get(job, ()):
            by_token[step.token].append(step)

        reasons = []
        for token in tokens:
            reasons += ["the same token ran the handler again"] * (runs[token] - 1)
        for previous in tokens[:-1]:
            reasons.append(_reason(by_token[previous], faults))
        by_reason.update(reasons)
        details.append({"job": job, "tokens": tokens, "reasons": reasons})

    return {
        "jobs": len(details),
        "extra_executions": sum(by_reason.values()),
        "by_reason": dict(by_reason),
        "details": details,
    }

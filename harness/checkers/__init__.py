"""Invariant checkers: pure functions of a finalized history and the final state.

Every checker has the form ``check(history, final, ...) -> Verdict`` and never
touches a database. `history` is the output of `harness.history.finalize`,
sorted by `t`. `run_all` runs every invariant and the coverage check, and
`duplicates.summarize` explains re-executions without failing a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.checkers import (
    coverage,
    drained,
    duplicates,
    fifo_order,
    lease_exclusive,
    legal_transitions,
    no_lost_jobs,
    no_unexpected_jobs,
    priority_order,
    recovery_bound,
    retry_cap,
    single_commit,
)
from harness.checkers.index import HistoryIndex
from harness.checkers.verdict import Verdict, Violation
from harness.history import Event, FinalState
from harness.scenario import Scenario

__all__ = [
    "INVARIANTS",
    "CheckParams",
    "Verdict",
    "Violation",
    "coverage",
    "drained",
    "duplicates",
    "fifo_order",
    "lease_exclusive",
    "legal_transitions",
    "no_lost_jobs",
    "no_unexpected_jobs",
    "priority_order",
    "recovery_bound",
    "retry_cap",
    "run_all",
    "single_commit",
]

INVARIANTS = (
    "no_lost_jobs",
    "no_unexpected_jobs",
    "single_commit",
    "lease_exclusive",
    "retry_cap",
    "priority_order",
    "fifo_order",
    "legal_transitions",
    "recovery_bound",
    "drained",
)


@dataclass(frozen=True)
class CheckParams:
    """Scenario settings that some checkers need."""

    lease_ttl_s: float
    recovery_interval_s: float
    recovery_margin_s: float
    drain_timeout_s: float
    expect: tuple[str, ...] = ()

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> CheckParams:
        return cls(
            lease_ttl_s=scenario.queue.lease_ttl_s,
            recovery_interval_s=scenario.queue.recovery_interval_s,
            recovery_margin_s=scenario.recovery_margin_s,
            drain_timeout_s=scenario.drain_timeout_s,
            expect=tuple(scenario.expect),
        )


def run_all(
    history: Sequence[Event], final: FinalState, params: CheckParams
) -> dict[str, Verdict]:
    """Run every invariant, in `INVARIANTS` order, then ``coverage``."""
    index = HistoryIndex.build(history, final)
    verdicts: dict[str, Verdict] = {
        "no_lost_jobs": no_lost_jobs.check(history, final, index=index),
        "no_unexpected_jobs": no_unexpected_jobs.check(history, final, index=index),
        "single_commit": single_commit.check(history, final, index=index),
        "lease_exclusive": lease_exclusive.check(history, final, index=index),
        "retry_cap": retry_cap.check(history, final, index=index),
        "priority_order": priority_order.check(history, final, index=index),
        "fifo_order": fifo_order.check(history, final, index=index),
        "legal_transitions": legal_transitions.check(history, final, index=index),
        "recovery_bound": recovery_bound.check(
            history,
            final,
            lease_ttl_s=params.lease_ttl_s,
            recovery_interval_s=params.recovery_interval_s,
            margin_s=params.recovery_margin_s,
        ),
        "drained": drained.check(
            history, final, drain_timeout_s=params.drain_timeout_s, index=index
        ),
    }
    verdicts["coverage"] = coverage.check(history, final, params.expect, index=index)
    return verdicts

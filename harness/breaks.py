"""Deliberate defects that `--break NAME` puts into the worker processes.

A run with a break should end with violated invariants: that shows the
checkers catch the defect. Breaks change only the worker processes that the
harness starts (`harness.worker_process` loads `harness.broken_queue`),
never the `aegis` package, so no setting of the normal queue can turn one on.

This module imports only the standard library, so the worker process can
read the break names before it imports `aegis`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Break:
    """One deliberate defect and the run that shows it."""

    name: str
    summary: str  # one line, for `--break` help
    scenario: str  # a short scenario file that shows it
    violates: tuple[str, ...]  # the invariants that a run of it violates


CATALOGUE = (
    Break(
        "fencing",
        "fenced writes ignore the token and lease; the worker deadline is off",
        "scenarios/ci-pause.yaml",
        ("single_commit", "lease_exclusive", "legal_transitions"),
    ),
    Break(
        "atomic-claim",
        "claim is a find, a 20 ms gap, then an update by _id alone",
        "scenarios/contention.yaml",
        ("lease_exclusive", "legal_transitions"),
    ),
    Break(
        "retry-cap",
        "recovery requeues a job at the retry cap instead of failing it",
        "scenarios/ci-retry-storm.yaml",
        ("retry_cap",),
    ),
    Break(
        "client-clock",
        "leases are set and judged by the worker's wall clock, not the database's",
        "scenarios/ci-clock-skew.yaml",
        ("lease_exclusive",),
    ),
    Break(
        "priority",
        "claim takes the oldest job and ignores priority",
        "scenarios/ci-priority.yaml",
        ("priority_order",),
    ),
    Break(
        "fifo",
        "claim takes the newest job first within a priority",
        "scenarios/ci-priority.yaml",
        ("fifo_order",),
    ),
    Break(
        "no-recovery",
        "workers never run recovery, so jobs of killed workers stay RUNNING",
        "scenarios/ci-crash.yaml",
        ("no_lost_jobs", "drained", "recovery_bound"),
    ),
)

BY_NAME = {entry.name: entry for entry in CATALOGUE}
# Every accepted name with its one-line help; aliases point to their break.
BREAKS: dict[str, str] = {entry.name: entry.summary for entry in CATALOGUE}


def resolve_break(name: str | None) -> str | None:
    """Return `name` if it names a break.

    Raises `ValueError` unless `name` is None or a known name.
    """
    if name is None:
        return None
    if name not in BY_NAME:
        known = ", ".join(sorted(BREAKS))
        raise ValueError(f"unknown break {name!r}; expected one of: {known}")
    return name


def check_break(name: str | None) -> None:
    """Raise `ValueError` unless `name` is None or a known break."""
    resolve_break(name)


def runs_recovery(name: str | None) -> bool:
    """Return whether workers run recovery sweeps under break `name`."""
    return resolve_break(name) != "no-recovery"

"""Deliberate defects that `--break NAME` puts into the worker processes.

A run with a break should end with violated invariants: that shows the
checkers catch the defect. Breaks change only the worker processes that the
harness starts, never the `aegis` package on disk.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId

import aegis.worker
from aegis.queue import Queue
from aegis.validation import parse_job_id

# A lease deadline this many leases long never passes during a run, so the
# worker keeps reporting jobs whose lease it lost.
NO_SELF_CHECK_FRACTION = 1000.0

BREAKS = {
    "no-fencing": (
        "fenced writes match the job id alone, and workers keep reporting jobs "
        "whose lease expired: stale completions are accepted"
    ),
    "no-recovery": (
        "workers never run recovery: jobs of killed workers stay RUNNING and "
        "never finish"
    ),
}


class UnfencedQueue(Queue):
    """A `Queue` whose renew, complete, fail and release ignore token and lease."""

    @staticmethod
    def fenced(job_id: str | ObjectId, token: int) -> dict[str, Any]:
        return {"_id": parse_job_id(job_id)}


def check_break(name: str | None) -> None:
    """Raise `ValueError` unless `name` is None or a known break."""
    if name is not None and name not in BREAKS:
        known = ", ".join(sorted(BREAKS))
        raise ValueError(f"unknown break {name!r}; expected one of: {known}")


def apply_break(name: str | None) -> type[Queue]:
    """Put break `name` into this process; return the queue class to use."""
    check_break(name)
    if name == "no-fencing":
        # The worker reads this module constant each time it sets a deadline.
        aegis.worker.LEASE_SAFETY_FRACTION = NO_SELF_CHECK_FRACTION
        return UnfencedQueue
    return Queue


def runs_recovery(name: str | None) -> bool:
    """Return whether workers run recovery sweeps under break `name`."""
    return name != "no-recovery"

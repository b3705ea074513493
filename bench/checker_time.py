"""Time of the chaos harness's checkers against history size."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.synthetic_history import LEASE_TTL_S, make_history

RECOVERY_INTERVAL_S = 5.0
RECOVERY_MARGIN_S = 2.0
DRAIN_TIMEOUT_S = 60.0

CheckAll = Callable[[list[dict[str, Any]], dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class CheckerResult:
    """Checker wall time for one synthetic history."""

    events: int
    jobs: int
    seconds: float
    failed_checkers: list[str]  # should be empty: the history is legal


def load_checkers() -> CheckAll | None:
    """Return `run_all` bound to fixed parameters, or None if not importable."""
    try:
        from harness.checkers import CheckParams, run_all
    except ImportError:
        return None
    params = CheckParams(
        lease_ttl_s=LEASE_TTL_S,
        recovery_interval_s=RECOVERY_INTERVAL_S,
        recovery_margin_s=RECOVERY_MARGIN_S,
        drain_timeout_s=DRAIN_TIMEOUT_S,
    )

    def check_all(history: list[dict[str, Any]], final: dict[str, Any]) -> Any:
        return run_all(history, final, params)  # type: ignore[arg-type]

    return check_all


def measure_checkers(check_all: CheckAll, events: int) -> CheckerResult:
    history, final = make_history(events)
    started = time.perf_counter()
    verdicts = check_all(history, final)
    elapsed_s = time.perf_counter() - started
    failed = sorted(name for name, verdict in verdicts.items() if not verdict["ok"])
    return CheckerResult(
        events=len(history),
        jobs=len(final["jobs"]),
        seconds=round(elapsed_s, 3),
        failed_checkers=failed,
    )

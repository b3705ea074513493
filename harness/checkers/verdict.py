"""The result type every checker returns."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NotRequired, TypedDict

__all__ = ["Verdict", "Violation", "make_verdict", "violation"]


class Violation(TypedDict):
    """One breach of an invariant, with the history times (`t`) to look at."""

    job: str | None
    tokens: list[int]
    times: list[float]
    message: str


class Verdict(TypedDict):
    """A checker's result: `checked` counts the items it examined."""

    ok: bool
    checked: int
    violations: list[Violation]
    # Counts that explain the result, such as rejected stale writes.
    stats: NotRequired[dict[str, int]]


def violation(
    job: str | None,
    message: str,
    *,
    tokens: Iterable[int | None] = (),
    times: Iterable[float | None] = (),
) -> Violation:
    """Build a violation, dropping unknown tokens and times."""
    return {
        "job": job,
        "tokens": [token for token in tokens if token is not None],
        "times": [time for time in times if time is not None],
        "message": message,
    }


def make_verdict(
    checked: int, violations: list[Violation], stats: dict[str, int] | None = None
) -> Verdict:
    verdict: Verdict = {
        "ok": not violations,
        "checked": checked,
        "violations": violations,
    }
    if stats is not None:
        verdict["stats"] = stats
    return verdict

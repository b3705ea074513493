"""single_commit: one accepted completion per job, and no accepted stale write."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from harness.checkers.index import FENCED_WRITES, HistoryIndex, Step
from harness.checkers.verdict import Verdict, Violation, make_verdict, violation
from harness.history import Event, FinalState


@dataclass(frozen=True)
class _NewerClaims:
    """For each claimed token of a job, the earliest claim of a larger token.

    `tokens` is sorted. Entry n of `first_db` and `first_ok` is the earliest
    database time and ok time among the claims of ``tokens[n:]``, with the
    token that has it.
    """

    tokens: list[int]
    first_db: list[tuple[float, int] | None]
    first_ok: list[tuple[float, int]]

    @classmethod
    def build(cls, claims: list[Step]) -> _NewerClaims:
        claims = sorted(claims, key=lambda step: step.token or 0)
        tokens = [claim.token or 0 for claim in claims]
        first_db: list[tuple[float, int] | None] = [None] * (len(claims) + 1)
        first_ok: list[tuple[float, int]] = [(float("inf"), -1)] * (len(claims) + 1)
        for index in range(len(claims) - 1, -1, -1):
            claim = claims[index]
            token = claim.token or 0
            first_ok[index] = min(first_ok[index + 1], (claim.t, token))
            later = first_db[index + 1]
            if claim.db_time is None:
                first_db[index] = later
            else:
                own = (claim.db_time, token)
                first_db[index] = own if later is None else min(later, own)
        return cls(tokens, first_db, first_ok)

    def after(self, token: int) -> tuple[tuple[float, int] | None, tuple[float, int]]:
        index = bisect.bisect_right(self.tokens, token)
        return self.first_db[index], self.first_ok[index]


def _stale_reason(write: Step, newer: _NewerClaims) -> tuple[str, int | None] | None:
    """Explain why an accepted fenced write was stale, with the newer token.

    Returns None when nothing shows the write was stale.
    """
    token = write.token
    assert token is not None
    if token not in newer.tokens:
        return f"no claim returned token {token}", None
    first_db, first_ok = newer.after(token)
    db_time = write.db_time
    if first_db is not None and db_time is not None and first_db[0] < db_time:
        return (
            f"token {first_db[1]} was claimed at db time {first_db[0]:.3f}, before "
            f"this write took effect at db time {db_time:.3f}",
            first_db[1],
        )
    if write.invoke_t is not None and first_ok[0] < write.invoke_t:
        return (
            f"the claim of token {first_ok[1]} returned at t={first_ok[0]:.3f}, "
            f"before this write was sent at t={write.invoke_t:.3f}",
            first_ok[1],
        )
    return None


def check(
    history: Sequence[Event], final: FinalState, *, index: HistoryIndex | None = None
) -> Verdict:
    """Check single completion and fencing of every accepted write.

    A job may have at most one accepted ``complete``. An accepted ``renew``,
    ``complete``, ``fail``, ``release`` or ``finish_cancelled`` with token k
    is stale, and a violation, if no claim returned k, or if a claim of a
    larger token took effect before it. "Before" holds when the claim's
    database time is earlier than the write's, or when the claim returned
    before the write was sent. `checked` counts accepted fenced writes, and
    ``stats["stale_rejected"]`` counts fenced writes rejected as stale.
    """
    steps = (index or HistoryIndex.build(history, final)).steps
    violations: list[Violation] = []
    accepted = 0
    for job, job_list in steps.items():
        newer = _NewerClaims.build([step for step in job_list if step.kind == "claim"])
        completions = [step for step in job_list if step.kind == "complete"]
        if len(completions) > 1:
            violations.append(
                violation(
                    job,
                    f"job {job} has {len(completions)} accepted completions",
                    tokens=[step.token for step in completions],
                    times=[step.t for step in completions],
                )
            )
        for write in job_list:
            if write.kind not in FENCED_WRITES or write.token is None:
                continue
            accepted += 1
            stale = _stale_reason(write, newer)
            if stale is not None:
                reason, newer_token = stale
                violations.append(
                    violation(
                        job,
                        f"stale {write.kind} by token {write.token} was accepted: "
                        f"{reason}",
                        tokens=[write.token, newer_token],
                        times=[write.invoke_t, write.t],
                    )
                )

    stale_rejected = sum(
        1
        for event in history
        if event["type"] == "fail"
        and event["f"] in FENCED_WRITES
        and event.get("error") == "stale"
    )
    return make_verdict(accepted, violations, {"stale_rejected": stale_rejected})

"""lease_exclusive: the leases of one job never overlap in database time."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from harness.checkers.index import ENDING_WRITES, HistoryIndex, Step
from harness.checkers.verdict import Verdict, Violation, make_verdict, violation
from harness.history import Event, FinalState


@dataclass(frozen=True)
class _Lease:
    token: int
    start: float  # database time of the claim
    end: float  # database time the lease surely lasted until
    end_reason: str
    claim: Step


def _uncertain_ends(history: Sequence[Event]) -> set[tuple[str, int]]:
    """Return (job, token) pairs with an ending write of unknown outcome."""
    return {
        (str(event.get("job")), int(event.get("token") or 0))
        for event in history
        if event["type"] == "unknown" and event["f"] in ENDING_WRITES
    }


def _leases(job_list: list[Step], uncertain: set[tuple[str, int]]) -> list[_Lease]:
    """Build the lease of every claim that has a database time.

    The end is the database time of the accepted write that ended the
    attempt, if the event has one. Otherwise, when an ending write was
    accepted without a time or had an unknown outcome, the lease surely
    lasted until the last renewal or the claim. Otherwise it lasted until
    the last known `lease_expires_at`. Each choice is a lower bound of the
    real end, so an overlap found with it is real.
    """
    by_token: dict[int, list[Step]] = defaultdict(list)
    for step in job_list:
        if step.token is not None:
            by_token[step.token].append(step)

    leases = []
    for step in job_list:
        if step.kind != "claim" or step.token is None or step.db_time is None:
            continue
        token_steps = by_token[step.token]
        held_times = [s.db_time for s in token_steps if s.kind in ("claim", "renew")]
        last_held = max(time for time in held_times if time is not None)
        expiries = [
            s.event.get("lease_expires_at")
            for s in token_steps
            if s.kind in ("claim", "renew")
        ]
        known_expiries = [float(time) for time in expiries if time is not None]
        ends = [s for s in token_steps if s.kind in ENDING_WRITES]
        timed_ends = [s for s in ends if s.db_time is not None]

        if timed_ends:
            end_step = timed_ends[0]
            assert end_step.db_time is not None
            end, reason = end_step.db_time, f"{end_step.kind} at t={end_step.t:.3f}"
        elif ends or (step.job, step.token) in uncertain:
            end, reason = last_held, "its last renewal, as its end time is unknown"
        elif known_expiries:
            end, reason = max(known_expiries), "its lease expiry"
        else:
            end, reason = last_held, "its claim, as no lease expiry is known"
        leases.append(_Lease(step.token, step.db_time, end, reason, step))
    return leases


def check(
    history: Sequence[Event], final: FinalState, *, index: HistoryIndex | None = None
) -> Verdict:
    """Check that one job's leases are exclusive and its tokens increase.

    A lease of token k runs in database time from its claim to the end
    described in `_leases`. A lease that starts before an earlier-starting
    lease of another token ends is a violation, as is a token claimed twice
    or a token not larger than one claimed before it. `checked` counts claims.
    """
    steps = (index or HistoryIndex.build(history, final)).steps
    uncertain = _uncertain_ends(history)
    violations: list[Violation] = []
    checked = 0
    unchecked = 0
    for job, job_list in steps.items():
        claims = [step for step in job_list if step.kind == "claim"]
        checked += len(claims)
        violations += _token_violations(job, claims)

        leases = sorted(_leases(job_list, uncertain), key=lambda lease: lease.start)
        unchecked += len(claims) - len(leases)
        holder: _Lease | None = None
        for lease in leases:
            # A token claimed twice is reported once, as a duplicate.
            if (
                holder is not None
                and lease.start < holder.end
                and lease.token != holder.token
            ):
                violations.append(
                    violation(
                        job,
                        f"token {lease.token} was claimed at db time "
                        f"{lease.start:.3f} while token {holder.token} held the "
                        f"lease until db time {holder.end:.3f} ({holder.end_reason})",
                        tokens=[holder.token, lease.token],
                        times=[holder.claim.t, lease.claim.t],
                    )
                )
            if holder is None or lease.end > holder.end:
                holder = lease
    return make_verdict(checked, violations, {"claims_without_db_time": unchecked})


def _token_violations(job: str, claims: list[Step]) -> list[Violation]:
    """Report tokens claimed twice, and tokens that do not increase.

    Claims are taken in database-time order when every claim has a database
    time, else in the order their oks were recorded.
    """
    violations: list[Violation] = []
    first_claim: dict[int, Step] = {}
    for claim in claims:
        if claim.token is None:
            continue
        if claim.token in first_claim:
            earlier = first_claim[claim.token]
            violations.append(
                violation(
                    job,
                    f"token {claim.token} was returned by two claims",
                    tokens=[claim.token],
                    times=[earlier.t, claim.t],
                )
            )
        else:
            first_claim[claim.token] = claim

    if all(claim.db_time is not None for claim in claims):
        ordered = sorted(claims, key=lambda claim: (claim.db_time, claim.position))
    else:
        ordered = sorted(claims, key=lambda claim: claim.position)
    for previous, claim in zip(ordered, ordered[1:], strict=False):
        if previous.token is None or claim.token is None:
            continue
        if claim.token < previous.token:
            violations.append(
                violation(
                    job,
                    f"token {claim.token} was claimed after token {previous.token}; "
                    "tokens must increase",
                    tokens=[previous.token, claim.token],
                    times=[previous.t, claim.t],
                )
            )
    return violations

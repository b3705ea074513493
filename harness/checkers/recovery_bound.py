"""recovery_bound: the jobs of a killed worker run again within a time bound."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from harness.checkers.index import ENDING_WRITES, FENCED_WRITES, recovered_pairs
from harness.checkers.verdict import Verdict, Violation, make_verdict, violation
from harness.history import TERMINAL_STATES, Event, FinalState


@dataclass
class _Obligation:
    """A job that a killed process held, and when it must be taken over."""

    job: str
    token: int
    process: str
    kill_t: float
    deadline_t: float
    resolved_t: float | None = None
    resolution: str = ""
    requeued_t: float | None = None  # when a recovery requeued it, if one did


def _holder_key(event: Event) -> tuple[str, int | None]:
    return (event["process"], event.get("pid"))


def _take_held(
    held_by_process: dict[tuple[str, int | None], dict[str, int]], kill: Event
) -> dict[str, int]:
    """Remove and return what the killed process held.

    A kill event without a pid matches every incarnation of its process.
    """
    if kill.get("pid") is not None:
        return held_by_process.pop(_holder_key(kill), {})
    jobs: dict[str, int] = {}
    for key in [key for key in held_by_process if key[0] == kill["process"]]:
        jobs |= held_by_process.pop(key)
    return jobs


def _ends_holding(event: Event) -> bool:
    """Return whether the event shows that its process stopped holding the job."""
    if event["type"] == "ok":
        return event["f"] in ENDING_WRITES
    if event["type"] == "fail":
        return event["f"] in FENCED_WRITES and event.get("error") == "stale"
    return False


def _resolve_by_final_state(
    obligations: list[_Obligation], history: Sequence[Event], final: FinalState
) -> None:
    """Resolve the jobs that an in-flight ending write of the dead process ended."""
    uncertain = {
        (event.get("job"), event.get("token"))
        for event in history
        if event["type"] == "unknown" and event["f"] in ENDING_WRITES
    }
    records = {record["job"]: record for record in final["jobs"]}
    for obligation in obligations:
        record = records.get(obligation.job)
        if obligation.resolved_t is not None or record is None:
            continue
        ended = (
            record["state"] in TERMINAL_STATES and record["token"] == obligation.token
        )
        if ended and (obligation.job, obligation.token) in uncertain:
            obligation.resolved_t = obligation.kill_t
            obligation.resolution = "ended by a write with an unknown outcome"


def check(
    history: Sequence[Event],
    final: FinalState,
    *,
    lease_ttl_s: float,
    recovery_interval_s: float,
    margin_s: float,
) -> Verdict:
    """Check that every job a killed process held is taken over in time.

    At each ``kill`` info event, the killed process (matched by process name
    and pid) held every (job, token) that it claimed and that no accepted
    write, stale rejection, recovery or newer claim had ended by then. Each
    such job must be claimed again with a newer token, or moved to FAILED by
    a recovery, or cancelled, within ``lease_ttl_s + recovery_interval_s +
    margin_s`` of the kill, measured in history time.

    A requeue by recovery alone does not count. So a backlog of jobs that
    the queue ranks first can delay the new claim past the bound, and the
    violation message then shows when recovery requeued the job.

    A write that ends the attempt may have been in flight when the process
    died. If one has an unknown outcome and the final state shows the job
    ended under the held token, the job needs no takeover. A job not taken
    over when the history ends before its deadline is counted in
    ``stats["unverified"]``, not as a violation. `checked` counts held jobs.
    """
    bound_s = lease_ttl_s + recovery_interval_s + margin_s
    # (process, pid) -> {job: token} of the leases that the process holds.
    held_by_process: dict[tuple[str, int | None], dict[str, int]] = defaultdict(dict)
    holder_of: dict[str, tuple[tuple[str, int | None], int]] = {}
    pending: dict[str, list[_Obligation]] = defaultdict(list)
    obligations: list[_Obligation] = []

    def release(job: str, token: int | None) -> None:
        holder = holder_of.get(job)
        if holder is not None and (token is None or holder[1] == token):
            held_by_process[holder[0]].pop(job, None)
            del holder_of[job]

    def resolve(
        job: str, t: float, resolution: str, newer_than: int | None = None
    ) -> None:
        remaining = []
        for obligation in pending.get(job, ()):
            if newer_than is None or obligation.token < newer_than:
                obligation.resolved_t, obligation.resolution = t, resolution
            else:
                remaining.append(obligation)
        pending[job] = remaining

    for event in history:
        kind, f, job, token = (
            event["type"],
            event["f"],
            event.get("job"),
            event.get("token"),
        )
        if kind == "info" and f == "kill":
            for held_job, held_token in _take_held(held_by_process, event).items():
                holder_of.pop(held_job, None)
                obligation = _Obligation(
                    held_job,
                    held_token,
                    event["process"],
                    event["t"],
                    event["t"] + bound_s,
                )
                obligations.append(obligation)
                pending[held_job].append(obligation)
        elif kind == "ok" and f == "claim" and job and isinstance(token, int):
            release(job, None)
            resolve(job, event["t"], f"claimed again with token {token}", token)
            held_by_process[_holder_key(event)][job] = token
            holder_of[job] = (_holder_key(event), token)
        elif kind == "ok" and f == "recover":
            for moved_job, moved_token, state, _ in recovered_pairs(event):
                release(moved_job, moved_token)
                if state == "FAILED":
                    resolve(moved_job, event["t"], "moved to FAILED by recovery")
                for obligation in pending.get(moved_job, ()):
                    if (
                        obligation.token == moved_token
                        and obligation.requeued_t is None
                    ):
                        obligation.requeued_t = event["t"]
        elif (
            kind == "ok" and f == "cancel" and job and event.get("state") == "CANCELLED"
        ):
            release(job, None)
            resolve(job, event["t"], "cancelled")
        elif job and _ends_holding(event):
            release(job, token)

    _resolve_by_final_state(obligations, history, final)
    end_t = history[-1]["t"] if history else 0.0
    violations: list[Violation] = []
    unverified = 0
    for obligation in obligations:
        if obligation.resolved_t is None and end_t <= obligation.deadline_t:
            unverified += 1
            continue
        if (
            obligation.resolved_t is not None
            and obligation.resolved_t <= obligation.deadline_t
        ):
            continue
        late = (
            "was never taken over"
            if obligation.resolved_t is None
            else f"was {obligation.resolution} only at t={obligation.resolved_t:.3f}"
        )
        if obligation.requeued_t is not None:
            late += f" (recovery requeued it at t={obligation.requeued_t:.3f})"
        violations.append(
            violation(
                obligation.job,
                f"job {obligation.job} (token {obligation.token}) held by "
                f"{obligation.process} when it was killed at t={obligation.kill_t:.3f} "
                f"{late}; the bound is {bound_s:g}s (lease_ttl_s {lease_ttl_s:g} + "
                f"recovery_interval_s {recovery_interval_s:g} + margin_s {margin_s:g})",
                tokens=[obligation.token],
                times=[obligation.kill_t, obligation.resolved_t],
            )
        )
    return make_verdict(len(obligations), violations, {"unverified": unverified})

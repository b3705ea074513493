"""legal_transitions: every job moves only along the edges of its state machine."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.checkers.index import HistoryIndex, Step, final_jobs
from harness.checkers.verdict import Verdict, Violation, make_verdict, violation
from harness.history import Event, FinalState, Pairing

# (state before, operation) -> states the operation may leave the job in.
# fail, release, recover and finish_cancelled end CANCELLED when cancellation was
# requested while the job ran. A cancel of a RUNNING job may only record the
# request, which leaves it RUNNING.
ALLOWED: dict[tuple[str | None, str], frozenset[str]] = {
    (None, "enqueue"): frozenset({"QUEUED"}),
    ("QUEUED", "claim"): frozenset({"RUNNING"}),
    ("RUNNING", "renew"): frozenset({"RUNNING"}),
    ("RUNNING", "complete"): frozenset({"SUCCESS"}),
    ("RUNNING", "fail"): frozenset({"QUEUED", "FAILED", "CANCELLED"}),
    ("RUNNING", "release"): frozenset({"QUEUED", "FAILED", "CANCELLED"}),
    ("RUNNING", "recover"): frozenset({"QUEUED", "FAILED", "CANCELLED"}),
    ("RUNNING", "finish_cancelled"): frozenset({"CANCELLED"}),
    ("QUEUED", "cancel"): frozenset({"CANCELLED"}),
    ("RUNNING", "cancel"): frozenset({"CANCELLED", "RUNNING"}),
    ("FAILED", "retry"): frozenset({"QUEUED"}),
}
_FROM_STATES: dict[str, frozenset[str | None]] = defaultdict(frozenset)
for _before, _operation in ALLOWED:
    _FROM_STATES[_operation] = _FROM_STATES[_operation] | {_before}


@dataclass
class _Uncertain:
    """Operations with an unknown outcome, which may explain a missing move.

    Each one explains at most one move, and only a move after its invoke.
    A recover may have moved any number of jobs, so it is never used up.
    """

    by_job: dict[tuple[str, str], list[float]] = field(
        default_factory=lambda: defaultdict(list)
    )
    claims: list[tuple[float, frozenset[str] | None]] = field(default_factory=list)
    first_recover_t: float = float("inf")
    used: int = 0

    @classmethod
    def collect(cls, history: Sequence[Event], pairing: Pairing) -> _Uncertain:
        uncertain = cls()
        for position, event in enumerate(history):
            if event["type"] != "unknown":
                continue
            invoke_position = pairing.invoke_of.get(position)
            invoke = history[invoke_position] if invoke_position is not None else event
            f = event["f"]
            job = event.get("job")
            if f == "claim":
                queues = invoke.get("queues")
                scope = frozenset(queues) if queues else None
                uncertain.claims.append((invoke["t"], scope))
            elif f == "recover":
                uncertain.first_recover_t = min(uncertain.first_recover_t, invoke["t"])
            elif job:
                uncertain.by_job[(job, f)].append(invoke["t"])
        return uncertain

    def explain(
        self,
        job: str,
        queue: str | None,
        state: str | None,
        targets: frozenset[Any],
        t: float,
    ) -> str | None:
        """Use up an uncertain operation that moves `state` into `targets` before `t`.

        Returns the state it leads to, or None if no such operation exists.
        """
        for f, after in _UNCERTAIN_MOVES.get(state, ()):
            if after not in targets:
                continue
            if f == "recover" and self.first_recover_t <= t:
                self.used += 1
                return after
            if f == "claim" and self._use_claim(queue, t):
                return after
            if self._use(job, f, t):
                return after
        return None

    # Both helpers use the latest operation invoked before `t`. Earlier ones
    # can explain more moves, so keeping them never leaves a later move
    # unexplained that another choice would have explained.

    def _use(self, job: str, f: str, t: float) -> bool:
        times = self.by_job.get((job, f), [])
        eligible = [invoke_t for invoke_t in times if invoke_t <= t]
        if not eligible:
            return False
        times.remove(max(eligible))
        self.used += 1
        return True

    def _use_claim(self, queue: str | None, t: float) -> bool:
        best: int | None = None
        for index, (invoke_t, scope) in enumerate(self.claims):
            if invoke_t > t or not (scope is None or queue is None or queue in scope):
                continue
            if best is None or invoke_t > self.claims[best][0]:
                best = index
        if best is None:
            return False
        del self.claims[best]
        self.used += 1
        return True


# state -> (operation, state after) pairs an uncertain operation may have made.
_UNCERTAIN_MOVES: dict[str | None, tuple[tuple[str, str], ...]] = {
    "QUEUED": (("claim", "RUNNING"), ("cancel", "CANCELLED")),
    "RUNNING": (
        ("complete", "SUCCESS"),
        ("fail", "QUEUED"),
        ("fail", "FAILED"),
        ("fail", "CANCELLED"),
        ("release", "QUEUED"),
        ("release", "CANCELLED"),
        ("finish_cancelled", "CANCELLED"),
        ("cancel", "CANCELLED"),
        ("recover", "QUEUED"),
        ("recover", "FAILED"),
        ("recover", "CANCELLED"),
    ),
    "FAILED": (("retry", "QUEUED"),),
}


def _describe(step: Step) -> str:
    token = f" by token {step.token}" if step.token is not None else ""
    return f"{step.kind}{token} at t={step.t:.3f}"


def check(
    history: Sequence[Event], final: FinalState, *, index: HistoryIndex | None = None
) -> Verdict:
    """Replay each job's accepted steps through `ALLOWED`, then compare the final state.

    Steps come from ``ok`` events in the order of `job_steps`. A step that
    `ALLOWED` does not permit from the replayed state is a violation unless
    an operation with an unknown outcome can supply the missing move first.
    A final state that differs from the replayed one is a violation under the
    same exception. `checked` counts steps plus compared final states, and
    ``stats["explained_by_unknown"]`` counts moves that unknown outcomes
    supplied.
    """
    index = index or HistoryIndex.build(history, final)
    enqueued = index.enqueued
    records = final_jobs(final)
    uncertain = _Uncertain.collect(history, index.pairing)
    violations: list[Violation] = []
    checked = 0

    for job, job_list in index.steps.items():
        info = enqueued.get(job)
        queue = info.queue if info is not None else None
        state: str | None = None
        last: Step | None = None
        for step in job_list:
            checked += 1
            allowed = ALLOWED.get((state, step.kind))
            if allowed is None:
                supplied = uncertain.explain(
                    job, queue, state, _FROM_STATES[step.kind], step.t
                )
                if supplied is not None:
                    state = supplied
                    allowed = ALLOWED.get((state, step.kind))
            if allowed is None or step.state not in allowed:
                violations.append(
                    violation(
                        job,
                        f"{_describe(step)} moved the job from {state} to "
                        f"{step.state}, which is not a legal transition",
                        tokens=[step.token],
                        times=[step.t],
                    )
                )
            state = step.state
            last = step

        record = records.get(job)
        if record is None or last is None:
            continue
        checked += 1
        if record["state"] != state:
            target = frozenset({record["state"]})
            if uncertain.explain(job, queue, state, target, float("inf")) is None:
                violations.append(
                    violation(
                        job,
                        f"the final state is {record['state']} (token "
                        f"{record['token']}), but the history ends with the job "
                        f"{state} after {_describe(last)}",
                        tokens=[record["token"]],
                        times=[last.t],
                    )
                )
    return make_verdict(checked, violations, {"explained_by_unknown": uncertain.used})

"""retry_cap: no job runs more than max_retries + 1 attempts, or after FAILED."""

from __future__ import annotations

from collections.abc import Sequence

from harness.checkers.index import HistoryIndex, Step, final_jobs
from harness.checkers.verdict import Verdict, Violation, make_verdict, violation
from harness.history import Event, FinalState


def check(
    history: Sequence[Event], final: FinalState, *, index: HistoryIndex | None = None
) -> Verdict:
    """Check the attempt cap in every claim and in the final state.

    ``attempts <= max_retries + 1`` must hold in every claim ok and every
    final job document, with `max_retries` from the enqueue, else from the
    final state. A claim that follows a step ending the job FAILED, with no
    operator ``retry`` in between, is a violation too. An operator retry
    resets the attempt count, as `aegis.queue.Queue.retry` does. `checked`
    counts claims plus final job documents.
    """
    index = index or HistoryIndex.build(history, final)
    enqueued = index.enqueued
    records = final_jobs(final)
    violations: list[Violation] = []
    checked = 0

    for job, job_list in index.steps.items():
        info = enqueued.get(job)
        record = records.get(job)
        max_retries = info.max_retries if info is not None else None
        if max_retries is None and record is not None:
            max_retries = record["max_retries"]
        failed_step: Step | None = None
        for step in job_list:
            if step.kind == "retry":
                failed_step = None
            elif step.state == "FAILED" and step.kind != "claim":
                failed_step = step
            if step.kind != "claim":
                continue
            checked += 1
            attempts = step.event.get("attempts")
            if max_retries is not None and attempts is not None:
                if attempts > max_retries + 1:
                    violations.append(
                        violation(
                            job,
                            f"token {step.token} claimed attempt {attempts}, over "
                            f"the cap of max_retries + 1 = {max_retries + 1}",
                            tokens=[step.token],
                            times=[step.t],
                        )
                    )
            if failed_step is not None:
                violations.append(
                    violation(
                        job,
                        f"token {step.token} was claimed after the job ended "
                        f"FAILED by {failed_step.kind} of token {failed_step.token}, "
                        "with no operator retry in between",
                        tokens=[failed_step.token, step.token],
                        times=[failed_step.t, step.t],
                    )
                )

    for job, record in records.items():
        checked += 1
        if record["attempts"] > record["max_retries"] + 1:
            violations.append(
                violation(
                    job,
                    f"the final state has attempts {record['attempts']}, over the "
                    f"cap of max_retries + 1 = {record['max_retries'] + 1}",
                    tokens=[record["token"]],
                )
            )
    return make_verdict(checked, violations)

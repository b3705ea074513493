"""Each checker on small hand-written histories: ones that pass and ones that fail.

Every failing case asserts that the violation names the job and its tokens.
"""

from __future__ import annotations

from harness.checkers import (
    INVARIANTS,
    CheckParams,
    Verdict,
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
    run_all,
    single_commit,
)
from tests.test_checkers_history import HistoryBuilder, job_id

J1, J2, J3, J9 = job_id(1), job_id(2), job_id(3), job_id(9)


def only_violation(verdict: Verdict) -> dict[str, object]:
    assert not verdict["ok"]
    assert len(verdict["violations"]) == 1, verdict["violations"]
    return dict(verdict["violations"][0])


def run_job(builder: HistoryBuilder, process: str, job: str) -> None:
    """Claim, execute and complete one job."""
    claim = builder.claim(process, job)
    token = claim["token"]
    assert token is not None
    builder.execute(process, job, token)
    builder.complete(process, job, token)


# -- no_lost_jobs -------------------------------------------------------------


def test_no_lost_jobs_passes_when_all_end() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.enqueue(J2)
    run_job(builder, "w1", J1)
    builder.cancel("api", J2)

    verdict = no_lost_jobs.check(
        builder.history(), builder.final({J1: "SUCCESS", J2: "CANCELLED"})
    )

    assert verdict["ok"]
    assert verdict["checked"] == 2


def test_no_lost_jobs_missing_job() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)

    found = only_violation(no_lost_jobs.check(builder.history(), builder.final({})))

    assert found["job"] == J1
    assert "missing from the final state" in str(found["message"])


def test_no_lost_jobs_job_left_running() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.claim("w1", J1)

    found = only_violation(
        no_lost_jobs.check(builder.history(), builder.final({J1: "RUNNING"}))
    )

    assert found["job"] == J1
    assert found["tokens"] == [1]
    assert "ended RUNNING" in str(found["message"])


# -- no_unexpected_jobs ---------------------------------------------------------


def test_no_unexpected_jobs_passes() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    run_job(builder, "w1", J1)

    verdict = no_unexpected_jobs.check(
        builder.history(), builder.final({J1: "SUCCESS"})
    )

    assert verdict["ok"]
    assert verdict["checked"] == 1


def test_no_unexpected_jobs_claim_of_unknown_job() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.jobs[J9] = {"priority": 5, "queue": "default", "seq": 9, "token": 0}
    builder.jobs[J9] |= {"attempts": 0, "max_retries": 3}
    builder.claim("w1", J9)

    found = only_violation(
        no_unexpected_jobs.check(builder.history(), builder.final({J1: "QUEUED"}))
    )

    assert found["job"] == J9
    assert found["tokens"] == [1]
    assert "no enqueue returned it" in str(found["message"])


def test_no_unexpected_jobs_explained_by_unknown_enqueue() -> None:
    builder = HistoryBuilder()
    builder.invoke("enqueuer", "enqueue", priority=5)
    builder.event("unknown", "enqueue", "enqueuer", error="NetworkTimeout")
    builder.jobs[J9] = {"priority": 5, "seq": 1, "token": 1, "attempts": 1}

    verdict = no_unexpected_jobs.check(builder.history(), builder.final({J9: "QUEUED"}))

    assert verdict["ok"]
    assert verdict["stats"]["explained_by_unknown_enqueues"] == 1


# -- single_commit ----------------------------------------------------------------


def test_single_commit_counts_rejected_stale_writes() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.claim("w1", J1)
    builder.wait(4)
    builder.renew("w1", J1, 1, outcome="stale")
    builder.recover("w2", requeued=[(J1, 1)])
    builder.claim("w2", J1)
    builder.complete("w1", J1, 1, outcome="stale")
    builder.complete("w2", J1, 2)

    verdict = single_commit.check(builder.history(), builder.final({J1: "SUCCESS"}))

    assert verdict["ok"]
    assert verdict["checked"] == 1
    assert verdict["stats"]["stale_rejected"] == 2


def test_single_commit_two_completions() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.claim("w1", J1)
    builder.complete("w1", J1, 1)
    builder.complete("w1", J1, 1)

    found = only_violation(
        single_commit.check(builder.history(), builder.final({J1: "SUCCESS"}))
    )

    assert found["job"] == J1
    assert found["tokens"] == [1, 1]
    assert "2 accepted completions" in str(found["message"])


def test_single_commit_stale_write_by_db_time() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.claim("w1", J1)
    builder.wait(4)
    builder.recover("w2", requeued=[(J1, 1)])
    builder.claim("w2", J1)
    # w1 sent its completion before w2's claim returned, but the database
    # applied it after the claim: the token filter should have rejected it.
    builder.invoke("w1", "complete", job=J1, token=1)
    builder.wait(0.5)
    builder.ok("w1", "complete", job=J1, token=1, state="SUCCESS")

    found = only_violation(
        single_commit.check(builder.history(), builder.final({J1: "SUCCESS"}))
    )

    assert found["job"] == J1
    assert found["tokens"] == [1, 2]
    assert "token 2 was claimed at db time" in str(found["message"])


def test_single_commit_stale_write_by_real_time() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.claim("w1", J1)
    builder.wait(4)
    builder.recover("w2", requeued=[(J1, 1)])
    builder.claim("w2", J1)
    builder.renew("w1", J1, 1, db_time=None)

    found = only_violation(
        single_commit.check(builder.history(), builder.final({J1: "RUNNING"}))
    )

    assert found["tokens"] == [1, 2]
    assert "returned at" in str(found["message"])


def test_single_commit_token_never_claimed() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.claim("w1", J1)
    builder.complete("w2", J1, 5)

    found = only_violation(
        single_commit.check(builder.history(), builder.final({J1: "SUCCESS"}))
    )

    assert found["job"] == J1
    assert found["tokens"] == [5]
    assert "no claim returned token 5" in str(found["message"])


# -- lease_exclusive --------------------------------------------------------------


def test_lease_exclusive_after_expiry() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.claim("w1", J1)
    builder.renew("w1", J1, 1)
    builder.wait(4)
    builder.recover("w2", requeued=[(J1, 1)])
    builder.claim("w2", J1)
    builder.complete("w2", J1, 2)

    verdict = lease_exclusive.check(builder.history(), builder.final({J1: "SUCCESS"}))

    assert verdict["ok"]
    assert verdict["checked"] == 2


def test_lease_exclusive_after_accepted_fail() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.claim("w1", J1)
    builder.fail("w1", J1, 1)
    builder.claim("w2", J1)

    verdict = lease_exclusive.check(builder.history(), builder.final({J1: "RUNNING"}))

    assert verdict["ok"]


def test_lease_exclusive_end_without_db_time() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.claim("w1", J1)
    builder.release("w1", J1, 1, db_time=None)
    builder.claim("w2", J1)

    verdict = lease_exclusive.check(builder.history(), builder.final({J1: "RUNNING"}))

    assert verdict["ok"]


def test_lease_exclusive_overlap() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.claim("w1", J1)
    builder.renew("w1", J1, 1)
    builder.claim("w2", J1)

    found = only_violation(
        lease_exclusive.check(builder.history(), builder.final({J1: "RUNNING"}))
    )

    assert found["job"] == J1
    assert found["tokens"] == [1, 2]
    assert "while token 1 held the lease" in str(found["message"])


def test_lease_exclusive_duplicate_token() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.claim("w1", J1, 1)
    builder.wait(4)
    builder.claim("w2", J1, 1)

    found = only_violation(
        lease_exclusive.check(builder.history(), builder.final({J1: "RUNNING"}))
    )

    assert found["job"] == J1
    assert found["tokens"] == [1]
    assert "returned by two claims" in str(found["message"])


def test_lease_exclusive_decreasing_token() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.claim("w1", J1, 2)
    builder.wait(4)
    builder.claim("w2", J1, 1)

    found = only_violation(
        lease_exclusive.check(builder.history(), builder.final({J1: "RUNNING"}))
    )

    assert found["tokens"] == [2, 1]
    assert "tokens must increase" in str(found["message"])


# -- retry_cap ----------------------------------------------------------------------


def test_retry_cap_up_to_the_cap() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1, max_retries=1)
    builder.claim("w1", J1)
    builder.fail("w1", J1, 1)
    builder.claim("w1", J1)
    builder.fail("w1", J1, 2, state="FAILED")

    verdict = retry_cap.check(builder.history(), builder.final({J1: "FAILED"}))

    assert verdict["ok"]
    assert verdict["checked"] == 3


def test_retry_cap_attempt_over_cap() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1, max_retries=1)
    builder.claim("w1", J1, attempts=3)

    verdict = retry_cap.check(builder.history(), builder.final({J1: "RUNNING"}))

    assert not verdict["ok"]
    claim, final = verdict["violations"]
    assert claim["job"] == J1
    assert claim["tokens"] == [1]
    assert "attempt 3, over the cap of max_retries + 1 = 2" in claim["message"]
    assert final["job"] == J1
    assert "the final state has attempts 3" in final["message"]


def test_retry_cap_claim_after_failed() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1, max_retries=0)
    builder.claim("w1", J1)
    builder.fail("w1", J1, 1, state="FAILED")
    builder.claim("w2", J1, attempts=1)

    found = only_violation(
        retry_cap.check(builder.history(), builder.final({J1: "RUNNING"}))
    )

    assert found["job"] == J1
    assert found["tokens"] == [1, 2]
    assert "after the job ended FAILED" in str(found["message"])


def test_retry_cap_operator_retry_allows_claim() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1, max_retries=0)
    builder.claim("w1", J1)
    builder.wait(4)
    builder.recover("w2", failed=[(J1, 1)])
    builder.retry("api", J1)
    builder.claim("w2", J1)

    verdict = retry_cap.check(builder.history(), builder.final({J1: "RUNNING"}))

    assert verdict["ok"]


# -- priority_order -----------------------------------------------------------------


def test_priority_order_better_first() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1, priority=5)
    builder.enqueue(J2, priority=0)
    builder.claim("w1", J2)
    builder.claim("w1", J1)

    verdict = priority_order.check(
        builder.history(), builder.final({J1: "RUNNING", J2: "RUNNING"})
    )

    assert verdict["ok"]
    assert verdict["checked"] == 2


def test_priority_order_passed_over() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1, priority=5)
    builder.enqueue(J2, priority=0)
    builder.claim("w1", J1)

    found = only_violation(
        priority_order.check(
            builder.history(), builder.final({J1: "RUNNING", J2: "QUEUED"})
        )
    )

    assert found["job"] == J1
    assert found["tokens"] == [1]
    assert f"while job {J2} (priority 0" in str(found["message"])


def test_priority_order_enqueued_during_window() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1, priority=5)
    builder.claim_invoke("w1")
    builder.enqueue(J2, priority=0)
    builder.claim_ok("w1", J1)

    verdict = priority_order.check(
        builder.history(), builder.final({J1: "RUNNING", J2: "QUEUED"})
    )

    assert verdict["ok"]


def test_priority_order_taken_by_overlapping_claim() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1, priority=5)
    builder.enqueue(J2, priority=0)
    builder.claim_invoke("w2")
    builder.claim_invoke("w1")
    builder.claim_ok("w1", J1)
    builder.claim_ok("w2", J2)

    verdict = priority_order.check(
        builder.history(), builder.final({J1: "RUNNING", J2: "RUNNING"})
    )

    assert verdict["ok"]


def test_priority_order_other_queue_ignored() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1, priority=5)
    builder.enqueue(J2, priority=0, queue="bulk")
    builder.claim("w1", J1)

    verdict = priority_order.check(
        builder.history(), builder.final({J1: "RUNNING", J2: "QUEUED"})
    )

    assert verdict["ok"]


def test_priority_order_delayed_job_not_ready() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1, priority=5)
    builder.enqueue(J2, priority=0, run_at=builder.db_time + 60)
    builder.claim("w1", J1)

    verdict = priority_order.check(
        builder.history(), builder.final({J1: "RUNNING", J2: "QUEUED"})
    )

    assert verdict["ok"]


def test_priority_order_delayed_job_once_ready() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J2, priority=0, run_at=builder.db_time + 1)
    builder.wait(2)
    builder.enqueue(J1, priority=5)  # its db_time shows the run_at has passed
    builder.claim("w1", J1)

    found = only_violation(
        priority_order.check(
            builder.history(), builder.final({J1: "RUNNING", J2: "QUEUED"})
        )
    )

    assert found["job"] == J1


def test_priority_order_requeued_job_counts() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1, priority=5)
    builder.enqueue(J2, priority=0)
    builder.claim("w1", J2)
    builder.fail("w1", J2, 1)
    builder.claim("w1", J1)

    found = only_violation(
        priority_order.check(
            builder.history(), builder.final({J1: "RUNNING", J2: "QUEUED"})
        )
    )

    assert found["job"] == J1
    assert f"job {J2}" in str(found["message"])


def test_priority_order_unrecorded_claim_hides_job() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1, priority=5)
    builder.enqueue(J2, priority=0)
    builder.claim_invoke("w3")
    builder.kill("w3")  # its claim of J2 may have committed
    builder.claim("w1", J1)
    builder.wait(4)
    builder.recover("w1", requeued=[(J2, 1)])

    verdict = priority_order.check(
        builder.history(), builder.final({J1: "RUNNING", J2: "QUEUED"})
    )

    assert verdict["ok"]


# -- fifo_order ---------------------------------------------------------------------


def test_fifo_order_in_seq_order() -> None:
    builder = HistoryBuilder()
    for job in (J1, J2, J3):
        builder.enqueue(job)
    for job in (J1, J2, J3):
        builder.claim("w1", job)

    verdict = fifo_order.check(
        builder.history(), builder.final(dict.fromkeys((J1, J2, J3), "RUNNING"))
    )

    assert verdict["ok"]
    assert verdict["checked"] == 3


def test_fifo_order_younger_first() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.enqueue(J2)
    builder.claim("w1", J2)

    found = only_violation(
        fifo_order.check(
            builder.history(), builder.final({J1: "QUEUED", J2: "RUNNING"})
        )
    )

    assert found["job"] == J2
    assert found["tokens"] == [1]
    assert f"job {J1} (priority 5, seq 1)" in str(found["message"])


def test_fifo_order_ignores_requeued_jobs() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.claim("w1", J1)
    builder.fail("w1", J1, 1)
    builder.enqueue(J2)
    builder.claim("w1", J2)

    verdict = fifo_order.check(
        builder.history(), builder.final({J1: "QUEUED", J2: "RUNNING"})
    )

    assert verdict["ok"]
    assert verdict["checked"] == 2


# -- legal_transitions --------------------------------------------------------------


def test_legal_transitions_full_lifecycle() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1, max_retries=1)
    builder.claim("w1", J1)
    builder.renew("w1", J1, 1)
    builder.fail("w1", J1, 1)
    builder.claim("w1", J1)
    builder.wait(4)
    builder.recover("w2", failed=[(J1, 2)])
    builder.retry("api", J1)
    builder.claim("w2", J1)
    builder.release("w2", J1, 3)
    builder.claim("w2", J1)
    builder.complete("w2", J1, 4)
    builder.enqueue(J2)
    builder.cancel("api", J2)

    verdict = legal_transitions.check(
        builder.history(), builder.final({J1: "SUCCESS", J2: "CANCELLED"})
    )

    assert verdict["ok"], verdict["violations"]
    assert verdict["checked"] == 15  # 13 steps and 2 final states


def test_legal_transitions_complete_while_queued() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.claim("w1", J1)
    builder.fail("w1", J1, 1)
    builder.complete("w1", J1, 1)

    verdict = legal_transitions.check(builder.history(), builder.final({J1: "SUCCESS"}))

    found = only_violation(verdict)
    assert found["job"] == J1
    assert found["tokens"] == [1]
    assert "from QUEUED to SUCCESS" in str(found["message"])


def test_legal_transitions_claim_after_failed() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1, max_retries=0)
    builder.claim("w1", J1)
    builder.fail("w1", J1, 1, state="FAILED")
    builder.claim("w1", J1)

    found = only_violation(
        legal_transitions.check(builder.history(), builder.final({J1: "RUNNING"}))
    )

    assert found["tokens"] == [2]
    assert "from FAILED to RUNNING" in str(found["message"])


def test_legal_transitions_final_state_mismatch() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.claim("w1", J1)

    found = only_violation(
        legal_transitions.check(builder.history(), builder.final({J1: "SUCCESS"}))
    )

    assert found["job"] == J1
    assert found["tokens"] == [1]
    assert "the final state is SUCCESS" in str(found["message"])


def test_legal_transitions_unknown_complete_explains_final() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.claim("w1", J1)
    builder.complete("w1", J1, 1, outcome="unknown")

    verdict = legal_transitions.check(builder.history(), builder.final({J1: "SUCCESS"}))

    assert verdict["ok"]
    assert verdict["stats"]["explained_by_unknown"] == 1


def test_legal_transitions_unrecorded_claim_explained() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.claim_invoke("w3")
    builder.kill("w3")
    builder.wait(4)
    builder.recover("w1", requeued=[(J1, 1)])
    builder.jobs[J1]["token"] = 1
    builder.claim("w1", J1)
    builder.complete("w1", J1, 2)

    verdict = legal_transitions.check(builder.history(), builder.final({J1: "SUCCESS"}))

    assert verdict["ok"], verdict["violations"]
    assert verdict["stats"]["explained_by_unknown"] == 1


# -- recovery_bound -----------------------------------------------------------------


def recovery_check(builder: HistoryBuilder, states: dict[str, str]) -> Verdict:
    return recovery_bound.check(
        builder.history(),
        builder.final(states),
        lease_ttl_s=3.0,
        recovery_interval_s=1.0,
        margin_s=1.0,
    )


def test_recovery_bound_reclaimed_in_time() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.enqueue(J2)
    builder.claim("w1", J1)
    builder.claim("w1", J2)
    builder.complete("w1", J2, 1)
    builder.kill("w1")
    builder.wait(3.5)
    builder.recover("w2", requeued=[(J1, 1)])
    builder.claim("w2", J1)

    verdict = recovery_check(builder, {J1: "RUNNING", J2: "SUCCESS"})

    assert verdict["ok"]
    assert verdict["checked"] == 1


def test_recovery_bound_failed_at_cap() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1, max_retries=0)
    builder.claim("w1", J1)
    builder.kill("w1")
    builder.wait(3.5)
    builder.recover("w2", failed=[(J1, 1)])
    builder.wait(10)
    builder.info("worker_exit", "w2", exit_code=0)

    verdict = recovery_check(builder, {J1: "FAILED"})

    assert verdict["ok"]
    assert verdict["checked"] == 1


def test_recovery_bound_reclaimed_late() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.claim("w1", J1)
    kill = builder.kill("w1")
    builder.wait(8)
    builder.recover("w2", requeued=[(J1, 1)])
    claim = builder.claim("w2", J1)

    found = only_violation(recovery_check(builder, {J1: "RUNNING"}))

    assert found["job"] == J1
    assert found["tokens"] == [1]
    assert found["times"] == [kill["t"], claim["t"]]
    assert "the bound is 5s" in str(found["message"])


def test_recovery_bound_never_reclaimed() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.claim("w1", J1)
    builder.kill("w1")
    builder.wait(8)
    builder.info("worker_exit", "w2", exit_code=0)

    found = only_violation(recovery_check(builder, {J1: "RUNNING"}))

    assert found["job"] == J1
    assert "was never taken over" in str(found["message"])


def test_recovery_bound_history_too_short() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.claim("w1", J1)
    builder.kill("w1")

    verdict = recovery_check(builder, {J1: "RUNNING"})

    assert verdict["ok"]
    assert verdict["stats"]["unverified"] == 1


# -- drained ------------------------------------------------------------------------


def test_drained_within_timeout() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.info("pause", "w1")
    builder.info("resume", "w1")
    builder.wait(5)
    run_job(builder, "w1", J1)

    verdict = drained.check(
        builder.history(), builder.final({J1: "SUCCESS"}), drain_timeout_s=10
    )

    assert verdict["ok"]
    assert verdict["checked"] == 1


def test_drained_job_ends_late() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.info("resume", "w1")
    builder.wait(15)
    run_job(builder, "w1", J1)

    found = only_violation(
        drained.check(
            builder.history(), builder.final({J1: "SUCCESS"}), drain_timeout_s=10
        )
    )

    assert found["job"] == J1
    assert found["tokens"] == [1]
    assert "after its drain deadline" in str(found["message"])


def test_drained_job_never_ends() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)

    found = only_violation(
        drained.check(
            builder.history(), builder.final({J1: "QUEUED"}), drain_timeout_s=10
        )
    )

    assert found["job"] == J1
    assert "is QUEUED at the end of the run" in str(found["message"])


# -- duplicates ---------------------------------------------------------------------


def test_duplicates_explains_kill_and_retry() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.enqueue(J2)
    builder.claim("w1", J1)
    builder.execute("w1", J1, 1, outcome="none")
    builder.kill("w1")
    builder.wait(4)
    builder.recover("w2", requeued=[(J1, 1)])
    builder.claim("w2", J1)
    builder.execute("w2", J1, 2)
    builder.complete("w2", J1, 2)
    builder.claim("w2", J2)
    builder.execute("w2", J2, 1, outcome="fail")
    builder.fail("w2", J2, 1)
    builder.claim("w2", J2)
    builder.complete("w2", J2, 2)

    summary = duplicates.summarize(
        builder.history(),
        builder.final({J1: "SUCCESS", J2: "SUCCESS"}, [(J2, 2, "w2")]),
    )

    assert summary["jobs"] == 2
    assert summary["extra_executions"] == 2
    first, second = summary["details"]
    assert first == {
        "job": J1,
        "tokens": [1, 2],
        "reasons": ["lease expired after its worker was killed"],
    }
    assert second["job"] == J2
    assert second["reasons"] == ["retry after the handler failed"]


def test_duplicates_same_token_twice() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.claim("w1", J1)

    summary = duplicates.summarize(
        builder.history(),
        builder.final({J1: "SUCCESS"}, [(J1, 1, "w1"), (J1, 1, "w1")]),
    )

    assert summary["by_reason"] == {"the same token ran the handler again": 1}


# -- coverage -----------------------------------------------------------------------


def test_coverage_counts_and_missing_events() -> None:
    builder = HistoryBuilder()
    builder.enqueue(J1)
    builder.claim("w1", J1)
    builder.kill("w1")
    builder.wait(4)
    builder.recover("w2", requeued=[(J1, 1)])
    builder.claim("w2", J1)
    builder.renew("w1", J1, 1, outcome="stale")
    builder.fail("w2", J1, 2)
    builder.info("worker_exit", "w3", exit_code=-9)

    verdict = coverage.check(
        builder.history(),
        builder.final({J1: "QUEUED"}),
        ["kill", "recovery_after_kill", "retry", "pause"],
    )

    found = only_violation(verdict)
    assert found["job"] is None
    assert "'pause' never happened" in str(found["message"])
    stats = verdict["stats"]
    assert stats["kill"] == 1
    assert stats["recovery_after_kill"] == 1
    assert stats["recovery"] == 1
    assert stats["retry"] == 1
    assert stats["lease_lost"] == 1
    assert stats["stale_write_rejected"] == 1
    assert stats["worker_crash"] == 1
    assert stats["db_error"] == 0


# -- run_all ------------------------------------------------------------------------


def test_run_all_clean_history() -> None:
    builder = HistoryBuilder()
    for job in (J1, J2):
        builder.enqueue(job)
    run_job(builder, "w1", J1)
    builder.info("kill", "w2")
    builder.info("restart", "w2")
    run_job(builder, "w1", J2)
    params = CheckParams(
        lease_ttl_s=3,
        recovery_interval_s=1,
        recovery_margin_s=1,
        drain_timeout_s=10,
        expect=("kill", "restart"),
    )

    verdicts = run_all(
        builder.history(), builder.final({J1: "SUCCESS", J2: "SUCCESS"}), params
    )

    assert list(verdicts) == [*INVARIANTS, "coverage"]
    for name, verdict in verdicts.items():
        assert verdict["ok"], (name, verdict["violations"])

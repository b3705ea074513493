"""Time from SIGKILL of a worker mid-job to the next claim of that job.

One trial: a victim worker claims a long `sleep` job, a survivor worker
starts, the victim is killed with SIGKILL, and the survivor's recovery
sweep requeues the job once its lease expires and the survivor claims it.
The next claim's `claimed_at` (database clock) minus the kill time (client
clock) is the recovery time. Both clocks are this machine's clock.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aegis.models import JobState
from aegis.queue import Queue
from aegis.store import Store
from bench.procs import WorkerProcess
from bench.servers import BENCH_DB, MongoTarget, clear_jobs, mongo_server
from bench.stats import median

POLL_INTERVAL_S = 0.02
READY_TIMEOUT_S = 30.0
SLEEP_JOB_S = 600.0


@dataclass(frozen=True)
class RecoverySetting:
    """Worker settings of one group of recovery trials, in seconds."""

    lease_ttl_s: float
    heartbeat_interval_s: float
    recovery_interval_s: float

    def worker_args(self) -> list[str]:
        return [
            "--lease-ttl",
            str(self.lease_ttl_s),
            "--heartbeat-interval",
            str(self.heartbeat_interval_s),
            "--recovery-interval",
            str(self.recovery_interval_s),
            "--grace-period",
            "0",
        ]


@dataclass(frozen=True)
class RecoveryResult:
    """Recovery times of several trials with one setting."""

    setting: RecoverySetting
    trials_s: list[float]

    @property
    def median_s(self) -> float:
        return round(median(self.trials_s), 2)

    @property
    def max_s(self) -> float:
        return round(max(self.trials_s), 2)


def _wait_for(
    description: str, probe: Callable[[], Any | None], timeout_s: float
) -> Any:
    """Poll `probe` until it returns something other than None."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"timed out after {timeout_s:g} s waiting for {description}"
            )
        time.sleep(POLL_INTERVAL_S)


def _job_held_by(store: Store, job_id: Any, worker_id: str) -> dict[str, Any] | None:
    return store.jobs.find_one(
        {"_id": job_id, "state": JobState.RUNNING.value, "worker_id": worker_id}
    )


def run_trial(
    target: MongoTarget, setting: RecoverySetting, trial: int, rng: random.Random
) -> float:
    """Run one kill-and-recover trial and return the recovery time in seconds."""
    store = target.store
    clear_jobs(store)
    victim_id = f"victim-{trial}"
    survivor_id = f"survivor-{trial}"
    victim = WorkerProcess(
        target.uri, BENCH_DB, worker_id=victim_id, extra_args=setting.worker_args()
    )
    survivor: WorkerProcess | None = None
    try:
        job = Queue(store).enqueue("sleep", {"seconds": SLEEP_JOB_S})
        _wait_for(
            "the victim's claim",
            lambda: _job_held_by(store, job.id, victim_id),
            READY_TIMEOUT_S,
        )

        # The survivor starts after the claim, or it could take the job first.
        survivor = WorkerProcess(
            target.uri,
            BENCH_DB,
            worker_id=survivor_id,
            extra_args=setting.worker_args(),
        )
        _wait_for(
            "the survivor to register",
            lambda: store.workers.find_one({"_id": survivor_id}),
            READY_TIMEOUT_S,
        )

        # Two random offsets spread the kill uniformly over the victim's
        # renewal cycle and over the survivor's recovery sweep cycle.
        time.sleep(
            rng.uniform(0, setting.heartbeat_interval_s)
            + rng.uniform(0, setting.recovery_interval_s)
        )
        killed_at = datetime.now(UTC)
        victim.kill()

        timeout_s = setting.lease_ttl_s + 3 * setting.recovery_interval_s + 15
        doc = _wait_for(
            "the survivor's claim",
            lambda: _job_held_by(store, job.id, survivor_id),
            timeout_s,
        )
        claimed_at: datetime = doc["claimed_at"]
        return (claimed_at - killed_at).total_seconds()
    finally:
        victim.kill()
        if survivor is not None:
            survivor.kill()


def measure_recovery(
    setting: RecoverySetting, trials: int, rng: random.Random
) -> RecoveryResult:
    """Run `trials` trials of one setting on a fresh server."""
    with mongo_server() as target:
        times_s = [run_trial(target, setting, index, rng) for index in range(trials)]
    return RecoveryResult(setting, [round(value, 3) for value in times_s])

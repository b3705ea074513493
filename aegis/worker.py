"""The worker: claims jobs, runs their handlers, keeps their leases alive.

Threads in one worker process:
- the main thread claims jobs while a slot is free (`concurrency` slots);
- one thread per running job runs its handler and reports the outcome;
- the heartbeat thread renews leases of jobs that outlived a heartbeat
  interval, refreshes the worker document and notices lost leases;
- the recovery thread runs `Queue.recover` every `recovery_interval_s`.

A job stops being this worker's when a renewal is rejected, or when its
lease deadline (a monotonic-clock bound slightly shorter than the lease)
passes without a successful renewal. The worker then never reports that job;
the database would reject the report anyway, because every write is fenced.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Protocol, TypeVar

from pymongo.errors import (
    ConnectionFailure,
    OperationFailure,
    PyMongoError,
    WTimeoutError,
)

from aegis.errors import InvalidJob, JobCancelled, LeaseLost, UnknownJobType
from aegis.handlers import HandlerRegistry, JobContext
from aegis.models import ErrorInfo, Job, JobState, Lease, RecoveryResult
from aegis.settings import QueueSettings
from aegis.wakeup import WorkSignal
from aegis.workers import WorkerRegistry, default_worker_id

log = logging.getLogger(__name__)

# A job's lease deadline is this fraction of the lease after the claim or
# renewal was sent, leaving room for the request's own latency.
LEASE_SAFETY_FRACTION = 0.9
# Sleep after the first empty claim; doubles up to `poll_interval_s`.
MIN_IDLE_SLEEP_S = 0.05
# A recovery sweep timed by a lease expiry runs this much after it (times a
# random factor in [1, 2)), so the lease has surely expired by the database clock.
EXPIRY_MARGIN_S = 0.05
# Retry delays after a database error: doubles from the first to the last.
DB_RETRY_FIRST_S = 0.1
DB_RETRY_MAX_S = 5.0

T = TypeVar("T")


class QueueOperations(Protocol):
    """The queue operations a worker calls; `Queue` implements them."""

    settings: QueueSettings

    def claim(self, worker_id: str, queues: Sequence[str]) -> Job | None: ...
    def renew(self, job_id: str, token: int) -> Lease: ...
    def complete(self, job_id: str, token: int, result: Any = None) -> Job: ...
    def fail(
        self, job_id: str, token: int, error: ErrorInfo, *, retryable: bool = True
    ) -> Job: ...
    def release(self, job_id: str, token: int) -> Job: ...
    def finish_cancelled(self, job_id: str, token: int) -> Job: ...
    def recover(self) -> RecoveryResult: ...
    def next_expiry_s(self) -> float | None: ...


@dataclass
class WorkerStats:
    """Counts reported in the shutdown summary."""

    claimed: int = 0
    succeeded: int = 0
    retried: int = 0
    failed: int = 0
    cancelled: int = 0
    released: int = 0
    lease_lost: int = 0
    recovered: int = 0
    db_errors: int = 0


@dataclass
class _RunningJob:
    job: Job
    ctx: JobContext
    renewed_at: float  # monotonic time the claim or last renewal was sent
    deadline: float  # monotonic time after which the job is not ours
    released: bool = False
    reported: bool = False
    # Serializes the renewal, the outcome report and the release of this job,
    # so a renewal never races a report that just ended the lease.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    thread: threading.Thread | None = field(default=None, repr=False)

    def describe(self) -> str:
        return (
            f"job {self.job.job_id} attempt {self.job.attempts} token {self.job.token}"
        )


class _Backoff:
    """Doubling delays for retrying database calls."""

    def __init__(self, first_s: float, max_s: float) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self.next_s = first_s

    def next(self) -> float:
        delay = self.next_s
        self.next_s = min(self.max_s, self.next_s * 2)
        return delay

    def reset(self) -> None:
        self.next_s = self.first_s


class Worker:
    """One worker process's claim loop, handler threads and heartbeat."""

    def __init__(
        self,
        queue: QueueOperations,
        handlers: HandlerRegistry,
        *,
        queues: Sequence[str],
        concurrency: int = 1,
        worker_id: str | None = None,
        registry: WorkerRegistry | None = None,
        run_recovery: bool = True,
        wakeup: WorkSignal | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if not queues:
            raise ValueError("a worker needs at least one queue")
        self.queue = queue
        self.settings = queue.settings
        self.handlers = handlers
        self.queues = list(queues)
        self.concurrency = concurrency
        self.worker_id = worker_id or default_worker_id()
        self.registry = registry
        self.run_recovery = run_recovery
        self.wakeup = wakeup
        self.stats = WorkerStats()

        self._stopping = threading.Event()  # no new claims
        self._abort = threading.Event()  # skip the grace period
        self._done = threading.Event()  # background threads exit
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._running: dict[str, _RunningJob] = {}
        self._rng = random.Random()

    # -- lifecycle ----------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """Make SIGTERM and SIGINT stop the worker gracefully; a second one aborts."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._stopping.is_set():
            log.warning(
                "worker %s: second %s; releasing running jobs now", self.worker_id, name
            )
            self._abort.set()
        else:
            log.info("worker %s: %s received; stopping", self.worker_id, name)
        self.stop()

    def stop(self, *, abort: bool = False) -> None:
        """Stop claiming; with `abort`, release running jobs without waiting."""
        self._stopping.set()
        if abort:
            self._abort.set()
        if self.wakeup is not None:
            self.wakeup.notify()

    def run(self) -> WorkerStats:
        """Claim and run jobs until `stop` or a signal, then drain and return."""
        log.info(
            "worker %s: starting (queues %s, concurrency %d, lease %.1f s, heartbeat %.1f s)",
            self.worker_id,
            ",".join(self.queues),
            self.concurrency,
            self.settings.lease_ttl_s,
            self.settings.heartbeat_interval_s,
        )
        self._retry_db("register", self._register)
        background = [
            threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        ]
        if self.run_recovery:
            background.append(
                threading.Thread(
                    target=self._recovery_loop, name="recovery", daemon=True
                )
            )
        for thread in background:
            thread.start()

        try:
            self._claim_loop()
        finally:
            # Order matters. Claiming has stopped, so the set of running jobs
            # only shrinks. Wait for them, then release what is left while the
            # heartbeat still keeps their leases alive.
            self._drain()
            self._done.set()
            for thread in background:
                thread.join(timeout=5)
            self._unregister()
            if self.wakeup is not None:
                self.wakeup.close()
            log.info(
                "worker %s: stopped; %s", self.worker_id, _format_stats(self.stats)
            )
        return self.stats

    def _register(self) -> None:
        if self.registry is not None:
            self.registry.register(self.worker_id, self.queues, self.concurrency)

    def _unregister(self) -> None:
        if self.registry is None:
            return
        try:
            self.registry.mark_stopped(self.worker_id)
        except PyMongoError as exc:
            log.warning(
                "worker %s: could not mark itself stopped: %s", self.worker_id, exc
            )

    def _retry_db(self, what: str, call: Callable[[], T]) -> T | None:
        """Call until it succeeds or the worker stops, backing off on errors."""
        backoff = _Backoff(DB_RETRY_FIRST_S, DB_RETRY_MAX_S)
        while True:
            try:
                return call()
            except PyMongoError as exc:
                self.stats.db_errors += 1
                delay_s = backoff.next()
                log.warning(
                    "worker %s: %s failed (%s); retrying in %.1f s",
                    self.worker_id,
                    what,
                    exc,
                    delay_s,
                )
                if self._stopping.wait(delay_s):
                    return None

    # -- claiming -----------------------------------------------------------

    def _claim_loop(self) -> None:
        idle_sleep_s = MIN_IDLE_SLEEP_S
        backoff = _Backoff(DB_RETRY_FIRST_S, DB_RETRY_MAX_S)
        while not self._stopping.is_set():
            if not self._slots.acquire(timeout=0.2):
                continue
            sent_at = time.monotonic()
            try:
                job = self.queue.claim(self.worker_id, self.queues)
            except PyMongoError as exc:
                self._slots.release()
                self.stats.db_errors += 1
                delay_s = backoff.next()
                log.warning(
                    "worker %s: claim failed (%s); retrying in %.1f s",
                    self.worker_id,
                    exc,
                    delay_s,
                )
                self._stopping.wait(delay_s)
                continue
            backoff.reset()
            if job is None:
                self._slots.release()
                self._wait_for_work(idle_sleep_s)
                idle_sleep_s = min(idle_sleep_s * 2, self.settings.poll_interval_s)
                continue
            idle_sleep_s = MIN_IDLE_SLEEP_S
            self.stats.claimed += 1
            self._start(job, sent_at)

    def _wait_for_work(self, idle_sleep_s: float) -> None:
        """Sleep after an empty claim, or until the change stream signals work."""
        if self.wakeup is None:
            self._stopping.wait(idle_sleep_s)
        else:
            self.wakeup.wait(self.settings.poll_interval_s)

    def _start(self, job: Job, sent_at: float) -> None:
        running = _RunningJob(
            job=job,
            ctx=JobContext(job),
            renewed_at=sent_at,
            deadline=sent_at + self.settings.lease_ttl_s * LEASE_SAFETY_FRACTION,
        )
        thread = threading.Thread(
            target=self._execute, args=(running,), name=f"job-{job.job_id}", daemon=True
        )
        running.thread = thread
        with self._lock:
            self._running[job.job_id] = running
        thread.start()

    # -- running one job ----------------------------------------------------

    def _execute(self, running: _RunningJob) -> None:
        job = running.job
        try:
            if time.monotonic() > running.deadline:
                # The claim's reply came too late to run the job safely: another
                # worker may hold it soon. Give it back without spending an attempt.
                self._lose(running, "the claim returned after the lease deadline")
                self._release(running)
                return
            try:
                handler = self.handlers.get(job.job_type)
                result = handler(running.ctx)
            except JobCancelled:
                self._report(running, "cancel", lambda: self._finish_cancelled(job))
            except UnknownJobType as exc:
                log.error("%s worker %s: %s", running.describe(), self.worker_id, exc)
                unknown = ErrorInfo.from_exception(exc)
                self._report(running, "fail", lambda: self._fail(job, unknown))
            except Exception as exc:
                log.exception(
                    "%s worker %s: handler raised", running.describe(), self.worker_id
                )
                error = ErrorInfo.from_exception(exc, traceback.format_exc())
                self._report(running, "fail", lambda: self._fail(job, error))
            else:
                self._report(running, "complete", lambda: self._complete(job, result))
        finally:
            with self._lock:
                self._running.pop(job.job_id, None)
            self._slots.release()

    def _complete(self, job: Job, result: Any) -> None:
        try:
            self.queue.complete(job.job_id, job.token, result)
        except InvalidJob as exc:
            # The result cannot be stored: that is this attempt's failure.
            self._fail(job, ErrorInfo.from_exception(exc))
            return
        except OperationFailure as exc:
            if is_transient(exc):
                raise
            # The server rejected the write itself (a document grown too
            # large, say); retrying the same write would fail forever.
            self._fail(job, ErrorInfo("ResultNotStored", f"result not stored: {exc}"))
            return
        self.stats.succeeded += 1

    def _fail(self, job: Job, error: ErrorInfo) -> None:
        updated = self.queue.fail(job.job_id, job.token, error)
        if updated.state is JobState.QUEUED:
            self.stats.retried += 1
        elif updated.state is JobState.CANCELLED:
            self.stats.cancelled += 1
        else:
            self.stats.failed += 1

    def _finish_cancelled(self, job: Job) -> None:
        self.queue.finish_cancelled(job.job_id, job.token)
        self.stats.cancelled += 1

    def _report(
        self, running: _RunningJob, what: str, write: Callable[[], None]
    ) -> None:
        """Send the outcome while the job is still ours, retrying database errors."""
        backoff = _Backoff(DB_RETRY_FIRST_S, DB_RETRY_MAX_S)
        while True:
            with running.lock:
                if running.released or running.ctx.lease_lost.is_set():
                    log.warning(
                        "%s worker %s: lease lost; outcome (%s) not reported",
                        running.describe(),
                        self.worker_id,
                        what,
                    )
                    return
                if time.monotonic() > running.deadline:
                    self._lose(
                        running, "lease deadline passed before the outcome was reported"
                    )
                    return
                try:
                    write()
                    running.reported = True
                    return
                except LeaseLost:
                    self._lose(running, f"{what} rejected as stale")
                    return
                except PyMongoError as exc:
                    self.stats.db_errors += 1
                    if not is_transient(exc):
                        log.error(
                            "%s worker %s: %s failed and cannot succeed on retry (%s); "
                            "leaving the job to recovery",
                            running.describe(),
                            self.worker_id,
                            what,
                            exc,
                        )
                        self._lose(running, f"{what} failed permanently")
                        return
                    delay_s = backoff.next()
                    log.warning(
                        "%s worker %s: %s failed (%s); retrying in %.1f s",
                        running.describe(),
                        self.worker_id,
                        what,
                        exc,
                        delay_s,
                    )
            time.sleep(delay_s)

    def _lose(self, running: _RunningJob, reason: str) -> None:
        if running.ctx.lease_lost.is_set():
            return
        running.ctx.lease_lost.set()
        self.stats.lease_lost += 1
        log.warning(
            "%s worker %s: lease lost: %s", running.describe(), self.worker_id, reason
        )

    # -- heartbeat and recovery ----------------------------------------------

    def _heartbeat_loop(self) -> None:
        interval_s = self.settings.heartbeat_interval_s
        tick_s = min(interval_s / 4, 1.0)
        last_worker_beat = 0.0
        while not self._done.wait(tick_s):
            for running in self._snapshot():
                self._renew_if_due(running, interval_s)
            if (
                self.registry is not None
                and time.monotonic() - last_worker_beat >= interval_s
            ):
                try:
                    self.registry.heartbeat(
                        self.worker_id, [r.job.job_id for r in self._snapshot()]
                    )
                    last_worker_beat = time.monotonic()
                except PyMongoError as exc:
                    log.warning(
                        "worker %s: worker heartbeat failed: %s", self.worker_id, exc
                    )

    def _snapshot(self) -> list[_RunningJob]:
        with self._lock:
            return list(self._running.values())

    def _renew_if_due(self, running: _RunningJob, interval_s: float) -> None:
        with running.lock:
            self._renew_locked(running, interval_s)

    def _renew_locked(self, running: _RunningJob, interval_s: float) -> None:
        if running.reported or running.released or running.ctx.lease_lost.is_set():
            return
        now = time.monotonic()
        if now > running.deadline:
            self._lose(running, "lease deadline passed without a successful renewal")
            return
        if now - running.renewed_at < interval_s:
            return
        try:
            lease = self.queue.renew(running.job.job_id, running.job.token)
        except LeaseLost:
            self._lose(running, "renewal rejected as stale")
            return
        except PyMongoError as exc:
            self.stats.db_errors += 1
            log.warning(
                "%s worker %s: renewal failed (%s); retrying",
                running.describe(),
                self.worker_id,
                exc,
            )
            return
        running.renewed_at = now
        running.deadline = now + self.settings.lease_ttl_s * LEASE_SAFETY_FRACTION
        if lease.cancel_requested and not running.ctx.cancel_requested.is_set():
            log.info(
                "%s worker %s: cancellation requested",
                running.describe(),
                self.worker_id,
            )
            running.ctx.cancel_requested.set()

    def _recovery_loop(self) -> None:
        delay_s = self._next_sweep_delay_s()
        while not self._done.wait(delay_s):
            try:
                result = self.queue.recover()
            except PyMongoError as exc:
                log.warning("worker %s: recovery failed: %s", self.worker_id, exc)
            else:
                if result.count:
                    self.stats.recovered += result.count
                    log.info(
                        "worker %s: recovery requeued %d, failed %d and cancelled %d jobs",
                        self.worker_id,
                        len(result.requeued),
                        len(result.failed),
                        len(result.cancelled),
                    )
            delay_s = self._next_sweep_delay_s()

    def _next_sweep_delay_s(self) -> float:
        """Wait the recovery interval, or less when a lease expires sooner.

        Jitter spreads the sweeps of workers that started together. Waking
        just after the earliest lease expiry bounds the delay a crash adds
        by about `lease_ttl_s` instead of `lease_ttl_s + recovery_interval_s`.
        """
        delay_s = self.settings.recovery_interval_s * self._rng.uniform(0.8, 1.2)
        try:
            expiry_s = self.queue.next_expiry_s()
        except PyMongoError as exc:
            log.warning(
                "worker %s: reading lease expiries failed: %s", self.worker_id, exc
            )
            return delay_s
        if expiry_s is None:
            return delay_s
        after_expiry_s = max(expiry_s, 0.0) + EXPIRY_MARGIN_S * self._rng.uniform(1, 2)
        return min(delay_s, after_expiry_s)

    # -- shutdown -----------------------------------------------------------

    def _drain(self) -> None:
        grace_s = self.settings.grace_period_s
        deadline = time.monotonic() + grace_s
        if self._snapshot():
            log.info(
                "worker %s: waiting up to %.1f s for %d running jobs",
                self.worker_id,
                grace_s,
                len(self._snapshot()),
            )
        while (
            self._snapshot()
            and time.monotonic() < deadline
            and not self._abort.is_set()
        ):
            self._abort.wait(0.05)

        for running in self._snapshot():
            with running.lock:
                if running.reported:
                    continue
                # Mark first, so the handler thread never reports after the release.
                running.released = True
                running.ctx.lease_lost.set()
            self._release(running)

    def _release(self, running: _RunningJob) -> None:
        """Give a job back to the queue; on failure recovery requeues it later."""
        try:
            self.queue.release(running.job.job_id, running.job.token)
            self.stats.released += 1
        except LeaseLost:
            pass
        except PyMongoError as exc:
            log.warning(
                "%s worker %s: release failed (%s); recovery will requeue it",
                running.describe(),
                self.worker_id,
                exc,
            )


def is_transient(exc: PyMongoError) -> bool:
    """Tell whether retrying the same command may succeed.

    Lost connections, elections and write-concern timeouts are transient;
    an error the server returns about the command itself is not.
    """
    if isinstance(exc, ConnectionFailure | WTimeoutError):
        return True
    return exc.has_error_label("RetryableWriteError") or exc.has_error_label(
        "TransientTransactionError"
    )


def _format_stats(stats: WorkerStats) -> str:
    return ", ".join(f"{name} {value}" for name, value in vars(stats).items())

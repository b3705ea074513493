"""All checkers on histories of a simulated queue, with and without defects.

`QueueSimulation` replays the queue's semantics (fenced writes, leases,
recovery sweeps, retries with backoff, claim order by priority then seq) in
simulated time, with workers that get killed, restarted and paused. It
records the history that real workers would record: an invoke when a
request is sent, the database applying it a moment later, and the
completion a moment after that, or never if the worker died first. A
paused worker records nothing until it resumes, so its leases expire and
its late results arrive after other workers took its jobs over.

A correct simulated queue must pass every invariant, and each defect must
fail the checker written for it.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, cast

import pytest

from harness.checkers import (
    CheckParams,
    duplicates,
    fifo_order,
    lease_exclusive,
    no_lost_jobs,
    priority_order,
    recovery_bound,
    retry_cap,
    run_all,
    single_commit,
)
from harness.checkers.verdict import Verdict
from harness.history import Event, FinalState, JobRecord, finalize

DB_OFFSET_S = 1000.0


@dataclass(frozen=True)
class SimConfig:
    """A simulated run, and the defects to put into the simulated queue."""

    seed: int = 7
    workers: int = 3
    concurrency: int = 2
    jobs: int = 80
    enqueue_interval_s: float = 0.05
    lease_ttl_s: float = 1.0
    heartbeat_s: float = 0.3
    recovery_interval_s: float = 0.5
    max_retries: int = 2
    backoff_s: float = 0.2
    failure_probability: float = 0.2
    kill_every_s: float = 2.0
    restart_delay_s: float = 0.3
    pause_at_s: tuple[float, ...] = (3.0, 7.0)
    pause_s: float = 1.5
    end_s: float = 40.0
    # Defects.
    fencing: bool = True
    by_priority: bool = True
    fifo: bool = True
    recovery: bool = True
    cap_retries: bool = True


@dataclass
class _Worker:
    name: str
    pid: int | None = None
    paused_until: float = 0.0
    busy_slots: int = 0


@dataclass
class _Running:
    job: str
    token: int
    renewed_sent_at: float
    lost: bool = False


@dataclass
class QueueSimulation:
    config: SimConfig
    now: float = 0.0
    events: list[Event] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    effects: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.config.seed)
        self.queue: list[tuple[float, int, Callable[[], None]]] = []
        self.order = itertools.count()
        self.pids = itertools.count(1000)
        self.seqs = itertools.count(1)
        self.workers = [_Worker(f"w{n}") for n in range(self.config.workers)]
        self.running: dict[str, dict[str, _Running]] = {}

    # -- plumbing -------------------------------------------------------------

    def at(self, t: float, action: Callable[[], None]) -> None:
        heapq.heappush(self.queue, (t, next(self.order), action))

    def on_worker(self, worker: _Worker, t: float, action: Callable[[], None]) -> None:
        """Run `action` on the worker's process: never if it dies first, and
        not before a pause ends."""
        pid = worker.pid

        def guarded() -> None:
            if worker.pid != pid or pid is None:
                return
            if worker.paused_until > self.now:
                self.at(worker.paused_until, guarded)
                return
            action()

        self.at(t, guarded)

    def record(
        self, kind: str, f: str, process: str, pid: int | None, **fields: Any
    ) -> None:
        event = {
            "i": len(self.events),
            "t": round(self.now, 6),
            "process": process,
            "pid": pid,
            "worker": f"{process}-{pid}",
            "type": kind,
            "f": f,
            "job": None,
            "token": None,
            "db_time": None,
        } | fields
        self.events.append(cast(Event, event))

    def latency(self) -> float:
        return self.rng.uniform(0.001, 0.005)

    def operation(
        self,
        worker: _Worker | None,
        process: str,
        f: str,
        apply: Callable[[float], tuple[str, dict[str, Any]]],
        done: Callable[[str, dict[str, Any]], None],
        **invoke_fields: Any,
    ) -> None:
        """Send one request: invoke now, apply at the database, complete later."""
        pid = worker.pid if worker is not None else 1
        self.record("invoke", f, process, pid, **invoke_fields)
        base = {key: invoke_fields.get(key) for key in ("job", "token")}

        def apply_at_database() -> None:
            outcome, fields = apply(self.now + DB_OFFSET_S)

            def complete() -> None:
                self.record(outcome, f, process, pid, **(base | fields))
                done(outcome, fields)

            if worker is None:
                self.at(self.now + self.latency(), complete)
            else:
                self.on_worker(worker, self.now + self.latency(), complete)

        self.at(self.now + self.latency(), apply_at_database)

    # -- the database ---------------------------------------------------------

    def fenced(self, job: str, token: int, db_time: float) -> dict[str, Any] | None:
        doc = self.jobs[job]
        if not self.config.fencing:
            return doc
        if doc["state"] == "RUNNING" and doc["token"] == token:
            if doc["lease_expires_at"] > db_time:
                return doc
        return None

    def db_enqueue(
        self, spec: dict[str, Any], db_time: float
    ) -> tuple[str, dict[str, Any]]:
        job = f"{len(self.jobs) + 1:024x}"
        seq = next(self.seqs)
        self.jobs[job] = spec | {
            "state": "QUEUED",
            "token": 0,
            "attempts": 0,
            "seq": seq,
            "run_at": db_time,
            "lease_expires_at": None,
        }
        fields = {key: spec[key] for key in ("priority", "queue", "max_retries")}
        return "ok", fields | {
            "job": job,
            "seq": seq,
            "run_at": db_time,
            "db_time": db_time,
        }

    def db_claim(self, db_time: float) -> tuple[str, dict[str, Any]]:
        ready = [
            (job, doc)
            for job, doc in self.jobs.items()
            if doc["state"] == "QUEUED" and doc["run_at"] <= db_time
        ]
        if not ready:
            return "ok", {"job": None}

        def rank(item: tuple[str, dict[str, Any]]) -> tuple[int, int]:
            doc = item[1]
            priority = doc["priority"] if self.config.by_priority else 0
            seq = doc["seq"] if self.config.fifo else -doc["seq"]
            return priority, seq

        job, doc = min(ready, key=rank)
        doc["state"] = "RUNNING"
        doc["token"] += 1
        doc["attempts"] += 1
        doc["lease_expires_at"] = db_time + self.config.lease_ttl_s
        return "ok", {
            "job": job,
            "token": doc["token"],
            "attempts": doc["attempts"],
            "priority": doc["priority"],
            "seq": doc["seq"],
            "db_time": db_time,
            "lease_expires_at": doc["lease_expires_at"],
        }

    def db_renew(
        self, job: str, token: int, db_time: float
    ) -> tuple[str, dict[str, Any]]:
        doc = self.fenced(job, token, db_time)
        if doc is None:
            return "fail", {"error": "stale"}
        doc["lease_expires_at"] = db_time + self.config.lease_ttl_s
        return "ok", {"db_time": db_time, "lease_expires_at": doc["lease_expires_at"]}

    def db_complete(
        self, job: str, token: int, db_time: float
    ) -> tuple[str, dict[str, Any]]:
        doc = self.fenced(job, token, db_time)
        if doc is None:
            return "fail", {"error": "stale"}
        doc["state"] = "SUCCESS"
        return "ok", {"state": "SUCCESS", "db_time": db_time}

    def below_cap(self, doc: dict[str, Any]) -> bool:
        return not self.config.cap_retries or doc["attempts"] < doc["max_retries"] + 1

    def db_fail(
        self, job: str, token: int, db_time: float
    ) -> tuple[str, dict[str, Any]]:
        doc = self.fenced(job, token, db_time)
        if doc is None:
            return "fail", {"error": "stale"}
        if self.below_cap(doc):
            doc["state"] = "QUEUED"
            doc["run_at"] = db_time + self.config.backoff_s
        else:
            doc["state"] = "FAILED"
        fields = {"state": doc["state"], "run_at": doc["run_at"]}
        return "ok", fields | {"db_time": db_time}

    def db_recover(self, db_time: float) -> tuple[str, dict[str, Any]]:
        requeued, failed = [], []
        for job, doc in self.jobs.items():
            if doc["state"] == "RUNNING" and doc["lease_expires_at"] <= db_time:
                if self.below_cap(doc):
                    doc["state"], doc["run_at"] = "QUEUED", db_time
                    requeued.append([job, doc["token"]])
                else:
                    doc["state"] = "FAILED"
                    failed.append([job, doc["token"]])
        return "ok", {"requeued": requeued, "failed": failed, "db_time": db_time}

    # -- processes ------------------------------------------------------------

    def start_worker(self, worker: _Worker) -> None:
        worker.pid = next(self.pids)
        worker.busy_slots = 0
        self.running[worker.name] = {}
        self.record("info", "worker_start", worker.name, worker.pid)
        self.on_worker(worker, self.now, lambda: self.claim_loop(worker))
        if self.config.recovery:
            self.on_worker(worker, self.now + 0.1, lambda: self.recovery_loop(worker))
        self.on_worker(
            worker, self.now + self.config.heartbeat_s, lambda: self.heartbeat(worker)
        )

    def claim_loop(self, worker: _Worker) -> None:
        if worker.busy_slots >= self.config.concurrency:
            self.on_worker(worker, self.now + 0.02, lambda: self.claim_loop(worker))
            return
        worker.busy_slots += 1

        def done(outcome: str, fields: dict[str, Any]) -> None:
            if fields.get("job") is None:
                worker.busy_slots -= 1
                self.on_worker(worker, self.now + 0.05, lambda: self.claim_loop(worker))
                return
            self.execute(worker, fields["job"], fields["token"])
            self.on_worker(worker, self.now, lambda: self.claim_loop(worker))

        self.operation(
            worker, worker.name, "claim", self.db_claim, done, queues=["default"]
        )

    def execute(self, worker: _Worker, job: str, token: int) -> None:
        running = _Running(job, token, self.now)
        self.running[worker.name][job] = running
        self.record("invoke", "execute", worker.name, worker.pid, job=job, token=token)
        doc = self.jobs[job]
        fails = doc["attempts"] <= doc["failing_attempts"]

        def finish() -> None:
            self.effects.append({"job": job, "token": token, "process": worker.name})
            outcome = "fail" if fails else "ok"
            self.record(
                outcome, "execute", worker.name, worker.pid, job=job, token=token
            )
            self.report(worker, running, fails)

        self.on_worker(worker, self.now + doc["duration_s"], finish)

    def report(self, worker: _Worker, running: _Running, fails: bool) -> None:
        deadline = running.renewed_sent_at + 0.9 * self.config.lease_ttl_s
        lost = running.lost or self.now > deadline
        if lost and self.config.fencing:
            self.end_job(worker, running)
            return
        job, token = running.job, running.token
        f = "fail" if fails else "complete"
        database = self.db_fail if fails else self.db_complete
        self.operation(
            worker,
            worker.name,
            f,
            lambda db_time: database(job, token, db_time),
            lambda outcome, fields: self.end_job(worker, running),
            job=job,
            token=token,
        )

    def end_job(self, worker: _Worker, running: _Running) -> None:
        self.running[worker.name].pop(running.job, None)
        worker.busy_slots -= 1

    def heartbeat(self, worker: _Worker) -> None:
        for running in list(self.running[worker.name].values()):
            if running.lost:
                continue
            job, token, sent_at = running.job, running.token, self.now

            def done(outcome: str, fields: dict[str, Any], running: _Running = running,
                     sent_at: float = sent_at) -> None:  # fmt: skip
                if outcome == "ok":
                    running.renewed_sent_at = sent_at
                else:
                    running.lost = True

            self.operation(
                worker,
                worker.name,
                "renew",
                lambda db_time, job=job, token=token: self.db_renew(
                    job, token, db_time
                ),
                done,
                job=job,
                token=token,
            )
        self.on_worker(
            worker, self.now + self.config.heartbeat_s, lambda: self.heartbeat(worker)
        )

    def recovery_loop(self, worker: _Worker) -> None:
        self.operation(
            worker, worker.name, "recover", self.db_recover, lambda o, f: None
        )
        self.on_worker(
            worker,
            self.now + self.config.recovery_interval_s,
            lambda: self.recovery_loop(worker),
        )

    def enqueue(self, index: int) -> None:
        config = self.config
        failing = 0
        while (
            failing < config.max_retries + 2
            and self.rng.random() < config.failure_probability
        ):
            failing += 1
        spec = {
            "priority": self.rng.choice([0, 5, 5, 9]),
            "queue": "default",
            "max_retries": config.max_retries,
            "duration_s": self.rng.uniform(0.05, 0.4),
            "failing_attempts": failing,
        }
        self.operation(
            None,
            "enqueuer",
            "enqueue",
            lambda db_time: self.db_enqueue(spec, db_time),
            lambda outcome, fields: None,
            priority=spec["priority"],
            queue="default",
        )

    def kill(self) -> None:
        alive = [worker for worker in self.workers if worker.pid is not None]
        worker = self.rng.choice(alive)
        pid = worker.pid
        self.record("info", "kill", worker.name, pid)
        worker.pid = None
        worker.paused_until = 0.0
        self.at(self.now + 0.01, lambda: self.record("info", "worker_exit", worker.name,
                                                     pid, exit_code=-9))  # fmt: skip
        self.at(self.now + self.config.restart_delay_s, lambda: self.restart(worker))

    def restart(self, worker: _Worker) -> None:
        self.record("info", "restart", worker.name, None)
        self.start_worker(worker)

    def pause(self) -> None:
        worker = self.rng.choice([w for w in self.workers if w.pid is not None])
        worker.paused_until = self.now + self.config.pause_s
        self.record("info", "pause", worker.name, worker.pid)
        pid = worker.pid
        self.at(
            worker.paused_until, lambda: self.record("info", "resume", worker.name, pid)
        )

    # -- running --------------------------------------------------------------

    def run(self) -> tuple[list[Event], FinalState]:
        config = self.config
        for worker in self.workers:
            self.start_worker(worker)
        for index in range(config.jobs):
            self.at(
                index * config.enqueue_interval_s,
                lambda index=index: self.enqueue(index),
            )
        kill_t = config.kill_every_s
        while kill_t < config.end_s / 2:
            self.at(kill_t, self.kill)
            kill_t += config.kill_every_s
        for pause_t in config.pause_at_s:
            self.at(pause_t, self.pause)

        while self.queue and self.queue[0][0] <= config.end_s:
            self.now, _, action = heapq.heappop(self.queue)
            action()
        return finalize(self.events), self.final_state()

    def final_state(self) -> FinalState:
        records: list[JobRecord] = [
            {
                "job": job,
                "state": doc["state"],
                "attempts": doc["attempts"],
                "token": doc["token"],
                "max_retries": doc["max_retries"],
                "priority": doc["priority"],
                "seq": doc["seq"],
                "queue": doc["queue"],
                "run_at": doc["run_at"],
            }
            for job, doc in self.jobs.items()
        ]
        return {"jobs": records, "effects": cast(Any, self.effects)}


def simulate(**changes: Any) -> tuple[list[Event], FinalState, SimConfig]:
    config = replace(SimConfig(), **changes)
    history, final = QueueSimulation(config).run()
    return history, final, config


def params_for(config: SimConfig) -> CheckParams:
    return CheckParams(
        lease_ttl_s=config.lease_ttl_s,
        recovery_interval_s=config.recovery_interval_s,
        recovery_margin_s=2.0,
        drain_timeout_s=15.0,
        expect=("kill", "pause", "recovery_after_kill", "retry", "restart"),
    )


def violated(verdict: Verdict) -> bool:
    return not verdict["ok"] and bool(verdict["violations"])


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_correct_queue_passes_every_checker(seed: int) -> None:
    history, final, config = simulate(seed=seed)

    verdicts = run_all(history, final, params_for(config))

    for name, verdict in verdicts.items():
        assert verdict["ok"], (name, verdict["violations"][:3])
    assert verdicts["single_commit"]["checked"] > 100
    assert verdicts["priority_order"]["checked"] > 80
    assert verdicts["recovery_bound"]["checked"] > 0


def test_generated_history_has_faults_and_reruns() -> None:
    history, final, _ = simulate()

    summary = duplicates.summarize(history, final)

    assert any(event["type"] == "unknown" for event in history)
    assert summary["jobs"] > 0
    assert "lease expired after its worker was killed" in summary["by_reason"]
    assert "retry after the handler failed" in summary["by_reason"]


def test_lost_job_detected() -> None:
    history, final, _ = simulate()
    lost = final["jobs"].pop(0)

    verdict = no_lost_jobs.check(history, final)

    assert violated(verdict)
    assert verdict["violations"][0]["job"] == lost["job"]


def test_unfenced_writes_detected() -> None:
    history, final, _ = simulate(fencing=False)

    assert violated(single_commit.check(history, final))
    assert violated(lease_exclusive.check(history, final))


def test_claim_ignoring_priority_detected() -> None:
    history, final, _ = simulate(by_priority=False, enqueue_interval_s=0.0)

    verdict = priority_order.check(history, final)

    assert violated(verdict)
    assert fifo_order.check(history, final)["ok"]


def test_claim_newest_first_detected() -> None:
    history, final, _ = simulate(fifo=False, enqueue_interval_s=0.0)

    verdict = fifo_order.check(history, final)

    assert violated(verdict)


def test_missing_recovery_detected() -> None:
    history, final, config = simulate(recovery=False)

    verdicts = run_all(history, final, params_for(config))

    assert violated(verdicts["recovery_bound"])
    assert violated(verdicts["drained"])
    assert violated(verdicts["no_lost_jobs"])


def test_uncapped_retries_detected() -> None:
    history, final, _ = simulate(cap_retries=False, failure_probability=0.6)

    verdict = retry_cap.check(history, final)

    assert violated(verdict)


def test_recovery_bound_uses_kill_times() -> None:
    history, final, config = simulate()

    verdict = recovery_bound.check(
        history,
        final,
        lease_ttl_s=config.lease_ttl_s,
        recovery_interval_s=config.recovery_interval_s,
        margin_s=2.0,
    )

    kills = sum(1 for event in history if event["f"] == "kill")
    assert kills > 0
    assert verdict["ok"]

"""Run one chaos scenario end to end and write its report.

Steps of `run`:
1. load the scenario and generate the plan (jobs and fault schedule) from
   the seed;
2. open the database (the given URI, or a fresh embedded server) and a fresh
   database name; start one proxy per worker if the scenario has latency
   faults;
3. start the worker processes and the enqueuer thread, then run the fault
   schedule for the scenario's duration (the fault phase);
4. heal every active fault and wait until every job has ended, at most
   `drain_timeout`;
5. stop the workers (SIGTERM, then SIGKILL), read the final jobs and side
   effects, merge and finalize the history, run the checkers and write the
   report.

Every child process is ended when `run` returns or raises, Ctrl-C included.
"""

from __future__ import annotations

import logging
import random
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from pymongo.errors import PyMongoError

from aegis.models import TERMINAL_STATES
from aegis.queue import Queue
from aegis.settings import QueueSettings
from aegis.store import Store
from harness import checkers
from harness.breaks import check_break
from harness.chaos_jobs import EFFECTS
from harness.checkers import CheckParams
from harness.checkers.duplicates import summarize as summarize_duplicates
from harness.checkers.verdict import Verdict
from harness.database import (
    RunDatabase,
    run_db_name,
    server_facts,
    snapshot,
    store_history,
)
from harness.enqueuer import Enqueuer
from harness.faults import FaultContext, FaultRunner
from harness.history import Event, FinalState, finalize, merge
from harness.live import LiveHistory
from harness.plan import Plan, generate_plan
from harness.processes import WorkerConfig, WorkerPool
from harness.proxy import TcpProxy, is_loopback, parse_host_port
from harness.recording import EventLog, RecordingQueue
from harness.report import (
    compute_stats,
    default_report_dir,
    invariants_summary,
    write_report,
    write_run_report,
)
from harness.scenario import Scenario, load_scenario

log = logging.getLogger(__name__)

TICK_S = 0.1
PROGRESS_INTERVAL_S = 2.0
DRAIN_CHECK_INTERVAL_S = 1.0
# Workers get this long beyond their grace period to exit after SIGTERM.
STOP_MARGIN_S = 10.0


@dataclass
class RunOptions:
    """What `python -m harness run` was asked to do."""

    scenario_path: Path
    seed: int | None = None
    mongodb_uri: str | None = None
    report_dir: Path | None = None
    break_name: str | None = None
    progress: TextIO | None = sys.stderr


@dataclass
class RunResult:
    """The outcome of a run: where the report is and whether invariants hold."""

    report_dir: Path
    summary: dict[str, Any]
    verdicts: dict[str, Verdict]
    coverage: Verdict

    @property
    def invariants_hold(self) -> bool:
        return all(verdict["ok"] for verdict in self.verdicts.values())

    @property
    def ok(self) -> bool:
        """True when every invariant holds and every expected event happened."""
        return self.invariants_hold and self.coverage["ok"]


def worker_settings(scenario: Scenario) -> dict[str, float]:
    """Return the `QueueSettings` fields every worker of the run uses."""
    queue = scenario.queue
    settings = {
        "lease_ttl_s": queue.lease_ttl_s,
        "heartbeat_interval_s": queue.heartbeat_interval_s,
        "recovery_interval_s": queue.recovery_interval_s,
        "backoff_base_s": queue.backoff_base_s,
        "backoff_max_s": queue.backoff_max_s,
        "poll_interval_s": min(1.0, queue.lease_ttl_s / 4),
        "grace_period_s": queue.lease_ttl_s,
        "worker_dead_after_s": 3 * queue.lease_ttl_s,
    }
    QueueSettings.model_validate(settings)  # raises if the combination is invalid
    return settings


@contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit, so cleanup runs as it does on Ctrl-C."""

    def exit_on_signal(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, exit_on_signal)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_checkers(
    history: list[Event], final: FinalState, scenario: Scenario
) -> tuple[dict[str, Verdict], Verdict]:
    """Run every checker; return the invariant verdicts and the coverage verdict."""
    verdicts = checkers.run_all(history, final, CheckParams.from_scenario(scenario))
    coverage = verdicts.pop("coverage")
    return verdicts, coverage


class Run:
    """The state of one run while it goes on."""

    def __init__(self, options: RunOptions, scenario: Scenario, plan: Plan) -> None:
        self.options = options
        self.scenario = scenario
        self.plan = plan
        self.report_dir = options.report_dir or default_report_dir(scenario.name)
        self.events_dir = self.report_dir / "events"
        self.rng = random.Random(f"{plan.seed}:runner")
        self.live = LiveHistory(self.events_dir)
        self.meta: dict[str, Any] = {}
        self._last_progress_t = 0.0

    # -- set-up ---------------------------------------------------------------

    def _start_proxies(self, stack: ExitStack, uri: str) -> list[TcpProxy] | None:
        if not any(fault.type == "latency" for fault in self.scenario.faults):
            return None
        host, port = parse_host_port(uri)
        if not is_loopback(host):
            log.warning(
                "latency faults skipped: the database host %s is not a loopback address",
                host,
            )
            return None
        proxies = []
        for index in range(self.scenario.workers.count):
            proxy = TcpProxy(
                host, port, rng=random.Random(f"{self.plan.seed}:proxy:{index}")
            )
            proxy.start()
            stack.callback(proxy.stop)
            proxies.append(proxy)
        return proxies

    def _progress(self, phase: str, elapsed_s: float, faults: FaultRunner) -> None:
        now = time.monotonic()
        stream = self.options.progress
        if stream is None or now - self._last_progress_t < PROGRESS_INTERVAL_S:
            return
        self._last_progress_t = now
        injected = sum(
            count
            for by_state in faults.counts().values()
            for state, count in by_state.items()
            if state != "skipped"
        )
        print(
            f"[{elapsed_s:6.1f} s] {phase}: jobs done {self.live.finished}/"
            f"{len(self.plan.jobs)}, faults {injected}, "
            f"stale writes rejected {self.live.stale_writes}",
            file=stream,
            flush=True,
        )

    def _announce(self, store: Store) -> None:
        """Print what runs, so a terminal log says it without the report."""
        if self.options.progress is None:
            return
        print(
            f"scenario {self.scenario.name}, seed {self.plan.seed}, "
            f"break {self.options.break_name or 'none'}: {len(self.plan.jobs)} jobs, "
            f"{self.scenario.workers.count} workers, on {store.server_description()}",
            file=self.options.progress,
            flush=True,
        )

    # -- phases ---------------------------------------------------------------

    def execute(self) -> RunResult:
        self.events_dir.mkdir(parents=True, exist_ok=True)
        with ExitStack() as stack, _sigterm_as_exit():
            database = RunDatabase.open(self.options.mongodb_uri)
            stack.callback(database.close)
            db_name = run_db_name(self.scenario.name)
            store = database.connect(db_name)
            stack.callback(store.close)
            self._announce(store)
            store.ensure_indexes()
            server = server_facts(store)
            log.info(
                "run database %s on %s %s", db_name, server["name"], server["version"]
            )

            proxies = self._start_proxies(stack, database.uri)
            pool = self._make_pool(database, db_name, proxies)
            stack.callback(pool.kill_all)
            nemesis = EventLog(self.events_dir / "nemesis.jsonl", "nemesis")
            stack.callback(nemesis.close)
            ctx = FaultContext(
                pool,
                nemesis,
                self.live,
                self.rng,
                server=database.server,
                proxies=proxies,
            )
            if database.server is None:
                ctx.server_skip_reason = (
                    "the database was given by URI, so the harness cannot restart it"
                )
            started_t = time.monotonic()
            self._run_phases(store, pool, ctx)
            stop_timeout_s = self.scenario.queue.lease_ttl_s + STOP_MARGIN_S
            pool.stop_all(stop_timeout_s)
            final = self._final_state(store)
            duration_s = time.monotonic() - started_t
            return self._finish(store, server, db_name, final, duration_s, ctx)

    def _make_pool(
        self, database: RunDatabase, db_name: str, proxies: list[TcpProxy] | None
    ) -> WorkerPool:
        count = self.scenario.workers.count
        uris = [proxy.uri for proxy in proxies] if proxies else [database.uri] * count
        config = WorkerConfig(
            mongodb_uris=uris,
            db_name=db_name,
            settings=worker_settings(self.scenario),
            queues=list(self.scenario.workers.queues),
            concurrency=self.scenario.workers.concurrency,
            history_dir=self.events_dir,
            log_dir=self.report_dir / "logs",
            break_name=self.options.break_name,
        )
        return WorkerPool(config, count)

    def _run_phases(self, store: Store, pool: WorkerPool, ctx: FaultContext) -> None:
        enqueue_log = EventLog(self.events_dir / "enqueuer.jsonl", "enqueuer")
        queue = RecordingQueue(
            Queue(store, QueueSettings.model_validate(worker_settings(self.scenario))),
            enqueue_log,
        )
        faults = FaultRunner(self.plan.faults, ctx)
        pool.start_all()
        start_t = time.monotonic()
        enqueuer = Enqueuer(queue, self.plan.jobs, start_t)
        enqueuer.start()
        try:
            self.meta["fault_phase_start_t"] = start_t
            ctx.events.info("fault_phase_start")
            self._fault_phase(pool, faults, start_t)
            faults.heal_all()
            heal_t = time.monotonic()
            self.meta["fault_phase_end_t"] = heal_t
            ctx.events.info("fault_phase_end")
            drained = self._drain(store, pool, faults, enqueuer, start_t, heal_t)
            self.meta["drained"] = drained
            self.meta["drain_end_t"] = time.monotonic()
            ctx.events.info("drain_end", drained=drained)
        finally:
            enqueuer.stop_event.set()
            enqueuer.join(timeout=10)
            faults.heal_all()
            enqueue_log.close()
        self.meta["faults"] = [fault.summary() for fault in faults.faults]
        self.meta["fault_counts"] = faults.counts()
        self.meta["worker_crashes"] = pool.crashes
        if enqueuer.error is not None:
            raise enqueuer.error

    def _tick(self, pool: WorkerPool, ctx_events: EventLog) -> None:
        for slot, pid, code in pool.supervise():
            # Written for the worker that could not write it: its label and
            # pid tie the exit to that process's unfinished operations.
            ctx_events.info(
                "worker_exit", process=slot.label, pid=pid, exit_code=code, crashed=True
            )
        self.live.poll()

    def _fault_phase(
        self, pool: WorkerPool, faults: FaultRunner, start_t: float
    ) -> None:
        duration_s = self.scenario.duration_s
        while (elapsed_s := time.monotonic() - start_t) < duration_s:
            # Read the history first, so a kill sees which jobs run right now.
            self._tick(pool, faults.ctx.events)
            faults.run_due(elapsed_s)
            self._progress("faults", elapsed_s, faults)
            time.sleep(TICK_S)

    def _drain(
        self,
        store: Store,
        pool: WorkerPool,
        faults: FaultRunner,
        enqueuer: Enqueuer,
        start_t: float,
        heal_t: float,
    ) -> bool:
        """Wait until every planned job is enqueued and has ended."""
        deadline = heal_t + self.scenario.drain_timeout_s
        next_check_t = 0.0
        while time.monotonic() < deadline:
            self._tick(pool, faults.ctx.events)
            self._progress("drain", time.monotonic() - start_t, faults)
            if time.monotonic() >= next_check_t:
                next_check_t = time.monotonic() + DRAIN_CHECK_INTERVAL_S
                if enqueuer.done and _all_ended(store):
                    return True
            time.sleep(TICK_S)
        log.warning(
            "jobs still unfinished %.0f s after the fault phase (drain_timeout)",
            self.scenario.drain_timeout_s,
        )
        return False

    # -- results --------------------------------------------------------------

    def _final_state(self, store: Store) -> FinalState:
        final = snapshot(store, EFFECTS)
        final["meta"] = self.meta
        return final

    def _finish(
        self,
        store: Store,
        server: dict[str, str],
        db_name: str,
        final: FinalState,
        duration_s: float,
        ctx: FaultContext,
    ) -> RunResult:
        paths = sorted(self.events_dir.glob("*.jsonl"))
        history = finalize(merge(paths))
        verdicts, coverage = run_checkers(history, final, self.scenario)
        duplicates = summarize_duplicates(history, final)
        stored = store_history(store, history)
        summary: dict[str, Any] = {
            "scenario": self.scenario.name,
            "seed": self.plan.seed,
            "break": self.options.break_name,
            "server": server,
            "database": db_name,
            "ok": all(verdict["ok"] for verdict in verdicts.values()),
            "invariants": invariants_summary(verdicts),
            "stats": compute_stats(history, final, duration_s),
            "coverage": {
                "ok": coverage["ok"],
                "expected": list(self.scenario.expect),
                "missing": [v["message"] for v in coverage["violations"]],
                "counts": coverage.get("stats", {}),
            },
            "duplicates": {
                "jobs": duplicates["jobs"],
                "extra_executions": duplicates["extra_executions"],
                "by_reason": duplicates["by_reason"],
            },
            "faults": self.meta.get("fault_counts", {}),
            "drained": self.meta.get("drained"),
            "history_events_stored": stored,
        }
        write_report(
            self.report_dir,
            summary=summary,
            history=history,
            final=final,
            plan=self.plan,
            scenario_path=self.options.scenario_path,
        )
        queue = self.scenario.queue
        report_errors = write_run_report(
            self.report_dir,
            summary,
            history,
            final,
            description=self.scenario.description,
            recovery_bound_s=queue.lease_ttl_s
            + queue.recovery_interval_s
            + self.scenario.recovery_margin_s,
        )
        for error in report_errors:
            log.warning("report incomplete: %s", error)
        return RunResult(self.report_dir, summary, verdicts, coverage)


def _all_ended(store: Store) -> bool:
    """Return True when no job is QUEUED or RUNNING; False if the database is down."""
    try:
        open_jobs = store.jobs.count_documents(
            {"state": {"$nin": [state.value for state in TERMINAL_STATES]}}
        )
    except PyMongoError as exc:
        log.info("drain check failed: %s", exc)
        return False
    return open_jobs == 0


def run(options: RunOptions) -> RunResult:
    """Run the scenario in `options`; raise `ScenarioError` if it is invalid."""
    check_break(options.break_name)
    scenario = load_scenario(options.scenario_path)
    plan = generate_plan(scenario, options.seed)
    return Run(options, scenario, plan).execute()

"""The time series behind the report plots, built in one pass over a history.

Times are seconds since the run start: the start of the fault phase when the
final state's `meta` records it, else the first event of the history. Lease
intervals come from database times (`db_time`, `lease_expires_at`), shifted
onto the same axis by the median difference between an `ok` event's `t` and
its `db_time`.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.checkers.index import ENDING_WRITES
from harness.history import Event, FinalState

# Fault windows: the info event that starts one, and the event that ends it.
# `clock_skew` starts with a non-zero `offset_s` and ends with offset 0.
FAULT_HEALS: dict[str, str] = {
    "kill": "restart",
    "terminate": "restart",
    "pause": "resume",
    "db_stop": "db_start",
    "latency_start": "latency_end",
    "clock_skew": "clock_skew",
}
# Faults that act at one instant; their window is the time until the heal.
INSTANT_FAULTS = frozenset({"kill", "terminate"})
# Worker lifecycle events drawn on the worker timeline.
LIFECYCLE_EVENTS = frozenset(
    {
        "worker_start",
        "worker_exit",
        "kill",
        "terminate",
        "pause",
        "resume",
        "restart",
        "clock_skew",
        "latency_start",
        "latency_end",
    }
)
STATES = ("QUEUED", "RUNNING", "SUCCESS", "FAILED", "CANCELLED")


@dataclass
class FaultWindow:
    """One fault occurrence on the time axis; `end_s` is None when never healed."""

    kind: str
    target: str | None
    start_s: float
    end_s: float | None = None

    @property
    def instant(self) -> bool:
        return self.kind in INSTANT_FAULTS


@dataclass
class Lease:
    """One token's lease of a job, in database epoch seconds."""

    job: str
    token: int
    worker: str
    start_db: float | None
    expires_db: float | None = None
    end_db: float | None = None
    # The write or recovery that ended the lease, or "" while none did.
    ended_by: str = ""
    # When a recovery moved the job away from this token, if one did.
    recovered_db: float | None = None


@dataclass
class KillRecovery:
    """A kill and, per job the killed worker held, the time until its next claim."""

    t_s: float
    worker: str
    # (job, seconds from the kill to the next claim, or None if never claimed)
    jobs: list[tuple[str, float | None]] = field(default_factory=list)


@dataclass
class MarkedEvent:
    """An event drawn as a marker: a stale write, a lifecycle step, a skip."""

    t_s: float
    name: str
    process: str
    job: str | None = None
    token: int | None = None
    detail: str = ""


@dataclass
class RunSeries:
    """Everything the plots draw, on the run's time axis."""

    start_t: float
    end_s: float = 0.0
    completions_s: list[float] = field(default_factory=list)
    claim_latency: list[tuple[float, float]] = field(default_factory=list)
    end_to_end_latency: list[tuple[float, float]] = field(default_factory=list)
    depth_times_s: list[float] = field(default_factory=list)
    depth_by_state: dict[str, list[int]] = field(default_factory=dict)
    faults: list[FaultWindow] = field(default_factory=list)
    skipped_faults: list[MarkedEvent] = field(default_factory=list)
    kills: list[KillRecovery] = field(default_factory=list)
    leases: dict[str, list[Lease]] = field(default_factory=dict)
    stale_writes: list[MarkedEvent] = field(default_factory=list)
    recovered_jobs: list[str] = field(default_factory=list)
    lifecycle: list[MarkedEvent] = field(default_factory=list)
    # Database epoch seconds minus this gives seconds on the run's axis.
    db_offset_s: float = 0.0

    def db_to_run_s(self, db_time: float) -> float:
        return db_time - self.db_offset_s


def run_start_t(history: Sequence[Event], final: FinalState | None) -> float:
    """Return the `t` at which the run's time axis starts."""
    meta = (final.get("meta") if final else None) or {}
    start = meta.get("fault_phase_start_t")
    if isinstance(start, int | float):
        return float(start)
    return history[0]["t"] if history else 0.0


def _worker_key(event: Event) -> str:
    return event.get("worker") or f"{event['process']}-{event.get('pid')}"


def _operation_key(event: Event) -> tuple[Any, ...]:
    """Pair an invoke with its completion, as `harness.history` does."""
    if "op" in event:
        return (_worker_key(event), "op", event["op"])
    return (_worker_key(event), event["f"], event.get("job"))


class _Builder:
    """Consumes events in history order and fills a `RunSeries`."""

    def __init__(self, start_t: float) -> None:
        self.series = RunSeries(start_t=start_t)
        self.invoke_t: dict[tuple[Any, ...], float] = {}
        self.enqueued_t: dict[str, float] = {}
        self.state: dict[str, str] = {}
        self.depth: Counter[str] = Counter()
        self.open_faults: dict[tuple[str, str | None], FaultWindow] = {}
        self.holds: dict[str, set[tuple[str, int]]] = defaultdict(set)
        self.holder: dict[str, tuple[str, int]] = {}
        # job -> (kill index, position in its job list, token held at the kill)
        self.awaiting_claim: dict[str, list[tuple[int, int, int]]] = {}
        self.recovered: dict[str, None] = {}
        self.db_offsets: list[float] = []

    def run_s(self, event: Event) -> float:
        return event["t"] - self.series.start_t

    def feed(self, event: Event) -> None:
        kind = event["type"]
        if kind == "info":
            self._info(event)
            return
        if kind == "invoke":
            self.invoke_t[_operation_key(event)] = event["t"]
            return
        invoke_t = self.invoke_t.pop(_operation_key(event), None)
        if kind == "fail" and event.get("error") == "stale":
            self._stale(event)
        if kind == "ok":
            self._ok(event, invoke_t)

    # -- operations -----------------------------------------------------------

    def _ok(self, event: Event, invoke_t: float | None) -> None:
        db_time = event.get("db_time")
        if isinstance(db_time, int | float):
            self.db_offsets.append(db_time - event["t"])
        f = event["f"]
        job = event.get("job")
        if f == "claim":
            self._claim(event, invoke_t)
        elif f == "enqueue" and job:
            self.enqueued_t[job] = event["t"]
            self._move(event, job, "QUEUED")
        elif f == "renew" and job:
            self._renew(event, job)
        elif f in ENDING_WRITES and job:
            self._ending_write(event, job)
        elif f == "recover":
            self._recover(event)
        elif f == "cancel" and job:
            self._move(event, job, str(event.get("state", "CANCELLED")))
        elif f == "retry" and job:
            self._move(event, job, "QUEUED")

    def _claim(self, event: Event, invoke_t: float | None) -> None:
        if invoke_t is not None:
            latency_s = event["t"] - invoke_t
            self.series.claim_latency.append((self.run_s(event), latency_s))
        job, token = event.get("job"), event.get("token")
        if not job or token is None:
            return
        self._move(event, job, "RUNNING")
        worker = _worker_key(event)
        lease = Lease(job, token, worker, event.get("db_time"))
        lease.expires_db = event.get("lease_expires_at")
        self.series.leases.setdefault(job, []).append(lease)
        previous = self.holder.get(job)
        if previous is not None:
            self.holds[previous[0]].discard((job, previous[1]))
        self.holder[job] = (worker, token)
        self.holds[worker].add((job, token))
        self._note_reclaim(event, job, token)

    def _note_reclaim(self, event: Event, job: str, token: int) -> None:
        waiting = self.awaiting_claim.get(job)
        if not waiting:
            return
        still_waiting = []
        for kill_index, position, held_token in waiting:
            if token > held_token:
                kill = self.series.kills[kill_index]
                kill.jobs[position] = (job, self.run_s(event) - kill.t_s)
            else:
                still_waiting.append((kill_index, position, held_token))
        self.awaiting_claim[job] = still_waiting

    def _renew(self, event: Event, job: str) -> None:
        lease = self._lease(job, event.get("token"))
        if lease is not None and event.get("lease_expires_at") is not None:
            lease.expires_db = event.get("lease_expires_at")

    def _ending_write(self, event: Event, job: str) -> None:
        token = event.get("token")
        lease = self._lease(job, token)
        if lease is not None:
            lease.end_db = event.get("db_time")
            lease.ended_by = event["f"]
        self._release_hold(job, token)
        end_state = {"complete": "SUCCESS", "finish_cancelled": "CANCELLED"}
        self._move(event, job, end_state.get(event["f"]) or str(event.get("state")))

    def _recover(self, event: Event) -> None:
        moved: tuple[tuple[str, Any], ...] = (
            ("QUEUED", event.get("requeued")),
            ("FAILED", event.get("failed")),
            ("CANCELLED", event.get("cancelled")),
        )
        for new_state, entries in moved:
            for entry in entries or ():
                job, token = str(entry[0]), int(entry[1])
                lease = self._lease(job, token)
                if lease is not None:
                    lease.end_db = event.get("db_time")
                    lease.ended_by = "recover"
                    lease.recovered_db = event.get("db_time")
                self.recovered.setdefault(job)
                self._release_hold(job, token)
                self._move(event, job, new_state)

    def _stale(self, event: Event) -> None:
        job = event.get("job")
        self.series.stale_writes.append(
            MarkedEvent(
                self.run_s(event),
                event["f"],
                event["process"],
                job=job,
                token=event.get("token"),
            )
        )
        if job:
            self._release_hold(job, event.get("token"))

    def _lease(self, job: str, token: int | None) -> Lease | None:
        for lease in reversed(self.series.leases.get(job, ())):
            if lease.token == token:
                return lease
        return None

    def _release_hold(self, job: str, token: int | None) -> None:
        holder = self.holder.get(job)
        if holder is not None and holder[1] == token:
            self.holds[holder[0]].discard((job, holder[1]))
            del self.holder[job]

    def _move(self, event: Event, job: str, new_state: str) -> None:
        old_state = self.state.get(job)
        if old_state == new_state:
            return
        if old_state is not None:
            self.depth[old_state] -= 1
        self.depth[new_state] += 1
        self.state[job] = new_state
        if new_state == "SUCCESS" and old_state != "SUCCESS":
            self.series.completions_s.append(self.run_s(event))
            enqueued_t = self.enqueued_t.get(job)
            if enqueued_t is not None:
                latency_s = event["t"] - enqueued_t
                self.series.end_to_end_latency.append((self.run_s(event), latency_s))
        self.series.depth_times_s.append(self.run_s(event))
        for name in STATES:
            self.series.depth_by_state.setdefault(name, []).append(self.depth[name])

    # -- info events ----------------------------------------------------------

    def _info(self, event: Event) -> None:
        name = event["f"]
        if name in LIFECYCLE_EVENTS:
            self.series.lifecycle.append(
                MarkedEvent(
                    self.run_s(event),
                    _lifecycle_name(event),
                    event["process"],
                    detail=_lifecycle_detail(event),
                )
            )
        if name == "fault_skipped":
            skipped = MarkedEvent(
                self.run_s(event),
                str(event.get("fault")),
                event["process"],
                detail=str(event.get("reason", "")),
            )
            self.series.skipped_faults.append(skipped)
        if name == "kill":
            self._kill(event)
        self._fault_window(event)

    def _fault_window(self, event: Event) -> None:
        name = event["f"]
        # Fault events name their worker as `target`; database faults have none.
        raw: dict[str, Any] = dict(event)
        target: str | None = raw.get("target") or (
            None if event["process"] == "nemesis" else event["process"]
        )
        opens = name in FAULT_HEALS and (
            name != "clock_skew" or raw.get("offset_s", 0) != 0
        )
        if not opens:
            # A heal ends the open window of its fault on the same target.
            for start, heal in FAULT_HEALS.items():
                window = self.open_faults.get((start, target))
                if heal == name and window is not None:
                    window.end_s = self.run_s(event)
                    del self.open_faults[(start, target)]
            return
        window = FaultWindow(name, target, self.run_s(event))
        self.series.faults.append(window)
        self.open_faults[(name, target)] = window

    def _kill(self, event: Event) -> None:
        worker = f"{event['process']}-{event.get('pid')}"
        kill = KillRecovery(self.run_s(event), worker)
        kill_index = len(self.series.kills)
        for position, (job, token) in enumerate(sorted(self.holds.pop(worker, ()))):
            kill.jobs.append((job, None))
            self.awaiting_claim.setdefault(job, []).append(
                (kill_index, position, token)
            )
        self.series.kills.append(kill)

    def finish(self, end_t: float) -> RunSeries:
        series = self.series
        series.end_s = end_t - series.start_t
        if self.db_offsets:
            series.db_offset_s = statistics.median(self.db_offsets) + series.start_t
        series.recovered_jobs = list(self.recovered)
        return series


def _lifecycle_name(event: Event) -> str:
    """Name a clock skew back to offset 0 ``clock_skew_end``, others as they are."""
    if event["f"] == "clock_skew" and not event.get("offset_s"):
        return "clock_skew_end"
    return event["f"]


def _lifecycle_detail(event: Event) -> str:
    if event["f"] == "worker_exit":
        return f"exit code {event.get('exit_code', 0) or 0}"
    if event["f"] == "clock_skew":
        return f"offset {event.get('offset_s', 0)} s"
    return ""


def build_series(
    history: Iterable[Event], final: FinalState | None = None
) -> RunSeries:
    """Build every plot series in one pass over the history."""
    events = history if isinstance(history, Sequence) else list(history)
    builder = _Builder(run_start_t(events, final))
    for event in events:
        builder.feed(event)
    end_t = events[-1]["t"] if events else builder.series.start_t
    return builder.finish(end_t)

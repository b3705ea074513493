"""History helpers (read, write, merge, pair, finalize) and a builder for tests.

`HistoryBuilder` writes small histories by hand for the checker tests: each
event comes 10 ms after the previous one, and database time is history time
plus 1000 s.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from harness.history import (
    Event,
    FinalState,
    HistoryError,
    JobRecord,
    finalize,
    merge,
    pair_operations,
    read_final,
    read_history,
    write_final,
    write_history,
)

STEP_S = 0.01
DB_OFFSET_S = 1000.0


def job_id(number: int) -> str:
    """Return a 24-hex-digit id, like an ObjectId."""
    return f"{number:024x}"


class HistoryBuilder:
    """Append history events with increasing times, as a run would record them."""

    def __init__(self, lease_ttl_s: float = 3.0) -> None:
        self.events: list[Event] = []
        self.t = 0.0
        self.lease_ttl_s = lease_ttl_s
        self.pids: dict[str, int] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.next_seq = 1

    # -- raw events -----------------------------------------------------------

    def pid(self, process: str) -> int:
        return self.pids.setdefault(process, 100 + len(self.pids))

    def new_pid(self, process: str) -> int:
        self.pids[process] = 100 + len(self.pids) + 1000
        return self.pids[process]

    def wait(self, seconds: float) -> None:
        self.t = round(self.t + seconds, 6)

    @property
    def db_time(self) -> float:
        """Database time now, at the last event."""
        return round(self.t + DB_OFFSET_S, 6)

    def event(self, kind: str, f: str, process: str, **fields: Any) -> Event:
        self.t = round(self.t + STEP_S, 6)
        pid = fields.pop("pid", None) or self.pid(process)
        event = {
            "i": len(self.events),
            "t": self.t,
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
        return cast(Event, event)

    def invoke(self, process: str, f: str, **fields: Any) -> Event:
        return self.event("invoke", f, process, **fields)

    def ok(self, process: str, f: str, **fields: Any) -> Event:
        """Record an ok whose database operation ran halfway since the last event."""
        fields.setdefault("db_time", round(self.t + STEP_S / 2 + DB_OFFSET_S, 6))
        return self.event("ok", f, process, **fields)

    def info(self, f: str, process: str, **fields: Any) -> Event:
        return self.event("info", f, process, **fields)

    # -- operations -------------------------------------------------------------

    def enqueue(
        self,
        job: str,
        *,
        priority: int = 5,
        queue: str = "default",
        max_retries: int = 3,
        run_at: float | None = None,
        process: str = "enqueuer",
    ) -> Event:
        seq = self.next_seq
        self.next_seq += 1
        self.jobs[job] = {
            "priority": priority,
            "queue": queue,
            "max_retries": max_retries,
            "seq": seq,
            "token": 0,
            "attempts": 0,
        }
        self.invoke(process, "enqueue", priority=priority, queue=queue)
        ok = self.ok(
            process,
            "enqueue",
            job=job,
            seq=seq,
            priority=priority,
            queue=queue,
            max_retries=max_retries,
        )
        ok["run_at"] = ok["db_time"] if run_at is None else run_at
        return ok

    def claim_invoke(self, process: str, queues: Sequence[str] = ("default",)) -> Event:
        return self.invoke(process, "claim", queues=list(queues))

    def claim_ok(
        self, process: str, job: str | None, token: int | None = None, **fields: Any
    ) -> Event:
        if job is None:
            return self.ok(process, "claim", job=None)
        info = self.jobs[job]
        token = info["token"] + 1 if token is None else token
        info["token"] = token
        info["attempts"] = fields.pop("attempts", info["attempts"] + 1)
        ok = self.ok(
            process,
            "claim",
            job=job,
            token=token,
            attempts=info["attempts"],
            priority=info["priority"],
            seq=info["seq"],
            **fields,
        )
        ok.setdefault("lease_expires_at", (ok["db_time"] or 0.0) + self.lease_ttl_s)
        return ok

    def claim(
        self,
        process: str,
        job: str | None,
        token: int | None = None,
        *,
        queues: Sequence[str] = ("default",),
        **fields: Any,
    ) -> Event:
        self.claim_invoke(process, queues)
        return self.claim_ok(process, job, token, **fields)

    def write(
        self,
        process: str,
        f: str,
        job: str,
        token: int,
        *,
        outcome: str = "ok",
        **fields: Any,
    ) -> Event:
        """Record a fenced write: ``outcome`` is ok, stale, unknown or none."""
        self.invoke(process, f, job=job, token=token)
        if outcome == "stale":
            return self.event("fail", f, process, job=job, token=token, error="stale")
        if outcome == "unknown":
            return self.event(
                "unknown", f, process, job=job, token=token, error="AutoReconnect"
            )
        if outcome == "none":
            return self.events[-1]
        return self.ok(process, f, job=job, token=token, **fields)

    def renew(self, process: str, job: str, token: int, **kwargs: Any) -> Event:
        event = self.write(process, "renew", job, token, **kwargs)
        db_time = event.get("db_time")
        if event["type"] == "ok" and db_time is not None:
            event.setdefault("lease_expires_at", db_time + self.lease_ttl_s)
        return event

    def complete(self, process: str, job: str, token: int, **kwargs: Any) -> Event:
        return self.write(process, "complete", job, token, state="SUCCESS", **kwargs)

    def fail(
        self,
        process: str,
        job: str,
        token: int,
        state: str = "QUEUED",
        **kwargs: Any,
    ) -> Event:
        kwargs.setdefault("run_at", self.db_time)
        return self.write(process, "fail", job, token, state=state, **kwargs)

    def release(self, process: str, job: str, token: int, **kwargs: Any) -> Event:
        return self.write(process, "release", job, token, state="QUEUED", **kwargs)

    def recover(
        self,
        process: str,
        requeued: Iterable[tuple[str, int]] = (),
        failed: Iterable[tuple[str, int]] = (),
    ) -> Event:
        self.invoke(process, "recover")
        return self.ok(
            process,
            "recover",
            requeued=[list(pair) for pair in requeued],
            failed=[list(pair) for pair in failed],
        )

    def cancel(self, process: str, job: str, state: str = "CANCELLED") -> Event:
        self.invoke(process, "cancel", job=job)
        return self.ok(process, "cancel", job=job, state=state)

    def retry(self, process: str, job: str) -> Event:
        self.jobs[job]["attempts"] = 0
        self.invoke(process, "retry", job=job)
        return self.ok(process, "retry", job=job, state="QUEUED")

    def execute(self, process: str, job: str, token: int, outcome: str = "ok") -> None:
        self.invoke(process, "execute", job=job, token=token)
        if outcome != "none":
            self.event(outcome, "execute", process, job=job, token=token)

    def kill(self, process: str) -> Event:
        return self.info("kill", process, pid=self.pid(process))

    def restart(self, process: str) -> Event:
        self.info("worker_exit", process, pid=self.pid(process), exit_code=-9)
        return self.info("worker_start", process, pid=self.new_pid(process))

    # -- results --------------------------------------------------------------

    def history(self) -> list[Event]:
        return finalize(self.events)

    def final(
        self, states: dict[str, str], effects: Sequence[tuple[str, int, str]] = ()
    ) -> FinalState:
        """Build the final state from each job's last claim, with the given states."""
        records: list[JobRecord] = []
        for job, state in states.items():
            info = self.jobs.get(job, {})
            records.append(
                {
                    "job": job,
                    "state": state,
                    "attempts": info.get("attempts", 0),
                    "token": info.get("token", 0),
                    "max_retries": info.get("max_retries", 3),
                    "priority": info.get("priority", 5),
                    "seq": info.get("seq", 0),
                    "queue": info.get("queue", "default"),
                    "run_at": None,
                }
            )
        return {
            "jobs": records,
            "effects": [
                {"job": job, "token": token, "process": process}
                for job, token, process in effects
            ],
        }


# -- reading and writing ------------------------------------------------------------


def test_history_round_trip(tmp_path: Path) -> None:
    builder = HistoryBuilder()
    builder.enqueue(job_id(1))
    path = tmp_path / "history.jsonl"

    write_history(path, builder.events)

    assert read_history(path) == builder.events


def test_read_history_names_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text('{"i":0,"t":1,"process":"w1","type":"ok","f":"claim"}\n{oops\n')

    with pytest.raises(HistoryError, match=r"history.jsonl:2: invalid JSON"):
        read_history(path)


def test_read_history_missing_keys(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text('{"i":0,"t":1,"type":"ok"}\n')

    with pytest.raises(HistoryError, match=r"missing required keys \['process', 'f'\]"):
        read_history(path)


def test_read_history_invalid_type(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text('{"i":0,"t":1,"process":"w1","type":"done","f":"claim"}\n')

    with pytest.raises(HistoryError, match="invalid type 'done'"):
        read_history(path)


def test_read_history_truncated_tail(tmp_path: Path) -> None:
    path = tmp_path / "w1.jsonl"
    path.write_text(
        '{"i":0,"t":1,"process":"w1","type":"invoke","f":"claim"}\n{"i":1,"t"'
    )

    with pytest.raises(HistoryError):
        read_history(path)
    assert len(read_history(path, allow_truncated_tail=True)) == 1


def test_final_state_round_trip(tmp_path: Path) -> None:
    builder = HistoryBuilder()
    builder.enqueue(job_id(1))
    final = builder.final({job_id(1): "SUCCESS"}, [(job_id(1), 1, "w1")])
    path = tmp_path / "final.json"

    write_final(path, final)

    assert read_final(path) == final


def test_read_final_rejects_non_object(tmp_path: Path) -> None:
    path = tmp_path / "final.json"
    path.write_text("[]")

    with pytest.raises(HistoryError, match="expected an object with a 'jobs' list"):
        read_final(path)


# -- merge ----------------------------------------------------------------------


def test_merge_sorts_by_time_and_renumbers(tmp_path: Path) -> None:
    first = [
        {"i": 0, "t": 1.0, "process": "w1", "type": "invoke", "f": "claim"},
        {"i": 1, "t": 3.0, "process": "w1", "type": "ok", "f": "claim"},
    ]
    second = [
        {"i": 0, "t": 2.0, "process": "w2", "type": "invoke", "f": "claim"},
        {"i": 1, "t": 3.0, "process": "w2", "type": "ok", "f": "claim"},
    ]
    paths = [tmp_path / "w1.jsonl", tmp_path / "w2.jsonl"]
    for path, events in zip(paths, (first, second), strict=True):
        path.write_text("".join(json.dumps(event) + "\n" for event in events))
    with paths[1].open("a") as file:
        file.write('{"i": 2, "t": 4')  # a line cut short by SIGKILL

    merged = merge(paths)

    assert [(event["process"], event["t"]) for event in merged] == [
        ("w1", 1.0),
        ("w2", 2.0),
        ("w1", 3.0),
        ("w2", 3.0),
    ]
    assert [event["i"] for event in merged] == [0, 1, 2, 3]


# -- pairing and finalize -------------------------------------------------------


def test_pairing_matches_by_job_for_concurrent_ops() -> None:
    builder = HistoryBuilder()
    builder.invoke("w1", "renew", job=job_id(1), token=1)
    builder.invoke("w1", "renew", job=job_id(2), token=1)
    builder.ok("w1", "renew", job=job_id(2), token=1)
    builder.ok("w1", "renew", job=job_id(1), token=1)

    pairing = pair_operations(builder.events)

    assert pairing.invoke_of == {2: 1, 3: 0}
    assert pairing.orphans == []


def test_pairing_prefers_op_ids() -> None:
    builder = HistoryBuilder()
    builder.invoke("w1", "claim", op=7)
    builder.invoke("w1", "claim", op=8)
    builder.ok("w1", "claim", op=8)

    pairing = pair_operations(builder.events)

    assert pairing.invoke_of == {2: 1}
    assert pairing.orphans == [0]


def test_finalize_closes_orphans_at_kill() -> None:
    builder = HistoryBuilder()
    builder.enqueue(job_id(1))
    builder.claim("w1", job_id(1))
    builder.invoke("w1", "complete", job=job_id(1), token=1)
    kill = builder.kill("w1")
    builder.invoke("w2", "claim", queues=["default"])

    history = finalize(builder.events)

    closed = [event for event in history if event["type"] == "unknown"]
    assert len(closed) == 2
    complete, claim = closed
    assert complete["f"] == "complete"
    assert complete["token"] == 1
    assert complete["reason"] == "killed"
    assert complete["t"] == kill["t"]
    assert history.index(complete) == history.index(kill) + 1
    assert claim["reason"] == "history_end"
    assert [event["i"] for event in history] == list(range(len(history)))


def test_finalize_uses_exit_after_invoke() -> None:
    builder = HistoryBuilder()
    builder.info("worker_exit", "w1", exit_code=0)
    builder.invoke("w1", "recover")
    builder.info("worker_exit", "w1", exit_code=-9)

    history = finalize(builder.events)

    assert history[-1]["type"] == "unknown"
    assert history[-1]["reason"] == "exited"


def test_finalize_keeps_completed_history() -> None:
    builder = HistoryBuilder()
    builder.enqueue(job_id(1))
    builder.claim("w1", job_id(1))

    assert finalize(builder.events) == builder.events

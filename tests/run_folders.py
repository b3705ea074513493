"""Small hand-made run folders for the report, plot and compare tests.

The history has three jobs on two workers. Job A completes at once. Job B
is claimed by w0, which is killed. w1 recovers B and completes it with
token 2, and the restarted w0's late renewal with token 1 is rejected as
stale. Job C
fails once and is retried. No database is involved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.history import write_history

JOB_A = "a" * 24
JOB_B = "b" * 24
JOB_C = "c" * 24
START_T = 100.0
DB_OFFSET_S = 1_700_000_000.0
INVARIANTS = (
    "no_lost_jobs",
    "single_commit",
    "lease_exclusive",
    "recovery_bound",
    "drained",
)


class HistoryWriter:
    """Appends events with consecutive `i` and per-worker `op` ids."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.next_op = 0

    def add(
        self, t_s: float, process: str, pid: int, kind: str, f: str, **fields: Any
    ) -> None:
        event: dict[str, Any] = {
            "i": len(self.events),
            "t": START_T + t_s,
            "process": process,
            "pid": pid,
            "worker": f"{process}-{pid}" if process.startswith("w") else None,
            "type": kind,
            "f": f,
            "job": fields.pop("job", None),
            "token": fields.pop("token", None),
            "db_time": None,
        }
        if kind == "ok":
            event["db_time"] = DB_OFFSET_S + t_s
        event.update(fields)
        self.events.append(event)

    def operation(
        self, t_s: float, duration_s: float, process: str, pid: int, f: str,
        result: str = "ok", **fields: Any,
    ) -> None:  # fmt: skip
        """Add an invoke at `t_s` and its completion `duration_s` later."""
        self.next_op += 1
        job, token = fields.get("job"), fields.get("token")
        self.add(t_s, process, pid, "invoke", f, op=self.next_op, job=job, token=token)
        self.add(t_s + duration_s, process, pid, result, f, op=self.next_op, **fields)


def make_history() -> list[dict[str, Any]]:
    h = HistoryWriter()
    h.add(0.0, "nemesis", 1, "info", "fault_phase_start")
    h.add(0.1, "w0", 10, "info", "worker_start")
    h.add(0.1, "w1", 11, "info", "worker_start")
    for offset_s, job in ((0.2, JOB_A), (0.3, JOB_B), (0.4, JOB_C)):
        h.operation(offset_s, 0.01, "enqueuer", 1, "enqueue", job=job, seq=1, priority=5,
                    queue="default", max_retries=2)  # fmt: skip
    h.operation(0.5, 0.005, "w0", 10, "claim", job=JOB_A, token=1, attempts=1,
                lease_expires_at=DB_OFFSET_S + 2.5)  # fmt: skip
    h.operation(0.6, 0.005, "w0", 10, "claim", job=JOB_B, token=1, attempts=1,
                lease_expires_at=DB_OFFSET_S + 2.6)  # fmt: skip
    h.operation(0.7, 0.005, "w1", 11, "claim", job=JOB_C, token=1, attempts=1,
                lease_expires_at=DB_OFFSET_S + 2.7)  # fmt: skip
    h.operation(1.0, 0.01, "w0", 10, "complete", job=JOB_A, token=1)
    h.operation(1.1, 0.01, "w1", 11, "fail", job=JOB_C, token=1, state="QUEUED")
    h.operation(1.3, 0.005, "w1", 11, "claim", job=JOB_C, token=2, attempts=2,
                lease_expires_at=DB_OFFSET_S + 3.3)  # fmt: skip
    h.add(1.5, "w0", 10, "info", "kill", target="w0", fault_index=0)
    h.operation(1.8, 0.01, "w1", 11, "complete", job=JOB_C, token=2)
    h.add(2.5, "w0", 10, "info", "restart", target="w0", fault_index=0)
    h.add(2.7, "w0", 12, "info", "worker_start")
    h.operation(2.9, 0.01, "w1", 11, "recover", requeued=[[JOB_B, 1]], failed=[])
    h.operation(3.0, 0.005, "w1", 11, "claim", job=JOB_B, token=2, attempts=2,
                lease_expires_at=DB_OFFSET_S + 5.0)  # fmt: skip
    h.operation(3.2, 0.01, "w0", 12, "renew", result="fail", job=JOB_B, token=1,
                error="stale")  # fmt: skip
    h.add(3.4, "w1", 11, "info", "pause", target="w1", fault_index=1)
    h.add(3.9, "w1", 11, "info", "resume", target="w1", fault_index=1)
    h.operation(4.0, 0.01, "w1", 11, "complete", job=JOB_B, token=2)
    h.add(4.5, "w0", 12, "info", "worker_exit", exit_code=0)
    h.add(4.6, "w1", 11, "info", "worker_exit", exit_code=0)
    return h.events


def make_summary(scenario: str = "tiny", violated: str | None = None) -> dict[str, Any]:
    invariants: dict[str, Any] = {}
    for name in INVARIANTS:
        invariants[name] = {"ok": True, "checked": 3, "violations": []}
    if violated is not None:
        invariants[violated] = {
            "ok": False,
            "checked": 3,
            "violations": [
                {
                    "job": JOB_B,
                    "tokens": [1, 2],
                    "times": [START_T + 3.0],
                    "message": "two accepted completions of one job",
                }
            ],
        }
    return {
        "scenario": scenario,
        "seed": 7,
        "break": None,
        "server": {"name": "SecantusDB", "version": "0.7.0b3"},
        "database": "chaos_tiny",
        "ok": violated is None,
        "invariants": invariants,
        "stats": {"jobs": 3, "completions": 3, "kills": 1, "duration_s": 4.6},
        "coverage": {
            "ok": True,
            "expected": ["kill"],
            "missing": [],
            "counts": {"kill": 1, "recovery": 1},
        },
        "faults": {"kill": {"healed": 1}},
        "drained": True,
    }


def make_final() -> dict[str, Any]:
    jobs = [
        {"job": job, "state": "SUCCESS", "attempts": attempts, "token": attempts,
         "max_retries": 2, "priority": 5, "seq": seq, "queue": "default", "run_at": None}
        for seq, (job, attempts) in enumerate(((JOB_A, 1), (JOB_B, 2), (JOB_C, 2)), 1)
    ]  # fmt: skip
    return {
        "jobs": jobs,
        "effects": [],
        "meta": {"fault_phase_start_t": START_T},
    }


def write_run_folder(path: Path, **summary_options: Any) -> Path:
    """Write summary.json, history.jsonl and final.json into `path`."""
    path.mkdir(parents=True, exist_ok=True)
    write_history(path / "history.jsonl", make_history())  # type: ignore[arg-type]
    (path / "final.json").write_text(json.dumps(make_final()), encoding="utf-8")
    summary = make_summary(**summary_options)
    (path / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return path

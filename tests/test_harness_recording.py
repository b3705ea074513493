"""The recording queue: well-formed history events around each operation."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from aegis.errors import LeaseLost
from aegis.models import ErrorInfo
from aegis.queue import JobSpec, Queue
from harness.history import pair_operations, read_history
from harness.recording import EventLog, RecordingQueue

REQUIRED_KEYS = {"i", "t", "process", "pid", "worker", "type", "f", "job", "token"}


@pytest.fixture
def events_path(tmp_path: Path) -> Path:
    return tmp_path / "w1.1.jsonl"


@pytest.fixture
def recorder(queue: Queue, events_path: Path) -> RecordingQueue:
    return RecordingQueue(queue, EventLog(events_path, "w1", "w1-test"))


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_event_log_writes_one_line_per_event(events_path: Path) -> None:
    events = EventLog(events_path, "nemesis")

    events.info("kill", process="w2", pid=1234, target="w2")
    events.record("invoke", "claim", op=events.next_op())
    events.close()

    lines = events_path.read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["type"] == "info"
    assert first["f"] == "kill"
    # Fields given by the caller win over the defaults of the log.
    assert first["process"] == "w2"
    assert first["pid"] == 1234
    assert json.loads(lines[1])["pid"] == os.getpid()


def test_recording_queue_records_lifecycle(
    recorder: RecordingQueue, events_path: Path
) -> None:
    job = recorder.enqueue(JobSpec("work", {"duration_s": 0}), index=0)
    claimed = recorder.claim("w1-test", ["default"])
    assert claimed is not None
    recorder.renew(claimed.job_id, claimed.token)
    recorder.complete(claimed.job_id, claimed.token, {"done": True})

    events = read_events(events_path)
    assert [(e["f"], e["type"]) for e in events] == [
        ("enqueue", "invoke"),
        ("enqueue", "ok"),
        ("claim", "invoke"),
        ("claim", "ok"),
        ("renew", "invoke"),
        ("renew", "ok"),
        ("complete", "invoke"),
        ("complete", "ok"),
    ]
    for event in events:
        assert REQUIRED_KEYS <= event.keys()
        assert event["process"] == "w1"
        assert event["worker"] == "w1-test"
    enqueue_ok, claim_ok, renew_ok, complete_ok = events[1::2]
    assert enqueue_ok["job"] == job.job_id
    assert enqueue_ok["seq"] == job.seq
    assert events[0]["index"] == 0
    assert claim_ok["job"] == job.job_id
    assert claim_ok["token"] == 1
    assert claim_ok["attempts"] == 1
    assert claim_ok["lease_expires_at"] > claim_ok["db_time"]
    assert renew_ok["lease_expires_at"] >= claim_ok["lease_expires_at"]
    assert complete_ok["state"] == "SUCCESS"
    assert complete_ok["db_time"] >= claim_ok["db_time"]


def test_recording_queue_pairs_by_op(
    recorder: RecordingQueue, events_path: Path
) -> None:
    recorder.enqueue(JobSpec("work"))
    claimed = recorder.claim("w1-test", ["default"])
    assert claimed is not None
    recorder.complete(claimed.job_id, claimed.token)

    history = read_history(events_path)
    pairing = pair_operations(history)

    assert pairing.orphans == []
    assert len(pairing.invoke_of) == 3
    for completion, invoke in pairing.invoke_of.items():
        assert history[completion]["op"] == history[invoke]["op"]


def test_recording_queue_stale_write_is_fail(
    recorder: RecordingQueue, events_path: Path
) -> None:
    recorder.enqueue(JobSpec("work"))
    claimed = recorder.claim("w1-test", ["default"])
    assert claimed is not None
    recorder.complete(claimed.job_id, claimed.token)

    with pytest.raises(LeaseLost):
        recorder.complete(claimed.job_id, claimed.token)

    last = read_events(events_path)[-1]
    assert last["type"] == "fail"
    assert last["f"] == "complete"
    assert last["error"] == "stale"
    assert last["job"] == claimed.job_id
    assert last["token"] == claimed.token


def test_recording_queue_fail_records_state(
    recorder: RecordingQueue, events_path: Path
) -> None:
    recorder.enqueue(JobSpec("work", max_retries=0))
    claimed = recorder.claim("w1-test", ["default"])
    assert claimed is not None

    recorder.fail(claimed.job_id, claimed.token, ErrorInfo("RuntimeError", "boom"))

    invoke, ok = read_events(events_path)[-2:]
    assert invoke["error_type"] == "RuntimeError"
    assert ok["type"] == "ok"
    assert ok["state"] == "FAILED"
    assert ok["attempts"] == 1


def test_recording_queue_empty_claim(
    recorder: RecordingQueue, events_path: Path
) -> None:
    assert recorder.claim("w1-test", ["default"]) is None

    ok = read_events(events_path)[-1]
    assert ok["type"] == "ok"
    assert ok["job"] is None

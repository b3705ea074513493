"""Many processes claim at once: each job is claimed exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

from aegis.queue import JobSpec, Queue
from aegis.store import Store

PROCESSES = 8
JOBS = 200


def test_racing_processes_claim_each_job_once(
    queue: Queue, store: Store, mongo_uri: str
) -> None:
    # Given a few hundred queued jobs and eight worker processes.
    jobs = queue.enqueue_many([JobSpec("noop", {"i": i}) for i in range(JOBS)])
    racers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.claim_racer",
                mongo_uri,
                store.db.name,
                f"racer-{n}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(PROCESSES)
    ]

    # When they all claim until the queue is empty.
    for racer in racers:
        assert racer.stdin is not None
        racer.stdin.write("go\n")
        racer.stdin.flush()
    claims = []
    for racer in racers:
        out, _ = racer.communicate(timeout=300)
        assert racer.returncode == 0
        claims.extend(tuple(pair) for pair in json.loads(out))

    # Then every job was claimed exactly once, with token 1.
    counts = Counter(job_id for job_id, _ in claims)
    assert sorted(counts) == sorted(job.job_id for job in jobs)
    assert max(counts.values()) == 1
    assert {token for _, token in claims} == {1}
    assert store.jobs.count_documents({"state": "RUNNING", "attempts": 1}) == JOBS

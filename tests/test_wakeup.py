"""The change-stream wake-up signals new and requeued work."""

from __future__ import annotations

from aegis.models import ErrorInfo
from aegis.queue import Queue
from aegis.store import Store
from aegis.wakeup import ChangeStreamWakeup


def test_wakeup_fires_on_enqueue_and_retry(store: Store, queue: Queue) -> None:
    wakeup = ChangeStreamWakeup(store, ["default"])
    try:
        # Let the stream open before the first write, then drain stray events.
        wakeup.wait(1.0)

        queue.enqueue("noop")
        assert wakeup.wait(10.0), "no signal after an enqueue"

        job = queue.claim("w1", ["default"])
        assert job is not None
        queue.fail(job.job_id, job.token, ErrorInfo("E", "retry me"))
        assert wakeup.wait(10.0), "no signal after a retry requeued the job"
    finally:
        wakeup.close()


def test_wakeup_ignores_other_queues(store: Store, queue: Queue) -> None:
    wakeup = ChangeStreamWakeup(store, ["reports"])
    try:
        wakeup.wait(1.0)
        queue.enqueue("noop", queue="emails")
        assert not wakeup.wait(1.5), "woken by a job in a queue it does not serve"
    finally:
        wakeup.close()

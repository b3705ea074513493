"""Child process for the claim race test: claim until empty, print claims.

Usage: python -m tests.claim_racer URI DB WORKER_ID
Prints one JSON list of [job_id, token] pairs on stdout.
"""

from __future__ import annotations

import json
import sys

from aegis.queue import Queue
from aegis.settings import QueueSettings
from aegis.store import connect


def main() -> None:
    uri, db_name, worker_id = sys.argv[1:4]
    queue = Queue(
        connect(uri, db_name), QueueSettings(lease_ttl_s=600, heartbeat_interval_s=60)
    )
    claims = []
    # Wait at the start line so the processes race rather than run in turn.
    sys.stdin.readline()
    while (job := queue.claim(worker_id, ["default"])) is not None:
        claims.append([job.job_id, job.token])
    print(json.dumps(claims))


if __name__ == "__main__":
    main()

"""Follow the history files of a run while it goes on.

The runner reads new lines of every process's JSONL file once per tick to
show progress and to know which worker is running which job, so a kill
fault can hit a worker in the middle of a job.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class LiveHistory:
    """Counts and running jobs from the history files in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._offsets: dict[Path, int] = {}
        # worker id -> jobs whose handler started and has not ended
        self.running: dict[str, set[str]] = {}
        self.completed: set[str] = set()
        self.failed: set[str] = set()
        self.counts: Counter[tuple[str, str]] = Counter()
        self.stale_writes = 0

    def poll(self) -> int:
        """Read the lines written since the last poll; return how many."""
        read = 0
        for path in sorted(self.directory.glob("*.jsonl")):
            read += self._read_new(path)
        return read

    def _read_new(self, path: Path) -> int:
        offset = self._offsets.get(path, 0)
        with path.open("rb") as file:
            file.seek(offset)
            data = file.read()
        # A line without its newline is still being written; read it next time.
        end = data.rfind(b"\n") + 1
        self._offsets[path] = offset + end
        lines = data[:end].splitlines()
        for line in lines:
            try:
                self._apply(json.loads(line))
            except json.JSONDecodeError:
                log.warning("invalid history line in %s: %r", path, line[:200])
        return len(lines)

    def _apply(self, event: dict[str, Any]) -> None:
        kind, f = event.get("type"), event.get("f")
        self.counts[(str(f), str(kind))] += 1
        job, worker = event.get("job"), event.get("worker")
        if kind == "fail" and event.get("error") == "stale":
            self.stale_writes += 1
        if f == "execute" and worker and job:
            jobs = self.running.setdefault(worker, set())
            if kind == "invoke":
                jobs.add(job)
            else:
                jobs.discard(job)
        elif f == "complete" and kind == "ok" and job:
            self.completed.add(job)
        elif f in ("fail", "release") and kind == "ok" and job:
            if event.get("state") in ("FAILED", "CANCELLED"):
                self.failed.add(job)
        elif f == "recover" and kind == "ok":
            for failed_job, _token in event.get("failed", []):
                self.failed.add(failed_job)

    def running_jobs(self, worker_id: str | None) -> set[str]:
        """Return the jobs a worker's handlers are running now."""
        if worker_id is None:
            return set()
        return self.running.get(worker_id, set())

    @property
    def finished(self) -> int:
        return len(self.completed | self.failed)

    def count(self, f: str, kind: str) -> int:
        return self.counts[(f, kind)]

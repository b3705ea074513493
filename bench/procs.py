"""Worker subprocesses started and stopped by the benchmark, by PID."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

STOP_TIMEOUT_S = 15.0
# A clean exit, or the signals that the benchmark itself sends.
EXPECTED_EXIT_CODES = (0, -signal.SIGTERM, -signal.SIGKILL)


class WorkerProcess:
    """One `python -m aegis worker` process with its log in a temporary file."""

    def __init__(
        self,
        uri: str,
        db_name: str,
        *,
        worker_id: str,
        concurrency: int = 1,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.worker_id = worker_id
        self.log_dir = Path(tempfile.mkdtemp(prefix="aegis-bench-worker-"))
        self.log_path = self.log_dir / f"{worker_id}.log"
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115
        command = [
            sys.executable,
            "-m",
            "aegis",
            "--log-level",
            "WARNING",
            "worker",
            "--mongodb-uri",
            uri,
            "--db",
            db_name,
            "--concurrency",
            str(concurrency),
            "--worker-id",
            worker_id,
            *extra_args,
        ]
        self.process = subprocess.Popen(
            command,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """Send SIGKILL, as a crash would, and reap the process."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._close_log()

    def stop(self) -> None:
        """Send SIGTERM and wait, then SIGKILL if the worker does not exit in time."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()

    def _close_log(self) -> None:
        """Close the log, and delete it unless the worker failed on its own."""
        self._log_file.close()
        if self.process.returncode in EXPECTED_EXIT_CODES:
            shutil.rmtree(self.log_dir, ignore_errors=True)
        else:
            print(
                f"worker {self.worker_id} exited with {self.process.returncode}; "
                f"log kept at {self.log_path}",
                file=sys.stderr,
            )


def peak_rss_kib(pid: int) -> int:
    """Return the process's peak resident set size (VmHWM) in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"VmHWM missing from /proc/{pid}/status")

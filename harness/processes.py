"""Worker OS processes of a chaos run: start, signal, supervise, clean up.

Each worker slot (index 0 .. count-1, label ``w0`` ..) runs at most one
process at a time; a restart starts a new process, with a new pid and a new
history file, in the same slot. Every child asks Linux for SIGKILL when the
harness dies (`PR_SET_PDEATHSIG`), and `WorkerPool.kill_all` SIGKILLs every
pid this pool ever started that is still alive, so no worker outlives the
harness.

NOTE: Linux sends the parent-death signal when the thread that started the
child exits, not only the process, so start workers from one long-lived
thread (the runner's main thread).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from harness import skewed_clock

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
# Where Debian's faketime package puts libfaketime; the MT build is for
# multi-threaded programs such as a worker.
FAKETIME_LIBRARY_PATTERNS = (
    "/usr/lib/*/faketime/libfaketimeMT.so.1",
    "/usr/lib/faketime/libfaketimeMT.so.1",
    "/usr/local/lib/faketime/libfaketimeMT.so.1",
)
FAKETIME_PROBE_TIMEOUT_S = 20.0
# A worker that died on its own (a poison job) is started again after this.
CRASH_RESTART_DELAY_S = 0.5


def _kill_with_parent() -> None:
    """Ask Linux to SIGKILL this child when the thread that started it exits."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def start_child(
    command: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    output: IO[bytes] | int | None = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """Start a child in its own session that dies with this process."""
    return subprocess.Popen(
        list(command),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_kill_with_parent,
    )


def faketime_library() -> str | None:
    """Return the path of libfaketime, or None if it is not installed."""
    for pattern in FAKETIME_LIBRARY_PATTERNS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def faketime_env(library: str, offset_s: float) -> dict[str, str]:
    """Return the environment that shifts a child's wall clock by `offset_s`.

    Only the wall clock moves: the monotonic clock stays real, so history
    times of all processes stay comparable.
    """
    return {
        "LD_PRELOAD": library,
        "FAKETIME": f"{offset_s:+g}s",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "DONT_FAKE_MONOTONIC": "1",
    }


@functools.cache
def clock_skew_problem() -> str | None:
    """Return why clock skew cannot be applied here, or None if it can.

    Runs a short Python child under libfaketime that sleeps and waits on a
    thread event, as a worker does.
    """
    library = faketime_library()
    if library is None:
        return "libfaketime is not installed (Debian package faketime)"
    probe = "import threading, time; time.sleep(0.01); threading.Event().wait(0.01)"
    env = {**os.environ, **faketime_env(library, 60.0)}
    try:
        result = subprocess.run(
            [sys.executable, "-c", probe],
            env=env,
            capture_output=True,
            timeout=FAKETIME_PROBE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"a Python child under {library} timed out in time.sleep"
    if result.returncode != 0:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        error = lines[-1] if lines else f"exit code {result.returncode}"
        return (
            f"{library} breaks time.sleep in Python when the monotonic clock "
            f"is not faked ({error})"
        )
    return None


def clock_skew_method() -> str:
    """Return how worker clocks are shifted here: libfaketime or in-process."""
    if faketime_library() is not None and clock_skew_problem() is None:
        return "libfaketime"
    return "in-process"


def clock_offset_env(offset_s: float) -> dict[str, str]:
    """Return the environment that starts a worker with its wall clock shifted.

    libfaketime when it works with Python here, preloaded into Python itself
    with no wrapper process, so signals from faults reach the worker. Else
    the in-process offset of `harness.skewed_clock`.
    """
    library = faketime_library()
    if library is not None and clock_skew_method() == "libfaketime":
        return faketime_env(library, offset_s)
    return skewed_clock.offset_env(offset_s)


@dataclass
class WorkerConfig:
    """What every worker process of a run gets on its command line."""

    mongodb_uris: list[str]  # one per slot, so a proxy can sit in front of one
    db_name: str
    settings: dict[str, float]
    queues: list[str]
    concurrency: int
    history_dir: Path
    log_dir: Path
    break_name: str | None = None


@dataclass
class WorkerSlot:
    """One worker position and the process currently running in it."""

    index: int
    process: subprocess.Popen[bytes] | None = None
    incarnation: int = 0
    # False while a fault holds the worker down; the pool restarts it when True.
    wanted: bool = True
    # True once the harness asked the process to stop, so its exit is expected.
    stop_requested: bool = False
    paused: bool = False
    clock_offset_s: float = 0.0
    exited_at: float | None = None
    log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return f"w{self.index}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def worker_id(self) -> str | None:
        return f"{self.label}-{self.pid}" if self.alive else None


class WorkerPool:
    """Starts worker processes into slots and keeps wanted slots running."""

    def __init__(self, config: WorkerConfig, count: int) -> None:
        self.config = config
        self.slots = [WorkerSlot(index) for index in range(count)]
        self.started_pids: list[int] = []
        self.crashes = 0

    def command(self, slot: WorkerSlot) -> list[str]:
        config = self.config
        history = config.history_dir / f"{slot.label}.{slot.incarnation}.jsonl"
        command = [
            sys.executable, "-m", "harness.worker_process",
            "--mongodb-uri", config.mongodb_uris[slot.index],
            "--db", config.db_name,
            "--label", slot.label,
            "--history", str(history),
            "--settings", json.dumps(config.settings),
            "--queues", ",".join(config.queues),
            "--concurrency", str(config.concurrency),
        ]  # fmt: skip
        if config.break_name:
            command += ["--break", config.break_name]
        return command

    def start(self, slot: WorkerSlot) -> None:
        """Start a new process in `slot`."""
        slot.incarnation += 1
        env = dict(os.environ)
        if slot.clock_offset_s:
            env.update(clock_offset_env(slot.clock_offset_s))
        self.config.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.config.log_dir / f"{slot.label}.{slot.incarnation}.log"
        if slot.log_file is not None:
            slot.log_file.close()
        slot.log_file = open(log_path, "ab")  # noqa: SIM115
        slot.process = start_child(self.command(slot), env=env, output=slot.log_file)
        slot.paused = False
        slot.stop_requested = False
        slot.exited_at = None
        self.started_pids.append(slot.process.pid)
        log.info(
            "started worker %s (pid %d, incarnation %d%s)",
            slot.label,
            slot.process.pid,
            slot.incarnation,
            f", clock offset {slot.clock_offset_s:+g} s" if slot.clock_offset_s else "",
        )

    def start_all(self) -> None:
        for slot in self.slots:
            self.start(slot)

    def send(self, slot: WorkerSlot, signum: signal.Signals) -> bool:
        """Send a signal to the slot's process; return False if it is not running.

        SIGKILL and SIGTERM mark the exit that follows as expected.
        """
        if not slot.alive or slot.process is None:
            return False
        if signum in (signal.SIGKILL, signal.SIGTERM):
            slot.stop_requested = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(slot.process.pid, signum)
        if signum is signal.SIGSTOP:
            slot.paused = True
        elif signum is signal.SIGCONT:
            slot.paused = False
        return True

    def supervise(self) -> list[tuple[WorkerSlot, int, int]]:
        """Restart wanted slots whose process exited; return unexpected exits.

        An exit is unexpected when nothing asked the process to stop (a
        poison job killed it, or it failed). Each such exit is returned once,
        as (slot, pid, exit code), when it is first seen.
        """
        unexpected = []
        now = time.monotonic()
        for slot in self.slots:
            if slot.process is None or slot.alive:
                continue
            if slot.exited_at is None:
                slot.exited_at = now
                if not slot.stop_requested:
                    code = slot.process.returncode
                    self.crashes += 1
                    unexpected.append((slot, slot.process.pid, code))
                    log.warning(
                        "worker %s (pid %d) exited with code %s; starting it again",
                        slot.label,
                        slot.process.pid,
                        code,
                    )
            if slot.wanted and now - slot.exited_at >= CRASH_RESTART_DELAY_S:
                self.start(slot)
        return unexpected

    def stop_all(self, timeout_s: float) -> None:
        """SIGTERM every worker (resuming paused ones), SIGKILL after `timeout_s`."""
        for slot in self.slots:
            slot.wanted = False
            if slot.paused:
                self.send(slot, signal.SIGCONT)
            self.send(slot, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for slot in self.slots:
            if slot.process is None:
                continue
            try:
                slot.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning(
                    "worker %s (pid %d) did not stop within %.0f s; killing it",
                    slot.label,
                    slot.process.pid,
                    timeout_s,
                )
                slot.process.kill()
                slot.process.wait()
        self.kill_all()

    def kill_all(self) -> None:
        """SIGKILL every process this pool started that is still running."""
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is None:
                slot.process.kill()
                slot.process.wait()
            if slot.log_file is not None:
                slot.log_file.close()
                slot.log_file = None


def describe_slots(slots: Sequence[WorkerSlot]) -> list[dict[str, Any]]:
    """Return the state of each slot, for logs and the report."""
    return [
        {
            "label": slot.label,
            "pid": slot.pid,
            "alive": slot.alive,
            "incarnations": slot.incarnation,
        }
        for slot in slots
    ]

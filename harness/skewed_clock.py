"""An in-process wall-clock offset for worker processes under a clock_skew fault.

The harness uses this when libfaketime is missing or unusable. The worker
process calls `install_from_environment` before it imports `aegis` or
`pymongo`, so every later call of `time.time()` or `time.time_ns()` in that
process returns the real time plus the offset.

What is shifted: `time.time`, `time.time_ns`, and what reads them at call
time, such as `logging` record timestamps and the `client-clock` break.
What is not shifted: `time.monotonic` and `time.perf_counter` (history `t`
values must stay comparable across processes), `datetime.now()` and other
clocks that C code reads directly, and the database clock (`$$NOW`), which
runs in the server process.
"""

from __future__ import annotations

import os
import time

# The offset in seconds, as a decimal number. Unset or 0 means no skew.
CLOCK_OFFSET_ENV = "AEGIS_CHAOS_CLOCK_OFFSET_S"

_real_time = time.time
_real_time_ns = time.time_ns


def offset_env(offset_s: float) -> dict[str, str]:
    """Return the environment that gives a worker process a wall clock `offset_s` off."""
    return {CLOCK_OFFSET_ENV: repr(float(offset_s))}


def install(offset_s: float) -> None:
    """Shift `time.time` and `time.time_ns` of this process by `offset_s`.

    Installing again replaces the previous offset, and 0 restores the real clock.
    """
    if offset_s == 0:
        time.time = _real_time
        time.time_ns = _real_time_ns
        return
    offset_ns = round(offset_s * 1_000_000_000)

    def skewed_time() -> float:
        return _real_time() + offset_s

    def skewed_time_ns() -> int:
        return _real_time_ns() + offset_ns

    time.time = skewed_time
    time.time_ns = skewed_time_ns


def install_from_environment() -> float:
    """Install the offset that `CLOCK_OFFSET_ENV` sets, and return it (0 when unset).

    Raises `ValueError` when the variable is not a number.
    """
    text = os.environ.get(CLOCK_OFFSET_ENV, "").strip()
    if not text:
        return 0.0
    try:
        offset_s = float(text)
    except ValueError:
        raise ValueError(
            f"invalid {CLOCK_OFFSET_ENV}={text!r}: expected seconds as a number"
        ) from None
    install(offset_s)
    return offset_s

"""Entry point of one worker OS process in a chaos run.

    python -m harness.worker_process --mongodb-uri URI --db NAME --label w2 \\
        --history DIR/w2.1.jsonl --settings '{"lease_ttl_s": 3, ...}'

Runs `aegis.worker.Worker` on a `RecordingQueue`, with the handlers of
`harness.chaos_jobs`, and records ``worker_start`` and ``worker_exit`` info
events. SIGTERM and SIGINT stop the worker gracefully.

When the environment sets `harness.skewed_clock.CLOCK_OFFSET_ENV`, the
wall clock is shifted before the worker modules are imported, so this
module imports only the standard library and stdlib-only harness modules.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from harness import skewed_clock
from harness.breaks import BREAKS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness.worker_process",
        description="Run one recorded worker for a chaos run.",
    )
    parser.add_argument("--mongodb-uri", required=True, help="MongoDB URI")
    parser.add_argument("--db", required=True, help="database name of the run")
    parser.add_argument("--label", required=True, help="process label, such as w2")
    parser.add_argument(
        "--history", required=True, type=Path, help="JSONL file for history events"
    )
    parser.add_argument(
        "--settings",
        default="{}",
        help="QueueSettings fields as a JSON object, durations in seconds",
    )
    parser.add_argument(
        "--queues", default="default", help="comma-separated queue names"
    )
    parser.add_argument(
        "--concurrency", type=int, default=1, help="jobs run at once (default 1)"
    )
    parser.add_argument(
        "--break", dest="break_name", choices=sorted(BREAKS),
        help="put a deliberate defect into this worker",
    )  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    offset_s = skewed_clock.install_from_environment()
    # Imported only now, so no worker module can hold the unshifted clock.
    from harness.worker_run import run

    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s {args.label} %(name)s: %(message)s",
    )
    if offset_s:
        logging.getLogger(__name__).warning(
            "wall clock shifted by %+g s in this process (time.time and time.time_ns; the monotonic clock is real)",
            offset_s,
        )
    return run(args, clock_offset_s=offset_s)


if __name__ == "__main__":
    sys.exit(main())

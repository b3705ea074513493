"""Job commands: `enqueue`, `jobs`, `cancel`, `retry` and `requeue-stuck`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from aegis.api.schemas import JobListPublic, JobPublic, RecoveryPublic
from aegis.cli.common import (
    add_json_flag,
    add_store_flags,
    open_queue,
    open_store,
    print_json,
    print_table,
)
from aegis.errors import ConfigError
from aegis.models import JobState
from aegis.queries import list_jobs
from aegis.settings import DEFAULT_QUEUE
from aegis.validation import MAX_SEQ


def _parse_payload(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid --payload: not JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise ConfigError(
            "invalid --payload: expected a JSON object such as '{\"seconds\": 1}'"
        )
    return payload


def cmd_enqueue(args: argparse.Namespace) -> int:
    payload = _parse_payload(args.payload)
    queue = open_queue(args)
    for _ in range(args.count):
        job = queue.enqueue(
            args.job_type,
            payload,
            queue=args.queue,
            priority=args.priority,
            max_retries=args.max_retries,
            delay_s=args.delay,
            idempotency_key=args.idempotency_key,
        )
        # One line per job as it is created, so an interrupted run still
        # shows what it enqueued.
        print(job.job_id, flush=True)
    queue.store.close()
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        page = list_jobs(
            store,
            state=JobState(args.status) if args.status else None,
            queue=args.queue,
            job_type=args.job_type,
            limit=args.limit,
            before_seq=args.cursor,
        )
    finally:
        store.close()
    if args.json:
        print_json(JobListPublic.from_page(page))
        return 0
    rows = [
        (
            job.job_id,
            job.state.value,
            job.queue,
            job.job_type,
            job.priority,
            job.attempts,
            job.created_at.isoformat(timespec="seconds"),
        )
        for job in page.jobs
    ]
    print_table(
        ["ID", "STATUS", "QUEUE", "TYPE", "PRIORITY", "ATTEMPTS", "CREATED"], rows
    )
    if page.next_cursor is not None:
        print(f"more jobs: add --cursor {page.next_cursor}")
    return 0


def cmd_jobs_show(args: argparse.Namespace) -> int:
    queue = open_queue(args)
    try:
        job = queue.get(args.job_id)
    finally:
        queue.store.close()
    print_json(JobPublic.from_job(job))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    queue = open_queue(args)
    try:
        job = queue.cancel(args.job_id)
    finally:
        queue.store.close()
    if job.state is JobState.CANCELLED:
        print(f"job {job.job_id}: CANCELLED")
    else:
        print(f"job {job.job_id}: {job.state.value}, cancellation requested")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    queue = open_queue(args)
    try:
        job = queue.retry(args.job_id)
    finally:
        queue.store.close()
    print(f"job {job.job_id}: {job.state.value}")
    return 0


def cmd_requeue_stuck(args: argparse.Namespace) -> int:
    queue = open_queue(args)
    try:
        result = RecoveryPublic.from_result(queue.recover())
    finally:
        queue.store.close()
    if args.json:
        print_json(result)
        return 0
    print(
        f"requeued {result.requeued}, failed {result.failed}, "
        f"cancelled {result.cancelled}"
    )
    for job_id in result.requeued_ids:
        print(f"requeued {job_id}")
    for job_id in result.failed_ids:
        print(f"failed {job_id}")
    for job_id in result.cancelled_ids:
        print(f"cancelled {job_id}")
    return 0


def _add_job_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "job_id", metavar="ID", help="job id (24 hexadecimal characters)"
    )


def register(commands: Any) -> None:
    """Add the job commands to the subcommands."""
    enqueue = commands.add_parser("enqueue", help="submit jobs")
    add_store_flags(enqueue)
    enqueue.add_argument(
        "job_type", help="handler name, for example sleep, echo, fail, noop"
    )
    enqueue.add_argument("--payload", help="JSON object passed to the handler")
    enqueue.add_argument(
        "--queue", default=DEFAULT_QUEUE, help="queue name (default: default)"
    )
    enqueue.add_argument(
        "--priority", type=int, default=5, help="0 (first) to 9 (last), default 5"
    )
    enqueue.add_argument(
        "--max-retries",
        type=int,
        default=3,
        help="retries after the first attempt (default 3)",
    )
    enqueue.add_argument("--delay", type=float, help="seconds before the job may run")
    enqueue.add_argument("--idempotency-key", help="enqueue at most once per key")
    enqueue.add_argument(
        "--count",
        type=_count,
        default=1,
        help=f"number of identical jobs, 1-{MAX_ENQUEUE_COUNT} (default 1)",
    )
    enqueue.set_defaults(handler=cmd_enqueue)

    jobs = commands.add_parser(
        "jobs", help="list jobs newest first; 'jobs show ID' prints one job"
    )
    add_store_flags(jobs)
    add_json_flag(jobs)
    jobs.add_argument(
        "--status", choices=[state.value for state in JobState], help="only this status"
    )
    jobs.add_argument("--queue", help="only this queue")
    jobs.add_argument("--job-type", help="only this job type")
    jobs.add_argument(
        "--limit", type=_limit, default=50, help="jobs per page, 1-500 (default 50)"
    )
    jobs.add_argument(
        "--cursor", type=_cursor, help="show jobs older than this sequence number"
    )
    jobs.set_defaults(handler=cmd_jobs)
    jobs_commands = jobs.add_subparsers(dest="jobs_command", metavar="show")
    show = jobs_commands.add_parser(
        "show", help="print one job with its errors as JSON"
    )
    add_store_flags(show, keep_parent_values=True)
    _add_job_id(show)
    show.set_defaults(handler=cmd_jobs_show)

    cancel = commands.add_parser(
        "cancel", help="cancel a queued job or request cancellation of a running one"
    )
    add_store_flags(cancel)
    _add_job_id(cancel)
    cancel.set_defaults(handler=cmd_cancel)

    retry = commands.add_parser("retry", help="requeue a FAILED job")
    add_store_flags(retry)
    _add_job_id(retry)
    retry.set_defaults(handler=cmd_retry)

    requeue = commands.add_parser(
        "requeue-stuck",
        help="requeue running jobs whose lease expired (FAILED at the retry cap)",
    )
    add_store_flags(requeue)
    add_json_flag(requeue)
    requeue.set_defaults(handler=cmd_requeue_stuck)


def _bounded_int(name: str, low: int, high: int) -> Callable[[str], int]:
    """An argparse type for an integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"invalid {name} {text!r}: expected an integer"
            ) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"invalid {name} {value}: expected {low} to {high}"
            )
        return value

    return parse


_limit = _bounded_int("limit", 1, 500)
_cursor = _bounded_int("cursor", 0, MAX_SEQ)
MAX_ENQUEUE_COUNT = 10_000
_count = _bounded_int("count", 1, MAX_ENQUEUE_COUNT)

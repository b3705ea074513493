"""Checks on job fields, applied before anything is written.

Every check raises `InvalidJob` (or `PayloadTooLarge`) with a message that
names the field, the value and the accepted range.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import bson
from bson import ObjectId
from bson.errors import BSONError, InvalidId

from aegis.errors import InvalidJob, PayloadTooLarge

# MongoDB rejects documents over 16 MiB. A payload may use all of that except
# room for the largest result and for the job's own fields and error history,
# so that completing a job can never make its document too large.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
MAX_RESULT_BYTES = 1024 * 1024
MAX_PAYLOAD_BYTES = MAX_DOCUMENT_BYTES - MAX_RESULT_BYTES - 512 * 1024
# MongoDB rejects documents nested deeper than 100 levels; the job document
# and the update that writes it add levels above the payload.
MAX_PAYLOAD_DEPTH = 90
MAX_MAX_RETRIES = 1000
# Ten years: a sanity bound that keeps a run time inside BSON's date range.
MAX_DELAY_S = 10 * 365 * 24 * 3600.0
MAX_IDEMPOTENCY_KEY_CHARS = 200
# Enqueue sequence numbers are 64-bit BSON integers.
MAX_SEQ = 2**63 - 1

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")


def parse_job_id(job_id: str | ObjectId) -> ObjectId:
    """Return the ObjectId for a job id, or raise `InvalidJob` if malformed."""
    if isinstance(job_id, ObjectId):
        return job_id
    try:
        return ObjectId(job_id)
    except (InvalidId, TypeError):
        raise InvalidJob(
            f"invalid job id {job_id!r}: expected 24 hexadecimal characters"
        ) from None


def check_name(kind: str, value: object) -> str:
    """Check a queue name or job type."""
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise InvalidJob(
            f"invalid {kind} {value!r}: expected 1-200 characters of "
            "letters, digits, '_', '.', ':' or '-'"
        )
    return value


def check_int(kind: str, value: object, low: int, high: int) -> int:
    """Check an integer field against an inclusive range; booleans are rejected."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidJob(f"invalid {kind} {value!r}: expected an integer")
    if not low <= value <= high:
        raise InvalidJob(f"invalid {kind} {value}: expected {low} to {high}")
    return value


def check_idempotency_key(key: object) -> str:
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        raise InvalidJob(
            "invalid idempotency key: expected a string of "
            f"1-{MAX_IDEMPOTENCY_KEY_CHARS} characters"
        )
    return key


def check_delay_s(delay_s: object) -> float:
    if isinstance(delay_s, bool) or not isinstance(delay_s, int | float):
        raise InvalidJob(f"invalid delay_s {delay_s!r}: expected a number of seconds")
    if not 0 <= delay_s <= MAX_DELAY_S:
        raise InvalidJob(f"invalid delay_s {delay_s}: expected 0 to {MAX_DELAY_S:.0f}")
    return float(delay_s)


def check_run_at(run_at: object) -> datetime:
    if not isinstance(run_at, datetime) or run_at.tzinfo is None:
        raise InvalidJob(
            f"invalid run_at {run_at!r}: expected a timezone-aware datetime"
        )
    try:
        return run_at.astimezone(UTC)
    except OverflowError:
        raise InvalidJob(
            f"invalid run_at {run_at.isoformat()}: outside the years 1-9999 in UTC"
        ) from None


def payload_depth(value: Any) -> int:
    """Return the nesting depth of a JSON value (a scalar is 0)."""
    return _scan(value)[0]


def _scan(value: Any) -> tuple[int, float | None]:
    """Return the nesting depth and the first NaN or infinite number, if any."""
    depth = 0
    non_finite = None
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, Mapping):
            children: list[Any] = list(item.values())
        elif isinstance(item, list | tuple):
            children = list(item)
        else:
            if isinstance(item, float) and not math.isfinite(item):
                non_finite = item
            continue
        depth = max(depth, level + 1)
        stack.extend((child, level + 1) for child in children)
    return depth, non_finite


def check_payload(payload: object) -> dict[str, Any]:
    """Return the payload as a dict, or raise if it is not a storable object."""
    if payload is None:
        return {}
    if not isinstance(payload, Mapping):
        raise InvalidJob(
            f"invalid payload: expected a JSON object, got {type(payload).__name__}"
        )
    depth, non_finite = _scan(payload)
    if non_finite is not None:
        # JSON has no NaN or Infinity: the API would return such a value as null.
        raise InvalidJob(f"invalid payload: {non_finite} is not a JSON number")
    if depth > MAX_PAYLOAD_DEPTH:
        raise InvalidJob(
            f"invalid payload: nested {depth} levels deep; the maximum is "
            f"{MAX_PAYLOAD_DEPTH}"
        )
    # ValueError covers UnicodeEncodeError, from a lone surrogate in a string.
    try:
        size = len(bson.encode(dict(payload)))
    except (BSONError, TypeError, ValueError, OverflowError) as exc:
        raise InvalidJob(
            f"invalid payload: cannot be stored in MongoDB ({exc})"
        ) from None
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(
            f"payload is {size} bytes as BSON; the maximum is {MAX_PAYLOAD_BYTES} bytes"
        )
    return dict(payload)


def check_result(result: Any) -> Any:
    """Check that a handler's result can be stored in the job document."""
    # ValueError covers UnicodeEncodeError, from a lone surrogate in a string.
    try:
        size = len(bson.encode({"result": result}))
    except (BSONError, TypeError, ValueError, OverflowError) as exc:
        raise InvalidJob(
            f"invalid result: cannot be stored in MongoDB ({exc})"
        ) from None
    if size > MAX_RESULT_BYTES:
        raise InvalidJob(
            f"result is {size} bytes as BSON; the maximum is {MAX_RESULT_BYTES}"
        )
    return result

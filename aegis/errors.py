"""Exceptions raised by AegisQueue.

Errors derive from `AegisError`. `LeaseLost` is separate: it is control flow
that a worker expects, not a failure of the queue.
"""

from __future__ import annotations


class AegisError(Exception):
    """Base class of every error AegisQueue raises."""


class ConfigError(AegisError):
    """Raised when a setting or argument is invalid."""


class StoreError(AegisError):
    """Raised when the database cannot be reached or rejects a command."""


class DatabaseUnavailable(StoreError):
    """Raised when no server responded within the selection timeout."""


class EmbeddedServerError(StoreError):
    """Raised when the embedded database server fails to start."""


class JobError(AegisError):
    """Base class of errors about one job."""


class InvalidJob(JobError):
    """Raised when a job's fields are invalid (type, payload, priority, ...)."""


class PayloadTooLarge(InvalidJob):
    """Raised when a payload would not fit in a MongoDB document."""


class JobNotFound(JobError):
    """Raised when no job has the given id."""


class InvalidTransition(JobError):
    """Raised when a job is not in a state that allows the operation."""


class UnknownJobType(JobError):
    """Raised by a worker when no handler is registered for a job type."""


class JobCancelled(Exception):
    """Raised by a handler to stop a job whose cancellation was requested."""


class LeaseLost(Exception):
    """Raised when a fenced write matched nothing: the caller lost the lease.

    The write changed nothing. Another worker may hold the job under a newer
    token, or recovery moved it after the lease expired.
    """

    def __init__(self, operation: str, job_id: str, token: int) -> None:
        super().__init__(
            f"{operation} rejected for job {job_id} token {token}: "
            "the lease was lost (expired, recovered or superseded)"
        )
        self.operation = operation
        self.job_id = job_id
        self.token = token

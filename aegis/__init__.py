"""AegisQueue: a job queue on MongoDB with fenced leases."""

from aegis.errors import AegisError, JobCancelled, LeaseLost
from aegis.handlers import HandlerRegistry, JobContext, handler, registry
from aegis.models import ErrorInfo, Job, JobState
from aegis.queue import JobSpec, Queue
from aegis.settings import QueueSettings
from aegis.store import Store, connect
from aegis.worker import Worker

__all__ = [
    "AegisError",
    "ErrorInfo",
    "HandlerRegistry",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobSpec",
    "JobState",
    "LeaseLost",
    "Queue",
    "QueueSettings",
    "Store",
    "Worker",
    "connect",
    "handler",
    "registry",
]

"""The MongoDB connection, collections and indexes.

Contract:
- Writes use write concern `majority` with journaling and a `wtimeout`, and
  retryable writes are on, so an acknowledged write survives a crash of the
  server or of the client that made it.
- Reads that feed decisions or statistics use read concern `majority`.
- Time that decides anything is the database clock (`$$NOW`), never the
  client's; `server_time()` reads it for callers that must report it.
- Connection failures surface as `DatabaseUnavailable`; callers decide
  whether to retry.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import PyMongoError, ServerSelectionTimeoutError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from aegis.errors import DatabaseUnavailable
from aegis.models import as_utc

log = logging.getLogger(__name__)

JOBS = "jobs"
WORKERS = "workers"
COUNTERS = "counters"

# The counter document that hands out enqueue sequence numbers (FIFO order).
SEQ_COUNTER_ID = "job_seq"

# Dead worker documents are deleted this long after their last heartbeat.
WORKER_RECORD_TTL_S = 7 * 24 * 3600

CLAIM_INDEX = "claim_order"
RECOVERY_INDEX = "lease_expiry"
IDEMPOTENCY_INDEX = "idempotency_key_unique"

JOB_INDEXES = [
    # Serves the claim: equality on state and queue, then the sort keys.
    IndexModel(
        [
            ("state", ASCENDING),
            ("queue", ASCENDING),
            ("priority", ASCENDING),
            ("seq", ASCENDING),
        ],
        name=CLAIM_INDEX,
    ),
    IndexModel(
        [("state", ASCENDING), ("lease_expires_at", ASCENDING)], name=RECOVERY_INDEX
    ),
    IndexModel(
        [("idempotency_key", ASCENDING)],
        name=IDEMPOTENCY_INDEX,
        unique=True,
        partialFilterExpression={"idempotency_key": {"$type": "string"}},
    ),
    IndexModel([("seq", DESCENDING)], name="newest_first"),
    IndexModel([("state", ASCENDING), ("seq", DESCENDING)], name="state_newest_first"),
    IndexModel([("state", ASCENDING), ("finished_at", ASCENDING)], name="finished"),
]

WORKER_INDEXES = [
    IndexModel(
        [("heartbeat_at", ASCENDING)],
        name="heartbeat_ttl",
        expireAfterSeconds=WORKER_RECORD_TTL_S,
    ),
]


def redact_uri(uri: str) -> str:
    """Return the URI with any password replaced, for logs and messages."""
    return re.sub(r"(mongodb(?:\+srv)?://[^:/@]+):[^@]*@", r"\1:***@", uri)


@dataclass
class Store:
    """Handles to the database and its collections, with durable concerns."""

    client: MongoClient[dict[str, Any]]
    db: Database[dict[str, Any]]

    @property
    def jobs(self) -> Collection[dict[str, Any]]:
        return self.db[JOBS]

    @property
    def workers(self) -> Collection[dict[str, Any]]:
        return self.db[WORKERS]

    @property
    def counters(self) -> Collection[dict[str, Any]]:
        return self.db[COUNTERS]

    def ensure_indexes(self) -> None:
        """Create the indexes; safe to call from every process at start-up."""
        self.jobs.create_indexes(JOB_INDEXES)
        self.workers.create_indexes(WORKER_INDEXES)

    def server_time(self) -> datetime:
        """Return the database clock (UTC)."""
        reply = self.client.admin.command("hello")
        return as_utc(reply["localTime"])  # type: ignore[return-value]

    def ping(self) -> None:
        """Raise `DatabaseUnavailable` unless the server responds to a ping."""
        try:
            self.client.admin.command("ping")
        except PyMongoError as exc:
            raise DatabaseUnavailable(f"database ping failed: {exc}") from exc

    def server_facts(self) -> dict[str, str]:
        """Return the server's name and version; SecantusDB also reports the
        MongoDB version it emulates as `mongodb_version`."""
        info = self.client.server_info()
        if "secantusVersion" in info:
            return {
                "name": "SecantusDB",
                "version": str(info["secantusVersion"]),
                "mongodb_version": str(info.get("version", "?")),
            }
        return {"name": "MongoDB", "version": str(info.get("version", "?"))}

    def server_description(self) -> str:
        """Return `name version` of the server, for logs and reports."""
        facts = self.server_facts()
        text = f"{facts['name']} {facts['version']}"
        if "mongodb_version" in facts:
            text += f" (reports MongoDB {facts['mongodb_version']})"
        return text

    def close(self) -> None:
        self.client.close()


def connect(
    uri: str,
    db_name: str,
    *,
    server_selection_timeout_s: float = 10.0,
    write_timeout_s: float = 10.0,
    check: bool = True,
    app_name: str = "aegis",
) -> Store:
    """Open a client with the durable concerns and return a `Store`.

    With `check`, ping the server first and raise `DatabaseUnavailable` if it
    does not respond within the selection timeout.
    """
    client: MongoClient[dict[str, Any]] = MongoClient(
        uri,
        appname=app_name,
        retryWrites=True,
        retryReads=True,
        serverSelectionTimeoutMS=int(server_selection_timeout_s * 1000),
        tz_aware=True,
    )
    db = client.get_database(
        db_name,
        write_concern=WriteConcern(
            w="majority", j=True, wtimeout=int(write_timeout_s * 1000)
        ),
        read_concern=ReadConcern("majority"),
    )
    store = Store(client=client, db=db)
    if check:
        try:
            client.admin.command("ping")
        except ServerSelectionTimeoutError as exc:
            client.close()
            raise DatabaseUnavailable(
                f"no MongoDB server responded at {redact_uri(uri)} within "
                f"{server_selection_timeout_s:g} s; start one or set MONGODB_URI"
            ) from exc
    return store

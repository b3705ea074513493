"""The database of a chaos run: the server, a fresh database, the final snapshot.

`RunDatabase.open` uses the given URI as is (the harness does not own that
server, so database restart faults are skipped), or starts a fresh embedded
server in a temporary directory (`aegis.devdb.pick_server`). A fresh server
per run matters with SecantusDB 0.7.0b3, whose queries slow down as its
process ages.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import PyMongoError

from aegis import devdb
from aegis.store import Store, connect, redact_uri
from harness.history import Effect, Event, FinalState, JobRecord

log = logging.getLogger(__name__)

HISTORY_COLLECTION = "history"
HISTORY_BATCH_SIZE = 1000
# The harness's own client gives up quickly while a fault has the server down.
SERVER_SELECTION_TIMEOUT_S = 2.0


def run_db_name(scenario: str) -> str:
    """Return a database name unique to one run of `scenario`."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    name = f"chaos_{scenario}_{stamp}_{secrets.token_hex(3)}".replace("-", "_")
    # MongoDB limits database names to 63 bytes.
    return name[-63:]


def server_facts(store: Store) -> dict[str, str]:
    """Return the server's name and version, for the report."""
    return store.server_facts()


@dataclass
class RunDatabase:
    """Where the run's data lives, and the server if the harness owns it."""

    uri: str
    server: devdb.EmbeddedServer | None

    @classmethod
    def open(cls, uri: str | None) -> RunDatabase:
        """Use `uri`, or start a fresh embedded server when it is None."""
        if uri:
            log.info("using the database at %s", redact_uri(uri))
            return cls(uri, None)
        server = devdb.pick_server()
        server.start()
        return cls(server.uri, server)

    @property
    def owned(self) -> bool:
        return self.server is not None

    def connect(self, db_name: str) -> Store:
        return connect(
            self.uri,
            db_name,
            server_selection_timeout_s=SERVER_SELECTION_TIMEOUT_S,
            app_name="aegis-chaos-runner",
        )

    def close(self) -> None:
        """Stop the owned server and delete its data directory."""
        if self.server is not None:
            self.server.cleanup()


def _epoch_s(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


def _job_record(doc: dict[str, Any]) -> JobRecord:
    return {
        "job": str(doc["_id"]),
        "state": str(doc["state"]),
        "attempts": int(doc.get("attempts", 0)),
        "token": int(doc.get("token", 0)),
        "max_retries": int(doc["max_retries"]),
        "priority": int(doc["priority"]),
        "seq": int(doc["seq"]),
        "queue": str(doc["queue"]),
        "run_at": _epoch_s(doc.get("run_at")),
    }


def snapshot(store: Store, effects_collection: str) -> FinalState:
    """Read every job document and every side effect after the run."""
    jobs = [_job_record(doc) for doc in store.jobs.find({}).sort("seq", 1)]
    effects: list[Effect] = []
    for doc in store.db[effects_collection].find({}, projection={"_id": 0}):
        effect: dict[str, Any] = dict(doc)
        effects.append(effect)  # type: ignore[arg-type]
    return {"jobs": jobs, "effects": effects}


def store_history(store: Store, history: list[Event]) -> int:
    """Insert the history into the `history` collection; return the count stored.

    A failure is logged and not raised: the JSONL file in the report folder is
    the history of record.
    """
    stored = 0
    try:
        for start in range(0, len(history), HISTORY_BATCH_SIZE):
            batch = [
                dict(event) for event in history[start : start + HISTORY_BATCH_SIZE]
            ]
            store.db[HISTORY_COLLECTION].insert_many(batch, ordered=True)
            stored += len(batch)
    except PyMongoError as exc:
        log.warning(
            "storing the history in MongoDB failed after %d events: %s", stored, exc
        )
    return stored

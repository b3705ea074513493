"""Shared fixtures: one live MongoDB server per test session.

The server is `MONGODB_URI` if set, else a real `mongod` on PATH, else
SecantusDB, started fresh for the session. Each test gets its own database.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest

from aegis import devdb
from aegis.queue import Queue
from aegis.settings import QueueSettings
from aegis.store import Store, connect

log = logging.getLogger(__name__)


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[tuple[str, devdb.EmbeddedServer | None]]:
    """Yield `(uri, server)`; `server` is None when `MONGODB_URI` is used."""
    with devdb.resolve() as (uri, server):
        description = server.description if server else "MONGODB_URI"
        log.info("tests run against %s", description)
        yield uri, server


@pytest.fixture(scope="session")
def mongo_uri(mongo_server: tuple[str, devdb.EmbeddedServer | None]) -> str:
    return mongo_server[0]


@pytest.fixture
def db_name() -> str:
    return f"aegis_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(mongo_uri: str, db_name: str) -> Iterator[Store]:
    store = connect(mongo_uri, db_name)
    store.ensure_indexes()
    yield store
    store.client.drop_database(db_name)
    store.close()


@pytest.fixture
def fast_settings() -> QueueSettings:
    """Short leases and backoff so tests that wait for expiry stay quick."""
    return QueueSettings(
        lease_ttl_s=2.0,
        heartbeat_interval_s=0.5,
        recovery_interval_s=0.5,
        backoff_base_s=0.2,
        backoff_max_s=1.0,
        poll_interval_s=0.2,
        grace_period_s=5.0,
        worker_dead_after_s=3.0,
    )


@pytest.fixture
def queue(store: Store, fast_settings: QueueSettings) -> Queue:
    return Queue(store, fast_settings)

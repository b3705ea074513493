"""The per-app state that requests share: settings, store, queue and metrics."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from aegis.metrics import DatabaseCollector, InstrumentedQueue, QueueMetrics
from aegis.queue import Queue
from aegis.settings import (
    DEFAULT_MONGODB_URI,
    ApiSettings,
    QueueSettings,
    StoreSettings,
)
from aegis.store import Store, connect, redact_uri
from aegis.workers import WorkerRegistry

log = logging.getLogger(__name__)


@dataclass
class ApiContext:
    """The state one API app shares between requests."""

    api_settings: ApiSettings
    store_settings: StoreSettings
    queue_settings: QueueSettings
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    store: Store | None = None
    owns_store: bool = False
    queue: InstrumentedQueue | None = None
    workers: WorkerRegistry | None = None

    def __post_init__(self) -> None:
        self.metrics = QueueMetrics(self.registry)
        if self.store is not None:
            self._attach(self.store)

    def open(self) -> None:
        """Connect to the database unless a store was given.

        The connection is lazy, so the API starts while the database is
        down and returns 503 until the database is reachable again.
        """
        if self.store is not None:
            return
        uri = self.store_settings.mongodb_uri or DEFAULT_MONGODB_URI
        store = connect(
            uri,
            self.store_settings.db_name,
            server_selection_timeout_s=self.store_settings.server_selection_timeout_s,
            write_timeout_s=self.store_settings.write_timeout_s,
            check=False,
            app_name="aegis-api",
        )
        self.owns_store = True
        self._attach(store)
        log.info(
            "API using database %s at %s",
            self.store_settings.db_name,
            redact_uri(uri),
        )

    def _attach(self, store: Store) -> None:
        self.store = store
        self.queue = InstrumentedQueue(Queue(store, self.queue_settings), self.metrics)
        self.workers = WorkerRegistry(store)
        self.registry.register(
            DatabaseCollector(self.workers, self.queue_settings.worker_dead_after_s)
        )

    def close(self) -> None:
        if self.store is not None and self.owns_store:
            self.store.close()

"""Fixtures for API tests: an app bound to the per-test database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from aegis.api import create_app
from aegis.settings import ApiSettings, QueueSettings, StoreSettings
from aegis.store import Store

TOKEN = "test-token-5f1c"


def make_app(
    store: Store, settings: QueueSettings, *, token: str | None = None, **api: object
) -> FastAPI:
    return create_app(
        ApiSettings(api_token=token, **api),  # type: ignore[arg-type]
        StoreSettings(),
        settings,
        store=store,
    )


@pytest.fixture
def app(store: Store, fast_settings: QueueSettings) -> FastAPI:
    return make_app(store, fast_settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def auth_client(store: Store, fast_settings: QueueSettings) -> Iterator[TestClient]:
    app = make_app(store, fast_settings, token=TOKEN)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client

"""The embedded server: URI resolution, restarts keep acknowledged writes."""

from __future__ import annotations

import pytest
from pymongo import MongoClient

from aegis import devdb
from aegis.errors import DatabaseUnavailable
from aegis.store import connect, redact_uri


def test_resolve_uses_mongodb_uri_as_is() -> None:
    env = {"MONGODB_URI": "mongodb://example.invalid:1/"}
    with devdb.resolve(env) as (uri, server):
        assert uri == "mongodb://example.invalid:1/"
        assert server is None


def test_server_restart_keeps_acknowledged_writes() -> None:
    with devdb.pick_server() as server:
        store = connect(server.uri, "durability")
        store.db.items.insert_one({"_id": 1, "value": "kept"})
        store.close()

        server.kill()
        server.start()

        client: MongoClient[dict[str, object]] = MongoClient(server.uri)
        assert client.durability.items.find_one({"_id": 1}) == {
            "_id": 1,
            "value": "kept",
        }
        client.close()


def test_connect_reports_unreachable_server() -> None:
    port = devdb.free_port()
    with pytest.raises(DatabaseUnavailable, match=f"127.0.0.1:{port}"):
        connect(devdb.uri_for_port(port), "none", server_selection_timeout_s=0.5)


def test_redact_uri_hides_password() -> None:
    assert (
        redact_uri("mongodb://app:s3cret@db:27017/x") == "mongodb://app:***@db:27017/x"
    )
    assert redact_uri("mongodb://db:27017/x") == "mongodb://db:27017/x"

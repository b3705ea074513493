"""The log filter removes the API token and MongoDB passwords."""

from __future__ import annotations

import logging

from aegis.logs import RedactSecrets


def make_record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("t", logging.INFO, __file__, 1, message, args, None)


def test_redacts_token_and_uri_password() -> None:
    record = make_record(
        "token %s uri %s", "s3cr3t-token", "mongodb://admin:hunter2@db.local:27017/"
    )

    assert RedactSecrets(["s3cr3t-token"]).filter(record)

    message = record.getMessage()
    assert "s3cr3t-token" not in message
    assert "hunter2" not in message
    assert "mongodb://admin:***@db.local:27017/" in message


def test_leaves_clean_messages_alone() -> None:
    record = make_record("job %s claimed", "abc")

    RedactSecrets([""]).filter(record)

    assert record.args == ("abc",)
    assert record.getMessage() == "job abc claimed"

"""Logging set-up for the command line: one format, secrets removed.

Every line is `TIME LEVEL LOGGER: MESSAGE`. A filter on the handler replaces
the API token and any password in a MongoDB URI with `***` before a line is
written, whichever module logged it.
"""

from __future__ import annotations

import logging
import os

from aegis.store import redact_uri

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
API_TOKEN_ENV = "AEGIS_API_TOKEN"
REDACTED = "***"


class RedactSecrets(logging.Filter):
    """Rewrite each record's message without the given secrets or URI passwords."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [secret for secret in secrets if secret]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_uri(message)
        for secret in self.secrets:
            redacted = redacted.replace(secret, REDACTED)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True


def configure_logging(level: str) -> None:
    """Log to stderr at `level` (DEBUG, INFO, WARNING or ERROR)."""
    name = level.upper()
    if name not in LEVELS:
        raise ValueError(
            f"invalid log level {level!r}: expected one of {', '.join(LEVELS)}"
        )
    logging.basicConfig(level=name, format=LOG_FORMAT)
    secrets = [os.environ.get(API_TOKEN_ENV, "")]
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactSecrets(secrets))

"""Settings read from the environment (prefix `AEGIS_`, plus `MONGODB_URI`).

Command-line flags override these values. Durations are seconds.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DB_NAME = "aegis"
DEFAULT_QUEUE = "default"
# Used by the command line and the API when `MONGODB_URI` is not set.
DEFAULT_MONGODB_URI = "mongodb://127.0.0.1:27017/?directConnection=true"
# A payload that fits in a document can take more bytes as JSON text than
# as BSON (escapes, number formatting), so the body limit is twice the
# 16 MiB MongoDB document limit.
DEFAULT_MAX_REQUEST_BODY_BYTES = 32 * 1024 * 1024


class QueueSettings(BaseSettings):
    """Lease, retry and polling parameters shared by workers and the API."""

    model_config = SettingsConfigDict(env_prefix="AEGIS_", extra="ignore")

    lease_ttl_s: float = Field(
        30.0, gt=0, description="lease length after a claim or renewal"
    )
    heartbeat_interval_s: float = Field(
        10.0, gt=0, description="time between lease renewals of a running job"
    )
    recovery_interval_s: float = Field(
        5.0, gt=0, description="time between recovery sweeps inside each worker"
    )
    backoff_base_s: float = Field(
        1.0, ge=0, description="retry delay after the first failure"
    )
    backoff_max_s: float = Field(
        300.0, ge=0, description="upper bound of a retry delay"
    )
    poll_interval_s: float = Field(
        1.0, gt=0, description="maximum sleep between claims when the queue is empty"
    )
    worker_dead_after_s: float = Field(
        30.0, gt=0, description="heartbeat age after which a worker counts as DEAD"
    )
    grace_period_s: float = Field(
        30.0, ge=0, description="time a stopping worker lets running jobs finish"
    )

    @model_validator(mode="after")
    def _check_relations(self) -> QueueSettings:
        if self.heartbeat_interval_s >= self.lease_ttl_s:
            raise ValueError(
                f"heartbeat_interval_s ({self.heartbeat_interval_s}) must be shorter "
                f"than lease_ttl_s ({self.lease_ttl_s}), or every lease expires "
                "before its renewal"
            )
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError(
                f"backoff_max_s ({self.backoff_max_s}) must be >= backoff_base_s "
                f"({self.backoff_base_s})"
            )
        return self


class StoreSettings(BaseSettings):
    """Database location and timeouts. An unset `MONGODB_URI` selects `DEFAULT_MONGODB_URI`."""

    model_config = SettingsConfigDict(env_prefix="AEGIS_", extra="ignore")

    mongodb_uri: str | None = Field(
        None, validation_alias=AliasChoices("MONGODB_URI", "AEGIS_MONGODB_URI")
    )
    db_name: str = Field(DEFAULT_DB_NAME, validation_alias=AliasChoices("AEGIS_DB"))
    server_selection_timeout_s: float = Field(10.0, gt=0)
    write_timeout_s: float = Field(10.0, gt=0)


class ApiSettings(BaseSettings):
    """REST API server options."""

    model_config = SettingsConfigDict(env_prefix="AEGIS_", extra="ignore")

    api_token: SecretStr | None = Field(
        None,
        description="bearer token required by write endpoints; empty or unset "
        "disables the check",
    )
    host: str | None = Field(
        None,
        description="bind address (default 0.0.0.0 with a token, else 127.0.0.1)",
    )
    port: int = Field(8000, ge=0, le=65535, description="TCP port")
    max_request_body_bytes: int = Field(
        DEFAULT_MAX_REQUEST_BODY_BYTES,
        gt=0,
        description="largest request body accepted, in bytes",
    )

    @property
    def token(self) -> str | None:
        """The configured token, or None when it is unset or empty."""
        if self.api_token is None:
            return None
        return self.api_token.get_secret_value() or None

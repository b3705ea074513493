"""The REST API: `uvicorn aegis.api:app`, or `aegis serve`."""

from aegis.api.app import app, create_app

__all__ = ["app", "create_app"]

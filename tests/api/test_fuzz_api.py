"""Property-based fuzzing of every operation in the OpenAPI schema: no 5xx.

Schemathesis generates the requests from the app's own OpenAPI document.
Its pytest integration does not load under this pytest, so each operation's
Hypothesis strategy is run directly.
"""

from __future__ import annotations

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings

# Examples per operation; with 10 operations the test takes about 10 s.
EXAMPLES_PER_OPERATION = 50


def test_api_never_returns_5xx(app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    statuses: list[int] = []

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call()
            statuses.append(response.status_code)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} answered "
                f"{response.status_code}: {response.text[:500]}"
            )

        try:
            check()
        except AssertionError as exc:
            pytest.fail(f"{operation.label}: {exc}")

    # Both accepted and rejected requests were generated.
    assert len(statuses) >= len(operations) * 5
    assert any(200 <= status < 300 for status in statuses)
    assert any(400 <= status < 500 for status in statuses)

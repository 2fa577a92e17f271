"""End to end: the product as processes (run workers, `dagster dev`, the demo, kill -9), PostgreSQL, and the
property-based sync. Every test here is `slow`: `make test` and CI run them, `make test-fast` leaves them out."""

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.slow)

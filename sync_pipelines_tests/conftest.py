"""Fixtures: the emulator on loopback with both tenants, and a warehouse in a temporary folder."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# The jobs' retry policy reads its delay when the definitions load, which is before any test: the tests that make
# Dagster retry a step (and the processes they start) wait 0 s, not 30 s and 60 s.
os.environ.setdefault("SYNC_RETRY_DELAY_SECONDS", "0")

from sync_pipelines.catalogue import TENANTS
from sync_pipelines.warehouse.settings import PostgresWarehouse, Warehouse
from sync_pipelines.warehouse.settings import warehouse as configured_warehouse
from sync_pipelines_tests.postgres_server import PostgresServer, running_postgres
from synchroteam_emulator import Emulator, TenantSpec
from synchroteam_emulator.env import tenant_env

MAIN = TenantSpec(
    domain="acme",
    api_key="7f3c2a10-5b7e-4c1a-9d2e-6a8b0c4d2e1f",
    timezone="Europe/Paris",
    # Not multiples of the page size: every walk ends on a partial page.
    counts={
        **{"customer": 60, "site": 70, "job": 130, "invoice": 150, "quotation": 40, "creditnote": 25},
        # the dimensions: the fewest users, job types and parts the emulator serves (FLOOR), activities beyond
        # the jobs' work and travel, equipment on two pages
        **{"user": 0, "activity": 0, "equipment": 130, "jobtype": 0, "part": 0},
    },
    seed=11,
)
HEC = TenantSpec(
    domain="acme-hec",
    api_key="1d2c3b4a-0000-4e5f-8a9b-c0d1e2f3a4b5",
    timezone="Europe/Paris",
    counts={
        "customer": 20,
        "site": 20,
        "invoice": 45,
        "creditnote": 12,
        "user": 0,
        "equipment": 30,
        "jobtype": 0,
        "part": 0,
    },
    seed=12,
)
DOMAINS = {"synchroteam": MAIN.domain, "synchroteam_hec": HEC.domain}


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator([MAIN, HEC]) as emu:
        yield emu


def _point_tenants_at(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, value in tenant_env(emulator.base_url, {"synchroteam": MAIN, "synchroteam_hec": HEC}).items():
        monkeypatch.setenv(variable, value)


@pytest.fixture
def short_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 429 that says neither Retry-After nor X-RateLimit-Reset is backed off from 0.05 s, not 5 s: the client's
    own tests prove the real schedule with a fake clock. Only for a storm of 429s at a run's first requests: a 429
    after ten or more requests paces the rest of the run at what the API accepted in the last minute, which a
    backoff this short makes a handful (`throttle.RequestPacer.slow_down`)."""
    for tenant in TENANTS.values():
        monkeypatch.setenv(tenant.env("RATE_LIMIT_BACKOFF_SECONDS"), "0.05")


@pytest.fixture
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emulator: Emulator) -> Path:
    """Points both tenants at the emulator and the warehouse at a fresh DuckDB file; returns its path."""
    _point_tenants_at(emulator, monkeypatch)
    path = tmp_path / "warehouse.duckdb"
    monkeypatch.delenv("SYNC_WAREHOUSE_URL", raising=False)
    monkeypatch.setenv("SYNC_DUCKDB_PATH", str(path))
    return path


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster on 127.0.0.1 for the whole session (one per test worker, started in about a second),
    stopped at the end. Its folder is not under pytest's temporary folder: every pytest session that starts makes
    `pytest-of-<user>` private again, which would lock the `postgres` user out of a cluster of another session."""
    folder = Path(tempfile.mkdtemp(prefix="sync_pipelines_pg_"))
    try:
        with running_postgres(folder / "cluster") as server:
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_warehouse(
    request: pytest.FixtureRequest, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch, emulator: Emulator
) -> PostgresWarehouse:
    """Points both tenants at the emulator and the warehouse at a fresh PostgreSQL database (SYNC_WAREHOUSE_URL)."""
    _point_tenants_at(emulator, monkeypatch)
    name = "wh_" + re.sub(r"\W+", "_", request.node.name).lower()[-40:]
    monkeypatch.delenv("SYNC_DUCKDB_PATH", raising=False)
    monkeypatch.setenv("SYNC_WAREHOUSE_URL", postgres.create_database(name))
    target = configured_warehouse()
    assert isinstance(target, PostgresWarehouse)
    return target


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs PostgreSQL (the server the session starts) is `slow`: `make test-fast` leaves it out."""
    for item in items:
        if "postgres" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.slow)])
def any_warehouse(request: pytest.FixtureRequest) -> Warehouse:
    """Each test using it runs twice: on a fresh DuckDB file, then on a fresh PostgreSQL database."""
    request.getfixturevalue("warehouse" if request.param == "duckdb" else "pg_warehouse")
    return configured_warehouse()

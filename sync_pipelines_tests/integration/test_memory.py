"""What keeps a big first load small: DuckDB's limits reach every connection to the warehouse."""

from sync_pipelines.catalogue import ENTITIES, TENANTS
from sync_pipelines.warehouse import settings
from sync_pipelines_tests.compare import assert_warehouse_equals_emulator
from sync_pipelines_tests.conftest import DOMAINS, MAIN
from sync_pipelines_tests.helpers import run_entity_job, step_failures


def test_a_load_that_runs_out_of_duckdb_memory_says_what_to_set_and_the_next_run_completes(
    emulator, warehouse, monkeypatch
):
    tenant, jobs = TENANTS["synchroteam"], ENTITIES["jobs"]  # children: a merge across three tables
    assert run_entity_job(tenant, jobs).success
    store = emulator.tenant(MAIN.domain)
    for job in store.records("job")[:30]:
        store.edit("job", job["id"])
    store.add("job")
    monkeypatch.setattr(settings, "MIN_DUCKDB_MEMORY_LIMIT", "1MB")  # below the floor a user cannot set
    monkeypatch.setenv("SYNC_DUCKDB_MEMORY_LIMIT", "16MB")

    result = run_entity_job(tenant, jobs, raise_on_error=False)

    (message,) = step_failures(result).values()
    assert "[warehouse_memory]" in message and "SYNC_DUCKDB_MEMORY_LIMIT" in message and "'16MB'" in message
    assert sum(1 for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY") == 0  # not retryable
    monkeypatch.setenv("SYNC_DUCKDB_MEMORY_LIMIT", "128MB")
    assert run_entity_job(tenant, jobs).success
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS, tenants=["synchroteam"], entities=["jobs"])


def test_a_memory_limit_below_the_floor_fails_before_any_request(emulator, warehouse, monkeypatch):
    monkeypatch.setenv("SYNC_DUCKDB_MEMORY_LIMIT", "64MB")

    result = run_entity_job(TENANTS["synchroteam"], ENTITIES["invoices"], raise_on_error=False)

    (message,) = step_failures(result).values()
    assert "[configuration]" in message and "SYNC_DUCKDB_MEMORY_LIMIT='64MB' is below 96MB" in message
    assert emulator.requests == []

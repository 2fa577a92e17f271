"""The warehouse's bookkeeping around a load (`warehouse/tables.py`): what it reads of the catalog."""

from collections import Counter
from datetime import UTC, datetime

from sync_pipelines.catalogue import ENTITIES, TENANTS, tenant_pipeline_name
from sync_pipelines.warehouse import dialect, tables
from sync_pipelines.warehouse.settings import warehouse as current_warehouse
from sync_pipelines_tests.helpers import run_entity_job

MAIN_TENANT = TENANTS["synchroteam"]
INVOICES = ENTITIES["invoices"]


def test_a_session_reads_each_schema_s_tables_and_each_table_s_columns_once(emulator, warehouse, monkeypatch):
    assert run_entity_job(MAIN_TENANT, INVOICES).success
    catalog_queries: Counter[tuple[str, tuple]] = Counter()
    rows = dialect.DuckDBSession.rows

    def counting(self, sql, params=()):
        if "information_schema" in sql:
            catalog_queries[sql, tuple(params)] += 1
        return rows(self, sql, params)

    monkeypatch.setattr(dialect.DuckDBSession, "rows", counting)
    now = datetime.now(UTC)
    schema, table, pipeline = MAIN_TENANT.name, INVOICES.name, tenant_pipeline_name(MAIN_TENANT)
    after = tables.after_load(current_warehouse(), schema, table, None, now, 0.5, pipeline, "a-run")

    assert after.rows == after.live_rows > 0
    assert catalog_queries  # the catalog was read ...
    assert [query for query, times in catalog_queries.items() if times > 1] == []  # ... each question once


def test_a_step_s_entities_share_one_reading_of_the_catalog(emulator, warehouse, monkeypatch):
    """A step's upkeep asks the catalog the same questions however many entities it keeps up: the schema's tables
    once, all their columns at once."""
    entities = [ENTITIES[name] for name in ("invoices", "customers", "sites")]
    for entity in entities:
        assert run_entity_job(MAIN_TENANT, entity).success
    catalog_queries: Counter[str] = Counter()
    rows = dialect.DuckDBSession.rows

    def counting(self, sql, params=()):
        if "information_schema" in sql:
            catalog_queries[sql] += 1
        return rows(self, sql, params)

    monkeypatch.setattr(dialect.DuckDBSession, "rows", counting)
    now, catalog = datetime.now(UTC), tables.Catalog()
    pipeline = tenant_pipeline_name(MAIN_TENANT)
    afters = [
        tables.after_load(
            current_warehouse(),
            MAIN_TENANT.name,
            entity.name,
            None,
            now,
            0.5,
            pipeline,
            "a-run",
            stored_columns=True,
            catalog=catalog,
        )
        for entity in entities
    ]

    assert all(after.rows == after.live_rows > 0 and after.columns for after in afters)
    assert sorted(catalog_queries.values()) == [1, 1]  # the tables, the columns: once each for the three

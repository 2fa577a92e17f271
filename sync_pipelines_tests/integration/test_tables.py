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
    after = tables.after_load(current_warehouse(), schema, table, None, now, 0.5, now, pipeline, "a-run")

    assert after.rows == after.live_rows > 0
    assert catalog_queries  # the catalog was read ...
    assert [query for query, times in catalog_queries.items() if times > 1] == []  # ... each question once

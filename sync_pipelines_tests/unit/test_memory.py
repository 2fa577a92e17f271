"""What keeps a big first load small: DuckDB's limits reach every connection to the warehouse."""

from dlt.common.configuration import resolve_configuration
from dlt.common.data_writers.buffered import BufferedDataWriter

from sync_pipelines.catalogue import TENANTS
from sync_pipelines.warehouse.dialect import duckdb_connection
from sync_pipelines.warehouse.pipeline import build_pipeline
from sync_pipelines.warehouse.settings import DuckDBWarehouse, duckdb_settings


def current_settings(pipeline) -> tuple[str, int]:
    with pipeline.sql_client() as client:
        rows = client.execute_sql("SELECT current_setting('memory_limit'), current_setting('threads')")
    return rows[0][0], int(rows[0][1])


def test_the_load_connection_has_the_bounded_memory_and_threads(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNC_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    pipeline = build_pipeline(TENANTS["synchroteam"], duckdb_settings({}))
    assert current_settings(pipeline) == ("122.0 MiB", 2)  # 128 MB, as DuckDB prints it


def test_the_limits_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNC_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    env = {"SYNC_DUCKDB_MEMORY_LIMIT": "512MB", "SYNC_DUCKDB_THREADS": "1"}
    pipeline = build_pipeline(TENANTS["synchroteam"], duckdb_settings(env))
    assert current_settings(pipeline) == ("488.2 MiB", 1)


def test_dlt_holds_a_thousand_records_of_a_table_before_writing_them_unless_told_otherwise(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNC_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.delenv("DATA_WRITER__BUFFER_MAX_ITEMS", raising=False)
    build_pipeline(TENANTS["synchroteam"], duckdb_settings({}))
    spec = BufferedDataWriter.BufferedDataWriterConfiguration
    assert resolve_configuration(spec()).buffer_max_items == 1_000  # dlt's own default is 5,000

    monkeypatch.setenv("DATA_WRITER__BUFFER_MAX_ITEMS", "200")
    assert resolve_configuration(spec()).buffer_max_items == 200


def test_the_warehouse_helpers_connect_with_the_same_limits(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNC_DUCKDB_MEMORY_LIMIT", "256MB")
    with duckdb_connection(DuckDBWarehouse(tmp_path / "warehouse.duckdb")) as con:
        row = con.execute("SELECT current_setting('memory_limit'), current_setting('threads')").fetchone()
    assert (row[0], int(row[1])) == ("244.1 MiB", 2)

"""What keeps a big first load small: DuckDB's limits reach every connection to the warehouse."""

from sync_pipelines.assets import build_pipeline
from sync_pipelines.catalogue import ENTITIES, TENANTS
from sync_pipelines.settings import duckdb_settings
from sync_pipelines.warehouse import writer


def current_settings(pipeline) -> tuple[str, int]:
    with pipeline.sql_client() as client:
        rows = client.execute_sql("SELECT current_setting('memory_limit'), current_setting('threads')")
    return rows[0][0], int(rows[0][1])


def test_the_load_connection_has_the_bounded_memory_and_threads(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNC_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    pipeline = build_pipeline(TENANTS["synchroteam"], ENTITIES["invoices"], duckdb_settings({}))
    assert current_settings(pipeline) == ("122.0 MiB", 2)  # 128 MB, as DuckDB prints it


def test_the_limits_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNC_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    env = {"SYNC_DUCKDB_MEMORY_LIMIT": "512MB", "SYNC_DUCKDB_THREADS": "1"}
    pipeline = build_pipeline(TENANTS["synchroteam"], ENTITIES["invoices"], duckdb_settings(env))
    assert current_settings(pipeline) == ("488.2 MiB", 1)


def test_the_warehouse_helpers_connect_with_the_same_limits(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNC_DUCKDB_MEMORY_LIMIT", "256MB")
    with writer(tmp_path / "warehouse.duckdb") as con:
        row = con.execute("SELECT current_setting('memory_limit'), current_setting('threads')").fetchone()
    assert (row[0], int(row[1])) == ("244.1 MiB", 2)

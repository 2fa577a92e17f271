"""Connections to the warehouse (`warehouse/dialect.py`): a sync step holds the DuckDB file open, and every
connection in it, dlt's included, joins that one database instance."""

from sync_pipelines.catalogue import TENANTS
from sync_pipelines.warehouse.dialect import duckdb_connection, held_open
from sync_pipelines.warehouse.pipeline import build_pipeline
from sync_pipelines.warehouse.settings import DuckDBWarehouse, duckdb_settings


def test_a_file_held_open_is_not_checkpointed_by_each_connection_that_closes_only_when_let_go(tmp_path):
    target = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    wal = tmp_path / "warehouse.duckdb.wal"
    with duckdb_connection(target) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS i")
    assert not wal.exists()  # the file's last connection closed: DuckDB checkpointed it

    with held_open(target):
        with duckdb_connection(target) as con:
            con.execute("INSERT INTO t VALUES (2)")
        assert wal.exists()  # still open: no checkpoint, no reopening for the next connection
        with duckdb_connection(target, read_only=True) as con:  # read-only is not possible next to the holder
            assert con.execute("SELECT i FROM t ORDER BY i").fetchall() == [(1,), (2,)]
    assert not wal.exists()

    with duckdb_connection(target, read_only=True) as con:  # nothing held: read-only again
        assert con.execute("SELECT count(*) FROM t").fetchone() == (2,)


def test_dlt_joins_the_held_file_with_the_warehouse_s_bounds(tmp_path, monkeypatch):
    path = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("SYNC_DUCKDB_PATH", str(path))
    monkeypatch.setenv("SYNC_DUCKDB_MEMORY_LIMIT", "256MB")
    pipeline = build_pipeline(TENANTS["synchroteam"], duckdb_settings())
    with held_open(DuckDBWarehouse(path)):
        with pipeline.sql_client() as client:  # DuckDB refuses a second instance of a file opened differently
            rows = client.execute_sql("SELECT current_setting('memory_limit'), current_setting('threads')")
    assert (rows[0][0], int(rows[0][1])) == ("244.1 MiB", 2)

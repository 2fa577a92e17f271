"""`make sql`: SQL on standard input runs statement by statement on the read copy, read-only."""

import io

import duckdb
import pytest

from sync_pipelines.warehouse import shell
from sync_pipelines.warehouse.settings import read_copy_path


def test_statements_end_where_duckdb_s_parser_ends_them():
    lines = iter(["select ';' as semicolon; select 2\n", "  as two;\n", "-- a comment; still a comment\n", "select 3"])
    con = duckdb.connect()
    assert [con.sql(sql).fetchall() for sql in shell.statements(lines)] == [[(";",)], [(2,)], [(3,)]]


@pytest.fixture
def read_copy(tmp_path, monkeypatch):
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(read_copy_path(warehouse))) as con:
        con.execute("create schema analytics; create table analytics.invoices as select range as id from range(7)")
    monkeypatch.setenv("SYNC_DUCKDB_PATH", str(warehouse))
    monkeypatch.delenv("SYNC_WAREHOUSE_URL", raising=False)
    return read_copy_path(warehouse)


def test_a_script_prints_each_result_and_cannot_write(read_copy, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("select count(*) as n from analytics.invoices;\n"))
    assert shell.main([]) == 0
    assert "│ 7 │" in capsys.readouterr().out.replace("     ", " ").replace("  ", " ")

    monkeypatch.setattr("sys.stdin", io.StringIO("delete from analytics.invoices; select 1;\n"))
    assert shell.main([]) == 1  # read-only: the first error stops the script
    assert "read-only" in capsys.readouterr().err.lower()
    with duckdb.connect(str(read_copy), read_only=True) as con:
        assert con.execute("select count(*) from analytics.invoices").fetchone() == (7,)


def test_without_a_read_copy_or_on_postgresql_it_says_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SYNC_DUCKDB_PATH", str(tmp_path / "none.duckdb"))
    monkeypatch.delenv("SYNC_WAREHOUSE_URL", raising=False)
    assert shell.main([]) == 2 and "make demo" in capsys.readouterr().err
    monkeypatch.setenv("SYNC_WAREHOUSE_URL", "postgresql://sync:secret@db.invalid:5432/warehouse")
    assert shell.main([]) == 2 and "ambiguous" in capsys.readouterr().err  # both set: the settings' own message
    monkeypatch.delenv("SYNC_DUCKDB_PATH")
    assert shell.main([]) == 2
    said = capsys.readouterr().err
    assert "psql" in said and "secret" not in said

"""`make sql`: an SQL shell on the analysts' read copy, with the project's own DuckDB.

    make sql                                   # interactive: statements end with `;`, Ctrl-D leaves
    echo "select count(*) from analytics.invoices" | make sql

The read copy is opened read-only, so a shell left open never blocks a sync (each sync publishes a new copy
next to it; the shell keeps reading the one it opened until it is started again). SQL on standard input runs
statement by statement, each result printed as DuckDB's shell prints it; the first error stops it with status 1.
The `duckdb` command line from PyPI is another DuckDB release, which cannot open this file.
"""

import os
import sys
from collections.abc import Iterator

import duckdb

from sync_pipelines.errors import SyncError
from sync_pipelines.warehouse.settings import DuckDBWarehouse, read_copy_path, warehouse

PROMPT, MORE = "sql> ", "...> "
MAX_ROWS = 10_000  # rows printed of one result; DuckDB says how many it left out


def statements(lines: Iterator[str]) -> Iterator[str]:
    """Complete statements from `lines` (one that ends with `;`, or what is left at the end), as DuckDB's parser
    splits them: a `;` inside a string or a comment does not end one."""
    buffer = ""
    for line in lines:
        buffer += line
        if buffer.rstrip().endswith(";"):
            yield from (str(statement.query) for statement in duckdb.extract_statements(buffer))
            buffer = ""
    if buffer.strip():
        yield from (str(statement.query) for statement in duckdb.extract_statements(buffer))


def run(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Run one statement; print its result, if it has one, as DuckDB's shell does."""
    relation = con.sql(sql)
    if relation is not None:
        relation.show(max_rows=MAX_ROWS)


def interactive(con: duckdb.DuckDBPyConnection, source: str) -> int:
    import readline  # noqa: F401  (line editing and history for input())

    print(f"Read-only SQL on {source}; statements end with ';', Ctrl-D leaves. Start at: show all tables;")
    buffer = ""
    while True:
        try:
            line = input(MORE if buffer else PROMPT)
        except EOFError:
            print()
            return 0
        except KeyboardInterrupt:
            print()
            buffer = ""
            continue
        buffer += line + "\n"
        if not buffer.rstrip().endswith(";"):
            continue
        for sql in statements(iter([buffer])):
            try:
                run(con, sql)
            except duckdb.Error as error:
                print(f"Error: {error}", file=sys.stderr)
        buffer = ""


def main(argv: list[str]) -> int:
    try:
        target = warehouse(os.environ)
    except SyncError as error:  # the settings name no warehouse, or two
        print(error, file=sys.stderr)
        return 2
    if not isinstance(target, DuckDBWarehouse):
        print(
            "The warehouse is PostgreSQL (SYNC_WAREHOUSE_URL): query it with psql or any PostgreSQL client, as the "
            "analysts' role (docs/scaling-out.md).",
            file=sys.stderr,
        )
        return 2
    copy = read_copy_path(target.path)
    if not copy.exists():
        print(f"No read copy at {copy} yet: run `make demo` (or a sync) first.", file=sys.stderr)
        return 2
    with duckdb.connect(str(copy), read_only=True) as con:
        if sys.stdin.isatty() and not argv:
            return interactive(con, str(copy))
        source = iter([" ".join(argv)]) if argv else iter(sys.stdin)
        for sql in statements(source):
            try:
                run(con, sql)
            except duckdb.Error as error:
                print(f"Error: {error}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

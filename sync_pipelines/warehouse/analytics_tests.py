"""The analytics layer's data tests, run without dbt when dbt would build nothing.

dbt compiles each data test to one query of the rows that fail it, and runs it as `select count(*) from (<query>)`.
After every `dbt build`, the analytics step keeps the compiled queries of the tests it ran in the warehouse
(`analytics._analytics_tests`), each with the code version of the model it tests and a digest of the columns of the
tables that model reads: what the model's view was compiled from. A later run whose models have the same code
versions, over tables with the same columns, would re-create no view (`stable_view`): it runs the kept queries
over its own connection instead of starting dbt, and reports them as the same checks. Each model also has a row of
its own (its unique id, no SQL): what it was built from, even without tests. A model edited, a new
release, a column dlt added to a table or a tenant's first table: its kept tests no longer match, and dbt runs.
"""

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sync_pipelines.warehouse.dialect import Session

TESTS_TABLE = "_analytics_tests"
COLUMNS = ("unique_id", "model", "name", "code_version", "source_columns", "sql")


@dataclass(frozen=True)
class KeptTest:
    """A data test as dbt compiled it: `sql` selects the rows that fail it."""

    unique_id: str  # dbt's, `test.<project>.<name>.<hash>`
    model: str  # the unique id of the model it tests (dbt's attached node)
    name: str  # the test's name: the check's name
    code_version: str  # the model's code version it was compiled with (`analytics.model_code_versions`)
    source_columns: str  # `source_columns_digest` of the model's tables when it was compiled
    sql: str


def model_tables(manifest: Mapping[str, Any], model: str) -> list[tuple[str, str]]:
    """The (schema, table) of each dbt source model `model` reads."""
    sources = manifest.get("sources", {})
    found = []
    for parent in manifest["nodes"][model].get("depends_on", {}).get("nodes", []):
        source = sources.get(parent)
        if source is not None:
            found.append((str(source["schema"]), str(source.get("identifier") or source["name"])))
    return sorted(found)


def warehouse_columns(con: Session, schemas: Iterable[str]) -> dict[tuple[str, str], list[str]]:
    """The lower-case column names of every table and view in `schemas`, by (schema, table)."""
    wanted = sorted(set(schemas))
    if not wanted:
        return {}
    marks = ", ".join("?" for _ in wanted)
    found: dict[tuple[str, str], list[str]] = {}
    for schema, table, column in con.rows(
        f"SELECT table_schema, table_name, column_name FROM information_schema.columns WHERE table_schema IN ({marks})",
        wanted,
    ):
        found.setdefault((schema, table), []).append(str(column).lower())
    return {key: sorted(columns) for key, columns in found.items()}


def source_columns_digest(tables: Sequence[tuple[str, str]], columns: Mapping[tuple[str, str], list[str]]) -> str:
    """What a model's view is compiled from, besides its code: which of its tables exist, and their columns."""
    digest = hashlib.sha256()
    for schema, table in tables:
        digest.update(f"{schema}.{table}:{','.join(columns.get((schema, table), ['<missing>']))}\n".encode())
    return digest.hexdigest()[:16]


def kept_tests(con: Session, schema: str) -> list[KeptTest]:
    """The tests kept in `schema` (none before the first `dbt build` that kept them)."""
    exists = con.rows(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, TESTS_TABLE],
    )
    if not exists[0][0]:
        return []
    names = ", ".join(COLUMNS)
    return [KeptTest(*map(str, row)) for row in con.rows(f'SELECT {names} FROM "{schema}"."{TESTS_TABLE}"')]


def keep_tests(con: Session, schema: str, models: Iterable[str], tests: Iterable[KeptTest]) -> None:
    """Replace the kept tests of `models` (the models a build built) by `tests`."""
    columns = ", ".join(f"{name} TEXT" for name in COLUMNS)
    con.execute(f'CREATE TABLE IF NOT EXISTS "{schema}"."{TESTS_TABLE}" ({columns})')
    for model in sorted(set(models)):
        con.execute(f'DELETE FROM "{schema}"."{TESTS_TABLE}" WHERE model = ?', [model])
    marks = ", ".join("?" for _ in COLUMNS)
    for test in tests:
        con.execute(
            f'INSERT INTO "{schema}"."{TESTS_TABLE}" ({", ".join(COLUMNS)}) VALUES ({marks})',
            [getattr(test, name) for name in COLUMNS],
        )


def failing_rows(con: Session, test: KeptTest) -> int:
    """How many rows fail `test`, counted as dbt counts them."""
    return int(con.rows(f"select count(*) from (\n{test.sql}\n) as dbt_internal_test")[0][0])

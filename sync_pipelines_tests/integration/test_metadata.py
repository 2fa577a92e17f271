"""What a materialization says, as the asset page shows it: our numbers first, the table as analysts name it."""

from sync_pipelines.catalogue import ENTITIES, TENANTS
from sync_pipelines_tests.helpers import materializations, run_entity_job

RUN_NUMBERS = ["fetched", "loaded", "inserted", "updated", "refetched", "details_fetched", "unchanged", "retried"]


def test_a_materialization_leads_with_our_numbers_and_names_no_local_path(emulator, warehouse):
    result = run_entity_job(TENANTS["synchroteam"], ENTITIES["invoices"])
    (materialization,) = materializations(result, TENANTS["synchroteam"], ENTITIES["invoices"])
    metadata = materialization.metadata
    keys = list(metadata)

    assert keys[: len(RUN_NUMBERS)] == RUN_NUMBERS  # ours first, in a stable order
    assert keys.index("dagster/row_count") < keys.index("dagster/table_name") < keys.index("started_at")
    assert "jobs" not in keys and not any(key.startswith("dagster_dlt/") for key in keys)
    assert metadata["dagster/table_name"].value == "synchroteam.invoices"
    shown = repr(dict(metadata))
    assert str(warehouse.parent) not in shown and ".dlt_pipelines" not in shown  # no file of this machine

    columns = {column.name: column for column in metadata["dagster/column_schema"].value.columns}
    assert columns["_deleted_at"].description.startswith("When a full run found the record gone")
    assert columns["id"].description and columns["date_modified"].description
    assert {"total_incl_tax", "_dlt_id", "_dlt_load_id"} <= set(columns)


def test_the_docs_analyst_queries_run_verbatim_on_the_read_copy_of_a_first_sync(emulator, warehouse):
    import re
    from pathlib import Path

    import duckdb

    from sync_pipelines.warehouse.settings import read_copy_path
    from sync_pipelines_tests.helpers import run_sync_all

    assert run_sync_all().success
    page = (Path(__file__).resolve().parents[2] / "docs" / "analytics.md").read_text()
    block = re.search(r"<!-- sql: analyst examples -->\s*```sql\n(.*?)```", page, re.S)
    assert block, "docs/analytics.md has no analyst examples"
    statements = [s.strip() for s in re.sub(r"--[^\n]*", "", block.group(1)).split(";") if s.strip()]
    assert len(statements) == 4
    with duckdb.connect(str(read_copy_path(warehouse)), read_only=True) as con:
        results = [con.execute(statement).fetchall() for statement in statements]
    totals = results[0]
    assert totals and all(row[2].as_tuple().exponent == -2 for row in totals)  # two places, not nine
    assert results[1] and results[2] and results[3] == []

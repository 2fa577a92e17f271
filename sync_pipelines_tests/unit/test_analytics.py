"""The analytics layer: dbt models over both tenants' live rows, run by Dagster after the loads, on both warehouses.

Row counts equal the emulator's live records, joins on (tenant, <parent>_id) lose no row, a deletion leaves analytics
after a full run, the dbt tests are asset checks that fail on a planted duplicate, a failing model fails only its
own step, a run that changed nothing re-creates no view, and the README's analyst questions run as written.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from sync_pipelines import catalogue
from sync_pipelines.catalogue import TENANTS
from sync_pipelines.definitions import defs
from sync_pipelines.defs.analytics import build_analytics_assets
from sync_pipelines.warehouse.analytics import (
    SOURCES_FILE,
    TENANTS_MACRO,
    model_code_versions,
    source_tables,
    sources_yaml,
    tenants_macro,
)
from sync_pipelines.warehouse.analytics_tests import model_tables, source_columns_digest
from sync_pipelines.warehouse.dialect import session
from sync_pipelines.warehouse.settings import Warehouse
from sync_pipelines_tests.analytics_models import MODELS, PARENT_MODEL, manifest, models_of

MAIN_TENANT, HEC_TENANT = TENANTS["synchroteam"], TENANTS["synchroteam_hec"]


def rows(target: Warehouse, sql: str, params: list[Any] | None = None) -> list[tuple]:
    with session(target, read_only=True) as con:
        return con.rows(sql, params or [])


# -- the project, without a warehouse ----------------------------------------------------------------------------


def test_the_dbt_sources_and_tenant_list_are_the_catalogues_and_follow_a_new_tenant(monkeypatch):
    assert SOURCES_FILE.read_text() == sources_yaml(), "run `make analytics-sources`"
    assert TENANTS_MACRO.read_text() == tenants_macro(), "run `make analytics-sources`"
    sources: dict[str, set[str]] = {}
    for node in manifest()["sources"].values():
        sources.setdefault(node["source_name"], set()).add(node["name"])
    assert sources == {tenant: set(tables) for tenant, tables in source_tables().items()}
    assert sources["synchroteam_hec"] == {
        *("invoices", "invoices__lines", "credit_notes", "credit_notes__lines"),
        *("users", "equipment", "job_types", "parts"),
    }

    north = catalogue.Tenant(name="synchroteam_north", label="North", entities=("invoices", "customers"))
    monkeypatch.setitem(catalogue.TENANTS, north.name, north)
    assert "  - name: synchroteam_north\n" in sources_yaml()
    assert '"synchroteam_north": ["invoices", "customers"]' in tenants_macro()


def test_every_model_the_issue_names_exists_and_every_column_is_described():
    models = models_of(manifest())
    assert set(models) == set(MODELS)
    for name, node in models.items():
        assert node["description"].strip(), name
        assert node["columns"], name
        for column, spec in node["columns"].items():
            assert spec["description"].strip(), f"{name}.{column}"
        parent_id = MODELS[name][3]
        key = ["tenant", parent_id, "line_number"] if parent_id else ["tenant", "id"]
        assert list(node["columns"])[: len(key)] == key, name


def test_the_dbt_tests_are_the_issue_s_unique_not_null_and_relationships_as_asset_checks():

    checks: dict[str, set[str]] = {}
    for key in defs.resolve_asset_graph().asset_check_keys:
        if key.asset_key.path[0] == "analytics":
            checks.setdefault(key.asset_key.path[1], set()).add(key.name)
    assert set(checks) == set(MODELS)
    for model, (_, _, _, parent_id) in MODELS.items():
        names = checks[model]
        key = f"tenant__{parent_id}__line_number" if parent_id else "tenant__id"
        assert f"unique_key_{model}_{key}" in names
        assert f"not_null_{model}_tenant" in names
        if parent_id:
            parent = PARENT_MODEL[parent_id]
            assert f"relationships_within_tenant_{model}_{parent_id}__id__ref_{parent}_" in names
        else:
            assert f"not_null_{model}_id" in names


# -- after sync_all, on both warehouses --------------------------------------------------------------------------


def test_a_model_s_code_version_follows_its_sql_its_tests_and_the_project_s_macros_only():
    document = manifest()
    before = model_code_versions(document)
    assert set(before) == {f"model.analytics.{model}" for model in MODELS} and len(set(before.values())) == len(MODELS)

    def versions_after(change: Callable[[dict[str, Any]], None]) -> dict[str, str]:
        changed = copy.deepcopy(document)
        change(changed)
        return model_code_versions(changed)

    def edit_model(d: dict[str, Any]) -> None:
        d["nodes"]["model.analytics.sites"]["raw_code"] += "\n-- edited"

    def edit_test(d: dict[str, Any]) -> None:
        test = next(t for t in d["child_map"]["model.analytics.customers"] if t.startswith("test."))
        d["nodes"][test]["test_metadata"]["kwargs"]["column_name"] = "other"

    def edit_macro(d: dict[str, Any]) -> None:
        d["macros"]["macro.analytics.union_tenants"]["macro_sql"] += "\n"

    def edit_dbt_s_own_macro(d: dict[str, Any]) -> None:
        d["macros"]["macro.dbt.test_not_null"]["macro_sql"] += "\n"

    changed = {k for k, v in versions_after(edit_model).items() if v != before[k]}
    assert changed == {"model.analytics.sites"}
    changed = {k for k, v in versions_after(edit_test).items() if v != before[k]}
    assert changed == {"model.analytics.customers"}
    assert all(v != before[k] for k, v in versions_after(edit_macro).items())
    assert versions_after(edit_dbt_s_own_macro) == before  # dbt's version covers its own macros
    assert {spec.key.to_user_string(): spec.code_version for spec in build_analytics_assets().specs} == {
        f"analytics/{node.split('.')[-1]}": version for node, version in before.items()
    }


def test_a_model_s_kept_tests_hold_while_its_tables_keep_their_columns():
    """What the analytics step compares kept tests by, besides the code: the tables a model reads, and their
    columns; a column dlt adds, or a tenant's table that appears, re-defines the view (and so needs dbt)."""
    tables = model_tables(manifest(), "model.analytics.invoice_lines")
    assert tables == sorted(
        (tenant.name, table)
        for tenant in TENANTS.values()
        if "invoices" in tenant.entities
        for table in ("invoices", "invoices__lines")
    )
    columns = {table: ["_dlt_id", "id"] for table in tables}
    digest = source_columns_digest(tables, columns)
    assert source_columns_digest(tables, {k: list(v) for k, v in columns.items()}) == digest
    assert source_columns_digest(tables, {**columns, tables[0]: ["_dlt_id", "id", "note"]}) != digest
    assert source_columns_digest(tables, {k: v for k, v in columns.items() if k != tables[-1]}) != digest


def test_the_docs_have_an_overview_and_every_status_column_its_accepted_values_tested():
    document = manifest()
    assert "doc.analytics.__overview__" in document["docs"]  # dbt's docs site opens on it, not dbt's welcome page
    tested = {
        (node["attached_node"], node["column_name"])
        for node in document["nodes"].values()
        if node["resource_type"] == "test" and (node.get("test_metadata") or {}).get("name") == "accepted_values"
    }
    statuses = {
        (unique_id, column)
        for unique_id, node in document["nodes"].items()
        if node["resource_type"] == "model"
        for column in node["columns"]
        if column == "status"
    }
    assert statuses and statuses <= tested
    for unique_id, column in statuses:  # and the description names the values the test accepts
        values = next(
            n["test_metadata"]["kwargs"]["values"]
            for n in document["nodes"].values()
            if n["resource_type"] == "test"
            and (n.get("attached_node"), n.get("column_name")) == (unique_id, column)
            and (n.get("test_metadata") or {}).get("name") == "accepted_values"
        )
        description = document["nodes"][unique_id]["columns"][column]["description"]
        assert all(value in description for value in values), (unique_id, values)

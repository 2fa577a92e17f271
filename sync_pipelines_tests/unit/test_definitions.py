"""The code location: its public names (asset keys, groups, jobs) are interface; a rename shows up here."""

import ast
import os
import subprocess
import sys

from dagster._core.execution.api import create_execution_plan

from sync_pipelines.catalogue import TENANTS, tenant_entities
from sync_pipelines.definitions import defs

EXPECTED_ASSETS = {
    "synchroteam/jobs": "synchroteam",
    "synchroteam/invoices": "synchroteam",
    "synchroteam/quotations": "synchroteam",
    "synchroteam/customers": "synchroteam",
    "synchroteam/sites": "synchroteam",
    "synchroteam/credit_notes": "synchroteam",
    "synchroteam/users": "synchroteam",
    "synchroteam/activities": "synchroteam",
    "synchroteam/equipment": "synchroteam",
    "synchroteam/job_types": "synchroteam",
    "synchroteam/parts": "synchroteam",
    "synchroteam_hec/invoices": "synchroteam_hec",
    "synchroteam_hec/credit_notes": "synchroteam_hec",
    "synchroteam_hec/users": "synchroteam_hec",
    "synchroteam_hec/equipment": "synchroteam_hec",
    "synchroteam_hec/job_types": "synchroteam_hec",
    "synchroteam_hec/parts": "synchroteam_hec",
}
LOOKUPS = {"synchroteam/job_types", "synchroteam_hec/job_types"}  # no dates: nothing to reconcile


RECONCILIATION_ASSETS = {f"{key}_reconciliation": group for key, group in EXPECTED_ASSETS.items() if key not in LOOKUPS}
READ_COPY = {"warehouse/read_copy": "warehouse"}
MODELS = ("jobs", "job_parts", "job_time_entries", "invoices", "invoice_lines", "quotations", "quotation_lines")
MODELS += ("credit_notes", "credit_note_lines", "customers", "sites")
MODELS += ("users", "activities", "equipment", "job_types", "parts")
ANALYTICS = {f"analytics/{model}": "analytics" for model in MODELS}
LOADING_JOBS = {
    "sync_all",
    *(f"sync_{key.replace('/', '__')}" for key in EXPECTED_ASSETS),
    "reconcile_synchroteam",
    "reconcile_synchroteam_hec",
    "retry_rejected_records",
}


def test_every_entity_of_every_tenant_is_an_asset_with_a_stable_key_and_group():
    graph = defs.resolve_asset_graph()
    found = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert found == {**EXPECTED_ASSETS, **RECONCILIATION_ASSETS, **ANALYTICS, **READ_COPY}


def test_reconciliation_assets_are_daily_partitioned_and_the_entity_assets_are_not():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        partitions = graph.get(key).partitions_def
        if key.to_user_string() in RECONCILIATION_ASSETS:
            assert partitions is not None and partitions.get_first_partition_key() == "2025-01-01"
        else:
            assert partitions is None


def test_jobs_are_sync_all_one_per_entity_a_reconciliation_per_tenant_and_the_quarantine_jobs():
    names = {job.name for job in defs.jobs}
    assert names == {
        "sync_all",
        *(f"sync_{key.replace('/', '__')}" for key in EXPECTED_ASSETS),
        "reconcile_synchroteam",
        "reconcile_synchroteam_hec",
        "check_row_counts",
        "retry_rejected_records",
        "export_rejected_records",
    }


def test_every_entity_asset_has_its_four_checks():
    graph = defs.resolve_asset_graph()
    checks: dict[str, set[str]] = {}
    for check_key in graph.asset_check_keys:
        if check_key.asset_key.path[0] == "analytics":
            continue  # dbt's tests: test_analytics.py
        checks.setdefault(check_key.asset_key.to_user_string(), set()).add(check_key.name)
    assert checks == {
        key: {"no_duplicate_ids", "rejected_records", "row_count_matches_api", "freshness_check"}
        for key in EXPECTED_ASSETS
    }
    assert [s.name for s in defs.sensors] == ["freshness_checks_sensor"]


def test_entity_assets_have_no_upstream_placeholders_and_share_the_duckdb_writer_pool():
    for assets_def in defs.assets:
        if next(iter(assets_def.keys)).path[0] in TENANTS:
            assert all(not deps for deps in assets_def.asset_deps.values())
        assert assets_def.op.pool == "duckdb_writer"


def test_sync_all_selects_every_asset_and_the_read_copy_after_them():
    job = defs.resolve_job_def("sync_all")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {
        *EXPECTED_ASSETS,
        *ANALYTICS,
        *READ_COPY,
    }


def test_the_read_copy_is_downstream_of_every_table_the_syncs_write_and_ends_every_job_that_loads():
    graph = defs.resolve_asset_graph()
    (key,) = [k for k in graph.get_all_asset_keys() if k.to_user_string() in READ_COPY]
    parents = {k.to_user_string() for k in graph.get(key).parent_keys}
    # not downstream of the analytics models, which a run that changed nothing does not materialize (Dagster would
    # skip it): after them by priority, among the steps ready at the same time (the order: test_sync_all)
    assert parents == {*EXPECTED_ASSETS, *RECONCILIATION_ASSETS}
    priority = {
        step.key: int(step.tags.get("dagster/priority", 0))
        for step in create_execution_plan(defs.resolve_job_def("sync_all")).steps
    }
    assert priority["warehouse__read_copy"] < min(p for k, p in priority.items() if k != "warehouse__read_copy")
    selecting = {
        job.name for job in defs.jobs if key in defs.resolve_job_def(job.name).asset_layer.executable_asset_keys
    }
    assert selecting == LOADING_JOBS


def test_sync_jobs_plan_no_check_and_the_row_count_check_runs_daily_in_its_own_job():
    def checks_of(job_name: str) -> set[str]:
        job = defs.resolve_job_def(job_name)
        return {f"{k.asset_key.to_user_string()}:{k.name}" for k in job.asset_layer.asset_graph.asset_check_keys}

    row_counts = {f"{key}:row_count_matches_api" for key in EXPECTED_ASSETS}
    assert checks_of("check_row_counts") == row_counts
    # the sync steps and the analytics step report the checks they evaluate outside the plan (check_results), so a
    # run that evaluates none leaves each its last result; what they report: test_sync_all, test_analytics
    for job in LOADING_JOBS:
        assert checks_of(job) == set(), job
    checks = {f"{k.asset_key.to_user_string()}:{k.name}" for k in defs.resolve_asset_graph().asset_check_keys}
    for key in EXPECTED_ASSETS:  # and every check is still the asset's, in the UI
        assert {f"{key}:no_duplicate_ids", f"{key}:rejected_records", f"{key}:row_count_matches_api"} <= checks
    (daily,) = [s for s in defs.schedules if s.job_name == "check_row_counts"]
    assert daily.cron_schedule == "15 4 * * *"


def test_every_job_is_bounded_and_names_its_tenant_for_the_run_queue():
    from sync_pipelines.defs.schedules import MAX_RUNTIME_TAG, TENANT_TAG, max_runtime_seconds

    jobs = [job for job in defs.get_repository_def().get_all_jobs() if not job.name.startswith("__")]
    for job in jobs:
        assert int(job.tags[MAX_RUNTIME_TAG]) > 0 and job.tags[TENANT_TAG], job.name
    entities = [entity for tenant in TENANTS.values() for entity in tenant_entities(tenant)]
    sync_all = defs.resolve_job_def("sync_all")
    assert int(sync_all.tags[MAX_RUNTIME_TAG]) == sum(max_runtime_seconds(entity) for entity in entities)


def test_no_launchpad_default_names_a_local_path():
    """The launchpad pre-fills each job's run config with its defaults: none may show this machine's paths (the
    dbt resource is set from the checkout, with nothing to configure)."""
    from pathlib import Path

    from sync_pipelines.definitions import defs

    repo = str(Path(__file__).resolve().parents[2])

    def defaults(config_type, path=""):
        for name, field in (getattr(config_type, "fields", None) or {}).items():
            if field.default_provided:
                yield f"{path}/{name}", str(field.default_value)
            yield from defaults(field.config_type, f"{path}/{name}")

    for job in defs.resolve_all_job_defs():
        found = [where for where, value in defaults(job.run_config_schema.config_type) if repo in value]
        assert found == [], (job.name, found)


def _load_code_location(environ: dict[str, str]) -> subprocess.CompletedProcess:
    """`sync_pipelines.definitions` loaded in a process of its own with `environ` added: its entity assets (an
    entity switched off stays in the graph as an external asset, unmaterializable, for the dbt source naming it)."""
    script = (
        "from sync_pipelines.definitions import defs\n"
        "graph = defs.resolve_asset_graph()\n"
        "keys = {k.to_user_string() for k in graph.materializable_asset_keys}\n"
        "print(sorted(k for k in keys if k.startswith('synchroteam')))"
    )
    return subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, **environ}, capture_output=True, text=True, timeout=120
    )


def test_a_tenant_s_entities_variable_limits_its_assets_and_an_unknown_name_fails_the_load():
    loaded = _load_code_location({"SYNCHROTEAM_HEC_ENTITIES": "invoices,job_types"})
    assert loaded.returncode == 0, loaded.stderr
    keys = set(ast.literal_eval(loaded.stdout.strip().splitlines()[-1]))
    assert {k for k in keys if k.startswith("synchroteam_hec/")} == {
        "synchroteam_hec/invoices",
        "synchroteam_hec/invoices_reconciliation",
        "synchroteam_hec/job_types",
    }
    assert {k for k in keys if k.startswith("synchroteam/")} == {
        k for k in {*EXPECTED_ASSETS, *RECONCILIATION_ASSETS} if k.startswith("synchroteam/")
    }

    refused = _load_code_location({"SYNCHROTEAM_HEC_ENTITIES": "invoices,activities"})
    assert refused.returncode != 0
    assert "SYNCHROTEAM_HEC_ENTITIES='invoices,activities' names 'activities'" in refused.stderr
    assert "Valid names: invoices, credit_notes, users, equipment, job_types, parts." in refused.stderr

"""The analytics layer as Dagster assets: dagster-dbt's `@dbt_assets` over the dbt project `analytics/`, one asset
per model (`analytics/<model>`), downstream of the entity assets whose tables it reads, its dbt tests as asset
checks.

A run builds the selected models and runs their tests (`dbt build`) in the warehouse's turn: the whole DuckDB file,
or PostgreSQL's `analytics` schema. A model re-creates its view only when its SQL changed (the project's
`stable_view`); when none would change, dbt does not start at all (`analytics_checks`). The tests report as the
models' checks outside the run's plan (`check_results`), so a run that tests nothing leaves their last results. A
model that fails fails this step with dbt's message, after the loads it sits on have committed; the read copy is
refreshed after this step all the same (`read_copy`).
"""

import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    DataVersion,
    Failure,
    MaterializeResult,
    ResourceDefinition,
)
from dagster._core.definitions.data_version import DATA_VERSION_TAG, DEFAULT_DATA_VERSION
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets
from packaging import version

from sync_pipelines.catalogue import TENANTS
from sync_pipelines.defs.analytics_checks import AnalyticsManifest, checks_without_dbt, keep_built, results_of_dbt
from sync_pipelines.defs.check_results import planned_or_logged
from sync_pipelines.defs.leases import RunLease
from sync_pipelines.defs.pools import analytics_pool
from sync_pipelines.defs.retries import retried
from sync_pipelines.warehouse.analytics import (
    PROJECT_DIR,
    SCHEMA,
    dbt_env,
    dbt_executable,
    dbt_version,
    model_code_versions,
    prepared_manifest,
)
from sync_pipelines.warehouse.lock import step_turn
from sync_pipelines.warehouse.settings import Warehouse, warehouse


class AnalyticsTranslator(DagsterDbtTranslator):
    """Models as `analytics/<model>` (group `analytics`); a tenant's table, and its child lists' tables, as the entity
    asset that loads them (`synchroteam/invoices` for `synchroteam.invoices__lines`)."""

    def __init__(self, code_versions: Mapping[str, str] | None = None) -> None:
        super().__init__(DagsterDbtTranslatorSettings(enable_duplicate_source_asset_keys=True))
        self.code_versions = dict(code_versions or {})

    def get_code_version(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        """`model_code_versions`: the model's SQL, its tests and the project's macros."""
        found = self.code_versions.get(dbt_resource_props["unique_id"])
        return found or super().get_code_version(dbt_resource_props)

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"].split("__")[0]])
        return AssetKey([SCHEMA, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return SCHEMA

    def get_asset_check_spec(
        self, asset_spec: AssetSpec, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> AssetCheckSpec | None:
        """dbt's tests as checks of severity error that block nothing: dagster-dbt would make them blocking, and a
        failing test would then fail the step and skip the read copy downstream, hiding the run's loads."""
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        if spec is None:
            return None
        return AssetCheckSpec(
            name=spec.name,
            asset=spec.asset_key,
            description=spec.description,
            additional_deps=spec.additional_deps,
            metadata=spec.metadata,
            blocking=False,
        )


class AnalyticsDbt(DbtCliResource):
    """dagster-dbt's resource for dbt in its own virtualenv: its version read from the virtualenv, not from
    `dbt --version` (a process of its own, twice per run, and a request to PyPI); no dbt adapter in our own process (dbt-core
    is not importable there; dagster-dbt uses it only for column metadata we do not ask for)."""

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(dbt_version())

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> Any:
        return None


def dbt_resource() -> ResourceDefinition:
    """The `dbt` resource: set from the checkout (the project, its profile, dbt's virtualenv) and, at run time, from
    the warehouse's settings, so the launchpad offers nothing to configure (and shows no local path)."""
    dbt = AnalyticsDbt(
        project_dir=str(PROJECT_DIR), profiles_dir=str(PROJECT_DIR), dbt_executable=str(dbt_executable())
    )
    return ResourceDefinition.hardcoded_resource(
        dbt, description="dbt, which builds and tests the analytics models on the configured warehouse."
    )


def build_analytics_assets() -> AssetsDefinition:
    """Every model of the project, one step: `dbt build` of the selected ones and their tests."""

    manifest = prepared_manifest()
    parsed = json.loads(manifest.read_text())
    project = AnalyticsManifest(parsed, model_code_versions(parsed))

    @dbt_assets(
        manifest=manifest,
        name=SCHEMA,
        dagster_dbt_translator=AnalyticsTranslator(project.code_versions),
        pool=analytics_pool(),
    )
    def analytics(context: AssetExecutionContext, dbt: DbtCliResource, run_lease: RunLease) -> Iterator[Any]:
        with retried(context):
            target = warehouse()
            unchanged = unchanged_since_built(context)
            if unchanged:  # no model materialized, no check evaluated: each keeps its last result
                context.log.info(unchanged)
                return
            failed: dict[str, str] = {}
            with step_turn(context, target, SCHEMA):
                results = checks_without_dbt(context, target, project) if synced_entities(context) else None
                if results is None:
                    results, failed = build_with_dbt(context, dbt, target, project, manifest)
            yield from planned_or_logged(context, results)
            if failed:
                raise Failure(
                    description=f"dbt could not build {', '.join(sorted(failed))}: "
                    + " | ".join(f"{name}: {message}" for name, message in sorted(failed.items())),
                    metadata={"failed": sorted(failed)},
                    allow_retries=False,  # a model's SQL does not heal itself; the next run builds it again
                )

    return analytics


def build_with_dbt(
    context: AssetExecutionContext, dbt: DbtCliResource, target: Warehouse, project: AnalyticsManifest, manifest: Path
) -> tuple[list[MaterializeResult | AssetCheckResult], dict[str, str]]:
    """`dbt build` of the selected models and their tests (or of the selected checks' tests alone): the models it
    built, its tests as check results, and what it could not run (models and tests, with dbt's message). What it
    built and tested is kept for the runs after (`keep_built`)."""
    selection = " ".join(project.selection(context.selected_asset_keys, context.selected_asset_check_keys))
    with dbt_environment(target):
        invocation = dbt.cli(
            ["build", "--target", target.kind, "--select", selection],
            manifest=manifest,
            raise_on_error=False,
        ).wait()
    results_file = invocation.target_path / "run_results.json"
    run_results = json.loads(results_file.read_text()) if results_file.exists() else None
    shutil.rmtree(invocation.target_path, ignore_errors=True)  # the run's events hold what dbt said
    if run_results is None:  # dbt stopped before any model: the profile, the connection
        return [], {"dbt": " ".join(str(invocation.get_error()).split())[:2000]}
    context.log.info(summary(run_results))
    keep_built(target, project, run_results)
    return results_of_dbt(project, run_results, context.selected_asset_keys), failed_nodes(run_results)


def unchanged_since_built(context: AssetExecutionContext) -> str | None:
    """Why dbt need not start, or None: in a run that synced entities, every selected model was last built (and
    tested) from its current code version and from the tables as they are now, each entity asset's data version
    being its table's content version. The views read the tables live; their tests would find what they found.
    A run of the analytics alone always builds: someone asked for it."""
    if not synced_entities(context):
        return None
    current: dict[AssetKey, DataVersion] = {}
    for key in context.selected_asset_keys:
        built = context.get_asset_provenance(key)
        if built is None or built.code_version != context.assets_def.specs_by_key[key].code_version:
            return None
        for dep in context.assets_def.asset_deps[key]:
            if dep not in current:
                latest = context.instance.get_latest_materialization_event(dep)
                materialization = latest.asset_materialization if latest is not None else None
                tags = (materialization.tags or {}) if materialization is not None else {}
                # as Dagster records an input never materialized (another tenant's table, not synced yet)
                current[dep] = DataVersion(tags[DATA_VERSION_TAG]) if DATA_VERSION_TAG in tags else DEFAULT_DATA_VERSION
            if built.input_data_versions.get(dep) != current[dep]:
                return None
    return (
        f"Analytics: nothing the {len(context.selected_asset_keys)} models read has changed since dbt last built "
        f"and tested them ({', '.join(sorted(k.to_user_string() for k in current if k.path[0] in TENANTS))} "
        "unchanged), and their code is the same: dbt not started."
    )


def synced_entities(context: AssetExecutionContext) -> bool:
    """Whether the run syncs entities; a run of the analytics alone always builds: someone asked for it."""
    run_keys = context.run.asset_selection or context.job_def.asset_layer.executable_asset_keys
    return any(key.path[0] in TENANTS for key in run_keys)


@contextmanager
def dbt_environment(target: Warehouse) -> Iterator[None]:
    """The profile's variables in this process's environment while dagster-dbt starts dbt (it hands dbt a copy of
    `os.environ`, and takes no environment of its own), removed after."""
    values = dbt_env(target)
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def summary(run_results: Mapping[str, Any]) -> str:
    """One line of what dbt did: views re-created, unchanged, failed; tests passed."""
    results = run_results.get("results", [])
    models = [r for r in results if r["unique_id"].startswith("model.")]
    tests = [r for r in results if r["unique_id"].startswith("test.")]
    unchanged = sum(r["status"] == "success" and r.get("message") == "UNCHANGED" for r in models)
    created = sum(r["status"] == "success" for r in models) - unchanged
    passed = sum(r["status"] == "pass" for r in tests)
    return (
        f"Analytics: {len(models)} models ({created} views re-created, {unchanged} unchanged, "
        f"{len(models) - created - unchanged} failed), {passed} of {len(tests)} tests passed."
    )


def failed_nodes(run_results: Mapping[str, Any]) -> dict[str, str]:
    """Models (and tests) dbt could not run, by name, with dbt's message; a test that runs and finds rows is a
    failed check, not this."""
    return {
        result["unique_id"].split(".")[2]: " ".join(str(result.get("message") or "").split())[:500]
        for result in run_results.get("results", [])
        if result["status"] in ("error", "runtime error")
    }


def analytics_downstream(keys: Sequence[AssetKey]) -> AssetSelection:
    """The analytics models that read the tables of the entity assets `keys`; their checks (dbt's tests) are
    evaluated outside the run's plan (`check_results`)."""
    return (AssetSelection.assets(*keys).downstream() & AssetSelection.groups(SCHEMA)).without_checks()

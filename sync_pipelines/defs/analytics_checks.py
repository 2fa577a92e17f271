"""The analytics step without dbt: after loads that changed rows but no model, the models' data tests run from the
queries dbt compiled for them (`warehouse.analytics_tests`), in the step's own connection, and report as the same
asset checks dbt's would: non-blocking, failing with dbt's message. dbt starts only when a model would change:
its code (a new release, `make analytics-sources`, an edited model), or the tables it reads (a column, a tenant's
first table)."""

from collections.abc import Collection, Iterator, Mapping
from typing import Any

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
)

from sync_pipelines.catalogue import TENANTS
from sync_pipelines.warehouse.analytics import SCHEMA
from sync_pipelines.warehouse.analytics_tests import (
    KeptTest,
    failing_rows,
    keep_tests,
    kept_tests,
    model_tables,
    source_columns_digest,
    warehouse_columns,
)
from sync_pipelines.warehouse.dialect import Session, session
from sync_pipelines.warehouse.settings import Warehouse

# dbt's defaults: a test fails when its query returns any row. A test configured otherwise is left to dbt.
DEFAULT_TEST_CONFIG = {"fail_calc": "count(*)", "error_if": "!= 0", "warn_if": "!= 0", "limit": None, "where": None}


class AnalyticsManifest:
    """The project's manifest as the analytics step reads it: models by asset key, and their data tests."""

    def __init__(self, manifest: Mapping[str, Any], code_versions: Mapping[str, str]) -> None:
        self.manifest = manifest
        self.code_versions = dict(code_versions)
        nodes = manifest["nodes"]
        self.models = {
            AssetKey([SCHEMA, node["name"]]): unique_id
            for unique_id, node in nodes.items()
            if node.get("resource_type") == "model"
        }
        self.tests: dict[str, list[str]] = {model: [] for model in self.models.values()}
        for unique_id, node in sorted(nodes.items()):
            if node.get("resource_type") == "test" and node.get("attached_node") in self.tests:
                self.tests[node["attached_node"]].append(unique_id)

    def check_key(self, test: str) -> AssetCheckKey:
        """The check of the test `test` (a unique id): the test's name on its model's asset."""
        node = self.manifest["nodes"][test]
        return AssetCheckKey(AssetKey([SCHEMA, self.manifest["nodes"][node["attached_node"]]["name"]]), node["name"])

    def selection(self, keys: Collection[AssetKey], check_keys: Collection[AssetCheckKey]) -> list[str]:
        """dbt's `--select` for the models `keys` (the tests that read them with them), the other models those tests
        read (a relationship between two entities' models: both views must exist, if empty, for the test to run,
        as in the first run of one entity's job), and the tests of `check_keys` on other models."""
        models = [self.models[key] for key in sorted(keys) if key in self.models]
        nodes = self.manifest["nodes"]
        tests_read = [
            [parent for parent in nodes[test]["depends_on"]["nodes"] if parent in self.tests]
            for tests in self.tests.values()
            for test in tests
        ]  # dbt runs every test that reads a selected model (its default, eager, indirect selection)
        built = set(models)
        while True:  # the models selected so bring their tests in, which read more: until none is added
            more = {parent for parents in tests_read if built.intersection(parents) for parent in parents} - built
            if not more:
                break
            built |= more
        models += sorted(built - set(models))
        tests = [
            test
            for model, tests in self.tests.items()
            if model not in models
            for test in tests
            if self.check_key(test) in check_keys
        ]
        return [self.manifest["nodes"][node]["name"] for node in [*models, *tests]]

    def plain(self, model: str) -> bool:
        """Whether every test of `model` fails on any row, as the step counts them (dbt's default)."""
        return all(
            all(self.manifest["nodes"][test]["config"].get(k) == v for k, v in DEFAULT_TEST_CONFIG.items())
            for test in self.tests[model]
        )


def checks_without_dbt(
    context: AssetExecutionContext, target: Warehouse, project: AnalyticsManifest
) -> list[MaterializeResult | AssetCheckResult] | None:
    """The selected models, materialized over their unchanged views, and their checks from the kept tests, in one
    session; None when dbt must run: a model would change (`_kept_tests_of`), or a test's query cannot run (a view
    that no longer reads), which dbt then reports."""
    with session(target, read_only=True) as con:
        tests = _kept_tests_of(context, con, project)
        if tests is None:
            return None
        wanted = [test for test in tests if project.check_key(test.unique_id).asset_key in context.selected_asset_keys]
        try:
            failures = {test.unique_id: failing_rows(con, test) for test in wanted}
        except Exception as error:  # noqa: BLE001 - whatever the database says, dbt's own run reports it properly
            context.log.warning(f"Analytics: a test's compiled SQL could not run ({error}); dbt runs instead.")
            return None
    passed = sum(1 for count in failures.values() if count == 0)
    context.log.info(
        f"Analytics: no model changed (same code, same columns): dbt not started; {passed} of {len(failures)} tests "
        "passed, run from their compiled SQL."
    )
    return [*_materializations(context, project), *_check_results(project, wanted, failures)]


def _kept_tests_of(context: AssetExecutionContext, con: Session, project: AnalyticsManifest) -> list[KeptTest] | None:
    """The kept tests of the step's models when dbt would build none of them; None when one would change (its code
    version, or its tables' columns, differ from its kept tests'), or has no kept tests yet."""
    models = [project.models[key] for key in sorted(context.selected_asset_keys) if key in project.models]
    kept = kept_tests(con, SCHEMA)
    columns = warehouse_columns(con, TENANTS)
    by_model: dict[str, list[KeptTest]] = {}
    for test in kept:
        by_model.setdefault(test.model, []).append(test)
    chosen = []
    for model in models:
        have = by_model.get(model, [])
        marker = [t for t in have if t.unique_id == model]  # the model's own row: what it was built from
        digest = source_columns_digest(model_tables(project.manifest, model), columns)
        if len(marker) != 1 or marker[0].code_version != project.code_versions.get(model):
            return None
        if marker[0].source_columns != digest or not project.plain(model):
            return None
        tests = [t for t in have if t.unique_id != model]
        if sorted(t.unique_id for t in tests) != project.tests[model]:
            return None
        chosen += tests
    return chosen


def _materializations(context: AssetExecutionContext, project: AnalyticsManifest) -> Iterator[MaterializeResult]:
    for key in sorted(context.selected_asset_keys):
        if key in project.models:
            yield MaterializeResult(
                asset_key=key,
                metadata={"view": MetadataValue.text("unchanged (same code, same columns): dbt was not started")},
            )


def _check_results(
    project: AnalyticsManifest, wanted: list[KeptTest], failures: Mapping[str, int]
) -> Iterator[AssetCheckResult]:
    for test in wanted:
        found = failures[test.unique_id]
        yield check_result(
            project,
            test.unique_id,
            status="pass" if found == 0 else "fail",
            failures=found,
            message=None
            if found == 0
            else f"Got {found} result{'s' if found != 1 else ''}, configured to fail if != 0",
            run_by="the analytics step, from dbt's compiled SQL",
        )


def check_result(
    project: AnalyticsManifest, test: str, *, status: str, failures: int | None, message: str | None, run_by: str
) -> AssetCheckResult:
    """The check of the test `test` (a unique id) as dbt reports it: passed on `pass`; a failure carries dbt's
    message (`Got 1 result, configured to fail if != 0`); a warning is of severity WARN."""
    key = project.check_key(test)
    return AssetCheckResult(
        asset_key=key.asset_key,
        check_name=key.name,
        passed=status == "pass",
        severity=AssetCheckSeverity.WARN if status == "warn" else AssetCheckSeverity.ERROR,
        description=None if status == "pass" else message,
        metadata={
            "status": status,
            **({} if failures is None else {"dagster_dbt/failed_row_count": failures}),
            "unique_id": test,
            "run_by": run_by,
        },
    )


def results_of_dbt(
    project: AnalyticsManifest, run_results: Mapping[str, Any], selected: Collection[AssetKey]
) -> list[MaterializeResult | AssetCheckResult]:
    """What `dbt build` did, from its `run_results.json`: each selected model it built, and each test of a model
    it ran (skipped ones, after a model that failed, report nothing)."""
    keys = {unique_id: key for key, unique_id in project.models.items()}
    nodes = project.manifest["nodes"]
    built: list[MaterializeResult | AssetCheckResult] = []
    tested: list[MaterializeResult | AssetCheckResult] = []
    for result in run_results.get("results", []):
        unique_id, status = result["unique_id"], result["status"]
        if unique_id in keys and keys[unique_id] in selected and status == "success":
            metadata = {
                "unique_id": unique_id,
                "view": MetadataValue.text("re-created" if result.get("message") != "UNCHANGED" else "unchanged"),
                "execution_duration": round(float(result.get("execution_time") or 0.0), 3),
            }
            built.append(MaterializeResult(asset_key=keys[unique_id], metadata=metadata))
        elif nodes.get(unique_id, {}).get("attached_node") in project.tests and status != "skipped":
            tested.append(
                check_result(
                    project,
                    unique_id,
                    status=status,
                    failures=result.get("failures"),
                    message=result.get("message"),
                    run_by="dbt build",
                )
            )
    return [*built, *tested]


def keep_built(target: Warehouse, project: AnalyticsManifest, run_results: Mapping[str, Any]) -> None:
    """After `dbt build`: keep, for every model it built, what it was built from and its tests' compiled SQL."""
    results = run_results.get("results", [])
    built = [r["unique_id"] for r in results if r["unique_id"] in project.tests and r["status"] == "success"]
    if not built:
        return
    compiled = {r["unique_id"]: r.get("compiled_code") for r in results if r["status"] in ("pass", "fail")}
    nodes = project.manifest["nodes"]
    with session(target) as con:
        columns = warehouse_columns(con, TENANTS)
        kept = []
        for model in built:
            version = project.code_versions.get(model, "")
            digest = source_columns_digest(model_tables(project.manifest, model), columns)
            tests = [t for t in project.tests[model] if compiled.get(t)]
            if len(tests) != len(project.tests[model]):
                continue  # a test that did not run: nothing kept, so the next run starts dbt again
            kept.append(KeptTest(model, model, "", version, digest, ""))
            kept += [KeptTest(t, model, nodes[t]["name"], version, digest, str(compiled[t])) for t in tests]
        keep_tests(con, SCHEMA, built, kept)

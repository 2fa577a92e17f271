"""The jobs as the tests run them: in process, and without the analytics step unless a test is about it (dbt's
process costs seconds a run). Imports no dlt: a run worker's own imports can be checked with it."""

from dagster import AssetCheckKey, AssetKey, DagsterInstance, ExecuteInProcessResult, JobDefinition

from sync_pipelines.definitions import defs

ANALYTICS = "analytics"  # the dbt models' key prefix (sync_pipelines.warehouse.analytics.SCHEMA)


def without_analytics(job: JobDefinition) -> JobDefinition:
    """The job's syncs, their checks and the read copy: the same steps, but no dbt models and no dbt tests."""
    data = job.asset_layer.data
    assets: set[AssetKey] = {key for d in data for key in d.assets_def.keys if key.path[0] != ANALYTICS}
    checks: set[AssetCheckKey] = {
        key for d in data for key in d.assets_def.check_keys if key.asset_key.path[0] != ANALYTICS
    }
    return job.get_subset(asset_selection=assets, asset_check_selection=checks)


def run_job(
    name: str,
    run_config: dict | None = None,
    raise_on_error: bool = True,
    instance: DagsterInstance | None = None,
    analytics: bool = False,
) -> ExecuteInProcessResult:
    """A job in process, as `dagster job execute` runs it; with its analytics step only if `analytics`."""
    job = defs.resolve_job_def(name)
    return (job if analytics else without_analytics(job)).execute_in_process(
        run_config=run_config, raise_on_error=raise_on_error, instance=instance
    )

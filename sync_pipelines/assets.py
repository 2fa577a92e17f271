"""One `@dlt_assets` per tenant and entity, materializing into DuckDB.

The source and pipeline given to `@dlt_assets` only describe the asset (they need no secret); each run builds
its own from the environment, so credentials and the warehouse path are read when the run starts.
"""

from collections.abc import Iterator
from typing import Any

import dlt
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    Failure,
    MaterializeResult,
    MetadataValue,
)
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from sync_pipelines.catalogue import TENANTS, Entity, Tenant
from sync_pipelines.settings import TenantSettings, check_warehouse_path, pipelines_dir, warehouse_path
from sync_pipelines.synchroteam.client import SynchroteamClient
from sync_pipelines.synchroteam.errors import SyncError, find_sync_error
from sync_pipelines.synchroteam.source import ExtractStats, SyncOptions, entity_source, pipeline_name
from sync_pipelines.warehouse import live_row_count

DUCKDB_POOL = "duckdb_writer"


class SynchroteamTranslator(DagsterDltTranslator):
    """Asset keys `<tenant>/<entity>`, grouped by tenant, with no upstream placeholder assets."""

    def __init__(self, tenant: Tenant, entity: Entity) -> None:
        self.tenant = tenant
        self.entity = entity

    def get_asset_spec(self, data: DltResourceTranslatorData) -> AssetSpec:
        return super().get_asset_spec(data).replace_attributes(
            key=AssetKey([self.tenant.name, self.entity.name]),
            deps=[],
            group_name=self.tenant.name,
            description=f"{self.entity.description} Tenant: {self.tenant.label}.",
            tags={"tenant": self.tenant.name},
        )


def build_pipeline(tenant: Tenant, entity: Entity) -> dlt.Pipeline:
    """The dlt pipeline of one entity, writing the warehouse named by `SYNC_DUCKDB_PATH`."""
    path = warehouse_path()
    return dlt.pipeline(
        pipeline_name=pipeline_name(tenant, entity),
        destination=dlt.destinations.duckdb(str(path)),
        dataset_name=tenant.name,
        pipelines_dir=str(pipelines_dir(path)),
    )


def build_entity_assets(tenant: Tenant, entity: Entity) -> AssetsDefinition:
    """The Dagster asset `<tenant>/<entity>`."""

    @dlt_assets(
        dlt_source=entity_source(tenant, entity, client=None),
        dlt_pipeline=build_pipeline(tenant, entity),
        name=pipeline_name(tenant, entity),
        dagster_dlt_translator=SynchroteamTranslator(tenant, entity),
        pool=DUCKDB_POOL,
    )
    def _sync(context: AssetExecutionContext, dlt: DagsterDltResource) -> Iterator[MaterializeResult]:
        yield from sync_entity(context, dlt, tenant, entity, SyncOptions.defaults(entity))

    return _sync


def sync_entity(
    context: AssetExecutionContext,
    dlt_resource: DagsterDltResource,
    tenant: Tenant,
    entity: Entity,
    options: SyncOptions,
) -> Iterator[MaterializeResult]:
    """Run one entity's sync and yield its materialization with the run's numbers as metadata."""
    try:
        settings = TenantSettings.from_env(tenant)
        check_warehouse_path(warehouse_path(), TENANTS)
    except SyncError as error:
        raise _failure(error, tenant) from None
    stats = ExtractStats()
    with SynchroteamClient(settings) as client:
        source = entity_source(tenant, entity, client, options, stats)
        pipeline = build_pipeline(tenant, entity)
        try:
            results = list(
                dlt_resource.run(context, dlt_source=source, dlt_pipeline=pipeline, loader_file_format="jsonl")
            )
        except Exception as exc:
            error = find_sync_error(exc)
            if error is None:
                raise
            raise _failure(error, tenant) from None
        extra = _run_metadata(client, stats, pipeline, tenant, entity)
    for result in results:
        yield MaterializeResult(asset_key=result.asset_key, metadata={**(result.metadata or {}), **extra})


def _run_metadata(
    client: SynchroteamClient, stats: ExtractStats, pipeline: dlt.Pipeline, tenant: Tenant, entity: Entity
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "records_fetched": MetadataValue.int(stats.records_fetched),
        "details_fetched": MetadataValue.int(stats.details_fetched),
        "details_missing": MetadataValue.int(len(stats.details_missing)),
        "api_requests": MetadataValue.int(client.stats.requests),
        "retries_429": MetadataValue.int(client.stats.retries_429),
        "retries_other": MetadataValue.int(client.stats.retries_other),
        "row_count": MetadataValue.int(live_row_count(pipeline, entity.name)),
    }
    if client.stats.quota_remaining is not None:
        metadata["quota_remaining"] = MetadataValue.int(client.stats.quota_remaining)
    if stats.window_start is not None:
        metadata["window_start"] = MetadataValue.timestamp(stats.window_start)
    return metadata


def _failure(error: SyncError, tenant: Tenant) -> Failure:
    """A Dagster failure carrying the error's category and action; never retried when not retryable."""
    return Failure(
        description=str(error),
        metadata={
            "category": error.category,
            "action": error.action,
            "retryable": error.retryable,
            "tenant": tenant.name,
        },
        allow_retries=error.retryable,
    )

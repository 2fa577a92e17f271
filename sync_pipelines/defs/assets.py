"""One dlt asset per tenant and entity (`sync_assets`: the asset dagster-dlt's `@dlt_assets` would make, tidied),
materializing into the warehouse.

The assets are described from the catalogue (`entity_spec`); what a step does when it runs is `sync_step`'s: it
builds its dlt source and pipeline from the environment when it has something to load, so credentials and the
warehouse path are read when the run starts, and a run that finds nothing builds no pipeline.
"""

from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    Config,
    DailyPartitionsDefinition,
    MaterializeResult,
    multi_asset,
)

from sync_pipelines.catalogue import Entity, Tenant, pipeline_name
from sync_pipelines.defs.checks import sync_check_specs
from sync_pipelines.defs.leases import RUN_LEASE
from sync_pipelines.defs.pools import writer_pool
from sync_pipelines.defs.run_config import Mode, SyncConfig, config_class
from sync_pipelines.defs.sync_step import sync_entity
from sync_pipelines.warehouse.settings import duckdb_selected

# Days are read in each tenant's own zone at run time; the partition key is just the day.
DAILY = DailyPartitionsDefinition(start_date="2025-01-01", end_offset=0)


class ReconciliationConfig(Config):
    """Run config of a daily reconciliation: the window is the partition (range) itself."""

    page_size: int = 100


def entity_spec(tenant: Tenant, entity: Entity, *, reconciliation: bool = False) -> AssetSpec:
    """The asset `<tenant>/<entity>` (or `<entity>_reconciliation`), grouped by tenant, with no upstream
    placeholder: the spec dagster-dlt's `build_dlt_asset_specs` makes of the entity's dlt resource and pipeline
    (kinds `dlt` and the destination's, its storage kind), with our key, group, description, tags and table
    name, less the dlt objects it keeps in the metadata (the UI shows them as "unserializable" rows). Built from
    the catalogue, not from dlt objects: the definitions import no dlt (`test_metadata` holds the two equal)."""
    name, description = entity.name, f"{entity.description} Tenant: {tenant.label}."
    if reconciliation:
        name = f"{name}_reconciliation"
        description = (
            f"Days of {tenant.name}.{entity.name} re-read and merged (one partition per day, in the tenant's time "
            f"zone); the incremental cursor is not moved."
        )
    destination = "duckdb" if duckdb_selected() else "postgres"  # a bad URL fails the run that needs it, not the load
    return AssetSpec(
        key=AssetKey([tenant.name, name]),
        deps=[],
        description=description,
        group_name=tenant.name,
        # the table as analysts name it (dlt's own prefixes the destination's type)
        metadata={"dagster/storage_kind": destination, "dagster/table_name": f"{tenant.name}.{entity.name}"},
        tags={"tenant": tenant.name},
        kinds={"dlt", destination},
    )


def sync_assets(
    tenant: Tenant, entity: Entity, *, name: str, partitions_def: DailyPartitionsDefinition | None = None
) -> Callable[[Callable[..., Any]], AssetsDefinition]:
    """`@dlt_assets`, less the dlt objects it keeps in the assets' metadata: each run builds its own source and
    pipeline and runs them (`pipeline.run_pipeline`). The spec (`entity_spec`), the kinds, the subsetting and a
    reconciliation's single-run backfills are as `@dlt_assets` makes them; an entity asset also carries its sync's
    checks."""
    reconciliation = partitions_def is not None
    return multi_asset(
        name=name,
        can_subset=True,
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.single_run() if partitions_def is not None else None,
        specs=[entity_spec(tenant, entity, reconciliation=reconciliation)],
        check_specs=[] if reconciliation else sync_check_specs(tenant, entity),
        pool=writer_pool(tenant),
        required_resource_keys={RUN_LEASE},
    )


def build_entity_assets(tenant: Tenant, entity: Entity) -> AssetsDefinition:
    """The Dagster asset `<tenant>/<entity>`, its run config typed by `config.config_class(entity)`."""
    entity_config = config_class(entity)

    @sync_assets(tenant, entity, name=pipeline_name(tenant, entity))
    def _sync(
        context: AssetExecutionContext,
        config: entity_config,  # type: ignore[valid-type]
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        given = _given_fields(context, pipeline_name(tenant, entity))
        yield from sync_entity(context, tenant, entity, config, given)

    return _sync


def _given_fields(context: AssetExecutionContext, op_name: str) -> set[str]:
    """The run-config fields the run's launcher set for this step; the rest took their defaults."""
    ops = cast(Mapping[str, Any], (context.run.run_config or {}).get("ops") or {})
    return set(((ops.get(op_name) or {}).get("config")) or {})


def build_reconciliation_assets(tenant: Tenant, entity: Entity) -> AssetsDefinition:
    """`<tenant>/<entity>_reconciliation`, one partition per day: re-reads that day's changes into the same
    table, through the same pipeline, without moving the incremental cursor. A range runs as one run."""

    @sync_assets(tenant, entity, name=f"{pipeline_name(tenant, entity)}_reconciliation", partitions_def=DAILY)
    def _reconcile(
        context: AssetExecutionContext, config: ReconciliationConfig
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        keys = context.partition_key_range
        window = SyncConfig(
            mode=Mode.reconcile, window_start=keys.start, window_end=keys.end, page_size=config.page_size
        )
        yield from sync_entity(context, tenant, entity, window)

    return _reconcile

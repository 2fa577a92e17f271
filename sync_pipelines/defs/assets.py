"""One dlt asset per tenant and entity, materialized by one step per tenant (`sync_assets`: the multi-asset
dagster-dlt's `@dlt_assets` would make of the tenant's dlt source, tidied), into the warehouse.

The assets are described from the catalogue (`entity_spec`); what a step does when it runs is `sync_step`'s: it
syncs the run's selection of the tenant's entities, builds its dlt source and pipeline from the environment when
it has something to load, so credentials and the warehouse path are read when the run starts, and a run that finds
nothing builds no pipeline.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
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
from sync_pipelines.defs.run_config import Mode, SyncConfig, tenant_config_class
from sync_pipelines.defs.sync_step import Chosen, sync_entities
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
    tenant: Tenant,
    entities: Sequence[Entity],
    *,
    name: str,
    partitions_def: DailyPartitionsDefinition | None = None,
) -> Callable[[Callable[..., Any]], AssetsDefinition]:
    """`@dlt_assets`, less the dlt objects it keeps in the assets' metadata: each run builds its own source and
    pipeline and runs them (`pipeline.run_pipeline`). The specs (`entity_spec`), the kinds, the subsetting and a
    reconciliation's single-run backfills are as `@dlt_assets` makes them; an entity asset also carries its sync's
    checks."""
    reconciliation = partitions_def is not None
    return multi_asset(
        name=name,
        can_subset=True,
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.single_run() if partitions_def is not None else None,
        specs=[entity_spec(tenant, entity, reconciliation=reconciliation) for entity in entities],
        check_specs=[]
        if reconciliation
        else [spec for entity in entities for spec in sync_check_specs(tenant, entity)],
        pool=writer_pool(tenant),
        required_resource_keys={RUN_LEASE},
    )


def build_tenant_assets(tenant: Tenant, entities: Sequence[Entity]) -> AssetsDefinition:
    """The Dagster assets `<tenant>/<entity>` of `entities`, synced by one step named after the tenant: a run
    syncs those it selected, in one dlt pipeline run. Its run config has one field per entity, typed by
    `run_config.config_class(entity)`: `ops.<tenant>.config.<entity>.<field>`."""
    tenant_config = tenant_config_class(tenant, tuple(entities))

    @sync_assets(tenant, entities, name=tenant.name)
    def _sync(
        context: AssetExecutionContext,
        config: tenant_config,  # type: ignore[valid-type]
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        given = _given_fields(context, tenant.name)
        selected = context.selected_asset_keys
        chosen = [
            Chosen(entity, key, getattr(config, entity.name), given.get(entity.name, ()))
            for entity in entities
            if (key := AssetKey([tenant.name, entity.name])) in selected
        ]
        yield from sync_entities(context, tenant, chosen)

    return _sync


def _given_fields(context: AssetExecutionContext, op_name: str) -> dict[str, set[str]]:
    """The run-config fields the run's launcher set for this step, by entity; the rest took their defaults."""
    ops = cast(Mapping[str, Any], (context.run.run_config or {}).get("ops") or {})
    given = cast(Mapping[str, Any], ((ops.get(op_name) or {}).get("config")) or {})
    return {entity: set(fields or {}) for entity, fields in given.items()}


def build_reconciliation_assets(tenant: Tenant, entity: Entity) -> AssetsDefinition:
    """`<tenant>/<entity>_reconciliation`, one partition per day: re-reads that day's changes into the same
    table, through the same pipeline, without moving the incremental cursor. A range runs as one run."""

    @sync_assets(tenant, [entity], name=f"{pipeline_name(tenant, entity)}_reconciliation", partitions_def=DAILY)
    def _reconcile(
        context: AssetExecutionContext, config: ReconciliationConfig
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        keys = context.partition_key_range
        window = SyncConfig(
            mode=Mode.reconcile, window_start=keys.start, window_end=keys.end, page_size=config.page_size
        )
        key = AssetKey([tenant.name, f"{entity.name}_reconciliation"])
        yield from sync_entities(context, tenant, [Chosen(entity, key, window)])

    return _reconcile

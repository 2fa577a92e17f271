"""One dlt asset per tenant and entity (`sync_assets`: the asset dagster-dlt's `@dlt_assets` would make, tidied),
materializing into the warehouse.

The assets are described from the catalogue (`entity_spec`); each run builds its dlt source and pipeline from the
environment when it has something to load, so credentials and the warehouse path are read when the run starts,
and a run that finds nothing imports no dlt.
"""

import os
from collections.abc import Callable, Collection, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import duckdb
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    Backoff,
    Config,
    DailyPartitionsDefinition,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    TableColumn,
    TableColumnConstraints,
    TableSchema,
    multi_asset,
)

from sync_pipelines.catalogue import COLUMN_DESCRIPTIONS, TENANTS, Entity, Tenant, pipeline_name
from sync_pipelines.defs.checks import sync_check_results, sync_check_specs
from sync_pipelines.defs.leases import RUN_LEASE
from sync_pipelines.defs.pools import writer_pool
from sync_pipelines.defs.read_copy import refresh_after_failure
from sync_pipelines.defs.run_config import Mode, SyncConfig, config_class, to_plan
from sync_pipelines.errors import (
    SyncError,
    WarehouseOutOfMemory,
    find_cause,
    find_sync_error,
)
from sync_pipelines.synchroteam.client import SynchroteamClient
from sync_pipelines.synchroteam.plan import SyncPlan
from sync_pipelines.synchroteam.quarantine import RESOLVED, Quarantine
from sync_pipelines.synchroteam.reader import EntityReader, ExtractStats, ReadAhead
from sync_pipelines.synchroteam.settings import TenantSettings
from sync_pipelines.warehouse.dialect import held_open
from sync_pipelines.warehouse.lock import step_turn
from sync_pipelines.warehouse.settings import (
    DuckDBWarehouse,
    Warehouse,
    check_warehouse_path,
    duckdb_selected,
    duckdb_settings,
    read_copy_group,
    warehouse,
)
from sync_pipelines.warehouse.state import stored_resource_state
from sync_pipelines.warehouse.tables import DELETED_AT, after_load, before_load

if TYPE_CHECKING:  # dlt is imported by a run that loads something, when it does (`_sync_entity`)
    import dlt
    from dlt.common.pipeline import LoadInfo

MAX_RETRIES = 2
QUARANTINE_RETENTION = timedelta(days=180)
DEFAULT_RETRY_DELAY_SECONDS = 30.0
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


def sync_entity(
    context: AssetExecutionContext,
    tenant: Tenant,
    entity: Entity,
    config: SyncConfig,
    given: Collection[str] = (),
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Run one entity's sync and yield its materialization with the run's numbers as metadata.

    Settings and the run config (`given`: the fields its launcher set) are checked before any request: the
    config becomes the run's plan once the tenant's time zone is known. A retryable failure (429s, 5xx, timeouts) is
    retried by the job's `retry_policy()`; any other fails once, saying what to do.

    On DuckDB, the read copy is the `warehouse/read_copy` asset downstream of every sync, refreshed once at the
    end of the run; a sync step that fails skips it, so that step refreshes the copy itself before failing, and the
    copy holds whatever the run loaded until then. PostgreSQL has no read copy: analysts read the database.
    """
    try:
        target = warehouse()  # before the turn: a bad SYNC_WAREHOUSE_URL fails before any connection
        with step_turn(context, target, tenant.name):
            try:
                with held_open(target):
                    results = _sync_entity(context, tenant, entity, config, given, target)
            except BaseException:
                refresh_after_failure(context, target)
                raise
    except SyncError as error:  # the warehouse's settings, or its turn: nothing was requested from the API
        raise _retry_or_fail(context, error, tenant) from None
    yield from results


def _sync_entity(
    context: AssetExecutionContext,
    tenant: Tenant,
    entity: Entity,
    config: SyncConfig,
    given: Collection[str],
    target: Warehouse,
) -> list[MaterializeResult | AssetCheckResult]:
    try:
        settings = TenantSettings.from_env(tenant)
        if isinstance(target, DuckDBWarehouse):
            check_warehouse_path(target.path, TENANTS)
            read_copy_group()  # a group that does not exist fails here, not after the load
        plan = to_plan(config, entity, settings.timezone, given=given)
        duckdb_config = duckdb_settings()
        before = before_load(target, tenant.name, entity.name, pipeline_name(tenant, entity))
    except SyncError as error:
        if error.retryable:
            raise _retry_or_fail(context, error, tenant) from None
        raise _failure(error, tenant) from None
    _tag_run(context, plan, None)
    started = datetime.now(UTC)
    quarantine = Quarantine(entity.name, context.run.run_id, started, before.quarantine)
    stats = ExtractStats()
    name = pipeline_name(tenant, entity)
    pipeline: dlt.Pipeline | None = None
    load_info: LoadInfo | None = None
    try:
        with SynchroteamClient.in_process(settings, logger=context.log) as client:
            try:
                # read before any pipeline exists: a run that finds nothing to load builds none (`ReadAhead`)
                state = stored_resource_state(before.stored_state, name, entity.name)
                reader = EntityReader(entity, client, plan, stats, quarantine, state, context.log)
                with ReadAhead(reader) as ahead:
                    if not ahead.nothing_to_load:
                        # dlt and the modules built on it are imported here, by a run that has something to load
                        from sync_pipelines.synchroteam.source import source_from
                        from sync_pipelines.warehouse.pipeline import build_pipeline, run_pipeline

                        pipeline = build_pipeline(tenant, entity, duckdb_config, target=target)
                        load_info = run_pipeline(
                            pipeline, source_from(tenant, entity, ahead), target, before.stored_state
                        )
            except Exception as exc:
                cause = find_sync_error(exc) or _out_of_memory(exc, duckdb_config)
                if cause is None:
                    raise
                raise _retry_or_fail(context, cause, tenant) from None
        if load_info is None:
            context.log.info(
                f"{tenant.name}/{entity.name}: nothing changed since the last run ({client.stats.requests} API "
                f"request{'s' if client.stats.requests != 1 else ''}); nothing to load."
            )
        try:
            # seen_ids: a complete full walk; what it no longer listed was deleted (nothing, if the table was empty)
            after = after_load(
                target,
                tenant.name,
                entity.name,
                stats.seen_ids if before.rows else None,
                started,
                plan.max_deleted_share,
                resolved_before=started - QUARANTINE_RETENTION,
                pipeline=name,
                run_id=context.run.run_id,
                stored_columns=pipeline is None,
            )
        except SyncError as error:
            raise _failure(error, tenant) from None
    finally:
        if stats.seen_ids is not None:
            stats.seen_ids.close()  # a full walk's ids, spilled to a temporary file beyond 100,000
    _tag_run(context, plan, stats)
    extra = _run_metadata(client, stats, before.rows, after.rows)
    extra.update(_quarantine_metadata(quarantine, after.deleted, after.live_rows))
    key = context.asset_key  # the step's one asset: the entity, or its reconciliation
    columns = after.columns if pipeline is None else pipeline.default_schema.tables.get(entity.name, {}).get("columns")
    metadata = materialization_metadata(extra, load_metadata(columns or {}, load_info), tenant, entity)
    return [
        # the table's content version: what runs downstream (the analytics) can tell an unchanged table by
        MaterializeResult(asset_key=key, metadata=metadata, data_version=DataVersion(after.content_version)),
        *sync_check_results(key, after, context.selected_asset_check_keys),
    ]


# What is kept of dagster-dlt's own metadata, after ours: the load's id and times (its `jobs` listing names load
# files on the machine that ran the load, and its table name the destination's type)
DLT_METADATA_KEPT = ("first_run", "started_at", "finished_at", "destination_type")


def materialization_metadata(
    ours: Mapping[str, Any], from_dlt: Mapping[str, Any], tenant: Tenant, entity: Entity
) -> dict[str, Any]:
    """A materialization's metadata: ours first, in `_run_metadata`'s order; then the table (`schema.table` and
    its columns, `_deleted_at` included, each described where the catalogue knows it); then what dlt says of the
    load, nothing that names a local path or an object."""
    columns = from_dlt.get("dagster/column_schema")
    schema = getattr(columns, "schema", columns)
    table: dict[str, Any] = {"dagster/table_name": MetadataValue.text(f"{tenant.name}.{entity.name}")}
    if isinstance(schema, TableSchema):
        table["dagster/column_schema"] = MetadataValue.table_schema(described_columns(schema))
    kept = {key: from_dlt[key] for key in DLT_METADATA_KEPT if key in from_dlt}
    return {**ours, **table, **kept}


def load_metadata(columns: Mapping[str, Mapping[str, Any]], load_info: "LoadInfo | None") -> dict[str, Any]:
    """What dlt says of the load, as dagster-dlt would put it: the table's `columns` from dlt's schema (the
    pipeline's, or the one stored in the warehouse when no pipeline was built), the load's first_run, start, end
    and destination type (none when nothing was extracted, hence nothing loaded)."""
    schema = TableSchema(
        columns=[
            TableColumn(
                name=name,
                type=column.get("data_type") or "string",
                constraints=TableColumnConstraints(nullable=column.get("nullable", True) is not False),
            )
            for name, column in columns.items()
        ]
    )
    if load_info is None:
        return {"dagster/column_schema": schema}
    return {
        "dagster/column_schema": schema,
        "first_run": load_info.first_run,
        "started_at": str(load_info.started_at),
        "finished_at": str(load_info.finished_at),
        "destination_type": load_info.destination_type,
    }


def described_columns(schema: TableSchema) -> TableSchema:
    """dlt's columns, `_deleted_at` added (the warehouse adds it after the load), each with its description."""
    columns = list(schema.columns)
    if DELETED_AT not in {c.name for c in columns}:
        columns.append(TableColumn(name=DELETED_AT, type="timestamp"))
    return TableSchema(
        columns=[
            TableColumn(
                name=c.name,
                type=c.type,
                description=c.description or COLUMN_DESCRIPTIONS.get(c.name),
                constraints=c.constraints,
                tags=c.tags,
            )
            for c in columns
        ]
    )


def _out_of_memory(exc: BaseException, duckdb_config: Mapping[str, Any]) -> WarehouseOutOfMemory | None:
    """DuckDB's out-of-memory error behind `exc` (dlt wraps it, and calls it transient: retrying cannot help),
    as a failure naming the settings to change."""
    cause = find_cause(exc, duckdb.OutOfMemoryException)
    if cause is None:
        return None
    return WarehouseOutOfMemory(
        f"DuckDB ran out of memory loading the warehouse ({str(cause).splitlines()[0][:200]}) with "
        f"SYNC_DUCKDB_MEMORY_LIMIT={duckdb_config['memory_limit']!r} and "
        f"SYNC_DUCKDB_THREADS={duckdb_config['threads']}."
    )


def retry_delay_seconds() -> float:
    """First wait before Dagster retries a transient failure (`SYNC_RETRY_DELAY_SECONDS`, default 30)."""
    return float(os.environ.get("SYNC_RETRY_DELAY_SECONDS", "") or DEFAULT_RETRY_DELAY_SECONDS)


def retry_policy() -> RetryPolicy:
    """Every sync job's: a transient failure (`Failure(allow_retries=True)`) runs the step again, up to
    MAX_RETRIES times, after `SYNC_RETRY_DELAY_SECONDS` then twice that (read when the code location loads)."""
    return RetryPolicy(max_retries=MAX_RETRIES, delay=retry_delay_seconds(), backoff=Backoff.LINEAR)


def _tag_run(context: AssetExecutionContext, plan: SyncPlan, stats: ExtractStats | None) -> None:
    """Run tags, filterable in the runs list: mode and cap when the run starts, the change window once known.

    Only runs of a single entity are tagged: in a run of several (sync_all), each materialization's metadata
    carries its own window, and shared run tags would only say which entity ran last.
    """
    if len(_synced_keys(context)) != 1:
        return
    if stats is None:
        tags = {"sync/mode": plan.mode, "sync/max_records": str(plan.max_records)}
        if plan.window_start is not None and plan.window_end is not None:  # reconcile: days, as configured
            tags["sync/window_start"] = plan.window_start.date().isoformat()
            tags["sync/window_end"] = (plan.window_end - timedelta(days=1)).date().isoformat()
    elif plan.mode == "incremental" and stats.window_start is not None:  # from the stored cursor
        tags = {"sync/window_start": stats.window_start.isoformat(timespec="minutes")}
    else:
        return
    context.instance.add_run_tags(context.run.run_id, tags)


def _synced_keys(context: AssetExecutionContext) -> Collection[AssetKey]:
    """The run's assets that sync an entity (`<tenant>/...`), not what sits downstream of them (the read copy)."""
    keys = context.run.asset_selection or context.job_def.asset_layer.executable_asset_keys
    return {key for key in keys if key.path[0] in TENANTS}


def _run_metadata(client: SynchroteamClient, stats: ExtractStats, rows_before: int, rows_after: int) -> dict:
    inserted = max(0, rows_after - rows_before)
    metadata: dict[str, Any] = {
        "fetched": MetadataValue.int(stats.records_fetched),
        "loaded": MetadataValue.int(stats.records_loaded),
        "inserted": MetadataValue.int(inserted),
        "updated": MetadataValue.int(max(0, stats.records_loaded - inserted)),
        "refetched": MetadataValue.int(stats.refetched),
        "details_fetched": MetadataValue.int(stats.details_fetched),
        "unchanged": MetadataValue.int(stats.unchanged),
        "retried": MetadataValue.int(stats.retried),
        "capped": MetadataValue.bool(stats.capped),
        "filtered_out": MetadataValue.int(stats.filtered_out),
        "filter_ignored": MetadataValue.bool(bool(stats.filters_ignored)),
        "api_requests": MetadataValue.int(client.stats.requests),
        "retries_429": MetadataValue.int(client.stats.retries_429),
        "retries_other": MetadataValue.int(client.stats.retries_other),
        "rate_limit_waits": MetadataValue.int(client.stats.rate_waits),
        "rate_limit_wait_seconds": MetadataValue.float(round(client.stats.rate_wait_seconds, 1)),
        "dagster/row_count": MetadataValue.int(rows_after),
    }
    if stats.filters_ignored:
        metadata["filters_ignored"] = MetadataValue.text(", ".join(stats.filters_ignored))
    if client.stats.paced_per_minute is not None:  # learned from 429s: the tenant's limit, as far as seen
        metadata["paced_per_minute"] = MetadataValue.float(client.stats.paced_per_minute)
    if client.stats.rate_limit is not None:  # X-RateLimit-Limit: requests per window
        metadata["rate_limit"] = MetadataValue.int(client.stats.rate_limit)
    if client.stats.quota_remaining is not None:
        metadata["quota_remaining"] = MetadataValue.int(client.stats.quota_remaining)
    if client.stats.quota_limit is not None:
        metadata["quota_limit"] = MetadataValue.int(client.stats.quota_limit)
    for name in ("window_start", "window_end", "cursor_before", "cursor_after"):
        moment = getattr(stats, name)
        if moment is not None:
            metadata[name] = MetadataValue.timestamp(moment)
    return metadata


def _quarantine_metadata(quarantine: Quarantine, deleted: int, live_rows: int) -> dict[str, Any]:
    by_reason = quarantine.counts()
    return {
        "rejected": MetadataValue.int(sum(by_reason.values())),
        "rejected_by_reason": MetadataValue.json(by_reason),
        "resolved": MetadataValue.int(sum(1 for r in quarantine.rows.values() if r["status"] == RESOLVED)),
        "deleted": MetadataValue.int(deleted),
        "live_row_count": MetadataValue.int(live_rows),
    }


def _retry_or_fail(context: AssetExecutionContext, error: SyncError, tenant: Tenant) -> Failure:
    """The step's failure, with its category and action: a retryable one is run again by the job's
    `retry_policy()` (past MAX_RETRIES it stays failed); any other never is."""
    if error.retryable and context.retry_number < MAX_RETRIES:
        context.log.warning(f"{error.category}: {error.args[0]} The job's retry policy runs the step again.")
    return _failure(error, tenant)


def _failure(error: SyncError, tenant: Tenant) -> Failure:
    """A Dagster failure carrying the error's category and action; retried by the job's policy only if the
    error is retryable."""
    return Failure(
        description=f"[{error.category}] {error}",
        metadata={
            "category": error.category,
            "action": error.action,
            "retryable": error.retryable,
            "tenant": tenant.name,
        },
        allow_retries=error.retryable,
    )

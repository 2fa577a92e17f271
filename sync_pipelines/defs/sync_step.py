"""One entity's sync step, in named phases: prepare (settings, plan and the warehouse's before, checked before any
request), read and load (dlt only when there is something to load), upkeep (deletions, quarantine, the status
table), report (the materialization and the sync's checks). And how a step fails: its category and action, and
whether the job's retry policy runs it again."""

import os
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import duckdb
from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    Backoff,
    DataVersion,
    Failure,
    MaterializeResult,
    RetryPolicy,
)

from sync_pipelines.catalogue import TENANTS, Entity, Tenant, pipeline_name, tenant_pipeline_name
from sync_pipelines.defs.check_results import planned_or_logged
from sync_pipelines.defs.checks import sync_check_results
from sync_pipelines.defs.read_copy import refresh_after_failure
from sync_pipelines.defs.run_config import EntityConfig, to_plan
from sync_pipelines.defs.step_metadata import (
    load_metadata,
    materialization_metadata,
    quarantine_metadata,
    run_metadata,
)
from sync_pipelines.errors import SyncError, WarehouseOutOfMemory, find_cause, find_sync_error
from sync_pipelines.synchroteam.client import SynchroteamClient
from sync_pipelines.synchroteam.plan import SyncPlan
from sync_pipelines.synchroteam.quarantine import Quarantine
from sync_pipelines.synchroteam.reader import EntityReader, ExtractStats, ReadAhead
from sync_pipelines.synchroteam.settings import TenantSettings
from sync_pipelines.warehouse.dialect import held_open
from sync_pipelines.warehouse.lock import step_turn
from sync_pipelines.warehouse.settings import (
    DuckDBWarehouse,
    Warehouse,
    check_warehouse_path,
    duckdb_settings,
    read_copy_group,
    warehouse,
)
from sync_pipelines.warehouse.state import stored_resource_state
from sync_pipelines.warehouse.tables import AfterLoad, BeforeLoad, after_load, before_load

if TYPE_CHECKING:  # dlt is imported by a run that loads something, when it does (`EntityStep.read_and_load`)
    import dlt
    from dlt.common.pipeline import LoadInfo

MAX_RETRIES = 2
QUARANTINE_RETENTION = timedelta(days=180)
DEFAULT_RETRY_DELAY_SECONDS = 30.0


def sync_entity(
    context: AssetExecutionContext,
    tenant: Tenant,
    entity: Entity,
    config: EntityConfig,
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
                    results = EntityStep.prepare(context, tenant, entity, config, given, target).run()
            except BaseException:
                refresh_after_failure(context, target)
                raise
    except SyncError as error:  # the warehouse's settings, or its turn: nothing was requested from the API
        raise _retry_or_fail(context, error, tenant) from None
    yield from planned_or_logged(context, results)


@dataclass
class EntityStep:
    """One run of one entity's step: what `prepare` checked and read, then what the phases found."""

    context: AssetExecutionContext
    tenant: Tenant
    entity: Entity
    target: Warehouse
    settings: TenantSettings
    plan: SyncPlan
    duckdb_config: dict[str, str | int]
    before: BeforeLoad
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    stats: ExtractStats = field(default_factory=ExtractStats)
    quarantine: Quarantine = field(init=False)
    pipeline: "dlt.Pipeline | None" = None
    load_info: "LoadInfo | None" = None

    def __post_init__(self) -> None:
        self.quarantine = Quarantine(self.entity.name, self.context.run.run_id, self.started, self.before.quarantine)

    @property
    def name(self) -> str:
        return pipeline_name(self.tenant, self.entity)

    def run(self) -> list[MaterializeResult | AssetCheckResult]:
        """The phases after `prepare`: read and load, upkeep, report; the run tagged before and after."""
        _tag_run(self.context, self.plan, None)
        try:
            with SynchroteamClient.in_process(self.settings, logger=self.context.log) as client:
                self.read_and_load(client)
            if self.load_info is None:
                requests = client.stats.requests
                self.context.log.info(
                    f"{self.tenant.name}/{self.entity.name}: nothing changed since the last run ({requests} API "
                    f"request{'s' if requests != 1 else ''}); nothing to load."
                )
            after = self.upkeep()
        finally:
            if self.stats.seen_ids is not None:
                self.stats.seen_ids.close()  # a full walk's ids, spilled to a temporary file beyond 100,000
        _tag_run(self.context, self.plan, self.stats)
        return self.report(client, after)

    @classmethod
    def prepare(
        cls,
        context: AssetExecutionContext,
        tenant: Tenant,
        entity: Entity,
        config: EntityConfig,
        given: Collection[str],
        target: Warehouse,
    ) -> "EntityStep":
        """Settings, the warehouse's folder and group, the run's plan and what the warehouse holds: all checked
        before any request, so bad settings or config fail the step having asked the API nothing."""
        try:
            settings = TenantSettings.from_env(tenant)
            if isinstance(target, DuckDBWarehouse):
                check_warehouse_path(target.path, TENANTS)
                read_copy_group()  # a group that does not exist fails here, not after the load
            plan = to_plan(config, entity, settings.timezone, given=given)
            duckdb_config = duckdb_settings()
            before = before_load(
                target, tenant.name, entity.name, tenant_pipeline_name(tenant), pipeline_name(tenant, entity)
            )
        except SyncError as error:
            if error.retryable:
                raise _retry_or_fail(context, error, tenant) from None
            raise _failure(error, tenant) from None
        return cls(context, tenant, entity, target, settings, plan, duckdb_config, before)

    def read_and_load(self, client: SynchroteamClient) -> None:
        """Read the entity from the API and load what changed. The reading starts before any pipeline exists:
        a run that finds nothing to load builds none (`ReadAhead`)."""
        try:
            state = stored_resource_state(
                self.before.stored_state,
                tenant_pipeline_name(self.tenant),
                self.entity.name,
                self.before.legacy_state,
                self.name,
            )
            reader = EntityReader(self.entity, client, self.plan, self.stats, self.quarantine, state, self.context.log)
            with ReadAhead(reader) as ahead:
                if ahead.nothing_to_load:
                    return
                from sync_pipelines.synchroteam.source import source_from
                from sync_pipelines.warehouse.pipeline import build_pipeline, run_pipeline

                self.pipeline = build_pipeline(self.tenant, self.duckdb_config, target=self.target)
                source = source_from(self.tenant, {self.entity: ahead})
                self.load_info = run_pipeline(self.pipeline, source, self.target, self.before.stored_state)
        except Exception as exc:
            cause = find_sync_error(exc) or _out_of_memory(exc, self.duckdb_config)
            if cause is None:
                raise
            raise _retry_or_fail(self.context, cause, self.tenant) from None

    def upkeep(self) -> AfterLoad:
        """After the load: deletions (a complete full walk's ids: what it no longer listed was deleted; nothing,
        if the table was empty), the quarantine's rows, the status table."""
        try:
            return after_load(
                self.target,
                self.tenant.name,
                self.entity.name,
                self.stats.seen_ids if self.before.rows else None,
                self.started,
                self.plan.max_deleted_share,
                resolved_before=self.started - QUARANTINE_RETENTION,
                pipeline=tenant_pipeline_name(self.tenant),
                run_id=self.context.run.run_id,
                stored_columns=self.pipeline is None,
                legacy_pipeline=self.name,
            )
        except SyncError as error:
            raise _failure(error, self.tenant) from None

    def report(self, client: SynchroteamClient, after: AfterLoad) -> list[MaterializeResult | AssetCheckResult]:
        """The step's materialization, the run's numbers as its metadata, and the sync's checks."""
        extra = run_metadata(client, self.stats, self.before.rows, after.rows)
        extra.update(quarantine_metadata(self.quarantine, after.deleted, after.live_rows))
        key = self.context.asset_key  # the step's one asset: the entity, or its reconciliation
        columns = (
            after.columns
            if self.pipeline is None
            else self.pipeline.default_schema.tables.get(self.entity.name, {}).get("columns")
        )
        metadata = materialization_metadata(
            extra, load_metadata(columns or {}, self.load_info), self.tenant, self.entity
        )
        return [
            # the table's content version: what runs downstream (the analytics) can tell an unchanged table by
            MaterializeResult(asset_key=key, metadata=metadata, data_version=DataVersion(after.content_version)),
            *sync_check_results(key, after, _defined_checks(self.context)),
        ]


def _defined_checks(context: AssetExecutionContext) -> set[AssetCheckKey]:
    """The checks the step's asset has, selected by the run or not (the sync jobs select none: `check_results`)."""
    return {spec.key for spec in context.assets_def.node_check_specs_by_output_name.values()}


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

"""Jobs and schedules: one job per entity and tenant on its own cadence, and a nightly reconciliation per tenant.

Throttling is layered: the run queue admits one run per tenant at a time (tag `synchroteam/tenant`, see
dagster.yaml), the `duckdb_writer` pool admits one writer, and a schedule tick skips (never stacks) while that
job's previous run is still queued or running.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from dagster import (
    AssetKey,
    AssetSelection,
    DagsterRunStatus,
    DefaultScheduleStatus,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    in_process_executor,
    schedule,
)

from sync_pipelines.catalogue import Entity, Tenant
from sync_pipelines.defs.analytics import analytics_downstream
from sync_pipelines.defs.checks import row_count_check_key, sync_selection
from sync_pipelines.defs.read_copy import with_read_copy

if TYPE_CHECKING:  # what define_asset_job returns; dagster does not export its class
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition as AssetJob


TENANT_TAG = "synchroteam/tenant"
ALL_TENANTS = "all"  # the tenant tag of the jobs that span tenants: a lane of their own in the run queue
MAX_RUNTIME_TAG = "dagster/max_runtime"
DAILY_HOUR = 5
ACTIVE = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


def entity_job_name(tenant: Tenant, entity: Entity) -> str:
    return f"sync_{tenant.name}__{entity.name}"


def max_runtime_seconds(entity: Entity) -> int:
    """A run longer than four cadences (at most 8 hours: a daily lookup reads in seconds) is stalled: run
    monitoring marks it failed and frees its slots."""
    return min(max(15, 4 * entity.cadence_minutes), 8 * 60) * 60


def cron_for(tenant: Tenant, entity: Entity) -> str:
    """Every `cadence_minutes`, at a minute offset of its own so entities and tenants do not fire together."""
    cadence = entity.cadence_minutes
    offset = (tenant.schedule_offset_minutes + entity.schedule_minute) % min(cadence, 60)
    if cadence >= 24 * 60:  # daily (cron's */24 would not say so): after the nightly reconciliations and counts
        return f"{offset} {DAILY_HOUR} * * *"
    if cadence < 60:
        return f"{offset}-59/{cadence} * * * *"
    return f"{offset} */{cadence // 60} * * *" if cadence > 60 else f"{offset} * * * *"


def with_analytics(selection: AssetSelection, pairs: list[tuple[Tenant, Entity]]) -> AssetSelection:
    """A sync's selection, plus the analytics models over its entities' tables and their dbt tests."""
    return selection | analytics_downstream([AssetKey([tenant.name, entity.name]) for tenant, entity in pairs])


def entity_job(tenant: Tenant, entity: Entity) -> AssetJob:
    return define_asset_job(
        entity_job_name(tenant, entity),
        selection=with_read_copy(with_analytics(sync_selection([(tenant, entity)]), [(tenant, entity)])),
        executor_def=in_process_executor,
        tags={TENANT_TAG: tenant.name, MAX_RUNTIME_TAG: str(max_runtime_seconds(entity))},
        description=f"{tenant.label}: {entity.name}, incremental, with the entity's default run config.",
    )


def sync_all_job(pairs: list[tuple[Tenant, Entity]]) -> AssetJob:
    """Every entity of every tenant in one run, one step at a time (DuckDB takes a single writer). Its own lane in
    the run queue (`synchroteam/tenant: all`), bounded by what its entities' own jobs may take one after the
    other."""
    return define_asset_job(
        "sync_all",
        selection=with_read_copy(with_analytics(sync_selection(pairs), pairs)),
        executor_def=in_process_executor,
        tags={TENANT_TAG: ALL_TENANTS, MAX_RUNTIME_TAG: str(sum(max_runtime_seconds(e) for _, e in pairs))},
        description="Every entity of every tenant, incrementally, into the warehouse.",
    )


def reconcile_job(tenant: Tenant, entities: list[Entity]) -> AssetJob:
    """The tenant's reconciliations of `entities` (those it syncs), less the lookups, which have no dates."""
    keys = [AssetKey([tenant.name, f"{entity.name}_reconciliation"]) for entity in entities if entity.dated]
    return define_asset_job(
        f"reconcile_{tenant.name}",
        selection=with_read_copy(AssetSelection.assets(*keys)),
        executor_def=in_process_executor,
        tags={TENANT_TAG: tenant.name, MAX_RUNTIME_TAG: str(6 * 3600)},
        description=f"{tenant.label}: re-read one day's (or a range's) changes of every entity; cursors untouched.",
    )


def row_counts_job(pairs: list[tuple[Tenant, Entity]]) -> AssetJob:
    """Every entity's `row_count_matches_api` check: one request of page size 1 each, no sync."""
    return define_asset_job(
        "check_row_counts",
        selection=AssetSelection.checks(*(row_count_check_key(tenant, entity) for tenant, entity in pairs)),
        executor_def=in_process_executor,
        tags={TENANT_TAG: ALL_TENANTS, MAX_RUNTIME_TAG: str(15 * 60)},
        description="Compare every entity's live rows with the API's recordsTotal (one request per entity).",
    )


def row_counts_schedule(job: AssetJob) -> ScheduleDefinition:
    return ScheduleDefinition(
        name=f"{job.name}_daily",
        job=job,
        cron_schedule="15 4 * * *",
        default_status=DefaultScheduleStatus.STOPPED,
        description="Compare row counts with the API every day at 04:15, after the nightly reconciliations.",
    )


def _previous_run_active(context: ScheduleEvaluationContext, job_name: str) -> bool:
    runs = context.instance.get_run_records(filters=RunsFilter(job_name=job_name, statuses=ACTIVE), limit=1)
    return bool(runs)


def entity_schedule(tenant: Tenant, entity: Entity, job: AssetJob) -> ScheduleDefinition:
    @schedule(
        name=f"{job.name}_schedule",
        job=job,
        cron_schedule=cron_for(tenant, entity),
        default_status=DefaultScheduleStatus.STOPPED,
        description=f"{tenant.label} {entity.name} every {entity.cadence_minutes} min; skips while the previous "
        f"run is queued or running.",
    )
    def _tick(context: ScheduleEvaluationContext):
        if _previous_run_active(context, job.name):
            return SkipReason(f"{job.name}: the previous run is still queued or running; not stacking another.")
        return RunRequest(tags={"sync/trigger": "schedule"})

    return _tick


def reconcile_schedule(tenant: Tenant, job: AssetJob) -> ScheduleDefinition:
    @schedule(
        name=f"{job.name}_nightly",
        job=job,
        cron_schedule=f"{30 + tenant.schedule_offset_minutes} 2 * * *",
        default_status=DefaultScheduleStatus.STOPPED,
        description=f"{tenant.label}: reconcile yesterday's changes every night (02:30 plus the tenant's offset).",
    )
    def _nightly(context: ScheduleEvaluationContext):
        if _previous_run_active(context, job.name):
            return SkipReason(f"{job.name}: the previous reconciliation is still queued or running.")
        tick: datetime = context.scheduled_execution_time
        yesterday = (tick - timedelta(days=1)).strftime("%Y-%m-%d")
        return RunRequest(run_key=yesterday, partition_key=yesterday, tags={"sync/trigger": "nightly"})

    return _nightly

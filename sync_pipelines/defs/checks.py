"""Asset checks per entity, shown in the UI after every run.

- `no_duplicate_ids` (error): an id twice in the table;
- `rejected_records` (warning): records this run quarantined, counted by reason;
  both evaluated by the sync's own step, after its load (`sync_check_specs`, `sync_check_results`);
- `row_count_matches_api` (warning): the API's `recordsTotal` against the live rows (one request, pageSize 1),
  not run by the sync jobs (a request per sync is quota) but by the `check_row_counts` job, daily;
- freshness (warning): the last successful sync is not older than FRESHNESS_CADENCES of the entity's cadence,
  evaluated by the `freshness_checks_sensor` from the entity's first sync on.
"""

import warnings
from collections.abc import Collection, Sequence
from datetime import timedelta

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetSelection,
    DagsterInstance,
    DefaultSensorStatus,
    MetadataValue,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    SupersessionWarning,
    asset_check,
    build_last_update_freshness_checks,
    build_sensor_for_freshness_checks,
    sensor,
)

from sync_pipelines.catalogue import Entity, Tenant
from sync_pipelines.defs.leases import RUN_LEASE
from sync_pipelines.defs.pools import writer_pool
from sync_pipelines.synchroteam.client import SynchroteamClient
from sync_pipelines.synchroteam.settings import TenantSettings
from sync_pipelines.warehouse.lock import step_turn
from sync_pipelines.warehouse.settings import warehouse
from sync_pipelines.warehouse.tables import AfterLoad, count_rows

FRESHNESS_CADENCES = 3
ROW_COUNT_CHECK = "row_count_matches_api"
# What a sync job checks after its sync: the row count costs a request (daily job `check_row_counts`), and
# freshness right after a sync says nothing new (its sensor evaluates it between syncs).
NO_DUPLICATE_IDS = "no_duplicate_ids"
REJECTED_RECORDS = "rejected_records"
SYNC_CHECKS = (NO_DUPLICATE_IDS, REJECTED_RECORDS)


def row_count_check_key(tenant: Tenant, entity: Entity) -> AssetCheckKey:
    return AssetCheckKey(AssetKey([tenant.name, entity.name]), ROW_COUNT_CHECK)


def sync_selection(pairs: Sequence[tuple[Tenant, Entity]]) -> AssetSelection:
    """The entity assets of `pairs`, without their checks: the sync step evaluates its SYNC_CHECKS outside the
    run's plan (`check_results`), and the row count costs a request."""
    return AssetSelection.assets(*(AssetKey([tenant.name, entity.name]) for tenant, entity in pairs)).without_checks()


def sync_check_specs(tenant: Tenant, entity: Entity) -> list[AssetCheckSpec]:
    """The checks a sync evaluates in its own step, from what its upkeep reads anyway (`tables.after_load`): no
    step of their own, no connection of their own."""
    key = AssetKey([tenant.name, entity.name])
    return [
        AssetCheckSpec(NO_DUPLICATE_IDS, asset=key, description="Every id appears once in the table."),
        AssetCheckSpec(
            REJECTED_RECORDS,
            asset=key,
            description="Records this run could not load, quarantined in _rejected_records, by reason.",
        ),
    ]


def sync_check_results(key: AssetKey, after: AfterLoad, defined: Collection[AssetCheckKey]) -> list[AssetCheckResult]:
    """The results of `sync_check_specs` for the asset `key`, those of them the asset has (a reconciliation has
    none)."""
    results = [
        AssetCheckResult(
            asset_key=key,
            check_name=NO_DUPLICATE_IDS,
            passed=not after.duplicate_ids,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "duplicate_ids": len(after.duplicate_ids),
                "examples": MetadataValue.json(after.duplicate_ids[:10]),
            },
        ),
        AssetCheckResult(
            asset_key=key,
            check_name=REJECTED_RECORDS,
            passed=not after.rejected,
            severity=AssetCheckSeverity.WARN,
            metadata={
                "rejected": sum(after.rejected.values()),
                **{f"reason_{reason}": count for reason, count in sorted(after.rejected.items())},
            },
        ),
    ]
    return [result for result in results if AssetCheckKey(key, result.check_name or "") in defined]


def entity_checks(tenant: Tenant, entity: Entity) -> list[AssetChecksDefinition]:
    """The entity's checks that have a step of their own: the row count against the API (daily job)."""
    key = AssetKey([tenant.name, entity.name])
    schema, table = tenant.name, entity.name

    @asset_check(
        asset=key,
        name=ROW_COUNT_CHECK,
        pool=writer_pool(tenant),
        required_resource_keys={RUN_LEASE},
        description="The API's recordsTotal equals the warehouse's live rows (one request); run daily by "
        "the check_row_counts job, not by the syncs.",
    )
    def row_count_matches_api(context: AssetCheckExecutionContext) -> AssetCheckResult:
        settings = TenantSettings.from_env(tenant)
        with SynchroteamClient.in_process(settings, logger=context.log) as client:
            api_total = client.records_total(entity.resource)
        target = warehouse()
        with step_turn(context, target, schema):
            live = count_rows(target, schema, table, live=True)
        return AssetCheckResult(
            passed=api_total == live,
            severity=AssetCheckSeverity.WARN,
            metadata={"api_records_total": api_total, "warehouse_live_rows": live, "difference": live - api_total},
        )

    return [row_count_matches_api]


# Dagster now suggests FreshnessPolicy for freshness; we keep freshness as an asset check on purpose, beside
# the entity's other checks (one place to look after a run), so the supersession notice is silenced here only.
def freshness_checks(pairs: Sequence[tuple[Tenant, Entity]]) -> list[AssetChecksDefinition]:
    checks: list[AssetChecksDefinition] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SupersessionWarning)
        for tenant, entity in pairs:
            checks.extend(
                build_last_update_freshness_checks(
                    assets=[AssetKey([tenant.name, entity.name])],
                    lower_bound_delta=timedelta(minutes=FRESHNESS_CADENCES * entity.cadence_minutes),
                )
            )
    return checks


def freshness_sensor(checks: Sequence[AssetChecksDefinition]) -> SensorDefinition:
    """Evaluates the freshness checks, on by default (it reads Dagster's own records, never the API): Dagster's
    sensor for them, less the checks of entities never loaded. Dagster's would evaluate those at once and fail them
    ("Asset has never been observed/materialized") while their first sync is still running; they are evaluated
    after their first materialization instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SupersessionWarning)
        dagsters = build_sensor_for_freshness_checks(freshness_checks=checks)

    @sensor(
        name=dagsters.name,
        asset_selection=AssetSelection.checks(*checks),
        default_status=DefaultSensorStatus.RUNNING,
        description="Evaluates each entity's freshness check when it can be overdue, from its first sync on.",
    )
    def freshness_checks_sensor(context: SensorEvaluationContext) -> RunRequest | SkipReason | None:
        wanted = dagsters(context)
        if not isinstance(wanted, RunRequest):  # Dagster's sensor skips, saying why
            return wanted if isinstance(wanted, SkipReason) else None
        keys = [key for key in wanted.asset_check_keys or () if _loaded(context.instance, key.asset_key)]
        if not keys:
            return SkipReason(
                "The freshness checks due are of entities not loaded yet: checked after their first sync."
            )
        return RunRequest(asset_check_keys=keys, tags=wanted.tags)

    return freshness_checks_sensor


def _loaded(instance: DagsterInstance, key: AssetKey) -> bool:
    return instance.get_latest_materialization_event(key) is not None

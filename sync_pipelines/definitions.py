"""The Dagster code location: assembles assets, jobs and schedules from the catalogue; computes nothing."""

from dagster import Definitions

from sync_pipelines.catalogue import TENANTS, chosen_pairs
from sync_pipelines.defs.analytics import build_analytics_assets, dbt_resource
from sync_pipelines.defs.assets import build_reconciliation_assets, build_tenant_assets
from sync_pipelines.defs.checks import (
    entity_checks,
    freshness_checks,
    freshness_sensor,
)
from sync_pipelines.defs.leases import RUN_LEASE, RunLease
from sync_pipelines.defs.quarantine_jobs import (
    export_rejected_records_job,
    retry_rejected_job,
)
from sync_pipelines.defs.read_copy import read_copy_assets
from sync_pipelines.defs.schedules import (
    entity_job,
    entity_schedule,
    reconcile_job,
    reconcile_schedule,
    row_counts_job,
    row_counts_schedule,
    sync_all_job,
)

pairs = chosen_pairs()  # each tenant's <PREFIX>ENTITIES, or every entity the catalogue offers it
entity_assets = [  # one step per tenant, syncing the entities a run selects
    build_tenant_assets(tenant, entities)
    for tenant in TENANTS.values()
    if (entities := [e for t, e in pairs if t == tenant])
]
reconciliation_assets = [build_reconciliation_assets(tenant, entity) for tenant, entity in pairs if entity.dated]
analytics_assets = build_analytics_assets()

sync_all = sync_all_job(pairs)
fresh_checks = freshness_checks(pairs)
entity_jobs = {pair: entity_job(*pair) for pair in pairs}
reconcile_jobs = {  # the tenants with something to reconcile: entities with dates
    tenant: reconcile_job(tenant, [e for t, e in pairs if t == tenant])
    for tenant in TENANTS.values()
    if any(t == tenant and e.dated for t, e in pairs)
}
check_row_counts = row_counts_job(pairs)

defs = Definitions(
    assets=[
        *entity_assets,
        *reconciliation_assets,
        analytics_assets,
        *read_copy_assets([*entity_assets, *reconciliation_assets]),
    ],
    asset_checks=[*(check for pair in pairs for check in entity_checks(*pair)), *fresh_checks],
    sensors=[freshness_sensor(fresh_checks)],
    jobs=[
        sync_all,
        *entity_jobs.values(),
        *reconcile_jobs.values(),
        check_row_counts,
        retry_rejected_job(entity_assets),
        export_rejected_records_job,
    ],
    schedules=[
        *(entity_schedule(tenant, entity, job) for (tenant, entity), job in entity_jobs.items()),
        *(reconcile_schedule(tenant, job) for tenant, job in reconcile_jobs.items()),
        row_counts_schedule(check_row_counts),
    ],
    resources={"dbt": dbt_resource(), RUN_LEASE: RunLease()},
)

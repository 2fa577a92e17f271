"""The Dagster code location: assembles assets and jobs from the catalogue; computes nothing."""

from dagster import AssetSelection, Definitions, define_asset_job, in_process_executor
from dagster_dlt import DagsterDltResource

from sync_pipelines.assets import build_entity_assets
from sync_pipelines.catalogue import TENANTS, tenant_entities

entity_assets = [build_entity_assets(tenant, entity) for tenant in TENANTS.values() for entity in tenant_entities(tenant)]

# One process, one step at a time: DuckDB takes a single writer, and the API work is per tenant anyway.
sync_all = define_asset_job(
    "sync_all",
    selection=AssetSelection.assets(*entity_assets),
    executor_def=in_process_executor,
    description="Every entity of every tenant, incrementally, into DuckDB.",
)

defs = Definitions(
    assets=entity_assets,
    jobs=[sync_all],
    resources={"dlt": DagsterDltResource()},
)

"""Jobs for the people who fix records: re-read the quarantine, and export it as CSV."""

from pathlib import Path
from typing import TYPE_CHECKING

from dagster import (
    AssetsDefinition,
    AssetSelection,
    MetadataValue,
    OpExecutionContext,
    Output,
    define_asset_job,
    in_process_executor,
    job,
    op,
)

from sync_pipelines.catalogue import TENANTS
from sync_pipelines.defs.leases import RUN_LEASE
from sync_pipelines.defs.pools import writer_pool
from sync_pipelines.defs.read_copy import with_read_copy
from sync_pipelines.defs.schedules import ALL_TENANTS, MAX_RUNTIME_TAG, TENANT_TAG
from sync_pipelines.warehouse.lock import step_turn
from sync_pipelines.warehouse.settings import rejected_folder, warehouse
from sync_pipelines.warehouse.tables import export_rejected

if TYPE_CHECKING:  # what define_asset_job returns; dagster does not export its class
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition as AssetJob


def retry_rejected_job(entity_assets: list[AssetsDefinition]) -> "AssetJob":
    """Every entity asset in `retry_rejected` mode: quarantined records (unresolved ones too) re-read by id."""
    ops = {  # each tenant's step: every entity of it (`ops.<tenant>.config.<entity>`)
        assets_def.op.name: {"config": {key.path[-1]: {"mode": "retry_rejected"} for key in assets_def.keys}}
        for assets_def in entity_assets
    }
    keys = [key for assets_def in entity_assets for key in assets_def.keys]  # their checks: outside the plan
    return define_asset_job(
        "retry_rejected_records",
        selection=with_read_copy(AssetSelection.assets(*keys).without_checks()),
        executor_def=in_process_executor,
        config={"ops": ops},
        tags={TENANT_TAG: ALL_TENANTS, MAX_RUNTIME_TAG: str(6 * 3600)},
        description="Re-read every quarantined record by id; those that load now leave the quarantine.",
    )


@op(
    pool=writer_pool(None),
    required_resource_keys={RUN_LEASE},
    description="One CSV per entity and reason of the records still in quarantine.",
)
def write_rejected_csv(context: OpExecutionContext):
    target = warehouse()
    files: list[Path] = []
    for tenant in TENANTS.values():
        folder = rejected_folder(target) / tenant.name
        with step_turn(context, target, tenant.name):
            for stale in folder.glob("*.csv"):
                stale.unlink()  # a reason with nothing left in quarantine has no file
            files.extend(export_rejected(target, tenant.name, folder))
    context.log.info(f"Wrote {len(files)} CSV files under {rejected_folder(target)}")
    yield Output(
        None,
        metadata={
            "files": MetadataValue.json([str(f) for f in files]),
            "file_count": len(files),
            **{f"{f.parent.name}/{f.stem}": MetadataValue.path(str(f)) for f in files},
        },
    )


@job(
    name="export_rejected_records",
    executor_def=in_process_executor,
    tags={TENANT_TAG: ALL_TENANTS, MAX_RUNTIME_TAG: str(15 * 60)},
    description="Export the quarantine as CSV, one file per entity and reason.",
)
def export_rejected_records_job():
    write_rejected_csv()

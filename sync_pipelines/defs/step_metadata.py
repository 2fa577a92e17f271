"""What a sync step's materialization says: the run's numbers (ours), the table and its described columns, and
what dlt says of the load, nothing that names a local path or an object."""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dagster import MetadataValue, TableColumn, TableColumnConstraints, TableSchema

from sync_pipelines.catalogue import COLUMN_DESCRIPTIONS, Entity, Tenant
from sync_pipelines.synchroteam.client import SynchroteamClient
from sync_pipelines.synchroteam.quarantine import RESOLVED, Quarantine
from sync_pipelines.synchroteam.reader import ExtractStats
from sync_pipelines.warehouse.tables import DELETED_AT

if TYPE_CHECKING:  # dlt is imported by a run that loads something, when it does
    from dlt.common.pipeline import LoadInfo

# What is kept of dagster-dlt's own metadata, after ours: the load's id and times (its `jobs` listing names load
# files on the machine that ran the load, and its table name the destination's type)
DLT_METADATA_KEPT = ("first_run", "started_at", "finished_at", "destination_type")


def materialization_metadata(
    ours: Mapping[str, Any], from_dlt: Mapping[str, Any], tenant: Tenant, entity: Entity
) -> dict[str, Any]:
    """A materialization's metadata: ours first, in `run_metadata`'s order; then the table (`schema.table` and
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


def run_metadata(client: SynchroteamClient, stats: ExtractStats, rows_before: int, rows_after: int) -> dict:
    """The run's numbers: records fetched, loaded, inserted, updated and re-fetched, the API's requests, retries, waits
    and quota, the change window and the cursor."""
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


def quarantine_metadata(quarantine: Quarantine, deleted: int, live_rows: int) -> dict[str, Any]:
    """The quarantine after the run: rejected records by reason, those resolved, and the rows marked deleted."""
    by_reason = quarantine.counts()
    return {
        "rejected": MetadataValue.int(sum(by_reason.values())),
        "rejected_by_reason": MetadataValue.json(by_reason),
        "resolved": MetadataValue.int(sum(1 for r in quarantine.rows.values() if r["status"] == RESOLVED)),
        "deleted": MetadataValue.int(deleted),
        "live_row_count": MetadataValue.int(live_rows),
    }

"""The analysts' read copy of a DuckDB warehouse as an asset, `warehouse/read_copy`, downstream of every table
the syncs write: the jobs that load select it too, so it is refreshed once, at the end of each run, and its
materializations in the UI say when analysts last got new data.

The analytics views are in the copy too, but the asset does not depend on them: a run whose loads changed nothing
builds no model, and Dagster would skip every step downstream of one that yields nothing. The step runs after the
analytics step all the same: both wait for the same loads, and the read copy's priority is the lower (`LAST`),
which Dagster's executors follow among the steps ready to start (and the warehouse's pool admits one at a time).

PostgreSQL has no read copy (analysts read the database): there, the code location has no such asset.
"""

import time
from collections.abc import Iterator, Sequence

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    MaterializeResult,
    MetadataValue,
    asset,
)

from sync_pipelines.defs.leases import RUN_LEASE
from sync_pipelines.defs.pools import DUCKDB_POOL
from sync_pipelines.defs.retries import retried
from sync_pipelines.warehouse.lock import step_turn
from sync_pipelines.warehouse.read_copy import refresh_read_copy
from sync_pipelines.warehouse.settings import DuckDBWarehouse, Warehouse, duckdb_selected, read_copy_path, warehouse

READ_COPY_KEY = AssetKey(["warehouse", "read_copy"])
LAST = {"dagster/priority": "-1"}  # after every other step ready at the same time: the analytics step


def refresh_after_failure(context: AssetExecutionContext, target: Warehouse) -> None:
    """Called by a step that fails in the warehouse's turn: Dagster skips `warehouse/read_copy` downstream of it,
    so whatever the run loaded reaches the read copy here, if it is not current. A failure to copy must not hide
    the step's own error, so it is only logged."""
    if not isinstance(target, DuckDBWarehouse):
        return
    why = "with what the run loaded before this step failed"
    try:
        if refresh_read_copy(target.path):
            context.log.info(f"Read copy refreshed {why}.")
    except Exception as exc:  # e.g. the warehouse held by another process: the next run refreshes it
        context.log.warning(f"Read copy not refreshed {why}: {exc}")


def with_read_copy(selection: AssetSelection) -> AssetSelection:
    """A loading job's selection, plus the read copy on DuckDB (refreshed at the end of its runs)."""
    return selection | AssetSelection.assets(READ_COPY_KEY) if duckdb_selected() else selection


def read_copy_assets(upstream: Sequence[AssetsDefinition]) -> list[AssetsDefinition]:
    """The read copy asset on DuckDB; none on PostgreSQL."""
    return [build_read_copy_asset(upstream)] if duckdb_selected() else []


def build_read_copy_asset(upstream: Sequence[AssetsDefinition]) -> AssetsDefinition:
    """`warehouse/read_copy`, downstream of every asset in `upstream` (their tables are what it copies), and run
    after the analytics step in the jobs that have both (`LAST`)."""

    @asset(
        key=READ_COPY_KEY,
        deps=[key for assets_def in upstream for key in assets_def.keys],
        group_name="warehouse",
        kinds={"duckdb"},
        pool=DUCKDB_POOL,
        required_resource_keys={RUN_LEASE},
        output_required=False,
        op_tags=LAST,
        description="What analysts open: a copy of the DuckDB warehouse (`<stem>_read.duckdb` beside it), "
        "replaced atomically at the end of every run that changed the warehouse, so readers never hold the file "
        "a sync writes. A run whose sync failed skips it; the failing step publishes what the run had loaded.",
    )
    def read_copy(context: AssetExecutionContext) -> Iterator[MaterializeResult]:
        with retried(context):
            yield from _refresh(context)

    return read_copy


def _refresh(context: AssetExecutionContext) -> Iterator[MaterializeResult]:
    """The read copy step's body: refresh the copy in the warehouse's turn, if it is not current."""
    target = warehouse()
    if not isinstance(target, DuckDBWarehouse):  # the code location loaded before SYNC_WAREHOUSE_URL was set
        context.log.info("No read copy: the warehouse is PostgreSQL, which analysts read directly.")
        return
    started = time.monotonic()
    with step_turn(context, target, "*"):
        replaced = refresh_read_copy(target.path)
    if not replaced:  # no new data for analysts: no materialization
        context.log.debug("Read copy already current: the run changed nothing.")
        return
    context.log.info("Read copy refreshed.")
    path = read_copy_path(target.path)
    yield MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(path)),
            "size_mb": round(path.stat().st_size / 2**20, 1) if path.exists() else 0.0,
            "seconds": round(time.monotonic() - started, 2),
        }
    )

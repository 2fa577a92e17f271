"""The dlt pipeline of one tenant: its destination (the DuckDB file or the PostgreSQL database) and its working
folder."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from typing import Any

import dlt
from dlt.common.destination import TLoaderFileFormat
from dlt.common.pipeline import LoadInfo

from sync_pipelines.catalogue import Tenant, tenant_pipeline_name
from sync_pipelines.warehouse.settings import (
    DuckDBWarehouse,
    Warehouse,
    warehouse,
    working_folder,
)
from sync_pipelines.warehouse.tables import StoredState

BUFFER_MAX_ITEMS = 1_000  # records of a table dlt holds before writing them (see `build_pipeline`)


def build_pipeline(
    tenant: Tenant,
    duckdb_config: Mapping[str, Any] | None = None,
    *,
    target: Warehouse | None = None,
) -> dlt.Pipeline:
    """The dlt pipeline of `tenant`'s entities, writing the warehouse (`SYNC_WAREHOUSE_URL`, else `SYNC_DUCKDB_PATH`).

    `duckdb_config` (`settings.duckdb_settings()`) bounds DuckDB's memory and threads during the load. Load
    files are copied one at a time: each copy's JSON reader takes 32 MB a thread, so copying a parent table and
    its child tables at once would not fit in a bounded memory_limit (DuckDB takes one writer anyway).

    `target`: the warehouse, when the caller has read it already (default: `settings.warehouse()`).
    """
    # dlt's intermediate and load files uncompressed: gzip was the largest single cost of a first load's Python
    # work (BENCHMARKS.md), and the files live only until their load
    dlt.config["data_writer.disable_compression"] = True
    # records dlt holds per table before writing them to its file (dlt's default 5,000): fewer keep a first load's
    # peak lower, no slower (BENCHMARKS.md); `DATA_WRITER__BUFFER_MAX_ITEMS` still decides
    dlt.config["data_writer.buffer_max_items"] = BUFFER_MAX_ITEMS
    target = target or warehouse()
    return dlt.pipeline(
        pipeline_name=tenant_pipeline_name(tenant),
        destination=destination(target, duckdb_config),
        dataset_name=tenant.name,
        pipelines_dir=str(working_folder(target)),
    )


def destination(target: Warehouse, duckdb_config: Mapping[str, Any] | None = None) -> Any:
    """dlt's destination for the warehouse. On PostgreSQL, dlt merges each table chain in one transaction:
    readers see a load entirely or not at all."""
    if isinstance(target, DuckDBWarehouse):
        credentials = {"database": str(target.path), "global_config": dict(duckdb_config or {})}
        return _partial_configuration_once(
            dlt.destinations.duckdb(credentials, loader_parallelism_strategy="sequential")
        )
    return _partial_configuration_once(dlt.destinations.postgres(target.credentials()))


def _partial_configuration_once(factory: Any) -> Any:
    """`factory`, its partial configuration resolved once: dlt asks the destination for its capabilities about
    nine times in a load, and each time resolves its configuration anew from every provider (environment, config
    files), a quarter of a small load's time. The factory lives for one pipeline run, whose configuration does
    not change; the full configuration, with the credentials, is still resolved wherever dlt asks for it."""
    resolve = factory.configuration
    partial: dict[str, Any] = {}

    def configuration(initial_config: Any, accept_partial: bool = False) -> Any:
        if not accept_partial:
            return resolve(initial_config, accept_partial)
        if "config" not in partial:
            partial["config"] = resolve(initial_config, accept_partial=True)
        return partial["config"]

    factory.configuration = configuration
    return factory


def run_pipeline(
    pipeline: dlt.Pipeline, source: Any, target: Warehouse, stored: StoredState | None = None
) -> LoadInfo | None:
    """Extract, normalize and load `source` into the warehouse; raises on a failed load job. None when the
    source yielded nothing and its state did not change (the common scheduled run): no load happened.

    The pipeline's local working folder (its state, schemas and load packages) is trusted only when the last run
    that used it ended cleanly; otherwise it is dropped, and dlt restores state and schemas from the warehouse,
    which holds exactly what was committed:
    - a run that failed drops it as it fails: its extract may have moved the local cursor past what it loaded;
    - a package left behind (a process killed between extract and the end of its load) is dropped, not resumed:
      a load killed inside a COPY may have committed that file's rows to the staging table without dlt knowing,
      and loading the file again would stage them twice, which the merge no longer de-duplicates
      (`deduplicated`); the next run reads those changes from the API again instead;
    - on PostgreSQL the folder is scratch on whichever host runs the step, possibly stale against what another
      host loaded since: it is dropped every time, as dagster-dlt does.
    A DuckDB run after a clean one restores nothing. When the caller read the warehouse's newest state already
    (`stored`, `tables.before_load`) and the folder holds that very state, dlt does not read it again (its
    `sync_destination` opens a connection of its own for it); otherwise dlt restores the warehouse's state if it
    is newer, as always.
    """
    dropped = not isinstance(target, DuckDBWarehouse) or pipeline.has_pending_data
    if dropped:
        pipeline.drop()
    try:
        if dropped or not holds_state(pipeline, stored):
            pipeline.sync_destination()  # the warehouse's state, if newer than the folder's (or the folder is new)
        pipeline.extract(source, loader_file_format=load_file_format(pipeline))
        if not _extracted_anything(pipeline):  # no row and no state change: nothing to normalize or load
            pipeline.abort_packages()
            return None
        pipeline.normalize()
        info = pipeline.load()
        info.raise_on_failed_jobs()
    except BaseException:
        pipeline.drop()
        raise
    forget_loaded_packages(pipeline)
    return info


def forget_loaded_packages(pipeline: dlt.Pipeline) -> None:
    """Delete the load packages dlt keeps once loaded (`load/loaded/`): a raw copy of every record ever loaded,
    growing with every run, that nothing reads again (the warehouse holds them, the state lives there too)."""
    for load_id in pipeline.list_completed_load_packages():
        shutil.rmtree(pipeline.get_load_package_info(load_id).package_path, ignore_errors=True)


def holds_state(pipeline: dlt.Pipeline, stored: StoredState | None) -> bool:
    """The pipeline's working folder holds the state `stored` in the warehouse (same version, same hash)."""
    if stored is None:
        return False
    local = pipeline.state
    return local.get("_state_version") == stored.version and local.get("_version_hash") == stored.version_hash


def _extracted_anything(pipeline: dlt.Pipeline) -> bool:
    return any(
        pipeline.get_load_package_info(load_id).jobs["new_jobs"] for load_id in pipeline.list_extracted_load_packages()
    )


def load_file_format(pipeline: dlt.Pipeline) -> TLoaderFileFormat:
    """DuckDB reads jsonl load files fastest (BENCHMARKS.md). PostgreSQL gets dlt's default, INSERT statements:
    its csv COPY loads every empty string as NULL (`FORCE_NULL` on nullable columns), and the warehouse must
    hold what the API said."""
    return "jsonl" if pipeline.destination.destination_name == "duckdb" else "insert_values"

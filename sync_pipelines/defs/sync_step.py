"""A tenant's sync step, in named phases: prepare (settings, every entity's plan and the warehouse's before, checked
before any request), read (each entity's reading, up to its first batch) and load (the entities with something to
load, in one dlt pipeline run; none when nothing is), upkeep (deletions, quarantine, live views), report (each
entity's materialization and its sync's checks). And how a step fails: an entity's failure after the others are
loaded, its category and action, and whether the step runs again (`retries.retried`)."""

import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import duckdb
from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    DataVersion,
    Failure,
    MaterializeResult,
)

from sync_pipelines.catalogue import TENANTS, Entity, Tenant, pipeline_name, tenant_pipeline_name
from sync_pipelines.defs.check_results import planned_or_logged
from sync_pipelines.defs.checks import sync_check_results
from sync_pipelines.defs.read_copy import refresh_after_failure
from sync_pipelines.defs.retries import MAX_RETRIES, retried
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
from sync_pipelines.synchroteam.threads import abandoning_on_raise
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
from sync_pipelines.warehouse.state import read_tenant_state, remember_tenant_state
from sync_pipelines.warehouse.tables import (
    AfterLoad,
    BeforeLoad,
    Catalog,
    StoredState,
    after_load,
    before_load,
    prune,
)

if TYPE_CHECKING:  # dlt is imported by a run that loads something, when it does (`TenantStep.load`)
    import dlt
    from dlt.common.pipeline import LoadInfo

READ_AHEAD_THREADS = 4  # entities of a tenant whose first requests are in flight at once
QUARANTINE_RETENTION = timedelta(days=180)


@dataclass(frozen=True)
class Chosen:
    """An entity a step syncs: its asset (the entity's, or its reconciliation's), its run config, and the config
    fields its launcher set (the rest took their defaults)."""

    entity: Entity
    key: AssetKey
    config: EntityConfig
    given: Collection[str] = ()


def sync_entities(
    context: AssetExecutionContext, tenant: Tenant, chosen: Sequence[Chosen]
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Sync `chosen` entities of `tenant` and yield each one's materialization, the run's numbers as metadata, and
    its sync's checks. One dlt pipeline run loads every entity that has something to load: one extract, normalize
    and load for all of them.

    Settings and every entity's run config are checked before any request: each config becomes the entity's plan
    once the tenant's time zone is known. An entity whose reading fails does not stop the others: they are loaded
    and reported, then the step fails with the first failure. A retryable failure (429s, 5xx, timeouts) runs the
    step again (`retries.retried`); any other fails once, saying what to do.

    On DuckDB, the read copy is the `warehouse/read_copy` asset downstream of every sync, refreshed once at the
    end of the run; a sync step that fails skips it, so that step refreshes the copy itself before failing, and the
    copy holds whatever the run loaded until then. PostgreSQL has no read copy: analysts read the database.
    """
    with retried(context):
        yield from _sync_entities(context, tenant, chosen)


def _sync_entities(
    context: AssetExecutionContext, tenant: Tenant, chosen: Sequence[Chosen]
) -> Iterator[MaterializeResult | AssetCheckResult]:
    try:
        target = warehouse()  # before the turn: a bad SYNC_WAREHOUSE_URL fails before any connection
        with step_turn(context, target, tenant.name):
            try:
                with held_open(target):
                    step = TenantStep.prepare(context, tenant, chosen, target)
                    results = step.run()
                if step.failed:
                    refresh_after_failure(context, target)
            except BaseException:
                refresh_after_failure(context, target)
                raise
    except SyncError as error:  # the warehouse's settings, or its turn: nothing was requested from the API
        raise _retry_or_fail(context, error, tenant) from None
    yield from planned_or_logged(context, results)
    step.raise_first_failure()


@dataclass
class EntityStep:
    """One entity's part of a step: what `TenantStep.prepare` checked and read, then what the phases found."""

    tenant: Tenant
    entity: Entity
    key: AssetKey
    plan: SyncPlan
    before: BeforeLoad
    state: dict[str, Any]  # the entity's resource state, as the warehouse stored it last
    run_id: str
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    stats: ExtractStats = field(default_factory=ExtractStats)
    quarantine: Quarantine = field(init=False)
    client: SynchroteamClient | None = None
    reading: "Reading | None" = None
    error: BaseException | None = None  # the reading's or the upkeep's, if it failed
    skipped: bool = False  # not read (or not to the end) after another entity's tenant-wide failure

    def __post_init__(self) -> None:
        self.quarantine = Quarantine(self.entity.name, self.run_id, self.started, self.before.quarantine)

    @property
    def loads(self) -> bool:
        """The entity is in the run's one dlt pipeline run: its reading found something to load."""
        return self.reading is not None and not self.reading.nothing_to_load

    @property
    def done(self) -> bool:
        """Read to its end: its upkeep and report follow."""
        return self.error is None and not self.skipped

    def read_ahead(self, tenant_step: "TenantStep") -> ExitStack:
        """Start the entity's reading, up to its first batch, with a client of its own (its requests are its
        own metadata); what ends them is returned. A failure is kept for the end of the step: the other entities
        go on, unless it is tenant-wide (`SyncError.tenant_wide`)."""
        logger = tenant_step.context.log
        with ExitStack() as stack:
            self.client = stack.enter_context(SynchroteamClient.in_process(tenant_step.settings, logger=logger))
            try:
                reader = EntityReader(
                    self.entity, self.client, self.plan, self.stats, self.quarantine, self.state, logger
                )
                self.reading = stack.enter_context(Reading(ReadAhead(reader), self, tenant_step))
            except Exception as exc:
                tenant_step.failed_reading(self, exc)
            return stack.pop_all()

    def upkeep(self, target: Warehouse, loaded_columns: bool, catalog: Catalog) -> AfterLoad | None:
        """After the load: deletions (a complete full walk's ids: what it no longer listed was deleted; nothing,
        if the table was empty), the quarantine's rows, the live views. None for an entity whose reading failed:
        its walk is incomplete, so nothing is marked deleted and its quarantine is read again next run.
        `catalog`: the step's, shared by its entities' upkeep."""
        if not self.done:
            return None
        try:
            return after_load(
                target,
                self.tenant.name,
                self.entity.name,
                self.stats.seen_ids if self.before.rows else None,
                self.started,
                self.plan.max_deleted_share,
                pipeline=tenant_pipeline_name(self.tenant),
                run_id=self.run_id,
                stored_columns=not loaded_columns,
                legacy_pipeline=pipeline_name(self.tenant, self.entity),
                catalog=catalog,
            )
        except SyncError as error:
            self.error = error
            return None

    def report(
        self,
        after: AfterLoad,
        pipeline: "dlt.Pipeline | None",
        load_info: "LoadInfo | None",
        defined: Collection[AssetCheckKey],
    ) -> list[MaterializeResult | AssetCheckResult]:
        """The entity's materialization, the run's numbers as its metadata, and the sync's checks."""
        assert self.client is not None  # read_ahead made it
        extra = run_metadata(self.client, self.stats, self.before.rows, after.rows)
        extra.update(quarantine_metadata(self.quarantine, after.deleted, after.live_rows))
        columns: Mapping[str, Mapping[str, Any]] | None = after.columns  # the stored schema's, if not loaded
        if columns is None and pipeline is not None:
            columns = pipeline.default_schema.tables.get(self.entity.name, {}).get("columns")
        metadata = materialization_metadata(
            extra, load_metadata(columns or {}, load_info if self.loads else None), self.tenant, self.entity
        )
        return [
            # the table's content version: what runs downstream (the analytics) can tell an unchanged table by
            MaterializeResult(asset_key=self.key, metadata=metadata, data_version=DataVersion(after.content_version)),
            *sync_check_results(self.key, after, defined),
        ]


class Reading:
    """An entity's reading (`ReadAhead`) as the tenant's dlt source reads it (`source.source_from`): a failure
    after its first batch is kept on the entity's step instead of failing the other entities' extract. What it
    yielded until then is loaded (merged by id: loading it again changes nothing), and its state stays the
    warehouse's, so the next run reads those changes again."""

    def __init__(self, ahead: ReadAhead, step: EntityStep, tenant_step: "TenantStep") -> None:
        self._ahead, self._step, self._tenant_step = ahead, step, tenant_step

    def __enter__(self) -> "Reading":
        try:
            self._ahead.__enter__()
        except BaseException:
            self._ahead.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._ahead.__exit__(*exc)

    @property
    def nothing_to_load(self) -> bool:
        return self._ahead.nothing_to_load

    @property
    def state(self) -> dict[str, Any]:
        """The state the reading left; the one it found, if the entity did not finish (the reader updates its
        state in place as it goes)."""
        return self._ahead.state if self._step.done else self._ahead.before

    def batches(self) -> Iterator[Any]:
        if self._tenant_step.stopped is not None:
            self._step.skipped = True
            return
        try:
            yield from self._ahead.batches()
        except Exception as exc:
            self._tenant_step.failed_reading(self._step, exc)


@dataclass
class TenantStep:
    """One run of a step: the chosen entities of one tenant, read, loaded in one dlt pipeline run, kept up and
    reported."""

    context: AssetExecutionContext
    tenant: Tenant
    target: Warehouse
    settings: TenantSettings
    duckdb_config: dict[str, str | int]
    stored: StoredState | None  # the tenant pipeline's newest state in the warehouse
    steps: list[EntityStep]
    pipeline: "dlt.Pipeline | None" = None
    load_info: "LoadInfo | None" = None
    stopped: SyncError | None = None  # a tenant-wide failure: the entities not read yet are not
    lock: threading.Lock = field(default_factory=threading.Lock)
    importing: threading.Thread | None = None  # what the load runs, imported while the readings wait (`read_ahead`)

    @classmethod
    def prepare(
        cls, context: AssetExecutionContext, tenant: Tenant, chosen: Sequence[Chosen], target: Warehouse
    ) -> "TenantStep":
        """Settings, the warehouse's folder and group, every entity's plan and what the warehouse holds: all
        checked before any request, so bad settings or config fail the step having asked the API nothing."""
        try:
            settings = TenantSettings.from_env(tenant)
            if isinstance(target, DuckDBWarehouse):
                check_warehouse_path(target.path, TENANTS)
                read_copy_group()  # a group that does not exist fails here, not after the load
            plans = [to_plan(c.config, c.entity, settings.timezone, given=c.given) for c in chosen]
            duckdb_config = duckdb_settings()
            state = read_tenant_state(target, tenant, [c.entity for c in chosen])
            steps = [
                EntityStep(
                    tenant,
                    c.entity,
                    c.key,
                    plan,
                    before_load(target, tenant.name, c.entity.name),
                    state.of(c.entity),
                    context.run.run_id,
                )
                for c, plan in zip(chosen, plans, strict=True)
            ]
        except SyncError as error:
            if error.retryable:
                raise _retry_or_fail(context, error, tenant) from None
            raise _failure(error, tenant) from None
        return cls(context, tenant, target, settings, duckdb_config, state.stored, steps)

    @property
    def failed(self) -> bool:
        return any(not step.done for step in self.steps)

    def failed_reading(self, step: EntityStep, exc: BaseException) -> None:
        """Keep `step`'s failure for the end of the step; one the tenant's other entities would meet too stops
        their readings."""
        step.error = exc
        cause = find_sync_error(exc)
        with self.lock:  # the readings start in threads (`read_ahead`)
            if cause is not None and cause.tenant_wide and self.stopped is None:
                self.stopped = cause

    def read_ahead(self, stack: ExitStack) -> None:
        """Every entity's reading up to its first batch (all of it, when it finds nothing): the first entity's
        alone, so that a failure every entity would meet (a rejected key) stops the others before they ask,
        then the others' at once, READ_AHEAD_THREADS at a time, under the tenant's one rate window. What ends
        each reading joins `stack`."""
        started: list[ExitStack] = []

        def start(step: EntityStep) -> None:
            if self.stopped is not None:
                step.skipped = True
                return
            reading = step.read_ahead(self)
            with self.lock:
                started.append(reading)

        first, *rest = self.steps
        try:
            start(first)
            if rest:
                threads = ThreadPoolExecutor(min(READ_AHEAD_THREADS, len(rest)), f"{self.tenant.name}-read-ahead")
                with abandoning_on_raise(threads) as pool:
                    pending = {pool.submit(start, step) for step in rest}
                    while pending:
                        if self.importing is None and any(step.loads for step in self.steps):
                            # dlt's import (about 0.5 s) while the other readings wait on the API, in a thread: an
                            # interrupt (Terminate) must find this thread waiting, not importing, where it can
                            # land in one of the import system's callbacks, which swallows it
                            self.importing = threading.Thread(target=_import_loading, name="import-dlt", daemon=True)
                            self.importing.start()
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for future in done:
                            future.result()
        finally:
            for reading in started:
                stack.push(reading)

    def run(self) -> list[MaterializeResult | AssetCheckResult]:
        """The phases after `prepare`: read and load, upkeep, report; a run of one entity tagged before and
        after."""
        only = self.steps[0] if len(self.steps) == 1 else None
        if only is not None:
            _tag_run(self.context, only.plan, None)
        try:
            with ExitStack() as stack:
                self.read_ahead(stack)
                self.load([step for step in self.steps if step.loads and step.done])
            for step in self.steps:
                if step.done and not step.loads:
                    assert step.client is not None
                    requests = step.client.stats.requests
                    self.context.log.info(
                        f"{self.tenant.name}/{step.entity.name}: nothing changed since the last run ({requests} "
                        f"API request{'s' if requests != 1 else ''}); nothing to load."
                    )
            catalog = Catalog()
            afters = [
                step.upkeep(self.target, loaded_columns=step.loads and self.pipeline is not None, catalog=catalog)
                for step in self.steps
            ]
            prune(
                self.target,
                self.tenant.name,
                datetime.now(UTC) - QUARANTINE_RETENTION,
                tenant_pipeline_name(self.tenant),
            )
        finally:
            for step in self.steps:
                if step.stats.seen_ids is not None:
                    step.stats.seen_ids.close()  # a full walk's ids, spilled to a temporary file beyond 100,000
        if only is not None:
            _tag_run(self.context, only.plan, only.stats)
        defined = _defined_checks(self.context)
        return [
            result
            for step, after in zip(self.steps, afters, strict=True)
            if after is not None
            for result in step.report(after, self.pipeline, self.load_info, defined)
        ]

    def load(self, steps: list[EntityStep]) -> None:
        """Load what the readings of `steps` found, in one dlt pipeline run. The readings started before any
        pipeline existed: a run that finds nothing to load builds none (`ReadAhead`)."""
        if not steps:
            return
        if self.importing is not None:
            self.importing.join()  # the main thread waits (interruptible) rather than import beside it
        from sync_pipelines.synchroteam.source import source_from
        from sync_pipelines.warehouse.pipeline import build_pipeline, run_pipeline

        try:
            self.pipeline = build_pipeline(self.tenant, self.duckdb_config, target=self.target)
            source = source_from(self.tenant, {step.entity: step.reading for step in steps if step.reading})
            self.load_info = run_pipeline(self.pipeline, source, self.target, self.stored)
            if self.load_info is not None:
                remember_tenant_state(self.target, self.tenant)
        except Exception as exc:
            cause = find_sync_error(exc) or _out_of_memory(exc, self.duckdb_config)
            if cause is None:
                raise
            raise _retry_or_fail(self.context, cause, self.tenant) from None

    def raise_first_failure(self) -> None:
        """After the others were reported: the first entity's failure, as the step's."""
        for step in self.steps:
            if step.error is None:
                continue
            cause = find_sync_error(step.error)
            if cause is None:
                raise step.error
            for other in self.steps:
                if other.error is not None and other is not step:
                    self.context.log.error(f"{self.tenant.name}/{other.entity.name} failed too: {other.error}")
            skipped = [other.entity.name for other in self.steps if other.skipped]
            if skipped:
                self.context.log.warning(
                    f"Not read after that failure (the next run reads them): {', '.join(skipped)}."
                )
            raise _retry_or_fail(self.context, cause, self.tenant, entity=step.entity) from None


def _import_loading() -> None:
    """Import what `TenantStep.load` runs (and dlt with it), ahead of it. A run that loads nothing never imports
    them."""
    import sync_pipelines.synchroteam.source  # noqa: F401
    import sync_pipelines.warehouse.pipeline  # noqa: F401


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


def _retry_or_fail(
    context: AssetExecutionContext, error: SyncError, tenant: Tenant, entity: Entity | None = None
) -> Failure:
    """The step's failure, with its category and action: a retryable one runs the step again (`retries.retried`;
    past MAX_RETRIES it stays failed); any other never does."""
    if error.retryable and context.retry_number < MAX_RETRIES:
        context.log.warning(f"{error.category}: {error.args[0]} The step runs again.")
    return _failure(error, tenant, entity)


def _failure(error: SyncError, tenant: Tenant, entity: Entity | None = None) -> Failure:
    """A Dagster failure carrying the error's category and action (and the entity it failed, when the step's
    other entities went on); run again (`retries.retried`) only if the error is retryable."""
    return Failure(
        description=f"[{error.category}] {error}",
        metadata={
            "category": error.category,
            "action": error.action,
            "retryable": error.retryable,
            "tenant": tenant.name,
            **({"entity": entity.name} if entity is not None else {}),
        },
        allow_retries=error.retryable,
    )

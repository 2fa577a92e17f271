"""A dead run frees what it held. Every run that writes the warehouse holds a lease for its life (the `run_lease`
resource, `warehouse/lease.py`), and says so in its tag `sync_pipelines/lease`. A run still `STARTED` whose tag says it holds
a lease that nobody holds any more lost its process (SIGKILL, a host without power): nothing else would end it,
and its pool slots and its tenant's lane in the run queue would wait for it for hours (`dagster/max_runtime`).

Two things end such a run, with a message that says its process died:
- every run, before its first step, marks the dead runs failed and frees their pool slots (`reap_dead_runs`): this
  works however the runs were started, with or without a daemon;
- run monitoring, in the daemon, asks the instance's run launcher (`launcher.py`) whether each started run's
  worker is alive: a dead one is failed within a poll, which frees its queue lane, then its slots.
"""

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from dagster import ConfigurableResource, DagsterInstance, DagsterRun, DagsterRunStatus, InitResourceContext, RunsFilter

from sync_pipelines.defs.pools import writer_pools
from sync_pipelines.defs.privacy import owner_only
from sync_pipelines.errors import SyncError
from sync_pipelines.warehouse import lease
from sync_pipelines.warehouse.settings import Warehouse, warehouse

RUN_LEASE = "run_lease"  # the resource's key: every step that writes the warehouse requires it
LEASE_TAG = "sync_pipelines/lease"
RELEASED = "released"
REAP_EVERY_SECONDS = 10.0


def lost_lease(instance: DagsterInstance, run: DagsterRun, target: Warehouse) -> str | None:
    """Why `run` is dead, or None while its process may be alive. The lease is checked before the run is read
    again: a run that ends releases its tag before its lease, so a free lease under a tag still held is a death."""
    if run.tags.get(LEASE_TAG) in (None, RELEASED) or lease.held(target, run.run_id):
        return None
    again = instance.get_run_by_id(run.run_id)
    holder = again.tags.get(LEASE_TAG) if again is not None else None
    if again is None or again.status != DagsterRunStatus.STARTED or holder in (None, RELEASED):
        return None
    return (
        f"The process of run {run.run_id[:8]} ({holder}) died: it no longer holds its lease on the warehouse. "
        "What it loaded is committed or rolled back; the next run of its entities loads the rest."
    )


def reap_dead_runs(instance: DagsterInstance, target: Warehouse, by: str) -> list[str]:
    """Mark every started run whose process died failed and free its pool slots; their ids."""
    reaped = []
    for record in instance.get_run_records(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED]), limit=200):
        reason = lost_lease(instance, record.dagster_run, target)
        if reason is None:
            continue
        instance.report_run_failed(record.dagster_run, f"{reason} Marked failed by run {by[:8]}.")
        instance.event_log_storage.free_concurrency_slots_for_run(record.dagster_run.run_id)
        reaped.append(record.dagster_run.run_id)
    return reaped


def ensure_pools(instance: DagsterInstance, pools: list[str]) -> None:
    """Give each pool its limit row before any step claims a slot. Dagster creates the row when a step first
    claims the pool; two processes doing so at once on PostgreSQL storage fail one of their runs (the insert's
    unique violation aborts the transaction it then updates in): two hosts starting their first runs together."""
    if instance.global_op_concurrency_default_limit is None:  # no pools configured (an ephemeral instance)
        return
    storage = instance.event_log_storage
    for attempt in range(3):
        missing = set(pools) - {limit.name for limit in storage.get_pool_limits()}
        if not missing:
            return
        try:
            for pool in sorted(missing):
                storage.initialize_concurrency_limit_to_default(pool)
        except Exception:  # the other process's insert won: its row is there at the next look
            time.sleep(0.2 * (attempt + 1))


@contextmanager
def reaping(instance: DagsterInstance, target: Warehouse, run: DagsterRun) -> Iterator[None]:
    """Look for dead runs now and every REAP_EVERY_SECONDS while the block runs: a run that waits for a pool slot
    a dead run holds (it started before that run died) is freed by its own look."""
    stop = threading.Event()

    def look() -> None:
        try:
            for dead in reap_dead_runs(instance, target, run.run_id):
                instance.report_engine_event(
                    f"Run {dead[:8]} was still marked as started, but its process had died: marked it failed and "
                    "freed its pool slots.",
                    run,
                )
        except Exception as error:  # a look that fails is tried again at the next; the run goes on
            instance.report_engine_event(f"Could not look for dead runs: {type(error).__name__}: {error}", run)

    def watch() -> None:
        while not stop.wait(REAP_EVERY_SECONDS):
            look()

    look()
    watcher = threading.Thread(target=watch, name="sync_pipelines dead-run watcher", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(timeout=REAP_EVERY_SECONDS)


class RunLease(ConfigurableResource):
    """The run's lease on the warehouse, held from before its first step to after its last (see the module)."""

    @contextmanager
    def yield_for_execution(self, context: InitResourceContext) -> Iterator["RunLease"]:
        instance, run = context.instance, context.run
        if instance is None or run is None:  # a resource built outside a run
            yield self
            return
        with ExitStack() as stack:
            try:
                target = warehouse()
                stack.enter_context(owner_only(instance, target))
                ensure_pools(instance, writer_pools())
                stack.enter_context(reaping(instance, target, run))
                stack.enter_context(lease.holding(target, run.run_id, f"run {run.run_id[:8]}"))
            except SyncError:  # a warehouse setting or server at fault: the steps say what, as they always did
                yield self
                return
            instance.add_run_tags(run.run_id, {LEASE_TAG: f"{socket.gethostname()} pid {os.getpid()}"})
            try:
                yield self
            finally:
                instance.add_run_tags(run.run_id, {LEASE_TAG: RELEASED})

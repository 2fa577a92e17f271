"""Running syncs the way users do, and computing the requests a sync should make."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dagster import AssetKey, AssetMaterialization, DagsterInstance, ExecuteInProcessResult

from sync_pipelines.catalogue import Entity, Tenant, tenant_pipeline_name
from sync_pipelines.definitions import defs
from sync_pipelines.defs.run_config import config_class
from sync_pipelines.synchroteam.client import SynchroteamClient
from sync_pipelines.synchroteam.plan import Cursor, SyncPlan
from sync_pipelines.synchroteam.settings import TenantSettings
from sync_pipelines.synchroteam.source import entity_source
from sync_pipelines.warehouse.pipeline import build_pipeline, load_file_format
from sync_pipelines_tests.jobs import run_job
from synchroteam_emulator import Emulator


def run_sync_all(
    raise_on_error: bool = True, instance: DagsterInstance | None = None, analytics: bool = False
) -> ExecuteInProcessResult:
    """`dagster job execute -j sync_all`, in process (with the analytics step if `analytics`)."""
    return run_job("sync_all", raise_on_error=raise_on_error, instance=instance, analytics=analytics)


def run_entity(tenant: Tenant, entity: Entity, plan: SyncPlan) -> None:
    """One entity through dlt alone, with an explicit plan (no Dagster)."""
    with SynchroteamClient(TenantSettings.from_env(tenant)) as client:
        pipeline = build_pipeline(tenant)
        pipeline.run(
            entity_source(tenant, entity, client, plan), loader_file_format=load_file_format(pipeline)
        ).raise_on_failed_jobs()


def run_entity_job(
    tenant: Tenant,
    entity: Entity,
    config: dict | None = None,
    raise_on_error: bool = True,
    instance: DagsterInstance | None = None,
    analytics: bool = False,
) -> ExecuteInProcessResult:
    """The entity's own job with run config, in process (with the analytics step if `analytics`)."""
    run_config = {"ops": {tenant.name: {"config": {entity.name: config or {}}}}}
    return run_job(
        f"sync_{tenant.name}__{entity.name}", run_config, raise_on_error, instance=instance, analytics=analytics
    )


def materializations(result: ExecuteInProcessResult, tenant: Tenant, entity: Entity) -> list[AssetMaterialization]:
    """The run's materializations of `<tenant>/<entity>` (its tenant's step materializes every entity it synced)."""
    key = AssetKey([tenant.name, entity.name])
    return [e.materialization for e in result.get_asset_materialization_events() if e.asset_key == key]


def run_row_count_checks() -> ExecuteInProcessResult:
    """The `check_row_counts` job (every entity's count against the API), in process."""
    return defs.resolve_job_def("check_row_counts").execute_in_process(raise_on_error=False)


def stored_state(tenant: Tenant, entity: Entity) -> dict[str, Any]:
    """The entity resource's dlt state as stored in the warehouse (not the local dlt folder's)."""
    pipeline = build_pipeline(tenant)
    pipeline.drop()  # the local folder may hold a killed run's uncommitted state: read DuckDB's, as runs do
    pipeline.sync_destination()
    resources = pipeline.state.get("sources", {}).get(tenant_pipeline_name(tenant), {}).get("resources", {})
    return dict(resources.get(entity.name, {}))


def stored_cursor(tenant: Tenant, entity: Entity) -> Cursor:
    """The cursor as stored in the warehouse."""
    return Cursor.from_state(stored_state(tenant, entity))


def local_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def max_modified(records: list[dict[str, Any]]) -> datetime:
    return max(local_time(r["dateModified"]) for r in records)


def pages(count: int, page_size: int = 100) -> int:
    """List requests of one walk over `count` records that holds still while it is walked (none modified in the
    minute before it began, by the emulator's clock): a walk that shows a change is walked again."""
    return max(1, math.ceil(count / page_size))


def expected_requests(
    entity: Entity,
    records: list[dict[str, Any]],
    since: datetime | None,
    today: datetime | None = None,
    previous: list[dict[str, Any]] | None = None,
) -> tuple[int, int]:
    """(list pages, details calls) of a run with the entity's default config: the change window (records
    modified at or after `since`) plus the default re-fetch walks, one details call per job in the window
    that is new or differs from `previous` (the records as the previous run loaded them). A first run
    (`since` None) lists every record: it walks nothing again."""
    if not entity.dated:
        since = None  # a lookup list is read whole every run
    changed = [r for r in records if since is None or local_time(r["dateModified"]) >= since]
    loaded = {r["id"]: r for r in previous or []}
    details = sum(1 for r in changed if loaded.get(r["id"]) != r)
    defaults = config_class(entity)()
    list_pages = pages(len(changed))
    if since is None:
        return list_pages, details if entity.name == "jobs" else 0
    refetch_days = getattr(defaults, "refetch_recent_days", 0)
    if refetch_days:
        first_day = ((today or datetime.now()) - timedelta(days=refetch_days)).date()
        list_pages += pages(sum(1 for r in records if local_time(r[entity.recent_field]).date() >= first_day))
    for status in getattr(defaults, "refetch_statuses", []):
        list_pages += pages(sum(1 for r in records if r["status"] == status))
    return list_pages, details if entity.name == "jobs" else 0


def window_start(records: list[dict[str, Any]], entity: Entity) -> datetime | None:
    """Where the next incremental run's change window starts (None: a lookup list, read whole)."""
    if not entity.dated:
        return None
    return max_modified(records) - timedelta(minutes=config_class(entity)().lookback_minutes)


def step_failures(result: ExecuteInProcessResult) -> dict[str, str]:
    """Failure message per step key."""
    messages = {}
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        text = data.user_failure_data.description if data.user_failure_data else data.error.message
        messages[event.step_key] = text or ""
    return messages


def sync_requests(emulator: Emulator) -> list:
    """The requests of the syncs themselves: without the row-count check's probe (page size 1)."""
    return [r for r in emulator.requests if not (r.action == "list" and r.params.get("pageSize") == "1")]


def requests_by(emulator: Emulator, domain: str, resource: str) -> tuple[int, int]:
    """(list requests, details requests) the syncs made for one tenant's resource."""
    mine = [r for r in sync_requests(emulator) if r.tenant == domain and r.resource == resource]
    return sum(r.action == "list" for r in mine), sum(r.action == "details" for r in mine)


def files_containing(root: Path, secret: bytes) -> list[str]:
    """The files under `root` whose bytes hold `secret`."""
    return [str(p) for p in root.rglob("*") if p.is_file() and secret in p.read_bytes()]


REPO = Path(__file__).resolve().parents[1]


def readme_statements(name: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    match = re.search(rf"<!-- sql: {name} -->\s*```sql\n(.*?)```", text, re.S)
    assert match, f"README has no SQL block '{name}'"
    chunks = (
        "\n".join(line for line in chunk.splitlines() if not line.lstrip().startswith("--"))
        for chunk in match.group(1).split(";")
    )  # each statement without its comment lines (the first has two)
    return [chunk.strip() for chunk in chunks if chunk.strip()]

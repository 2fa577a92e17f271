"""Running syncs the way users do, and computing the requests a sync should make."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from dagster import ExecuteInProcessResult

from sync_pipelines.catalogue import Entity, Tenant
from sync_pipelines.definitions import defs
from sync_pipelines.emulator import Emulator
from sync_pipelines.settings import TenantSettings
from sync_pipelines.synchroteam.client import SynchroteamClient
from sync_pipelines.synchroteam.source import SyncOptions, entity_source
from sync_pipelines.assets import build_pipeline


def run_sync_all(raise_on_error: bool = True) -> ExecuteInProcessResult:
    """`dagster job execute -j sync_all`, in process."""
    return defs.resolve_job_def("sync_all").execute_in_process(raise_on_error=raise_on_error)


def run_entity(tenant: Tenant, entity: Entity, options: SyncOptions) -> None:
    """One entity through dlt alone, with explicit options (no Dagster)."""
    with SynchroteamClient(TenantSettings.from_env(tenant)) as client:
        build_pipeline(tenant, entity).run(
            entity_source(tenant, entity, client, options), loader_file_format="jsonl"
        ).raise_on_failed_jobs()


def local_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def max_modified(records: list[dict[str, Any]]) -> datetime:
    return max(local_time(r["dateModified"]) for r in records)


def expected_requests(records: list[dict[str, Any]], since: datetime | None, with_details: bool) -> tuple[int, int]:
    """(list pages, details calls) the minimum a run must make for records modified at or after `since`."""
    changed = [r for r in records if since is None or local_time(r["dateModified"]) >= since]
    pages = max(1, math.ceil(len(changed) / 100))
    return pages, len(changed) if with_details else 0


def window_start(records: list[dict[str, Any]], entity: Entity) -> datetime:
    return max_modified(records) - timedelta(minutes=entity.lookback_minutes)


def step_failures(result: ExecuteInProcessResult) -> dict[str, str]:
    """Failure message per step key."""
    messages = {}
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        text = data.user_failure_data.description if data.user_failure_data else data.error.message
        messages[event.step_key] = text or ""
    return messages


def requests_by(emulator: Emulator, domain: str, resource: str) -> tuple[int, int]:
    return (
        emulator.request_count(tenant=domain, resource=resource, action="list"),
        emulator.request_count(tenant=domain, resource=resource, action="details"),
    )

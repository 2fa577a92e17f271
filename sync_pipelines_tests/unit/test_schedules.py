"""Schedules (cron, job, skip-when-running), throttling settings, and automatic retries of transient failures."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import yaml
from dagster import (
    DagsterRunStatus,
    RunRequest,
    build_schedule_context,
    instance_for_test,
)
from dagster._core.test_utils import create_run_for_test
from dagster._utils.schedules import is_valid_cron_string

from sync_pipelines.catalogue import ENTITIES, TENANTS
from sync_pipelines.definitions import defs
from sync_pipelines.defs.schedules import ACTIVE, MAX_RUNTIME_TAG, TENANT_TAG

ENTITY_SCHEDULES = {
    "sync_synchroteam__jobs_schedule": ("sync_synchroteam__jobs", "1-59/15 * * * *"),
    "sync_synchroteam__invoices_schedule": ("sync_synchroteam__invoices", "4-59/30 * * * *"),
    "sync_synchroteam__quotations_schedule": ("sync_synchroteam__quotations", "7 * * * *"),
    "sync_synchroteam__customers_schedule": ("sync_synchroteam__customers", "10 * * * *"),
    "sync_synchroteam__sites_schedule": ("sync_synchroteam__sites", "13 */2 * * *"),
    "sync_synchroteam__credit_notes_schedule": ("sync_synchroteam__credit_notes", "16 * * * *"),
    "sync_synchroteam_hec__invoices_schedule": ("sync_synchroteam_hec__invoices", "11-59/30 * * * *"),
    "sync_synchroteam__users_schedule": ("sync_synchroteam__users", "19 * * * *"),
    "sync_synchroteam__activities_schedule": ("sync_synchroteam__activities", "22-59/30 * * * *"),
    "sync_synchroteam__equipment_schedule": ("sync_synchroteam__equipment", "25 * * * *"),
    "sync_synchroteam__job_types_schedule": ("sync_synchroteam__job_types", "28 5 * * *"),
    "sync_synchroteam__parts_schedule": ("sync_synchroteam__parts", "40 * * * *"),
    "sync_synchroteam_hec__credit_notes_schedule": ("sync_synchroteam_hec__credit_notes", "23 * * * *"),
    "sync_synchroteam_hec__users_schedule": ("sync_synchroteam_hec__users", "26 * * * *"),
    "sync_synchroteam_hec__equipment_schedule": ("sync_synchroteam_hec__equipment", "32 * * * *"),
    "sync_synchroteam_hec__job_types_schedule": ("sync_synchroteam_hec__job_types", "35 5 * * *"),
    "sync_synchroteam_hec__parts_schedule": ("sync_synchroteam_hec__parts", "47 * * * *"),
    "reconcile_synchroteam_nightly": ("reconcile_synchroteam", "30 2 * * *"),
    "reconcile_synchroteam_hec_nightly": ("reconcile_synchroteam_hec", "37 2 * * *"),
    "check_row_counts_daily": ("check_row_counts", "15 4 * * *"),
}


def test_every_entity_and_tenant_has_its_schedule_and_nothing_fires_together():
    schedules = {s.name: (s.job_name, s.cron_schedule) for s in defs.schedules}
    assert schedules == ENTITY_SCHEDULES
    assert all(is_valid_cron_string(cron) for _, cron in schedules.values())
    first_minutes = [cron.split()[0].split("-")[0] for _, cron in schedules.values()]
    assert len(set(first_minutes)) == len(first_minutes), "two schedules start on the same minute"


def test_schedules_are_off_until_switched_on():
    assert {s.default_status.value for s in defs.schedules} == {"STOPPED"}


def test_entity_jobs_carry_the_tenant_tag_and_a_maximum_runtime():
    for tenant in TENANTS.values():
        for name in tenant.entities:
            job = defs.resolve_job_def(f"sync_{tenant.name}__{name}")
            assert job.tags[TENANT_TAG] == tenant.name
            # four cadences, at most 8 hours (a daily lookup)
            assert int(job.tags[MAX_RUNTIME_TAG]) == min(4 * max(15, ENTITIES[name].cadence_minutes), 8 * 60) * 60


def schedule_named(name: str):
    return next(s for s in defs.schedules if s.name == name)


def test_a_tick_while_the_previous_run_is_running_is_skipped_not_stacked():
    schedule = schedule_named("sync_synchroteam__invoices_schedule")
    with instance_for_test() as instance:
        context = build_schedule_context(instance=instance)
        assert isinstance(schedule.evaluate_tick(context).run_requests[0], RunRequest)

        create_run_for_test(instance, job_name="sync_synchroteam__invoices", status=DagsterRunStatus.STARTED)
        result = schedule.evaluate_tick(build_schedule_context(instance=instance))
        assert not result.run_requests and "still queued or running" in result.skip_message

        # another entity's run does not block this one
        other = schedule_named("sync_synchroteam__customers_schedule")
        assert other.evaluate_tick(build_schedule_context(instance=instance)).run_requests


def test_a_run_not_yet_started_also_blocks_the_next_tick():
    # QUEUED runs need a code-location origin to exist in a test instance; they share the status filter
    assert DagsterRunStatus.QUEUED in ACTIVE
    schedule = schedule_named("sync_synchroteam_hec__invoices_schedule")
    with instance_for_test() as instance:
        create_run_for_test(instance, job_name="sync_synchroteam_hec__invoices", status=DagsterRunStatus.STARTING)
        assert schedule.evaluate_tick(build_schedule_context(instance=instance)).skip_message


def test_the_nightly_reconciliation_runs_yesterdays_partition():
    schedule = schedule_named("reconcile_synchroteam_nightly")
    with instance_for_test() as instance:
        tick = datetime(2026, 3, 15, 2, 30, tzinfo=UTC)
        (request,) = schedule.evaluate_tick(
            build_schedule_context(
                instance=instance, scheduled_execution_time=tick, repository_def=defs.get_repository_def()
            )
        ).run_requests
    assert request.partition_key == "2026-03-14"


def test_the_instance_config_throttles_per_tenant_and_serialises_duckdb_writers():
    config = yaml.safe_load((Path(__file__).parents[2] / "dagster.yaml").read_text())
    (limit,) = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert limit == {"key": TENANT_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["run_monitoring"]["enabled"] is True
    assert {a.op.pool for a in defs.assets} == {"duckdb_writer"}


# -- retries ---------------------------------------------------------------------------------------------------


def retries(result) -> int:
    return sum(1 for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY")

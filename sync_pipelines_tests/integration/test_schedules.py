"""Schedules (cron, job, skip-when-running), throttling settings, and automatic retries of transient failures."""

from __future__ import annotations

from sync_pipelines.catalogue import ENTITIES, TENANTS
from sync_pipelines_tests.conftest import MAIN
from sync_pipelines_tests.helpers import run_entity_job, step_failures
from synchroteam_emulator import Fault

# -- retries ---------------------------------------------------------------------------------------------------


def retries(result) -> int:
    return sum(1 for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY")


def test_a_transient_failure_is_retried_automatically_and_the_run_succeeds(emulator, warehouse):
    # six 429s in a row exhaust the client's own attempts: the step fails as retryable, Dagster runs it again
    emulator.faults.add(Fault(status=429, retry_after=0, times=6, tenant=MAIN.domain, resource="customer"))

    result = run_entity_job(TENANTS["synchroteam"], ENTITIES["customers"])

    assert result.success and retries(result) == 1
    assert emulator.faults.pending() == []


def test_a_transient_failure_that_persists_fails_after_two_retries_saying_so(emulator, warehouse):
    emulator.faults.add(Fault(status=429, retry_after=0, times=1000, tenant=MAIN.domain, resource="customer"))

    result = run_entity_job(TENANTS["synchroteam"], ENTITIES["customers"], raise_on_error=False)

    assert not result.success and retries(result) == 2
    (message,) = step_failures(result).values()
    assert "[rate_limited]" in message and "gave up after 6 attempts" in message
    assert emulator.request_count(tenant=MAIN.domain, resource="customer") == 3 * 6


def test_a_non_retryable_failure_fails_once(emulator, warehouse, monkeypatch):
    monkeypatch.setenv("SYNCHROTEAM_API_KEY", "wrong")

    result = run_entity_job(TENANTS["synchroteam"], ENTITIES["customers"], raise_on_error=False)

    assert not result.success and retries(result) == 0
    assert "[auth_rejected]" in next(iter(step_failures(result).values()))

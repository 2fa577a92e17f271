"""When a failed step runs again (`defs/retries.py`): as a retry policy would, but never after an interrupt."""

from types import SimpleNamespace

import pytest
from dagster import DagsterExecutionInterruptedError, DagsterInvariantViolationError, Failure, RetryRequested

from sync_pipelines.definitions import defs
from sync_pipelines.defs.retries import MAX_RETRIES, retried


def failing(exc: BaseException, retry_number: int = 0) -> BaseException:
    """What leaves a step whose body raised `exc`, on attempt `retry_number`."""
    with pytest.raises(BaseException) as caught:
        with retried(SimpleNamespace(retry_number=retry_number)):  # type: ignore[arg-type]
            raise exc
    return caught.value


def test_a_failure_runs_the_step_again_after_a_linear_wait(monkeypatch):
    monkeypatch.setenv("SYNC_RETRY_DELAY_SECONDS", "7")
    failure = Failure("[api_error] 503", allow_retries=True)

    waits = []
    for attempt in range(MAX_RETRIES + 1):
        retry = failing(failure, attempt)
        assert isinstance(retry, RetryRequested) and retry.__cause__ is failure  # the failure's own text and metadata
        assert retry.max_retries == MAX_RETRIES
        waits.append(retry.seconds_to_wait)
    assert waits == [7.0, 14.0, 21.0]  # Dagster fails the step past MAX_RETRIES

    unexpected = KeyError("x")
    assert failing(unexpected).__cause__ is unexpected  # anything else, as a retry policy did


@pytest.mark.parametrize(
    "exc",
    [
        Failure("[auth_rejected] 401", allow_retries=False),  # the product's non-retryable errors
        DagsterExecutionInterruptedError(),  # Terminate
        KeyboardInterrupt(),  # Ctrl-C on `dagster job execute`
        DagsterInvariantViolationError("misuse"),  # Dagster's own, as its error boundary passes them
        RetryRequested(max_retries=1),
    ],
)
def test_an_interrupt_or_a_failure_that_forbids_it_is_not_run_again(exc):
    assert failing(exc) is exc


def test_the_loading_jobs_have_no_retry_policy_which_would_run_an_interrupted_step_again():
    loading = [job for job in defs.resolve_all_job_defs() if job.name.startswith(("sync_", "reconcile_", "retry_"))]
    assert {job.name for job in loading} >= {"sync_all", "sync_synchroteam__jobs", "retry_rejected_records"}
    assert [job.name for job in loading if job.op_retry_policy is not None] == []

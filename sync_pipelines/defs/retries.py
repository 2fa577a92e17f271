"""When a failed step runs again: what a Dagster `RetryPolicy` does, but for an interrupted step.

Every step of the loading jobs (the tenants' syncs, the analytics, the read copy) runs its body in `retried`: a
failure runs the step again, up to MAX_RETRIES times, after `SYNC_RETRY_DELAY_SECONDS` then twice that, unless it
is a `Failure` that forbids it (`allow_retries=False`: the product's non-retryable errors, a model's SQL). A job
with a retry policy would also run an *interrupted* step again (Dagster applies the policy to interrupts), so the
UI's Terminate would not stop a run: the jobs have none, and an interrupted step ends the run, canceled.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager

from dagster import AssetExecutionContext, DagsterError, Failure, RetryRequested

MAX_RETRIES = 2
DEFAULT_RETRY_DELAY_SECONDS = 30.0


def retry_delay_seconds() -> float:
    """First wait before a failed step runs again (`SYNC_RETRY_DELAY_SECONDS`, default 30)."""
    return float(os.environ.get("SYNC_RETRY_DELAY_SECONDS", "") or DEFAULT_RETRY_DELAY_SECONDS)


@contextmanager
def retried(context: AssetExecutionContext) -> Iterator[None]:
    """The step's body: an exception it raises asks Dagster to run the step again (a `RetryRequested` whose cause
    is the exception, so the failure's description and metadata are the step's), as a retry policy would.
    Dagster's own errors, a `RetryRequested` and a `Failure(allow_retries=False)` pass as they are, and so does an
    interrupt (not an `Exception`)."""
    try:
        yield
    except (DagsterError, RetryRequested):
        raise
    except Failure as failure:
        if not failure.allow_retries:
            raise
        raise _again(context) from failure
    except Exception as exc:
        raise _again(context) from exc


def _again(context: AssetExecutionContext) -> RetryRequested:
    """Attempt n + 1 waits n times the delay (a linear backoff); past MAX_RETRIES, Dagster fails the step."""
    return RetryRequested(max_retries=MAX_RETRIES, seconds_to_wait=retry_delay_seconds() * (context.retry_number + 1))

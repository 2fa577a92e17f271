"""Errors of a sync, each with a category, what to do about it, and whether retrying can help.

Messages never contain an API key: they are built from tenant names, variable names, URLs and statuses only.
"""

from __future__ import annotations

from typing import TypeVar

E = TypeVar("E", bound=BaseException)


class SyncError(Exception):
    """Base class: `category` is a stable code, `action` a sentence telling the user what to do. `tenant_wide`:
    the tenant's other entities would meet it too (its credentials, its quota, its API), so a step stops reading
    them."""

    category = "sync_error"
    retryable = False
    tenant_wide = False
    action = "See the message above."

    def __init__(self, message: str, *, action: str | None = None, retryable: bool | None = None) -> None:
        super().__init__(message)
        if action is not None:
            self.action = action
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return f"{self.args[0]} What to do: {self.action}"


class ConfigurationError(SyncError):
    category = "configuration"
    action = "Fix the setting named above; nothing was requested from the API."


class AuthRejected(SyncError):
    category = "auth_rejected"
    tenant_wide = True


class RateLimited(SyncError):
    category = "rate_limited"
    tenant_wide = True
    retryable = True
    action = "This resolves by itself; the next run continues where this one stopped."


class QuotaSpent(SyncError):
    category = "quota_spent"
    tenant_wide = True
    action = (
        "Wait for the daily quota to reset at midnight UTC (the first run after it resumes where this one "
        "stopped), or lower the tenant's other API usage."
    )


class ApiUnavailable(SyncError):
    category = "api_error"
    tenant_wide = True
    retryable = True
    action = "Synchroteam answered with server errors or not at all; retry later."


class UnexpectedResponse(SyncError):
    category = "bad_response"
    retryable = True
    action = (
        "The API answered with something that is not its JSON (a firewall or proxy page?). Check the base URL "
        "and any proxy between here and Synchroteam."
    )


class NotJsonResponse(SyncError):
    category = "not_json"
    action = (
        "Synchroteam (or something in front of it) answered with a web page instead of JSON: a firewall, a proxy "
        "or a wrong base URL. Check the base URL, and ask whoever runs the firewall to allow this host. Not retried."
    )


class SuspiciousDeletions(SyncError):
    category = "suspicious_deletions"


class WarehouseLocked(SyncError):
    category = "warehouse_locked"
    retryable = True


class WarehouseUnavailable(SyncError):
    """The PostgreSQL warehouse does not answer (refused, timed out): it may be restarting."""

    category = "warehouse_unavailable"
    retryable = True


class WarehouseOutOfMemory(SyncError):
    category = "warehouse_memory"
    action = (
        "Raise SYNC_DUCKDB_MEMORY_LIMIT or lower SYNC_DUCKDB_THREADS (each thread needs its own share). The "
        "cursor did not move: the next run loads these changes again."
    )


class BadRequest(SyncError):
    category = "bad_request"
    action = "The API refused a parameter; check the run configuration."


class RecordNotFound(SyncError):
    category = "not_found"


class ResourceNotFound(SyncError):
    """A 404 on a list: the API has no such resource at this base URL (a record cannot be missing there)."""

    category = "no_such_resource"


def find_cause(exc: BaseException, kind: type[E]) -> E | None:
    """The exception of type `kind` behind `exc`, looking through causes and contexts (dlt wraps errors)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def find_sync_error(exc: BaseException) -> SyncError | None:
    """The SyncError behind `exc` (dlt wraps resource errors)."""
    return find_cause(exc, SyncError)

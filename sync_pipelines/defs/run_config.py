"""Run config: the per-entity sync controls, editable in the launchpad, validated before any API call."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from functools import cache

from dagster import Config
from pydantic import Field, create_model

from sync_pipelines.catalogue import Entity, Tenant
from sync_pipelines.errors import ConfigurationError
from sync_pipelines.synchroteam.plan import SyncPlan

MAX_PAGE_SIZE = 100
# The accepted range of every numeric field (None: no upper bound): checked by `to_plan` before any request, and
# stated in each field's description, which is what the launchpad shows (Dagster's config types have no bounds;
# pydantic's `ge`/`le` would only fail the step when it starts, and then retry it).
RANGES: dict[str, tuple[float, float | None]] = {
    "max_records": (0, None),
    "page_size": (1, MAX_PAGE_SIZE),
    "lookback_minutes": (0, None),
    "revisit_days": (0, None),
    "max_deleted_share": (0, 1),
    "refetch_recent_days": (0, None),
}


def _accepted(field: str) -> str:
    low, high = RANGES[field]
    return f"between {low} and {high}" if high is not None else f"{low} or more"


def _ranged(field: str, description: str) -> str:
    return f"{description} Accepted: {_accepted(field)}."


class Mode(StrEnum):
    """How a run reads an entity (`plan.MODES`): the launchpad offers exactly these."""

    incremental = "incremental"
    reconcile = "reconcile"
    full = "full"
    retry_rejected = "retry_rejected"


class SyncConfig(Config):
    """Knobs every entity has. Entities add `refetch_recent_days` or `refetch_statuses` (see `config_class`)."""

    mode: Mode = Field(
        default=Mode.incremental,
        description="incremental: from the stored cursor | reconcile: re-read window_start..window_end, cursor "
        "untouched | full: everything, merged, and records the API no longer lists marked deleted | "
        "retry_rejected: only re-read the quarantined records by id",
    )
    max_records: int = Field(
        default=0,
        description=_ranged(
            "max_records",
            "At most this many changed records this run (0 = no cap). A capped run loads the oldest changes first "
            "and the cursor stops where it stopped, so the next run continues. Given here, it holds from the first "
            "run on; an entity's default cap (customers, sites) leaves the initial load uncapped. mode=full is "
            "never capped.",
        ),
    )
    page_size: int = Field(default=100, description=_ranged("page_size", "Records per list page."))
    lookback_minutes: int = Field(
        default=30,
        description=_ranged(
            "lookback_minutes",
            "Every incremental run re-reads this far behind the cursor (late commits, same-minute edits).",
        ),
    )
    revisit_days: int = Field(
        default=0,
        description=_ranged(
            "revisit_days",
            "Re-read the changes of the last N days before the cursor every run (0 = only what changed since the "
            "last run, beyond lookback_minutes).",
        ),
    )
    max_deleted_share: float = Field(
        default=0.5,
        description=_ranged(
            "max_deleted_share",
            "full: refuse to mark more than this share of the live rows deleted in one run; an empty or "
            "truncated answer is likelier than a tenant losing that much.",
        ),
    )
    window_start: str = Field(default="", description="reconcile: first day (YYYY-MM-DD, tenant time).")
    window_end: str = Field(default="", description="reconcile: last day, inclusive (default: window_start).")


class LookupMode(StrEnum):
    """How a run reads a lookup list (no `dateModified`, so no cursor and no days to reconcile)."""

    incremental = "incremental"
    full = "full"
    retry_rejected = "retry_rejected"


class LookupSyncConfig(Config):
    """The knobs of a lookup list (`Entity.dated` False): read whole every run, so no cap, look-back or window."""

    mode: LookupMode = Field(
        default=LookupMode.incremental,
        description="incremental: the whole list, loading only the records whose row changed (none if nothing "
        "did), and marking those it no longer lists deleted | full: the whole list, every record loaded again, "
        "deletions marked | retry_rejected: only re-read the quarantined records",
    )
    page_size: int = Field(default=100, description=_ranged("page_size", "Records per list page."))
    max_deleted_share: float = Field(
        default=0.5,
        description=_ranged(
            "max_deleted_share",
            "Refuse to mark more than this share of the live rows deleted in one run; an empty or truncated "
            "answer is likelier than a tenant losing that much.",
        ),
    )


EntityConfig = SyncConfig | LookupSyncConfig


@cache
def config_class(entity: Entity) -> type[EntityConfig]:
    """The run-config class of `entity`: SyncConfig with the entity's own knobs and defaults, or for a lookup
    list `LookupSyncConfig`."""
    base: type[EntityConfig] = SyncConfig if entity.dated else LookupSyncConfig
    fields: dict = {}
    if entity.refetch == "recent":
        what = {"scheduledStart": "scheduled", "dateCreated": "created"}.get(entity.recent_field, entity.recent_field)
        fields["refetch_recent_days"] = (
            int,
            Field(
                default=0,
                description=_ranged(
                    "refetch_recent_days",
                    f"Re-read records {what} in the last N days every run, even if their dateModified did not move "
                    "(0 = off).",
                ),
            ),
        )
    if entity.refetch == "statuses":
        fields["refetch_statuses"] = (
            list[str],
            Field(
                default_factory=list,
                description="Re-read records in these statuses every run, even if their "
                f"dateModified did not move. One of: {', '.join(entity.statuses)}.",
            ),
        )
    for name, default in entity.defaults.items():
        annotation = fields[name][0] if name in fields else base.model_fields[name].annotation
        description = (fields.get(name) or (None, base.model_fields[name]))[1].description
        fields[name] = (annotation, Field(default=default, description=description))
    class_name = "".join(part.title() for part in entity.name.split("_")) + "SyncConfig"
    return create_model(class_name, __base__=base, **fields)


@cache
def tenant_config_class(tenant: Tenant, entities: tuple[Entity, ...]) -> type[Config]:
    """The run config of a tenant's sync step: one field per entity it syncs, named after the entity, holding
    that entity's `config_class` (every field defaulted): `ops.<tenant>.config.<entity>.<field>`."""
    fields: dict = {
        entity.name: (config_class(entity), Field(default_factory=config_class(entity), description=entity.description))
        for entity in entities
    }
    class_name = "".join(part.title() for part in tenant.name.split("_")) + "SyncConfig"
    return create_model(class_name, __base__=Config, **fields)


def to_plan(
    config: EntityConfig, entity: Entity, tz: tzinfo, today: date | None = None, given: Collection[str] = ()
) -> SyncPlan:
    """Validate `config` for `entity`; every error names the field and what it accepts.

    `given`: the fields the run config set (the rest took their defaults). A `max_records` given is a promise to
    the API that holds from the first run on; so does any cap of an entity without a default one.
    """

    def fail(field: str, value: object, expected: str) -> ConfigurationError:
        return ConfigurationError(
            f"Run config for {entity.name}: {field}={value!r} is not valid: {expected}.",
            action=f"Fix `{field}` in the run config (launchpad or -c file); no API request was made.",
        )

    mode = Mode(config.mode).value  # a plain string for the plan; an unknown one never gets this far
    for name, (low, high) in RANGES.items():
        value = getattr(config, name, low)  # refetch_recent_days: only the entities that have it
        if value < low or (high is not None and value > high):
            raise fail(name, value, _accepted(name))
    statuses = tuple(getattr(config, "refetch_statuses", ()))
    unknown = [s for s in statuses if s not in entity.statuses]
    if unknown:
        raise fail("refetch_statuses", unknown, f"statuses among {', '.join(entity.statuses)}")
    window_start = window_end = None
    first_day, last_day = getattr(config, "window_start", ""), getattr(config, "window_end", "")
    if mode == "reconcile":
        first = _day(first_day, "window_start", fail, required=True)
        assert first is not None  # required: _day raised otherwise
        last = _day(last_day, "window_end", fail) or first
        if last < first:
            raise fail("window_end", last_day, f"on or after window_start ({first})")
        window_start = datetime.combine(first, time(), tz)
        window_end = datetime.combine(last + timedelta(days=1), time(), tz)
    elif first_day or last_day:
        raise fail("window_start", first_day, "only used with mode=reconcile")
    refetch_days = getattr(config, "refetch_recent_days", 0)
    max_records = getattr(config, "max_records", 0)  # a lookup list has no cap, look-back nor window
    lookback = timedelta(minutes=getattr(config, "lookback_minutes", 0))
    today = today or datetime.now(tz).date()
    return SyncPlan(
        mode=mode,
        page_size=config.page_size,
        max_records=max_records,
        cap_first_load=max_records > 0 and ("max_records" in given or "max_records" not in entity.defaults),
        overlap=max(lookback, timedelta(days=getattr(config, "revisit_days", 0))),
        window_start=window_start,
        window_end=window_end,
        refetch_created_since=today - timedelta(days=refetch_days) if refetch_days else None,
        refetch_statuses=statuses,
        max_deleted_share=config.max_deleted_share,
    )


def _day(value: str, field: str, fail, required: bool = False) -> date | None:
    if not value:
        if required:
            raise fail(field, value, "a day YYYY-MM-DD (required with mode=reconcile)")
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise fail(field, value, "a day YYYY-MM-DD") from None

"""Settings read from the environment at run time (never at import, so definitions load without secrets)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sync_pipelines.catalogue import Tenant
from sync_pipelines.synchroteam.errors import ConfigurationError

DEFAULT_BASE_URL = "https://ws.synchroteam.com/Api/v3"
DEFAULT_DUCKDB_PATH = Path("data") / "warehouse.duckdb"
DEFAULT_QUOTA_FLOOR = 100
# The longest wait for the API's rate window a run accepts: windows of up to an hour are waited out.
DEFAULT_MAX_RATE_WAIT_SECONDS = 3600.0
# DuckDB's own defaults (80% of RAM, a thread per core) let a first load of a million records take over a GB;
# with these it spills to `<warehouse>.tmp/` instead and the whole sync stays under 400 MB (BENCHMARKS.md).
DEFAULT_DUCKDB_MEMORY_LIMIT = "128MB"
DEFAULT_DUCKDB_THREADS = 2
# DuckDB's JSON reader takes 32 MiB buffers: a first load failed at once below 80MB with 2 threads (88MB with 4)
MIN_DUCKDB_MEMORY_LIMIT = "96MB"
_MEMORY_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|[KMGT]i?B)", re.IGNORECASE)
_UNIT_BYTES = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}  # DuckDB's units: KB is 1000, KiB 1024


@dataclass(frozen=True)
class TenantSettings:
    """How to reach one tenant. `api_key` is kept out of repr so it never lands in a log by accident."""

    tenant: Tenant
    base_url: str
    domain: str
    api_key: str = field(repr=False)
    timezone: ZoneInfo
    requests_per_minute: float | None = None
    quota_floor: int = DEFAULT_QUOTA_FLOOR
    max_rate_wait: float = DEFAULT_MAX_RATE_WAIT_SECONDS

    @classmethod
    def from_env(cls, tenant: Tenant, environ: Mapping[str, str] | None = None) -> TenantSettings:
        """Read `<PREFIX>BASE_URL`, `DOMAIN`, `API_KEY`, `TIMEZONE` (required: the API's timestamps carry no
        zone), `REQUESTS_PER_MINUTE`, `QUOTA_FLOOR`, `MAX_RATE_WAIT_SECONDS`."""
        env = os.environ if environ is None else environ

        def value(suffix: str) -> str:
            return env.get(tenant.env(suffix), "").strip()

        missing = [tenant.env(s) for s in ("DOMAIN", "API_KEY") if not value(s)]
        if missing:
            raise ConfigurationError(
                f"Tenant '{tenant.label}' ({tenant.name}) has no credentials: {' and '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not set.",
                action=(
                    f"Set {tenant.env('DOMAIN')} to the tenant domain (mycompany of mycompany.synchroteam.com) "
                    f"and {tenant.env('API_KEY')} to its API key (Synchroteam: Configuration > Authentication Key)."
                ),
            )
        base_url = value("BASE_URL") or DEFAULT_BASE_URL
        if not base_url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"{tenant.env('BASE_URL')}={base_url!r} is not an http(s) URL.",
                action=f"Set it like {DEFAULT_BASE_URL}.",
            )
        zone_name = value("TIMEZONE")
        if not zone_name:
            raise ConfigurationError(
                f"Tenant '{tenant.label}' ({tenant.name}) has no time zone: {tenant.env('TIMEZONE')} is not set. The "
                "API's timestamps carry no zone, so without it every instant would be off by the tenant's UTC "
                "offset.",
                action=(
                    f"Set {tenant.env('TIMEZONE')} to the IANA zone the tenant works in (Synchroteam writes its "
                    "timestamps in it), e.g. Europe/Paris."
                ),
            )
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(
                f"{tenant.env('TIMEZONE')}={zone_name!r} is not a known time zone.",
                action="Use an IANA name such as Europe/Paris: the zone the tenant's timestamps are written in.",
            ) from None
        return cls(
            tenant=tenant,
            base_url=base_url.rstrip("/"),
            domain=value("DOMAIN"),
            api_key=value("API_KEY"),
            timezone=zone,
            requests_per_minute=_positive_number(tenant, env, "REQUESTS_PER_MINUTE", float) or None,
            quota_floor=_positive_number(tenant, env, "QUOTA_FLOOR", int, DEFAULT_QUOTA_FLOOR),
            max_rate_wait=_positive_number(tenant, env, "MAX_RATE_WAIT_SECONDS", float, DEFAULT_MAX_RATE_WAIT_SECONDS),
        )


def _positive_number(tenant: Tenant, env: Mapping[str, str], suffix: str, kind: type, default=None):
    raw = env.get(tenant.env(suffix), "").strip()
    if not raw:
        return default
    try:
        number = kind(raw)
    except ValueError:
        number = -1
    if number < 0:
        raise ConfigurationError(
            f"{tenant.env(suffix)}={raw!r} is not a non-negative number.", action=f"Set {tenant.env(suffix)} or unset it."
        )
    return number


def warehouse_path(environ: Mapping[str, str] | None = None) -> Path:
    """The DuckDB file every pipeline writes: `SYNC_DUCKDB_PATH`, default `data/warehouse.duckdb`."""
    env = os.environ if environ is None else environ
    raw = env.get("SYNC_DUCKDB_PATH", "").strip()
    return Path(raw).expanduser().absolute() if raw else DEFAULT_DUCKDB_PATH.absolute()


def check_warehouse_path(path: Path, schemas: Iterable[str]) -> None:
    """DuckDB names the database after the file: `synchroteam.duckdb` would shadow the `synchroteam` schema."""
    if path.stem in set(schemas):
        raise ConfigurationError(
            f"SYNC_DUCKDB_PATH={str(path)!r}: a DuckDB file named after the schema {path.stem!r} makes every "
            f"query on that schema ambiguous.",
            action="Name the file differently, e.g. data/warehouse.duckdb.",
        )


def pipelines_dir(duckdb_path: Path) -> Path:
    """dlt's local working folder for a warehouse: scratch only, the state lives in DuckDB."""
    return duckdb_path.parent / ".dlt_pipelines" / duckdb_path.stem


def duckdb_settings(environ: Mapping[str, str] | None = None) -> dict[str, str | int]:
    """DuckDB's `memory_limit` and `threads` for every connection to the warehouse: `SYNC_DUCKDB_MEMORY_LIMIT`
    (default 128MB) and `SYNC_DUCKDB_THREADS` (default 2). Larger values load faster on big machines."""
    env = os.environ if environ is None else environ
    limit = env.get("SYNC_DUCKDB_MEMORY_LIMIT", "").strip() or DEFAULT_DUCKDB_MEMORY_LIMIT
    if _memory_bytes(limit) is None:
        raise ConfigurationError(
            f"SYNC_DUCKDB_MEMORY_LIMIT={limit!r} is not a memory size.",
            action=f"Set it like {DEFAULT_DUCKDB_MEMORY_LIMIT} or 1GB, or unset it.",
        )
    if _memory_bytes(limit) < _memory_bytes(MIN_DUCKDB_MEMORY_LIMIT):
        raise ConfigurationError(
            f"SYNC_DUCKDB_MEMORY_LIMIT={limit!r} is below {MIN_DUCKDB_MEMORY_LIMIT}: DuckDB's JSON reader alone "
            "takes 32 MiB buffers, and loads would fail with an out-of-memory error after the whole extract.",
            action=f"Set it to {MIN_DUCKDB_MEMORY_LIMIT} or more (default {DEFAULT_DUCKDB_MEMORY_LIMIT}), or unset it.",
        )
    raw_threads = env.get("SYNC_DUCKDB_THREADS", "").strip()
    threads = raw_threads or str(DEFAULT_DUCKDB_THREADS)
    if not threads.isdigit() or int(threads) < 1:
        raise ConfigurationError(
            f"SYNC_DUCKDB_THREADS={raw_threads!r} is not a positive whole number.",
            action=f"Set it like {DEFAULT_DUCKDB_THREADS}, or unset it.",
        )
    return {"memory_limit": limit, "threads": int(threads)}


def _memory_bytes(size: str) -> float | None:
    """Bytes in a DuckDB memory size such as `128MB` or `1.5GiB`; None if it is not one."""
    match = _MEMORY_SIZE.fullmatch(size.strip())
    return float(match.group(1)) * _UNIT_BYTES[match.group(2).upper()] if match else None

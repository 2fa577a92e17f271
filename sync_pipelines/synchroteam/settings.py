"""A tenant's settings, read from the environment at run time (never at import, so definitions load without
secrets)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sync_pipelines.catalogue import Tenant
from sync_pipelines.errors import ConfigurationError

DEFAULT_BASE_URL = "https://ws.synchroteam.com/Api/v3"
DEFAULT_QUOTA_FLOOR = 100
# The longest wait for the API's rate window a run accepts: windows of up to an hour are waited out.
DEFAULT_MAX_RATE_WAIT_SECONDS = 3600.0
# The first wait after a 429 that says neither Retry-After nor X-RateLimit-Reset, doubled at each attempt: over the
# attempts, long enough for a per-minute window to pass.
DEFAULT_RATE_LIMIT_BACKOFF_SECONDS = 5.0


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
    rate_limit_backoff: float = DEFAULT_RATE_LIMIT_BACKOFF_SECONDS

    @classmethod
    def from_env(cls, tenant: Tenant, environ: Mapping[str, str] | None = None) -> TenantSettings:
        """Read `<PREFIX>BASE_URL`, `DOMAIN`, `API_KEY`, `TIMEZONE` (required: the API's timestamps carry no
        zone), `REQUESTS_PER_MINUTE`, `QUOTA_FLOOR`, `MAX_RATE_WAIT_SECONDS`, `RATE_LIMIT_BACKOFF_SECONDS`."""
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
            rate_limit_backoff=_positive_number(
                tenant, env, "RATE_LIMIT_BACKOFF_SECONDS", float, DEFAULT_RATE_LIMIT_BACKOFF_SECONDS
            ),
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
            f"{tenant.env(suffix)}={raw!r} is not a non-negative number.",
            action=f"Set {tenant.env(suffix)} or unset it.",
        )
    return number

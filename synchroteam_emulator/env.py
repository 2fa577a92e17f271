"""The environment that points the product's tenants at an emulator: each tenant's variables, named by the
catalogue (`<PREFIX>BASE_URL`, `DOMAIN`, `API_KEY`, `TIMEZONE`)."""

from __future__ import annotations

from collections.abc import Mapping

from sync_pipelines.catalogue import TENANTS

from .data import TenantSpec


def tenant_env(base_url: str, specs: Mapping[str, TenantSpec]) -> dict[str, str]:
    """`specs`: the emulated tenant standing in for each catalogue tenant, by the catalogue's tenant name."""
    env: dict[str, str] = {}
    for name, spec in specs.items():
        tenant = TENANTS[name]
        env[tenant.env("BASE_URL")] = base_url
        env[tenant.env("DOMAIN")] = spec.domain
        env[tenant.env("API_KEY")] = spec.api_key
        env[tenant.env("TIMEZONE")] = spec.timezone
    return env

"""The Dagster pools of the steps that write the warehouse, decided when the code location loads."""

from sync_pipelines.catalogue import TENANTS, Tenant
from sync_pipelines.warehouse.settings import duckdb_selected

DUCKDB_POOL = "duckdb_writer"
ANALYTICS_POOL = "analytics_writer"  # on PostgreSQL; on DuckDB the one writer pool of the file


def writer_pool(tenant: Tenant | None) -> str | None:
    """The pool of the steps that write `tenant`'s schema (None: every schema), read when the code location
    loads: one pool for the whole DuckDB file (`duckdb_writer`), one per tenant schema on PostgreSQL
    (`<tenant>_writer`), so tenants load in parallel there. The pool orders steps and shows the wait in the UI;
    the warehouse lock (`lock.step_turn`) is the guarantee."""
    if duckdb_selected():
        return DUCKDB_POOL
    return None if tenant is None else f"{tenant.name}_writer"


def analytics_pool() -> str:
    return writer_pool(None) or ANALYTICS_POOL


def writer_pools() -> list[str]:
    """Every pool a step that writes the warehouse may take."""
    pools = {writer_pool(tenant) for tenant in TENANTS.values()} | {analytics_pool()}
    return sorted(pool for pool in pools if pool is not None)

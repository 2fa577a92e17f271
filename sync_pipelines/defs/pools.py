"""The Dagster pools of the steps that write the warehouse, decided when the code location loads."""

from sync_pipelines.catalogue import Tenant
from sync_pipelines.warehouse.settings import duckdb_selected

DUCKDB_POOL = "duckdb_writer"


def writer_pool(tenant: Tenant | None) -> str | None:
    """The pool of the steps that write `tenant`'s schema (None: every schema), read when the code location
    loads: one pool for the whole DuckDB file (`duckdb_writer`), one per tenant schema on PostgreSQL
    (`<tenant>_writer`), so tenants load in parallel there. The pool orders steps and shows the wait in the UI;
    the warehouse lock (`lock.step_turn`) is the guarantee."""
    if duckdb_selected():
        return DUCKDB_POOL
    return None if tenant is None else f"{tenant.name}_writer"

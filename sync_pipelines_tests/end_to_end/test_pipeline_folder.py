"""dlt's local working folder on DuckDB: kept after a clean run (a run that changes nothing restores nothing from
the warehouse, and builds no pipeline at all), dropped when a run fails or finds a package a killed run left, so
that the warehouse's committed state is the only truth the next run starts from."""

import subprocess
import sys

from sync_pipelines.catalogue import ENTITIES, TENANTS
from sync_pipelines_tests.conftest import MAIN
from sync_pipelines_tests.helpers import run_entity_job

MAIN_TENANT = TENANTS["synchroteam"]
INVOICES = ENTITIES["invoices"]


# The entity's job in a process of its own, as a run worker runs it: whether the definitions imported dlt, whether
# the run succeeded, whether it built a dlt pipeline (the module that builds them was imported), whether it imported
# dlt at all, and what it loaded
JOB_IN_ITS_OWN_PROCESS = """
import sys
from dagster import DagsterInstance
from sync_pipelines.definitions import defs
from sync_pipelines_tests.jobs import without_analytics
by_definitions = "dlt" in sys.modules
with DagsterInstance.ephemeral() as instance:
    result = without_analytics(defs.resolve_job_def("sync_synchroteam__invoices")).execute_in_process(instance=instance)
(materialization,) = result.asset_materializations_for_node("synchroteam")
built = "sync_pipelines.warehouse.pipeline" in sys.modules
print("RESULT", by_definitions, result.success, built, "dlt" in sys.modules, materialization.metadata["loaded"].value)
"""


def run_in_own_process() -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", JOB_IN_ITS_OWN_PROCESS], capture_output=True, text=True, timeout=300, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return lines[-1].split()[1:]


def test_a_run_that_finds_nothing_builds_no_pipeline_and_one_that_loads_does(emulator, warehouse):
    """The definitions describe the assets without dlt, and a step that finds nothing to load builds no pipeline:
    a scheduled run that finds nothing restores, extracts and normalizes nothing. It does not even import dlt: the
    state the last load stored was decoded by that load (`state.StateCache`). A run with something to load builds
    its pipeline."""
    assert run_entity_job(MAIN_TENANT, INVOICES).success  # the first load, in this process

    assert run_in_own_process() == ["False", "True", "False", "False", "0"]  # nothing changed: no pipeline, no dlt
    store = emulator.tenant(MAIN.domain)
    store.add("invoice")
    store.advance_clock(minutes=2)  # the invoice's minute is over: the load remembers it as loaded (`reader`)
    assert run_in_own_process() == ["False", "True", "True", "True", "1"]  # a change: a pipeline, for the load
    assert run_in_own_process() == ["False", "True", "False", "False", "0"]  # the state that load stored, cached

"""The least a Dagster run costs here: one asset that does nothing, run as the product's jobs are run.

`dagster job execute -m bench.dagster_floor -j floor`, in an instance with the repository's dagster.yaml: the
same CLI, the same in-process executor, the same SQLite storage. What the process spends is Dagster's own cost of
a run (importing Dagster, its CLI, the instance, creating the run, its events, exiting): the part of every
product job's wall time that no product code can remove. `bench.run` measures it beside the product's full syncs.

No `from __future__ import annotations`: Dagster reads the asset's annotations.
"""

from dagster import Definitions, MaterializeResult, asset, define_asset_job, in_process_executor


@asset(key=["bench", "nothing"])
def nothing() -> MaterializeResult:
    """Materializes nothing: no IO manager, no output."""
    return MaterializeResult()


defs = Definitions(
    assets=[nothing],
    jobs=[define_asset_job("floor", selection=[nothing], executor_def=in_process_executor)],
)

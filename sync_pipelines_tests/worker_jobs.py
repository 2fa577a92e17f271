"""Jobs the run worker's tests run (`python -m sync_pipelines.run_worker --load sync_pipelines_tests.worker_jobs
job execute -m sync_pipelines_tests.worker_jobs -j ...`), with signs of how their process treats its heap."""

import atexit
import gc
import os
import sys

import duckdb
from dagster import Definitions, OpExecutionContext, in_process_executor, job, op


class FinalizedAtExit:
    """Alive until the interpreter's finalization frees it, which prints a sign."""

    def __del__(self, write=os.write) -> None:  # os.write, sys.stderr may be gone by then
        write(2, b"finalized at exit\n")


KEPT = FinalizedAtExit()
DATABASE = duckdb.connect()  # DuckDB's bindings report what is still alive when the interpreter is finalized
atexit.register(lambda: sys.stderr.write("exit handler ran\n"))


@op
def heap(context: OpExecutionContext) -> None:
    context.log.info(f"collector enabled={gc.isenabled()} frozen={gc.get_freeze_count()}")


@op
def fails() -> None:
    raise RuntimeError("this op fails")


@job(executor_def=in_process_executor)  # as the product's jobs
def heap_job() -> None:
    heap()


@job(executor_def=in_process_executor)  # as the product's jobs
def failing_job() -> None:
    fails()


defs = Definitions(jobs=[heap_job, failing_job])

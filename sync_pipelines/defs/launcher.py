"""The instance's run launcher (dagster.yaml `run_launcher`): Dagster's default one, which starts each run in a
process of its own, plus
- the health check run monitoring asks every poll (`run_monitoring.poll_interval_seconds`): a run whose lease is
  lost (`leases.py`) is reported dead, and run monitoring marks it failed with that message and frees its queue
  lane and, `free_slots_after_run_end_seconds` later, its pool slots. Dagster's default launcher cannot tell:
  without this, a dead run waits for its `dagster/max_runtime`;
- with `run_worker: true` (the project's dagster.yaml), the run's process is started by the launcher itself, on
  its host and with its environment, as `python -m sync_pipelines.run_worker` (`dagster api execute_run`, with a
  run's treatment of the heap: `run_worker.py`), instead of by the code server. Terminating such a run
  interrupts its process as the code server would (SIGINT): its step ends, and so does the run, canceled.
"""

import json
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Mapping
from typing import Any

import psycopg2
from dagster import DagsterRun, DefaultRunLauncher, Field
from dagster._config.config_schema import UserConfigSchema
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.instance.ref import InstanceRef
from dagster._core.launcher.base import CheckRunHealthResult, LaunchRunContext, WorkerStatus
from dagster._core.origin import JobPythonOrigin
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import serialize_value
from dagster._serdes.config_class import ConfigurableClassData

from sync_pipelines.defs.leases import lost_lease
from sync_pipelines.errors import SyncError
from sync_pipelines.warehouse.settings import warehouse

WORKER_TAG = "sync_pipelines/run_worker"  # {"host": ..., "pid": ...} of a run the launcher started itself
WORKER_MODULE = "sync_pipelines.run_worker"


def worker_command(instance: InstanceRef, run_id: str, origin: JobPythonOrigin) -> list[str]:
    """The run worker's command line for a run (`ps` shows it: the instance's reference names the variables that
    hold secrets, never their values)."""
    pointer = origin.repository_origin.code_pointer
    load = ["--load", pointer.module] if isinstance(pointer, ModuleCodePointer) else []
    args = ExecuteRunArgs(job_origin=origin, run_id=run_id, instance_ref=instance)
    return [origin.executable_path, "-m", WORKER_MODULE, *load, "api", "execute_run", serialize_value(args)]


class LeaseCheckingRunLauncher(DefaultRunLauncher):
    def __init__(self, inst_data: ConfigurableClassData | None = None, run_worker: bool = False) -> None:
        super().__init__(inst_data=inst_data)
        self.run_worker = run_worker

    @classmethod
    def config_type(cls) -> UserConfigSchema:
        return {
            "run_worker": Field(
                bool,
                default_value=False,
                description="Start each run's process here (python -m sync_pipelines.run_worker), not in the code server.",
            )
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> "LeaseCheckingRunLauncher":
        return cls(inst_data=inst_data, run_worker=bool(config_value.get("run_worker", False)))

    def launch_run(self, context: LaunchRunContext) -> None:
        if not self.run_worker:
            super().launch_run(context)
            return
        run = context.dagster_run
        origin = run.job_code_origin
        if origin is None:  # a run without a code origin: only the code server knows how to start it
            super().launch_run(context)
            return
        process = subprocess.Popen(
            worker_command(self._instance.get_ref(), run.run_id, origin),
            cwd=getattr(origin.repository_origin.code_pointer, "working_directory", None) or None,
            stdin=subprocess.DEVNULL,
        )
        # its exit status collected as soon as it ends: no zombie processes under a daemon that lives for months
        threading.Thread(target=process.wait, name=f"run-worker-{run.run_id[:8]}", daemon=True).start()
        self._run_ids.add(run.run_id)
        self._instance.add_run_tags(
            run.run_id, {WORKER_TAG: json.dumps({"host": socket.gethostname(), "pid": process.pid})}
        )

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id) if self.has_instance else None
        if run is None or WORKER_TAG not in run.tags:
            return super().terminate(run_id)
        if run.is_finished:
            return False
        worker = json.loads(run.tags[WORKER_TAG])
        self._instance.report_run_canceling(run)
        if worker.get("host") != socket.gethostname():
            self._instance.report_engine_event(
                f"The run's process is on host {worker.get('host')}: it cannot be interrupted from here.",
                run,
                cls=self.__class__,
            )
            return False
        try:
            os.kill(int(worker["pid"]), signal.SIGINT)
        except ProcessLookupError:
            return False
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        # Run monitoring fails a run for any answer but RUNNING: a check that cannot be made says RUNNING, and the
        # run's `dagster/max_runtime` still bounds it
        try:
            reason = lost_lease(self._instance, run, warehouse())
        except (SyncError, OSError, psycopg2.Error) as error:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"lease not checked: {type(error).__name__}")
        if reason is not None:
            return CheckRunHealthResult(WorkerStatus.FAILED, reason)
        return CheckRunHealthResult(WorkerStatus.RUNNING)

"""The instance's run launcher (dagster.yaml `run_launcher`): Dagster's default one, which starts each run in a
process of its own, plus the health check run monitoring asks every poll (`run_monitoring.poll_interval_seconds`):
a run whose lease is lost (`leases.py`) is reported dead, and run monitoring marks it failed with that message and
frees its queue lane and, `free_slots_after_run_end_seconds` later, its pool slots. Dagster's default launcher
cannot tell: without this, a dead run waits for its `dagster/max_runtime`."""

from collections.abc import Mapping
from typing import Any

import psycopg2
from dagster import DagsterRun, DefaultRunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus
from dagster._serdes.config_class import ConfigurableClassData

from sync_pipelines.defs.leases import lost_lease
from sync_pipelines.errors import SyncError
from sync_pipelines.warehouse.settings import warehouse


class LeaseCheckingRunLauncher(DefaultRunLauncher):
    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> "LeaseCheckingRunLauncher":
        return cls(inst_data=inst_data)

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

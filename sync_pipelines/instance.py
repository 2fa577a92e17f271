"""The Dagster instance's settings: `dagster.yaml` for a DAGSTER_HOME, on SQLite (the default) or PostgreSQL.

    python -m sync_pipelines.instance dagster.yaml <DAGSTER_HOME>

writes `<DAGSTER_HOME>/dagster.yaml`: the project's `dagster.yaml` (run queue, pools, run monitoring), plus a
storage block:
- when `SYNC_DAGSTER_POSTGRES_URL` is set, run history, event logs, schedules' state and the run queue in that
  PostgreSQL database. The block names the variable, never its value: the password stays in the environment of
  the processes that need it (webserver, daemon, code server, run workers);
- otherwise Dagster's SQLite files under the DAGSTER_HOME, as Dagster lays them out, written by
  `instance_storage.SqliteStorage` (which holds the files it writes open: a run stores its events in a fraction
  of the time). The block names the DAGSTER_HOME's path: written again by every `make` target that uses it.
"""

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from sync_pipelines.private import tighten

POSTGRES_URL = "SYNC_DAGSTER_POSTGRES_URL"
POSTGRES_STORAGE = f"""
# Run history, event logs, schedules' state and the run queue in PostgreSQL (dagster-postgres), from
# {POSTGRES_URL}: every webserver, daemon and run worker of the deployment shares them.
storage:
  postgres:
    postgres_url:
      env: {POSTGRES_URL}
"""


SQLITE_STORAGE = """
# Run history, event logs, schedules' state and the run queue in SQLite files under the DAGSTER_HOME, as Dagster's
# default storage lays them out; its event log holds the files it writes open (sync_pipelines/instance_storage.py).
storage:
  custom:
    module: sync_pipelines.instance_storage
    class: SqliteStorage
    config:
      base_dir: {base_dir}
"""


def dagster_yaml(project_yaml: Path, home: Path, environ: Mapping[str, str] | None = None) -> str:
    """The dagster.yaml of the instance at `home` for this environment, from the project's (`project_yaml`)."""
    env = os.environ if environ is None else environ
    text = project_yaml.read_text()
    if env.get(POSTGRES_URL, "").strip():
        return text + POSTGRES_STORAGE
    return text + SQLITE_STORAGE.format(base_dir=json.dumps(str(home.resolve())))


def write_dagster_yaml(project_yaml: Path, home: Path, environ: Mapping[str, str] | None = None) -> Path:
    """Write `home/dagster.yaml` (and `home`); its path."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    target.write_text(dagster_yaml(project_yaml, home, environ))
    tighten([home])  # run history, event logs, `emulator.env`: owner-only (private.py)
    return target


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    written = write_dagster_yaml(Path(sys.argv[1]), Path(sys.argv[2]))
    storage = "PostgreSQL" if os.environ.get(POSTGRES_URL, "").strip() else "SQLite"
    print(f"Wrote {written} (run history on {storage})")

"""`make demo` and `make ui`: the whole product on the bundled emulator.

`python -m synchroteam_emulator.demo run` serves both demo tenants on 127.0.0.1, launches `sync_all` against
them through the instance (`launch.py`: listed on the job's page in the UI), prints its progress and then what
landed in the warehouse, and stops the emulator. `... demo ui` serves the emulator under `dagster dev` until interrupted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from sync_pipelines.private import PRIVATE_UMASK
from sync_pipelines.warehouse.settings import DuckDBWarehouse, Warehouse, read_copy_path, warehouse
from sync_pipelines.warehouse.tables import exists_yet, table_summary
from synchroteam_emulator import (
    Emulator,
    TenantSpec,
    add_api_habit_arguments,
    apply_api_habits,
    check_api_habits,
)
from synchroteam_emulator.env import tenant_env
from synchroteam_emulator.launch import run_and_follow


def emulator_env(emulator: Emulator, main: TenantSpec, hec: TenantSpec) -> dict[str, str]:
    """The environment that points both tenants at the emulator."""
    return tenant_env(emulator.base_url, {"synchroteam": main, "synchroteam_hec": hec})


def _dagster(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("dagster")), *args]


def run(scale: float, habits: argparse.Namespace | None = None) -> int:
    main, hec = TenantSpec.demo_main(scale), TenantSpec.demo_hec(scale)
    with Emulator([main, hec]) as emulator:
        if habits is not None:
            apply_api_habits(emulator, habits)
        print(f"Synchroteam emulator serving tenants '{main.domain}' and '{hec.domain}' at {emulator.base_url}")
        env = {**os.environ, **emulator_env(emulator, main, hec)}
        if "DAGSTER_HOME" not in env:
            sys.exit("DAGSTER_HOME is not set: run `make demo`, which sets it (or export it).")
        try:
            followed = run_and_follow("sync_all", env)
        except RuntimeError as error:
            print(error, file=sys.stderr)
            return 1
        code = 0 if followed.succeeded else 1
        requests = len(emulator.requests)
    target = warehouse(env)
    if exists_yet(target):
        print_summary(target, requests, followed.records_loaded)
        print(where_analysts_start(target))
    if code:
        print("sync_all failed; see the steps' messages above, or the run in `make ui`.", file=sys.stderr)
    return code


def print_summary(target: Warehouse, requests: int, loaded: int) -> None:
    """What this run did, then what the warehouse holds."""
    rows = table_summary(target)
    width = max((len(f"{schema}.{table}") for schema, table, _ in rows), default=10)
    did = (
        f"{requests:,} API request{'s' if requests != 1 else ''}, {loaded:,} record{'s' if loaded != 1 else ''} loaded"
    )
    print(f"\nThis run: {'nothing changed: ' if loaded == 0 else ''}{did}.")
    print(f"What the warehouse holds ({target}):")
    for schema, table, count in rows:
        print(f"  {schema + '.' + table:<{width}}  {count:>8,}")


def where_analysts_start(target: Warehouse) -> str:
    """The summary's last line: analysts query the `analytics` schema (of the read copy, on DuckDB)."""
    if isinstance(target, DuckDBWarehouse):
        where = f"the read copy ({read_copy_path(target.path)}): make sql"
    else:
        where = str(target)
    return f"\nAnalysts start at the schema analytics in {where} (dictionary: make docs)."


def ui(scale: float, habits: argparse.Namespace | None = None, port: int = 3000) -> int:
    """`dagster dev` on 127.0.0.1:`port` over the emulator, until Ctrl-C. The emulator's variables are printed and
    written to `$DAGSTER_HOME/emulator.env`, for tools started from another shell (`set -a; . that file`)."""
    main, hec = TenantSpec.demo_main(scale), TenantSpec.demo_hec(scale)
    with Emulator([main, hec]) as emulator:
        if habits is not None:
            apply_api_habits(emulator, habits)
        tenants = emulator_env(emulator, main, hec)
        # `dagster dev` warns, through click, that `dg dev` supersedes it: nothing for a user to act on here
        env = {**os.environ, **tenants, "PYTHONWARNINGS": "ignore:::click.core"}
        # the warehouse where `make demo` writes it, whatever the working folder of `dagster dev`
        target = warehouse(env)
        if isinstance(target, DuckDBWarehouse):
            env["SYNC_DUCKDB_PATH"] = str(target.path)
        home = Path(env.get("DAGSTER_HOME") or ".dagster_home").absolute()
        home.mkdir(parents=True, exist_ok=True)
        variables = home / "emulator.env"
        variables.write_text("".join(f"{name}={value}\n" for name, value in sorted(tenants.items())))
        print(f"Synchroteam emulator at {emulator.base_url}; its variables are in {variables}:")
        print("".join(f"  {name}={value}\n" for name, value in sorted(tenants.items())), end="")
        print(f"Dagster UI at http://127.0.0.1:{port} (Ctrl-C stops both)", flush=True)
        try:
            return subprocess.call(
                _dagster("dev", "-m", "sync_pipelines.definitions", "-h", "127.0.0.1", "-p", str(port)),
                env=env,
                cwd=home,  # not the repository's folder: its dagster.yaml would be reported as "not used"
            )
        except KeyboardInterrupt:
            return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "ui"])
    parser.add_argument("--scale", type=float, default=1.0, help="emulator data scale (1 = a few thousand records)")
    parser.add_argument("--port", type=int, default=3000, help="the UI's port (`make ui UI_PORT=3001`)")
    add_api_habit_arguments(parser)  # e.g. --rate-limit 40 --rate-window 240 --fixed-window --rate-headers
    args = parser.parse_args(argv)
    check_api_habits(parser, args)
    # the instance, the warehouse, `emulator.env` and every process started from here: owner-only
    os.umask(PRIVATE_UMASK)
    return run(args.scale, args) if args.command == "run" else ui(args.scale, args, args.port)


if __name__ == "__main__":
    sys.exit(main())

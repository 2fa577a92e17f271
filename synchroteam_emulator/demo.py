"""`make demo` and `make ui`: the whole product on the bundled emulator.

`python -m synchroteam_emulator.demo run` serves both demo tenants on 127.0.0.1, runs
`dagster job execute -m sync_pipelines.definitions -j sync_all` against them, prints what landed in DuckDB and
stops the emulator. `... demo ui` serves the emulator under `dagster dev` until interrupted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from sync_pipelines.warehouse.settings import DuckDBWarehouse, Warehouse, warehouse
from sync_pipelines.warehouse.tables import table_summary
from synchroteam_emulator import (
    Emulator,
    TenantSpec,
    add_api_habit_arguments,
    apply_api_habits,
    check_api_habits,
)
from synchroteam_emulator.env import tenant_env

QUIET = '{"loggers": {"console": {"config": {"log_level": "INFO"}}}}'


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
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as quiet:
            quiet.write(QUIET)  # JSON is YAML: the console logger at INFO, not every DEBUG event
            quiet.flush()
            code = subprocess.call(
                _dagster("job", "execute", "-m", "sync_pipelines.definitions", "-j", "sync_all", "-c", quiet.name),
                env=env,
            )
        requests = len(emulator.requests)
    target = warehouse(env)
    if not isinstance(target, DuckDBWarehouse) or target.path.exists():
        print_summary(target, requests)
    if code:
        print(f"sync_all failed (exit {code}); see the Dagster log above.", file=sys.stderr)
    return code


def print_summary(target: Warehouse, requests: int) -> None:
    rows = table_summary(target)
    width = max((len(f"{schema}.{table}") for schema, table, _ in rows), default=10)
    print(f"\nWhat landed in {target} ({requests} API requests):")
    for schema, table, count in rows:
        print(f"  {schema + '.' + table:<{width}}  {count:>8,}")


def ui(scale: float, habits: argparse.Namespace | None = None) -> int:
    main, hec = TenantSpec.demo_main(scale), TenantSpec.demo_hec(scale)
    with Emulator([main, hec]) as emulator:
        if habits is not None:
            apply_api_habits(emulator, habits)
        env = {**os.environ, **emulator_env(emulator, main, hec)}
        print(f"Emulator at {emulator.base_url}; Dagster UI at http://127.0.0.1:3000 (Ctrl-C stops both)")
        try:
            return subprocess.call(
                _dagster("dev", "-m", "sync_pipelines.definitions", "-h", "127.0.0.1", "-p", "3000"), env=env
            )
        except KeyboardInterrupt:
            return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "ui"])
    parser.add_argument("--scale", type=float, default=1.0, help="emulator data scale (1 = a few thousand records)")
    add_api_habit_arguments(parser)  # e.g. --rate-limit 40 --rate-window 240 --fixed-window --rate-headers
    args = parser.parse_args(argv)
    check_api_habits(parser, args)
    return run(args.scale, args) if args.command == "run" else ui(args.scale, args)


if __name__ == "__main__":
    sys.exit(main())

"""The warehouse's settings, read from the environment at run time: where it is and how DuckDB is bounded."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from sync_pipelines.errors import ConfigurationError

DEFAULT_DUCKDB_PATH = Path("data") / "warehouse.duckdb"
# DuckDB's own defaults (80% of RAM, a thread per core) let a first load of a million records take over a GB;
# with these it spills to `<warehouse>.tmp/` instead and the whole sync stays under 400 MB (BENCHMARKS.md).
DEFAULT_DUCKDB_MEMORY_LIMIT = "128MB"
DEFAULT_DUCKDB_THREADS = 2
# DuckDB's JSON reader takes 32 MiB buffers: a first load failed at once below 80MB with 2 threads (88MB with 4)
MIN_DUCKDB_MEMORY_LIMIT = "96MB"
_MEMORY_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|[KMGT]i?B)", re.IGNORECASE)
_UNIT_BYTES = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}  # DuckDB's units: KB is 1000, KiB 1024


def warehouse_path(environ: Mapping[str, str] | None = None) -> Path:
    """The DuckDB file every pipeline writes: `SYNC_DUCKDB_PATH`, default `data/warehouse.duckdb`."""
    env = os.environ if environ is None else environ
    raw = env.get("SYNC_DUCKDB_PATH", "").strip()
    return Path(raw).expanduser().absolute() if raw else DEFAULT_DUCKDB_PATH.absolute()


def check_warehouse_path(path: Path, schemas: Iterable[str]) -> None:
    """DuckDB names the database after the file: `synchroteam.duckdb` would shadow the `synchroteam` schema."""
    if path.stem in set(schemas):
        raise ConfigurationError(
            f"SYNC_DUCKDB_PATH={str(path)!r}: a DuckDB file named after the schema {path.stem!r} makes every "
            f"query on that schema ambiguous.",
            action="Name the file differently, e.g. data/warehouse.duckdb.",
        )


def pipelines_dir(duckdb_path: Path) -> Path:
    """dlt's local working folder for a warehouse: scratch only, the state lives in DuckDB."""
    return duckdb_path.parent / ".dlt_pipelines" / duckdb_path.stem


def duckdb_settings(environ: Mapping[str, str] | None = None) -> dict[str, str | int]:
    """DuckDB's `memory_limit` and `threads` for every connection to the warehouse: `SYNC_DUCKDB_MEMORY_LIMIT`
    (default 128MB) and `SYNC_DUCKDB_THREADS` (default 2). Larger values load faster on big machines."""
    env = os.environ if environ is None else environ
    limit = env.get("SYNC_DUCKDB_MEMORY_LIMIT", "").strip() or DEFAULT_DUCKDB_MEMORY_LIMIT
    size = _memory_bytes(limit)
    if size is None:
        raise ConfigurationError(
            f"SYNC_DUCKDB_MEMORY_LIMIT={limit!r} is not a memory size.",
            action=f"Set it like {DEFAULT_DUCKDB_MEMORY_LIMIT} or 1GB, or unset it.",
        )
    floor = _memory_bytes(MIN_DUCKDB_MEMORY_LIMIT)
    if floor is not None and size < floor:
        raise ConfigurationError(
            f"SYNC_DUCKDB_MEMORY_LIMIT={limit!r} is below {MIN_DUCKDB_MEMORY_LIMIT}: DuckDB's JSON reader alone "
            "takes 32 MiB buffers, and loads would fail with an out-of-memory error after the whole extract.",
            action=f"Set it to {MIN_DUCKDB_MEMORY_LIMIT} or more (default {DEFAULT_DUCKDB_MEMORY_LIMIT}), or unset it.",
        )
    raw_threads = env.get("SYNC_DUCKDB_THREADS", "").strip()
    threads = raw_threads or str(DEFAULT_DUCKDB_THREADS)
    if not threads.isdigit() or int(threads) < 1:
        raise ConfigurationError(
            f"SYNC_DUCKDB_THREADS={raw_threads!r} is not a positive whole number.",
            action=f"Set it like {DEFAULT_DUCKDB_THREADS}, or unset it.",
        )
    return {"memory_limit": limit, "threads": int(threads)}


def _memory_bytes(size: str) -> float | None:
    """Bytes in a DuckDB memory size such as `128MB` or `1.5GiB`; None if it is not one."""
    match = _MEMORY_SIZE.fullmatch(size.strip())
    return float(match.group(1)) * _UNIT_BYTES[match.group(2).upper()] if match else None

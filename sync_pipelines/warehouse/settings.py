"""The warehouse's settings, read from the environment at run time: which warehouse (a DuckDB file, the default,
or a PostgreSQL database) and how DuckDB is bounded."""

from __future__ import annotations

import grp
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from sync_pipelines.errors import ConfigurationError

WAREHOUSE_URL = "SYNC_WAREHOUSE_URL"
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg2")
DEFAULT_POSTGRES_PORT = 5432

DEFAULT_DUCKDB_PATH = Path("data") / "warehouse.duckdb"
# DuckDB's own defaults (80% of RAM, a thread per core) let a first load of a million records take over a GB;
# with these it spills to `<warehouse>.tmp/` instead, and a sync's memory stays flat (BENCHMARKS.md).
DEFAULT_DUCKDB_MEMORY_LIMIT = "128MB"
DEFAULT_DUCKDB_THREADS = 2
# DuckDB's JSON reader takes 32 MiB buffers a thread: a first load below this fails at once
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


@dataclass(frozen=True)
class DuckDBWarehouse:
    """The default: one DuckDB file, one writing process at a time, a read copy for analysts."""

    path: Path
    kind = "duckdb"

    def __str__(self) -> str:
        return str(self.path)

    def lock_scope(self, schema: str) -> str:
        """What one writer holds: the whole file (DuckDB takes one writing process)."""
        return str(self.path)


@dataclass(frozen=True)
class PostgresWarehouse:
    """A PostgreSQL database (`SYNC_WAREHOUSE_URL`): tenants load in parallel, analysts connect to it directly.

    The password is kept out of `repr` and `str`: both name the database as `postgresql://user@host:port/db`.
    """

    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)
    query: str = ""
    kind = "postgres"

    def __str__(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def lock_scope(self, schema: str) -> str:
        """What one writer holds: the tenant's schema (each has its own tables and dlt state)."""
        return f"{self}/{schema}"

    def options(self) -> dict[str, str]:
        """The URL's query (`?sslmode=require&...`): libpq's connection options."""
        return dict(parse_qsl(self.query))

    def credentials(self) -> dict[str, object]:
        """dlt's postgres credentials."""
        return {
            "host": self.host,
            "port": self.port,
            "database": self.database,
            "username": self.user,
            "password": self.password,
            "query": self.options(),
        }


Warehouse = DuckDBWarehouse | PostgresWarehouse


def warehouse(environ: Mapping[str, str] | None = None) -> Warehouse:
    """The warehouse every pipeline writes: `SYNC_WAREHOUSE_URL` (a PostgreSQL database) when set, else the
    DuckDB file `SYNC_DUCKDB_PATH`. A URL that cannot name a database raises `ConfigurationError` naming the
    variable; the password is never repeated."""
    env = os.environ if environ is None else environ
    raw = env.get(WAREHOUSE_URL, "").strip()
    if not raw:
        return DuckDBWarehouse(warehouse_path(env))
    if env.get("SYNC_DUCKDB_PATH", "").strip():
        raise ConfigurationError(
            f"Both {WAREHOUSE_URL} and SYNC_DUCKDB_PATH are set: the warehouse would be ambiguous.",
            action=f"Unset SYNC_DUCKDB_PATH to load into PostgreSQL, or {WAREHOUSE_URL} to load into DuckDB.",
        )
    return _postgres(raw)


def duckdb_selected(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the warehouse is a DuckDB file (no `SYNC_WAREHOUSE_URL`), without reading the URL's contents: what
    the code location decides when it loads (pools, the read copy), so that a bad URL cannot break its load."""
    env = os.environ if environ is None else environ
    return not env.get(WAREHOUSE_URL, "").strip()


def _postgres(raw: str) -> PostgresWarehouse:
    try:
        url = urlsplit(raw)
        port = url.port
    except ValueError:
        url, port = None, None
    shown = _redacted(url) if url is not None else "(not a URL)"
    example = "postgresql://sync:PASSWORD@db.example.com:5432/warehouse"
    if url is None or url.scheme.lower() not in POSTGRES_SCHEMES:
        scheme = url.scheme if url is not None and url.scheme else "none"
        raise ConfigurationError(
            f"{WAREHOUSE_URL}={shown}: unknown scheme {scheme!r}; the warehouse is a PostgreSQL database.",
            action=f"Set it like {example}, or unset it to use the DuckDB file SYNC_DUCKDB_PATH.",
        )
    missing = [
        name
        for name, value in (("user", url.username), ("password", url.password), ("host", url.hostname))
        if not value
    ]
    database = unquote(url.path.lstrip("/"))
    if not database or "/" in database:
        missing.append("database")
    if missing:
        raise ConfigurationError(
            f"{WAREHOUSE_URL}={shown} has no {', no '.join(missing)}.",
            action=f"Set it like {example} (dlt's loads need the password in the URL; quote special characters "
            "with %XX).",
        )
    return PostgresWarehouse(
        host=url.hostname or "",
        port=port or DEFAULT_POSTGRES_PORT,
        database=database,
        user=unquote(url.username or ""),
        password=unquote(url.password or ""),
        query=url.query,
    )


def _redacted(url: SplitResult) -> str:
    """The URL with its password replaced by `***`, for messages."""
    netloc = url.netloc
    if url.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    return f"{url.scheme}://{netloc}{url.path}"


def warehouse_path(environ: Mapping[str, str] | None = None) -> Path:
    """The DuckDB file every pipeline writes: `SYNC_DUCKDB_PATH`, default `data/warehouse.duckdb`."""
    env = os.environ if environ is None else environ
    raw = env.get("SYNC_DUCKDB_PATH", "").strip()
    return Path(raw).expanduser().absolute() if raw else DEFAULT_DUCKDB_PATH.absolute()


def read_copy_path(path: Path) -> Path:
    """Where analysts read a DuckDB warehouse: `<stem>_read.duckdb` beside it (see `read_copy.py`)."""
    return path.with_name(f"{path.stem}_read{path.suffix}")


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


def rejected_folder(target: Warehouse) -> Path:
    """Where the CSV exports go: `rejected/<schema>/` beside the DuckDB file, or under `data/` (PostgreSQL)."""
    if isinstance(target, DuckDBWarehouse):
        return target.path.parent / "rejected"
    return Path("data").absolute() / "rejected"


# A local folder per PostgreSQL database, for dlt's scratch files only: the state lives in the database, and a
# run on another host (or after this folder is gone) restores it from there
POSTGRES_PIPELINES_ROOT = Path(tempfile.gettempdir()) / "sync_pipelines" / "dlt_pipelines"


def working_folder(target: Warehouse) -> Path:
    """The local folder of the warehouse's dlt pipelines (their working folders) and of what the product keeps
    beside them (`state.StateCache`): scratch only, whatever is lost is rebuilt from the warehouse."""
    if isinstance(target, DuckDBWarehouse):
        return pipelines_dir(target.path)
    return POSTGRES_PIPELINES_ROOT / f"postgres_{target.host}_{target.port}_{target.database}"


READ_COPY_GROUP = "SYNC_READ_COPY_GROUP"


def read_copy_group(environ: Mapping[str, str] | None = None) -> int | None:
    """The group (id) whose members may read the read copy (`SYNC_READ_COPY_GROUP`), or None: owner-only."""
    env = os.environ if environ is None else environ
    name = env.get(READ_COPY_GROUP, "").strip()
    if not name:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ConfigurationError(
            f"{READ_COPY_GROUP}={name!r} is not a group of this host.",
            action="Create the group (groupadd) and add the analysts to it, or unset the variable.",
        ) from None

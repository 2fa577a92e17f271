"""The read copy analysts open (`<stem>_read.duckdb`): a whole copy of the checkpointed warehouse, replaced
atomically (copy, then rename), so a reader never sees a half-written file and one holding the old copy open
keeps reading it undisturbed.

The copy holds the tenants' schemas and `analytics`, not dlt's `*_staging` schemas (dropped from the copy before it
is published). Copying a warehouse of hundreds of MB is not free, so the copy is replaced only when it is not current: beside
it, a stamp records the state of the warehouse file it was copied from.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from sync_pipelines.warehouse.dialect import duckdb_connection
from sync_pipelines.warehouse.settings import DuckDBWarehouse, read_copy_group, read_copy_path

# DuckDB's main header and its two database headers: every checkpoint that writes anything rewrites one of
# the latter with a higher checkpoint counter.
HEADERS_BYTES = 3 * 4096


def publish_read_copy(path: Path) -> Path:
    """Checkpoint the warehouse and atomically replace its read copy, whatever it holds."""
    target = read_copy_path(path)
    with duckdb_connection(DuckDBWarehouse(path)) as con:
        con.execute("CHECKPOINT")  # everything in the main file, nothing left in the WAL
    _replace(path, target, _file_state(path, headers=True))
    return target


def refresh_read_copy(path: Path) -> bool:
    """`publish_read_copy` unless the read copy already holds the warehouse as it is now; True if replaced.

    After the CHECKPOINT every committed change is in the main file; the file's identity, size, modification
    time and headers, compared with those recorded when the copy was made, tell whether it changed since. A copy
    replaced or removed behind our back is published again.
    """
    if not path.exists():
        return False
    target = read_copy_path(path)
    with duckdb_connection(DuckDBWarehouse(path)) as con:
        con.execute("CHECKPOINT")
    source = _file_state(path, headers=True)
    if target.exists() and _read_stamp(target) == {"source": source, "copy": _file_state(target)}:
        return False
    _replace(path, target, source)
    return True


def stamp_path(target: Path) -> Path:
    """Beside the read copy: the state of the warehouse file it was copied from."""
    return target.with_name(f".{target.name}.source")


def _replace(path: Path, target: Path, source: list) -> None:
    stamp = stamp_path(target)
    stamp.unlink(missing_ok=True)  # no stamp while the copy and the warehouse may disagree
    partial = target.with_name(f".{target.name}.partial")
    shutil.copyfile(path, partial)
    _drop_staging(partial)
    _share(partial, read_copy_group())
    os.replace(partial, target)
    stamp.write_text(json.dumps({"source": source, "copy": _file_state(target)}))


def _drop_staging(copy: Path) -> None:
    """What analysts need, not dlt's scratch: the copy loses the `<schema>_staging` schemas of dlt's merges."""
    with duckdb_connection(DuckDBWarehouse(copy)) as con:
        staging = con.execute(
            "SELECT schema_name FROM duckdb_schemas() WHERE NOT internal AND database_name = current_database() "
            "AND ends_with(schema_name, '_staging')"
        ).fetchall()
        for (schema,) in staging:
            con.execute(f'DROP SCHEMA "{schema}" CASCADE')
        if staging:
            con.execute("CHECKPOINT")


def _read_stamp(target: Path) -> dict | None:
    try:
        return json.loads(stamp_path(target).read_text())
    except (OSError, ValueError):
        return None


def _file_state(path: Path, headers: bool = False) -> list:
    stat = path.stat()
    state: list = [stat.st_ino, stat.st_size, stat.st_mtime_ns]
    if headers:
        with path.open("rb") as handle:
            state.append(hashlib.sha256(handle.read(HEADERS_BYTES)).hexdigest())
    return state


def _share(copy: Path, group: int | None) -> None:
    """The read copy readable by `group` (`SYNC_READ_COPY_GROUP`), and its folder passable: 0640 and 0710, that
    group's. Without a group it stays owner-only, as everything the product writes."""
    if group is None:
        return
    for path, mode in ((copy.parent, 0o710), (copy, 0o640)):
        os.chown(path, -1, group)
        os.chmod(path, mode)

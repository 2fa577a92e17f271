"""What a run makes private (`private.py`): its umask while it runs, the Dagster instance's folder,
and every file and folder the product writes for the warehouse."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import DagsterInstance

from sync_pipelines.private import PRIVATE_UMASK, tighten
from sync_pipelines.warehouse.settings import (
    POSTGRES_PIPELINES_ROOT,
    DuckDBWarehouse,
    Warehouse,
    pipelines_dir,
    read_copy_group,
    read_copy_path,
    rejected_folder,
)


def written_paths(target: Warehouse) -> list[Path]:
    """The warehouse's files and folders: on DuckDB the file and its siblings (`.wal`, `.lock`, `.runs/`, the
    spill folder `.tmp/`), the read copy, dlt's working folders and the rejected records' CSVs."""
    if not isinstance(target, DuckDBWarehouse):
        return [POSTGRES_PIPELINES_ROOT.parent, rejected_folder(target)]
    path = target.path
    copy = read_copy_path(path)
    shared = {copy} if read_copy_group() is not None else set()  # SYNC_READ_COPY_GROUP: the analysts' on purpose
    return [
        *path.parent.glob(f"{path.name}*"),
        *path.parent.glob(f".{path.name}*"),
        *(sibling for sibling in path.parent.glob(f"{copy.name}*") if sibling not in shared),
        *path.parent.glob(f".{copy.name}*"),
        pipelines_dir(path).parent,
        rejected_folder(target),
    ]


@contextmanager
def owner_only(instance: DagsterInstance, target: Warehouse) -> Iterator[None]:
    """For the block (the run), this process creates owner-only files; what exists already is tightened first.
    The process's umask is restored after: a run in process (`execute_in_process`) leaves its caller's alone."""
    before = os.umask(PRIVATE_UMASK)
    try:
        tighten([Path(instance.root_directory), *written_paths(target)])
        yield
    finally:
        os.umask(before)

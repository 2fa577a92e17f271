"""Owner-only files: `tighten` takes the group's and others' bits off what the product wrote, and nothing else."""

import os
import stat
from pathlib import Path

from sync_pipelines.private import tighten


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_what_was_readable_by_others_becomes_owner_only_and_what_was_not_is_left_as_it_was(tmp_path):
    data = tmp_path / "data"
    (data / ".dlt_pipelines" / "p" / "load").mkdir(parents=True)
    warehouse = data / "warehouse.duckdb"
    warehouse.write_text("rows")
    package = data / ".dlt_pipelines" / "p" / "load" / "part.jsonl"
    package.write_text("{}")
    script = data / "export.sh"
    script.write_text("#!/bin/sh\n")
    for folder in (
        data,
        data / ".dlt_pipelines",
        data / ".dlt_pipelines" / "p",
        data / ".dlt_pipelines" / "p" / "load",
    ):
        folder.chmod(0o755)
    warehouse.chmod(0o644)
    package.chmod(0o664)
    script.chmod(0o750)
    outside = tmp_path / "shared.txt"
    outside.write_text("not ours")
    outside.chmod(0o644)
    (data / "link").symlink_to(outside)

    tighten([data, tmp_path / "missing"])

    assert mode(data) == 0o700 and mode(data / ".dlt_pipelines" / "p" / "load") == 0o700
    assert mode(warehouse) == 0o600 and mode(package) == 0o600
    assert mode(script) == 0o700  # the owner's bits are kept
    assert mode(outside) == 0o644  # a link is not followed


def test_a_folder_already_private_is_not_walked_again(tmp_path):
    private = tmp_path / "home"
    (private / "storage").mkdir(parents=True)
    private.chmod(0o700)
    (private / "storage").chmod(0o700)
    deep = private / "storage" / "run.log"
    deep.write_text("")
    deep.chmod(0o644)  # unreachable for others: its folder is private
    top = private / "dagster.yaml"
    top.write_text("")
    top.chmod(0o644)

    tighten([private])

    assert mode(top) == 0o600  # what the folder itself holds is always looked at
    assert mode(deep) == 0o644

"""A run makes what it writes owner-only, whatever the umask it was started with, and tightens what an earlier run
(or another umask) left readable: the warehouse holds customers' names, e-mails and phones."""

import grp
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync_pipelines.catalogue import ENTITIES, TENANTS
from sync_pipelines.warehouse.settings import read_copy_path
from sync_pipelines_tests.helpers import run_entity_job, step_failures

MAIN_TENANT = TENANTS["synchroteam"]


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The process's umask at 022, as a login shell's; restored after (a run sets its own)."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def shared_paths(root: Path) -> list[str]:
    """What under `root` has a bit for its group or for others."""
    return [
        str(path.relative_to(root))
        for path in root.rglob("*")
        if not path.is_symlink() and os.lstat(path).st_mode & 0o077
    ]


def test_a_run_under_the_usual_umask_writes_nothing_others_can_read_and_tightens_what_it_finds(
    emulator, warehouse, usual_umask
):
    folder = warehouse.parent
    assert run_entity_job(MAIN_TENANT, ENTITIES["invoices"]).success
    assert shared_paths(folder) == []

    for path in folder.rglob("*"):  # as an earlier release left them
        path.chmod(0o755 if path.is_dir() else 0o644)
    os.umask(0o022)
    emulator.tenant("acme").add("invoice")
    assert run_entity_job(MAIN_TENANT, ENTITIES["invoices"]).success

    assert shared_paths(folder) == []
    assert stat.S_IMODE(os.stat(warehouse).st_mode) == 0o600


def test_the_read_copy_is_shared_with_the_analysts_group_on_purpose_and_nothing_else_is(
    emulator, warehouse, usual_umask, monkeypatch
):
    group = grp.getgrgid(os.getgid())  # a group this user may give files to, as the analysts' would be
    monkeypatch.setenv("SYNC_READ_COPY_GROUP", group.gr_name)
    assert run_entity_job(MAIN_TENANT, ENTITIES["invoices"]).success
    assert run_entity_job(MAIN_TENANT, ENTITIES["invoices"]).success  # a run that changed nothing keeps it shared

    copy = read_copy_path(warehouse)
    assert (stat.S_IMODE(os.stat(copy).st_mode), os.stat(copy).st_gid) == (0o640, group.gr_gid)
    assert stat.S_IMODE(os.stat(warehouse.parent).st_mode) == 0o710
    assert shared_paths(warehouse.parent) == [copy.name]  # by its group only: no bit for others
    assert stat.S_IMODE(os.stat(copy).st_mode) & 0o007 == 0


def test_a_read_copy_group_that_does_not_exist_fails_before_any_request(emulator, warehouse, monkeypatch):
    monkeypatch.setenv("SYNC_READ_COPY_GROUP", "no-such-group-here")
    result = run_entity_job(MAIN_TENANT, ENTITIES["invoices"], raise_on_error=False)
    [message] = step_failures(result).values()
    assert message.startswith("[configuration]") and "SYNC_READ_COPY_GROUP" in message
    assert emulator.requests == []

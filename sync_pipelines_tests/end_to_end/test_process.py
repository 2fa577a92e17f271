"""A process that loads the code location builds it with the cycle collector at rest and spares it afterwards, and
leaves its heap to the operating system at exit (process.py), still reporting what went wrong, with its exit
status."""

import subprocess
import sys
import textwrap

PRELUDE = """
import atexit, os, sys
import duckdb
import sync_pipelines.definitions

class Cycle:
    def __del__(self, write=os.write):  # os.write bound now: finalization may have cleared the module
        write(1, b"torn down\\n")

a, b = Cycle(), Cycle()
a.other, b.other = b, a  # alive until exit, then garbage only the cycle collector can free
connection = duckdb.connect()
connection.execute("select 42").fetchall()
"""


def run(body: str) -> subprocess.CompletedProcess[str]:
    code = PRELUDE + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_finalization_frees_nothing_and_says_nothing_of_what_it_left():
    ended = run("print('done')")
    assert ended.returncode == 0, ended.stderr
    assert ended.stdout.split() == ["done"]  # the cycle's __del__ never ran: the collector did not walk the heap
    assert "nanobind" not in ended.stderr  # DuckDB's report of objects left at exit is a false alarm
    assert "leaked" not in ended.stderr


def test_an_error_its_exit_status_and_late_exit_handlers_still_reach_the_user():
    failed = run(
        """
        atexit.register(lambda: print("exit handler speaking", file=sys.stderr, flush=True))
        raise RuntimeError("the run broke")
        """
    )
    assert failed.returncode == 1
    assert "RuntimeError: the run broke" in failed.stderr
    assert "exit handler speaking" in failed.stderr
    assert "nanobind" not in failed.stderr

    assert run("raise SystemExit(3)").returncode == 3


def test_the_code_location_is_built_with_the_collector_at_rest_and_spared_after():
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import gc
                import dagster  # as Dagster's CLI and code servers do, before they load the code location
                collections = []
                gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info["generation"]))
                import sync_pipelines.definitions
                print(gc.get_freeze_count(), gc.isenabled(), collections.count(2))
                """
            ),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr
    frozen, enabled, full_collections = loaded.stdout.split()
    assert int(frozen) > 100_000  # dlt, dagster-dbt and the definitions: out of every later collection's way
    assert enabled == "True"  # the run's own objects are collected as usual
    assert full_collections == "0"  # none walked the objects while they were being built

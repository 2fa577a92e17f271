"""A process that loaded the code location leaves its heap to the operating system at exit (process.py), and
still reports what went wrong, with its exit status."""

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

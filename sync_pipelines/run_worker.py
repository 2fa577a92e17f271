"""The process a run lives in: Dagster's command line, with the heap treated as a run's process can afford.

    python -m sync_pipelines.run_worker [--load MODULE] <dagster arguments>

runs `dagster <dagster arguments>` (`api execute_run <args>` when the instance's run launcher starts a run,
`defs/launcher.py`; `job execute -m ... -j ...` by hand) in this process, with two differences, both about the
objects that live as long as the process (Dagster, dlt, DuckDB, dagster-dbt and the definitions):
- `--load MODULE` imports the code location first, with the cycle collector paused, then moves everything alive
  into the collector's permanent generation (`gc.freeze`): the run's full collections no longer walk it;
- once Dagster's command has returned, the process ends as the interpreter would (other threads joined, every
  exit handler run, the streams flushed) but without its finalization, which frees every object one by one and
  walks them all in full collections, for memory the operating system reclaims anyway (`os._exit`, as a forked
  child ends). Files opened with `with` are closed and committed transactions durable by then; what is skipped
  is the finalizers of objects still alive at exit (DuckDB's bindings would report those as leaks).

Nothing of this happens by importing the definitions: a process that does not start here (the webserver, the
code server, `dagster job execute`, a test) ends as Python ends. BENCHMARKS.md has what it saves.
"""

import argparse
import atexit
import contextlib
import gc
import importlib
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import NoReturn


@contextlib.contextmanager
def long_lived() -> Iterator[None]:
    """What is built inside lives as long as the process: the collector rests while it is built, then spares it
    for good. The collector is left enabled or not, as found."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def dagster(arguments: Sequence[str]) -> int:
    """`dagster <arguments>` in this process; its exit status."""
    from dagster._cli import ENV_PREFIX, cli

    try:
        cli.main(args=list(arguments), prog_name="dagster", auto_envvar_prefix=ENV_PREFIX)
    except SystemExit as ended:
        if ended.code is None or isinstance(ended.code, int):
            return ended.code or 0
        print(ended.code, file=sys.stderr)
        return 1
    return 0


def end(code: int) -> NoReturn:
    """End the process as the interpreter would, without its finalization: its own first two steps (threads'
    exit callbacks and the other threads joined, then every exit handler: logging's last flush among them), the
    streams flushed, then `os._exit`."""
    threading._shutdown()  # type: ignore[attr-defined]  # what the interpreter calls first at exit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, OSError, ValueError):  # closed or replaced by a caller
            stream.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sync_pipelines.run_worker", description=__doc__.splitlines()[0])
    parser.add_argument("--load", action="append", default=[], metavar="MODULE", help="the code location's module")
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="dagster's own arguments")
    options = parser.parse_args(argv)
    if not options.arguments:
        parser.error("no dagster arguments: e.g. `job execute -m sync_pipelines.definitions -j sync_all`")
    with long_lived():
        importlib.import_module("dagster._cli")
        for module in options.load:
            # Dagster's command loads it again below and reports a failure on the run: not here as well
            with contextlib.suppress(Exception):
                importlib.import_module(module)
    return dagster(options.arguments)


if __name__ == "__main__":
    end(main())

"""How a process that loaded the code location uses its memory, and how it ends.

`return_free_memory` hands the C heap's free pages back to the operating system between the phases of a load.
A first load's extract parses every page of the API into short-lived Python objects; once they are freed, glibc
keeps the pages they used for the process (it returns memory only from the top of its heap), and DuckDB's load
then comes on top of them. Measured on a first load of 100,000 invoices: 269 MB before the normalize, 245 MB
after `malloc_trim(0)` (BENCHMARKS.md, "Where the memory of a first load goes"). Elsewhere than glibc it does
nothing.

The rest of this module is how the process ends: without tearing its heap down object by object.

At exit, CPython's finalization runs the cycle collector over every object still alive and frees them one by
one: the modules of Dagster, dlt, dagster-dbt and the definitions, some 2,400 modules and a few hundred thousand
objects. Measured on a no-change run of one entity's job (`dagster job execute`, 2 cores): 0.66-0.80 s of its
2.8-3.0 s went there, after the run had ended and its events were stored. Nothing in it is work: the operating
system reclaims the memory anyway.

`end_without_teardown` registers an exit handler that moves every object into the collector's permanent
generation (`gc.freeze`), which finalization does not walk: the same process ends in 0.04 s. Every exit handler
still runs, files opened with `with` are closed, committed DuckDB and PostgreSQL transactions are durable.

One side effect is silenced on purpose. DuckDB's Python module (nanobind) counts, after finalization, its objects
that were not freed, and prints a "nanobind: leaked ... instances!" report of them to standard error: a false
alarm once the heap is deliberately left to the operating system (nanobind's reference-leak notes say as much).
The handler therefore points file descriptor 2 at /dev/null once Python's own streams are flushed. A traceback of
the run, Dagster's last log line and what the exit handlers registered after this one print (they run before it)
are all written by then. What is lost is what finalization itself would print, and what the handlers registered
before it would print: those of the modules imported before the code location (logging's last flush, dlt's
telemetry shutdown), which print nothing unless they fail.
"""

import atexit
import ctypes
import functools
import gc
import os
import sys
from collections.abc import Callable

_registered = False


def end_without_teardown() -> None:
    """Registers, once per process, the exit handler described in the module's docstring."""
    global _registered
    if not _registered:
        atexit.register(_leave_heap_to_the_os)
        _registered = True


def _leave_heap_to_the_os() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):  # closed or replaced by a caller
            pass
    gc.freeze()
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    except OSError:
        pass


def return_free_memory() -> None:
    """Hands the free pages of the C heap back to the operating system (glibc's `malloc_trim`); see the module's
    docstring. Takes a few milliseconds; a no-op where the C library has no `malloc_trim`."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):  # not glibc (musl, macOS, Windows)
        return None

"""How a process that loads the code location treats its heap: the cycle collector rests while the code location is
built and spares it afterwards, and the process ends without tearing the heap down object by object.

Loading the code location (dlt, dagster-dbt, the product's modules, the definitions; Dagster itself is imported by
whoever loads it) builds some 300,000 objects that live as long as the process. Left to itself, the collector
walks them in full collections while they are built, each over every object built so far, and in every full
collection of the run after. `long_lived` disables the collector while the definitions are built, then moves
everything alive into its permanent generation (`gc.freeze`): the collector runs again on what the run creates,
and never walks the code location again. In a no-change run of one entity's job (`dagster job execute`), the
collector's time fell from 0.62-0.70 s to 0.25-0.39 s, and the run's wall time by 0.3-0.5 s (alternating pairs,
faster in 20 of 24: `python -m bench.collector`, BENCHMARKS.md "The collector at load").
What is frozen is never collected as a cycle (reference counting still frees it): module-level objects, kept
anyway. The few thousand objects the imports leave as cyclic garbage stay too (a collection would free them for
0.18 s; the process's peak memory is the same, 170 MB, either way).

At exit, CPython's finalization runs the cycle collector over every object still alive and frees them one by
one: the modules of Dagster, dlt, dagster-dbt and the definitions, some 2,400 modules and a few hundred thousand
objects. Measured on a no-change run of one entity's job (`dagster job execute`, 2 cores): 0.66-0.80 s of its
2.8-3.0 s went there, after the run had ended and its events were stored. Nothing in it is work: the operating
system reclaims the memory anyway.

`end_without_teardown` registers an exit handler that moves every object into the collector's permanent
generation (`gc.freeze`) again, which finalization does not walk: the same process ends in 0.04 s. Every exit handler
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
import contextlib
import gc
import os
import sys
from collections.abc import Iterator

_registered = False


def end_without_teardown() -> None:
    """Registers, once per process, the exit handler described in the module's docstring."""
    global _registered
    if not _registered:
        atexit.register(_leave_heap_to_the_os)
        _registered = True


@contextlib.contextmanager
def long_lived() -> Iterator[None]:
    """The objects built inside live as long as the process: the collector rests while they are built, then spares
    them for good (see the module's docstring). The collector is left as it was found, enabled or not, whatever
    happens inside."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


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

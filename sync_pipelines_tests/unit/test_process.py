"""A process that loads the code location builds it with the cycle collector at rest and spares it afterwards, and
leaves its heap to the operating system at exit (process.py), still reporting what went wrong, with its exit
status."""

import gc

import pytest

from sync_pipelines.process import long_lived


@pytest.mark.parametrize("enabled_before", [True, False])
def test_long_lived_leaves_the_collector_as_it_found_it_even_when_the_build_fails(enabled_before):
    was = gc.isenabled()
    (gc.enable if enabled_before else gc.disable)()
    try:
        with pytest.raises(RuntimeError), long_lived():
            assert not gc.isenabled()
            raise RuntimeError("an import failed")
        assert gc.isenabled() is enabled_before
    finally:
        (gc.enable if was else gc.disable)()
        gc.unfreeze()  # back to the test process's own collector

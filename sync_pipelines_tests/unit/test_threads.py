import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sync_pipelines.synchroteam.threads import abandoning_on_raise


def test_a_block_that_raises_leaves_the_work_in_flight_and_cancels_the_rest():
    release = threading.Event()
    with pytest.raises(KeyboardInterrupt):
        with abandoning_on_raise(ThreadPoolExecutor(1)) as pool:
            in_flight = pool.submit(release.wait, 30)
            queued = pool.submit(time.sleep, 0)
            while not in_flight.running():
                time.sleep(0.01)
            raise KeyboardInterrupt  # as Terminate's interrupt does, while a request waits for its answer
    assert not in_flight.done() and queued.cancelled()  # not waited for: the block ended at once
    release.set()
    assert in_flight.result(timeout=10) is True  # it ends on its own


def test_a_block_that_ends_waits_for_its_work():
    release = threading.Event()
    threading.Timer(0.2, release.set).start()
    with abandoning_on_raise(ThreadPoolExecutor(1)) as pool:
        work = pool.submit(release.wait, 30)
    assert work.done() and work.result() is True

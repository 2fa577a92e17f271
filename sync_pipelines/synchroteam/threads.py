"""The thread pools a reading asks the API from (the next page of a list, a page's details, a tenant's entities):
how they end."""

import contextlib
from collections.abc import Iterator
from concurrent.futures import Executor


@contextlib.contextmanager
def abandoning_on_raise(pool: Executor) -> Iterator[Executor]:
    """`with pool:`, except when the block raises (an interrupt: Terminate; a failure that ends the reading): the
    work not started is cancelled and the requests in flight are left to end on their own (an answer, the
    client's timeout, or the closed client), instead of holding up the end of the step, and with it the run's,
    until a slow or held answer comes."""
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()

"""The product's code location loaded as it was before `process.long_lived`: the cycle collector left to itself
while the definitions are built, nothing frozen after. `bench.collector` runs the same jobs from here and from
`sync_pipelines.definitions`, side by side."""

import contextlib

import sync_pipelines.process

# before the definitions import it: their `with long_lived():` then changes nothing
sync_pipelines.process.long_lived = contextlib.nullcontext  # type: ignore[assignment]

from sync_pipelines.definitions import defs  # noqa: E402

__all__ = ["defs"]

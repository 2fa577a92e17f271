"""What N tenants cost the code location: `python -m bench.many_tenants 100`.

Adds N - 2 tenants of the main tenant's six entities to the catalogue (the way a real tenant is added: a row),
loads the definitions and prints the assets, jobs and schedules they make, the load time and the peak memory.
"""

from __future__ import annotations

import resource
import sys
import time

from sync_pipelines import catalogue


def main(n: int) -> str:
    base = catalogue.TENANTS["synchroteam"]
    for i in range(n - len(catalogue.TENANTS)):
        tenant = catalogue.Tenant(
            name=f"tenant_{i:03d}", label=f"T{i}", entities=base.entities, schedule_offset_minutes=i % 30
        )
        catalogue.TENANTS[tenant.name] = tenant
    started = time.perf_counter()
    from sync_pipelines.definitions import defs

    repository = defs.get_repository_def()
    jobs = repository.get_all_jobs()
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return (
        f"tenants {len(catalogue.TENANTS)}: {len(list(defs.resolve_all_asset_keys())):,} assets, {len(jobs):,} jobs, "
        f"{len(repository.schedule_defs):,} schedules; definitions loaded in {seconds:.1f} s, peak RSS {peak_mb:.0f} MB"
    )


if __name__ == "__main__":
    print(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100))

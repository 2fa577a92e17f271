"""A third tenant from a catalogue row and its variables alone, run as its own process (the catalogue is read
when the definitions load): `python -m sync_pipelines_tests.third_tenant`, with the warehouse's variable set.

Adds the row, starts an emulator serving three tenants, sets the third one's `SYNCHROTEAM_NORTH_*` variables,
loads the definitions, checks that the tenant's assets, jobs and schedules exist, runs `sync_all`, and checks the
warehouse equals the emulator for all three tenants. Prints `THIRD-TENANT OK` at the end.
"""

from sync_pipelines import catalogue

NORTH = catalogue.Tenant(
    name="synchroteam_north", label="North", entities=("invoices", "customers"), schedule_offset_minutes=3
)
catalogue.TENANTS[NORTH.name] = NORTH  # the one change a new tenant needs in code


def main() -> None:
    import os

    from dagster import AssetKey

    from sync_pipelines.warehouse.settings import warehouse
    from sync_pipelines_tests.compare import assert_warehouse_equals_emulator
    from sync_pipelines_tests.conftest import HEC, MAIN
    from sync_pipelines_tests.helpers import run_sync_all
    from synchroteam_emulator import Emulator, TenantSpec
    from synchroteam_emulator.env import tenant_env

    north = TenantSpec(
        domain="acme-north",
        api_key="0b1c2d3e-1111-4f5a-9b8c-7d6e5f4a3b2c",
        timezone="Europe/Oslo",
        counts={"customer": 15, "site": 5, "invoice": 33},
        seed=13,
    )
    specs = {"synchroteam": MAIN, "synchroteam_hec": HEC, NORTH.name: north}
    with Emulator(list(specs.values())) as emulator:
        os.environ.update(tenant_env(emulator.base_url, specs))
        from sync_pipelines.definitions import defs

        for entity in NORTH.entities:
            assert defs.resolve_assets_def(AssetKey([NORTH.name, entity])) is not None
            assert defs.resolve_job_def(f"sync_{NORTH.name}__{entity}") is not None
        schedules = {s.name for s in defs.schedules or []}
        assert {f"sync_{NORTH.name}__{entity}_schedule" for entity in NORTH.entities} <= schedules, schedules
        result = run_sync_all()
        assert result.success
        domains = {name: spec.domain for name, spec in specs.items()}
        assert_warehouse_equals_emulator(emulator, warehouse(), domains)
    print("THIRD-TENANT OK", flush=True)


if __name__ == "__main__":
    main()

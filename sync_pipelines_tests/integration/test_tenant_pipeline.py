"""One dlt pipeline per tenant, and the warehouses the entity pipelines (one per tenant and entity, until the
tenant pipelines) loaded: their cursors and memos carry over, so an upgrade re-reads nothing."""

import dlt
from dlt.sources import DltSource

from sync_pipelines.catalogue import ENTITIES, TENANTS, Entity, Tenant, pipeline_name, tenant_pipeline_name
from sync_pipelines.errors import NotJsonResponse
from sync_pipelines.synchroteam import reader
from sync_pipelines.synchroteam.client import SynchroteamClient
from sync_pipelines.synchroteam.plan import Cursor
from sync_pipelines.synchroteam.records import to_api_timestamp
from sync_pipelines.synchroteam.settings import TenantSettings
from sync_pipelines.synchroteam.source import decimal_columns, entity_source
from sync_pipelines.warehouse.pipeline import destination
from sync_pipelines.warehouse.settings import pipelines_dir, warehouse
from sync_pipelines_tests.compare import assert_warehouse_equals_emulator
from sync_pipelines_tests.conftest import DOMAINS, MAIN
from sync_pipelines_tests.helpers import (
    materializations,
    run_entity_job,
    run_sync_all,
    step_failures,
    stored_cursor,
    stored_state,
    sync_requests,
)

MAIN_TENANT = TENANTS["synchroteam"]
INVOICES, CUSTOMERS = ENTITIES["invoices"], ENTITIES["customers"]


def load_with_the_entity_pipeline(tenant: Tenant, entity: Entity) -> Cursor:
    """What a release before the tenant pipelines did: the entity through a dlt pipeline, and a dlt schema, named
    `<tenant>__<entity>`. Returns the cursor that pipeline stored."""
    target = warehouse()
    name = pipeline_name(tenant, entity)
    pipeline = dlt.pipeline(
        pipeline_name=name,
        destination=destination(target),
        dataset_name=tenant.name,
        pipelines_dir=str(pipelines_dir(target.path)),
    )
    with SynchroteamClient(TenantSettings.from_env(tenant)) as client:
        ours = entity_source(tenant, entity, client)
        schema = dlt.Schema(name)  # typed as the tenant's is
        schema.update_preferred_types(decimal_columns(schema.naming.normalize_identifier))
        theirs = DltSource(schema, "synchroteam", list(ours.resources.values()))
        pipeline.run(theirs, loader_file_format="jsonl").raise_on_failed_jobs()
    return Cursor.from_state(pipeline.state["sources"][name]["resources"][entity.name])


def test_a_warehouse_the_entity_pipelines_loaded_carries_on_from_their_cursors(emulator, warehouse):
    legacy = load_with_the_entity_pipeline(MAIN_TENANT, INVOICES)
    load_with_the_entity_pipeline(MAIN_TENANT, CUSTOMERS)
    assert legacy.at is not None
    store = emulator.tenant(MAIN.domain)
    store.add("invoice")
    emulator.clear_requests()

    result = run_entity_job(MAIN_TENANT, INVOICES, config={"lookback_minutes": 0, "revisit_days": 0})

    assert result.success
    walks = [r for r in sync_requests(emulator) if r.resource == "invoice" and r.action == "list"]
    timezone = TenantSettings.from_env(MAIN_TENANT).timezone
    assert [r.params.get("changedSince") for r in walks][:1] == [to_api_timestamp(legacy.at, timezone)]
    (loaded,) = [
        m.metadata["loaded"].value for m in materializations(result, TENANTS["synchroteam"], ENTITIES["invoices"])
    ]
    assert loaded == 1  # the new invoice, not the whole list again
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS, tenants=["synchroteam"], entities=["invoices"])
    assert Cursor.from_state(stored_state(MAIN_TENANT, INVOICES)).at > legacy.at  # now in the tenant's state

    # customers: the tenant pipeline holds no state for them yet, and the entity pipeline's still counts
    emulator.clear_requests()
    quiet = run_entity_job(MAIN_TENANT, CUSTOMERS)
    (customers,) = materializations(quiet, TENANTS["synchroteam"], ENTITIES["customers"])
    assert customers.metadata["loaded"].value == 0
    assert all("changedSince" in r.params for r in sync_requests(emulator) if r.resource == "customer")
    assert len(customers.metadata["dagster/column_schema"].value.columns) > 5  # from the entity pipeline's schema


def test_one_entity_s_load_keeps_the_other_entities_state_in_the_tenant_pipeline(emulator, warehouse):
    assert run_entity_job(MAIN_TENANT, CUSTOMERS).success
    customers = stored_state(MAIN_TENANT, CUSTOMERS)
    emulator.tenant(MAIN.domain).add("invoice")

    assert run_entity_job(MAIN_TENANT, INVOICES).success

    assert stored_state(MAIN_TENANT, CUSTOMERS) == customers and stored_state(MAIN_TENANT, INVOICES)
    assert tenant_pipeline_name(MAIN_TENANT) == "synchroteam"


def test_an_entity_whose_reading_fails_midway_keeps_its_cursor_while_the_tenant_s_others_load(
    emulator, warehouse, monkeypatch
):
    assert run_sync_all().success
    store = emulator.tenant(MAIN.domain)
    store.add("invoice")
    store.add("invoice")
    store.add("customer")
    cursor, state = stored_cursor(MAIN_TENANT, INVOICES), stored_state(MAIN_TENANT, INVOICES)
    read = reader.EntityReader.read

    def failing_after_its_first_batch(self):
        batches = read(self)
        first = next(batches, None)
        if first is None:
            return
        yield first
        if self.entity is INVOICES:
            raise NotJsonResponse("invoice/list answered a web page.")
        yield from batches

    with monkeypatch.context() as patched:
        patched.setattr(reader.EntityReader, "read", failing_after_its_first_batch)
        failed = run_sync_all(raise_on_error=False)

    assert set(step_failures(failed)) == {"synchroteam"}
    assert step_failures(failed)["synchroteam"].startswith("[not_json] invoice/list answered a web page.")
    assert stored_cursor(MAIN_TENANT, INVOICES) == cursor  # its changes are read again next run
    assert stored_state(MAIN_TENANT, INVOICES) == state  # its memos too: the state the warehouse had
    assert not materializations(failed, MAIN_TENANT, INVOICES)
    assert len(materializations(failed, MAIN_TENANT, CUSTOMERS)) == 1  # the tenant's other entities loaded
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS, tenants=["synchroteam"], entities=["customers"])

    assert run_sync_all().success
    assert stored_cursor(MAIN_TENANT, INVOICES).at > cursor.at
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS)

"""The catalogue is complete: a new entity or tenant is a row, and nothing else derives its settings from a row's
position or name."""

from sync_pipelines.catalogue import ENTITIES, TENANTS, tenant_entities
from sync_pipelines.defs.schedules import cron_for


def test_each_entity_of_a_tenant_starts_at_a_minute_of_its_own_whatever_its_place_in_the_catalogue():
    for tenant in TENANTS.values():
        minutes = [cron_for(tenant, entity).split()[0].split("-")[0] for entity in tenant_entities(tenant)]
        assert len(set(minutes)) == len(minutes), (tenant.name, minutes)
    jobs = ENTITIES["jobs"]
    assert cron_for(TENANTS["synchroteam"], jobs) == f"{jobs.schedule_minute}-59/15 * * * *"


def test_a_tenant_s_variables_carry_its_name_in_capitals():
    assert TENANTS["synchroteam_hec"].env("API_KEY") == "SYNCHROTEAM_HEC_API_KEY"
    assert {tenant.env("") for tenant in TENANTS.values()} == {"SYNCHROTEAM_", "SYNCHROTEAM_HEC_"}


def test_the_recent_re_fetch_of_jobs_filters_on_their_scheduled_start_and_the_others_on_their_creation():
    recent = {entity.name: entity.recent_field for entity in ENTITIES.values() if entity.refetch == "recent"}
    assert recent == {"jobs": "scheduledStart", "invoices": "dateCreated", "credit_notes": "dateCreated"}

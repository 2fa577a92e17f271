"""The catalogue is complete: a new entity or tenant is a row, and nothing else derives its settings from a row's
position or name."""

import pytest

from sync_pipelines.catalogue import DIMENSIONS, ENTITIES, TENANTS, chosen_entities, chosen_pairs, tenant_entities
from sync_pipelines.defs.schedules import cron_for
from sync_pipelines.errors import ConfigurationError


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


def test_a_tenant_syncs_every_entity_the_catalogue_offers_it_unless_its_entities_variable_names_some():
    hec = TENANTS["synchroteam_hec"]
    assert chosen_entities(hec, {}) == tenant_entities(hec)
    assert chosen_entities(hec, {"SYNCHROTEAM_HEC_ENTITIES": " "}) == tenant_entities(hec)
    chosen = chosen_entities(hec, {"SYNCHROTEAM_HEC_ENTITIES": "parts, invoices"})
    assert [entity.name for entity in chosen] == ["invoices", "parts"]  # in catalogue order
    pairs = chosen_pairs({"SYNCHROTEAM_ENTITIES": "jobs", "SYNCHROTEAM_HEC_ENTITIES": "users"})
    assert [(tenant.name, entity.name) for tenant, entity in pairs] == [
        ("synchroteam", "jobs"),
        ("synchroteam_hec", "users"),
    ]


def test_an_entity_a_tenant_is_not_offered_is_refused_with_the_valid_names():
    with pytest.raises(ConfigurationError) as refused:
        chosen_entities(TENANTS["synchroteam_hec"], {"SYNCHROTEAM_HEC_ENTITIES": "invoices,activities,widgets"})
    message = str(refused.value)
    assert "SYNCHROTEAM_HEC_ENTITIES" in message and "'activities', 'widgets'" in message
    assert "Valid names: invoices, credit_notes, users, equipment, job_types, parts." in message


def test_job_types_are_the_one_lookup_list_without_dates():
    assert [entity.name for entity in ENTITIES.values() if not entity.dated] == ["job_types"]
    assert [name for name in ENTITIES if name in DIMENSIONS] == list(DIMENSIONS)

"""Run config: each knob's effect against the emulator, and each invalid value's error before any request."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from sync_pipelines.catalogue import ENTITIES
from sync_pipelines.defs.run_config import RANGES, config_class, to_plan
from sync_pipelines.errors import ConfigurationError

PARIS = ZoneInfo("Europe/Paris")


# -- invalid values fail before any API call, naming the field ---------------------------------------------------


@pytest.mark.parametrize(
    "entity, config, field",
    [
        ("invoices", {"page_size": 0}, "page_size"),
        ("invoices", {"page_size": 101}, "page_size"),
        ("customers", {"max_records": -1}, "max_records"),
        ("jobs", {"revisit_days": -2}, "revisit_days"),
        ("jobs", {"lookback_minutes": -5}, "lookback_minutes"),
        ("invoices", {"refetch_recent_days": -1}, "refetch_recent_days"),
        ("quotations", {"refetch_statuses": ["draft", "archived"]}, "refetch_statuses"),
        ("invoices", {"mode": "reconcile"}, "window_start"),
        ("invoices", {"mode": "reconcile", "window_start": "2025-13-01"}, "window_start"),
        ("invoices", {"mode": "reconcile", "window_start": "2025-06-10", "window_end": "2025-06-01"}, "window_end"),
        ("invoices", {"window_start": "2025-06-10"}, "window_start"),
        ("sites", {"max_deleted_share": 1.5}, "max_deleted_share"),
    ],
)
def test_invalid_run_config_is_refused_naming_the_field(entity, config, field):
    with pytest.raises(ConfigurationError) as err:
        to_plan(config_class(ENTITIES[entity])(**config), ENTITIES[entity], PARIS)
    assert f"{field}=" in str(err.value)


@pytest.mark.parametrize("entity", list(ENTITIES.values()), ids=lambda e: e.name)
def test_every_numeric_field_states_its_range_in_the_launchpad_and_its_bounds_are_exactly_those_accepted(entity):
    config_type = config_class(entity)
    numeric = {name for name, field in config_type.model_fields.items() if field.annotation in (int, float)}
    assert numeric == set(RANGES) & set(config_type.model_fields)
    for name in numeric:
        low, high = RANGES[name]
        description = config_type.model_fields[name].description or ""
        expected = f"Accepted: between {low} and {high}." if high is not None else f"Accepted: {low} or more."
        assert description.endswith(expected), (name, description)  # what the launchpad shows under the field
        to_plan(config_type(**{name: low}), entity, PARIS)  # the bounds are accepted
        if high is not None:
            to_plan(config_type(**{name: high}), entity, PARIS)
        for outside in (low - 1, None if high is None else high + 1):
            if outside is None:
                continue
            config = config_type(**{name: outside})
            with pytest.raises(ConfigurationError, match=f"{name}={getattr(config, name)!r} is not valid"):
                to_plan(config, entity, PARIS)


def test_entity_defaults_come_from_the_catalogue():
    assert config_class(ENTITIES["customers"])().max_records == 200
    assert config_class(ENTITIES["sites"])().max_records == 100
    assert config_class(ENTITIES["invoices"])().refetch_recent_days == 7
    assert config_class(ENTITIES["credit_notes"])().refetch_recent_days == 7
    assert config_class(ENTITIES["quotations"])().refetch_statuses == ["draft", "new"]
    assert not hasattr(config_class(ENTITIES["customers"])(), "refetch_statuses")


def test_a_cap_given_in_the_run_config_holds_from_the_first_load_and_a_default_cap_does_not():
    customers, jobs = config_class(ENTITIES["customers"]), config_class(ENTITIES["jobs"])
    paris = ZoneInfo("Europe/Paris")
    assert not to_plan(customers(), ENTITIES["customers"], paris).cap_first_load  # its default 200
    assert to_plan(customers(max_records=200), ENTITIES["customers"], paris, given={"max_records"}).cap_first_load
    assert to_plan(jobs(max_records=10), ENTITIES["jobs"], paris).cap_first_load  # jobs have no default cap
    assert not to_plan(jobs(), ENTITIES["jobs"], paris, given={"max_records"}).cap_first_load  # 0: no cap


def test_a_lookup_list_s_run_config_has_no_cap_look_back_nor_window_and_reads_it_whole():
    job_types = config_class(ENTITIES["job_types"])
    assert set(job_types.model_fields) == {"mode", "page_size", "max_deleted_share"}
    with pytest.raises(ValueError):
        job_types(mode="reconcile")  # no dates: nothing to reconcile
    plan = to_plan(job_types(page_size=50), ENTITIES["job_types"], PARIS)
    assert (plan.mode, plan.page_size, plan.max_records, plan.window_start) == ("incremental", 50, 0, None)
    assert to_plan(job_types(mode="full", max_deleted_share=0.2), ENTITIES["job_types"], PARIS).max_deleted_share == 0.2

"""Normalising records and reading settings: messy values in, typed values out, nothing dropped."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from sync_pipelines.catalogue import TENANTS
from sync_pipelines.errors import ConfigurationError
from sync_pipelines.synchroteam.records import (
    normalise_record,
    parse_decimal,
    parse_timestamp,
    to_api_timestamp,
)
from sync_pipelines.synchroteam.settings import TenantSettings
from sync_pipelines.warehouse.settings import duckdb_settings

PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("2,00", Decimal("2.00")),
        ("1,5", Decimal("1.5")),
        ("1.234,50", Decimal("1234.50")),
        ("1,234.50", Decimal("1234.50")),
        (" 3 ", Decimal("3")),
        (2, Decimal("2")),
        (2.5, Decimal("2.5")),
        ("48.8566", Decimal("48.8566")),
    ],
)
def test_localized_quantities_become_decimals(raw, expected):
    assert parse_decimal(raw) == expected


@pytest.mark.parametrize("raw", ["", "abc", "NaN", None, [1]])
def test_unreadable_numbers_are_reported_as_none(raw):
    assert parse_decimal(raw) is None


def test_timestamps_are_read_in_the_tenant_zone_with_or_without_seconds():
    winter = parse_timestamp("2026-01-15 08:05", PARIS)
    summer = parse_timestamp("2026-07-15 08:05:30", PARIS)
    assert winter.astimezone(UTC) == datetime(2026, 1, 15, 7, 5, tzinfo=UTC)
    assert summer.astimezone(UTC) == datetime(2026, 7, 15, 6, 5, 30, tzinfo=UTC)
    assert parse_timestamp("not a date", PARIS) is None


@pytest.mark.parametrize(
    "raw", ["2026-10-25 02:30", "2026-03-29 02:30", "2026-03-01T08:05:30.250", "2026-07-15 23:59:59", "2026-02-01"]
)
def test_a_tenant_local_timestamp_is_that_wall_time_in_the_zone_even_when_it_is_ambiguous_or_skipped(raw):
    parsed = parse_timestamp(raw, PARIS)
    expected = datetime.fromisoformat(raw).replace(tzinfo=PARIS)  # fold 0: the earlier of two, the offset before a gap
    assert parsed == expected and parsed.utcoffset() == expected.utcoffset() and parsed.tzinfo is PARIS


@pytest.mark.parametrize("raw", ["20260301", "2026-W09-1", "2026-060", "2026-3-1 08:00", "", "  ", "2026-13-01"])
def test_only_calendar_dates_are_read_as_timestamps(raw):
    assert parse_timestamp(raw, PARIS) is None


def test_an_explicit_offset_wins_over_the_tenant_zone():
    parsed = parse_timestamp("2026-03-01T08:05:00+05:30", PARIS)
    assert parsed.utcoffset() == timedelta(hours=5, minutes=30)


def test_change_window_is_written_back_in_tenant_local_time():
    instant = datetime(2026, 7, 15, 6, 5, 30, tzinfo=UTC)
    assert to_api_timestamp(instant, PARIS) == "2026-07-15 08:05:30"


def test_normalise_record_unifies_casing_ids_times_and_numbers_and_keeps_the_unreadable():
    record = {
        "id": 42,
        "CustomFieldValues": [{"label": "a", "value": "b"}],
        "customer": {"id": 7, "name": "Acme"},
        "dateModified": "2026-03-01 10:00",
        "dateDue": "2026-03-31",
        "position": {"latitude": "48.8566", "longitude": "2.3522"},
        "lines": [{"quantity": "2,00", "unitPrice": 10, "total": "twenty"}],
        "myId": "",
        "active": True,
    }
    out = normalise_record(record, PARIS)
    assert out["id"] == "42" and out["customer"]["id"] == "7"
    assert "customFieldValues" in out and "CustomFieldValues" not in out
    assert out["dateModified"] == datetime(2026, 3, 1, 10, 0, tzinfo=PARIS)
    assert out["dateDue"] == date(2026, 3, 31)
    assert out["position"]["latitude"] == Decimal("48.8566")
    assert out["lines"][0]["quantity"] == Decimal("2.00")
    assert out["lines"][0]["total"] == "twenty"  # kept as it came, not dropped
    assert out["myId"] == "" and out["active"] is True
    unconverted: list = []
    assert normalise_record(record, PARIS, unconverted) == out  # the same record when it reports as well
    assert unconverted == [("lines[0].total", "twenty")]  # its path, and the value as it came


def test_amounts_sent_as_json_numbers_stay_numbers_for_dlt_and_the_others_become_decimals():
    line = {"quantity": 2, "unitPrice": 10.5, "total": "21,00", "taxRate": 2**70}
    out = normalise_record({"lines": [line]}, PARIS)["lines"][0]
    # the schema makes these columns DECIMAL: dlt's normalizer turns a number into Decimal(str(number))
    assert type(out["quantity"]) is int and type(out["unitPrice"]) is float
    assert out["total"] == Decimal("21.00")
    assert out["taxRate"] == Decimal(2**70)  # beyond what a JSON number may be in dlt's files
    unconverted: list = []
    normalise_record({"lines": [{"quantity": float("nan"), "total": float("inf")}]}, PARIS, unconverted)
    assert [path for path, _ in unconverted] == ["lines[0].quantity", "lines[0].total"]


def test_every_field_that_does_not_fit_its_column_is_reported_with_its_path_in_the_records_order():
    record = {
        "dateModified": "yesterday",
        "customer": {"id": 1, "dateCreated": 20260301},
        "lines": [{"total": 1}, {"quantity": True, "taxRate": "20 %"}],
        "validUntil": "soon",
        "name": "not converted, never reported",
    }
    unconverted: list = []
    normalise_record(record, PARIS, unconverted)
    assert unconverted == [
        ("dateModified", "yesterday"),
        ("customer.dateCreated", 20260301),
        ("lines[1].quantity", True),
        ("lines[1].taxRate", "20 %"),
        ("validUntil", "soon"),
    ]


def test_missing_credentials_name_the_variables_to_set():
    with pytest.raises(ConfigurationError) as err:
        TenantSettings.from_env(TENANTS["synchroteam_hec"], {"SYNCHROTEAM_HEC_DOMAIN": "hec"})
    assert "SYNCHROTEAM_HEC_API_KEY" in str(err.value) and "'HEC'" in str(err.value)
    assert "SYNCHROTEAM_HEC_DOMAIN is" not in str(err.value)


def test_unknown_time_zone_is_a_configuration_error():
    env = {"SYNCHROTEAM_DOMAIN": "d", "SYNCHROTEAM_API_KEY": "k", "SYNCHROTEAM_TIMEZONE": "Mars/Olympus"}
    with pytest.raises(ConfigurationError, match="SYNCHROTEAM_TIMEZONE"):
        TenantSettings.from_env(TENANTS["synchroteam"], env)


def test_a_tenant_without_a_time_zone_is_a_configuration_error_naming_the_variable():
    with pytest.raises(ConfigurationError) as err:
        TenantSettings.from_env(
            TENANTS["synchroteam_hec"], {"SYNCHROTEAM_HEC_DOMAIN": "d", "SYNCHROTEAM_HEC_API_KEY": "k"}
        )
    assert "SYNCHROTEAM_HEC_TIMEZONE is not set" in str(err.value) and "Europe/Paris" in err.value.action


def test_settings_default_to_the_public_endpoint_and_an_hour_long_rate_wait():
    env = {"SYNCHROTEAM_DOMAIN": "d", "SYNCHROTEAM_API_KEY": "k", "SYNCHROTEAM_TIMEZONE": "Europe/Paris"}
    s = TenantSettings.from_env(TENANTS["synchroteam"], env)
    assert s.base_url == "https://ws.synchroteam.com/Api/v3" and s.timezone == ZoneInfo("Europe/Paris")
    assert s.max_rate_wait == 3600 and s.requests_per_minute is None and s.rate_limit_backoff == 5
    faster = {**env, "SYNCHROTEAM_RATE_LIMIT_BACKOFF_SECONDS": "0.25"}
    assert TenantSettings.from_env(TENANTS["synchroteam"], faster).rate_limit_backoff == 0.25
    assert (
        TenantSettings.from_env(
            TENANTS["synchroteam"], {**env, "SYNCHROTEAM_MAX_RATE_WAIT_SECONDS": "90"}
        ).max_rate_wait
        == 90
    )
    assert "api_key" not in repr(s)


def test_duckdb_is_bounded_by_default_and_tunable():
    assert duckdb_settings({}) == {"memory_limit": "128MB", "threads": 2}
    tuned = {"SYNC_DUCKDB_MEMORY_LIMIT": "1GB", "SYNC_DUCKDB_THREADS": "8"}
    assert duckdb_settings(tuned) == {"memory_limit": "1GB", "threads": 8}


@pytest.mark.parametrize(
    "name, value", [("SYNC_DUCKDB_MEMORY_LIMIT", "lots"), ("SYNC_DUCKDB_THREADS", "0"), ("SYNC_DUCKDB_THREADS", "two")]
)
def test_an_unreadable_duckdb_setting_is_a_configuration_error(name, value):
    with pytest.raises(ConfigurationError, match=name):
        duckdb_settings({name: value})


@pytest.mark.parametrize(
    "limit, accepted",
    [
        ("96MB", True),
        ("0.1GB", True),
        ("92MiB", True),
        ("95MB", False),
        ("90MiB", False),
        ("96000KB", True),
        ("93749KiB", False),
    ],
)
def test_the_duckdb_memory_limit_has_a_floor_in_duckdbs_own_units(limit, accepted):
    env = {"SYNC_DUCKDB_MEMORY_LIMIT": limit}
    if accepted:
        assert duckdb_settings(env)["memory_limit"] == limit
    else:
        with pytest.raises(ConfigurationError, match="is below 96MB"):
            duckdb_settings(env)

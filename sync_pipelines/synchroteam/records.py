"""Normalising Synchroteam records before dlt sees them.

- key casing: `CustomFieldValues` and `customFieldValues` are one field (first letter lower-cased);
- ids (`id` at any depth) are text: jobs have string ids, the rest integers, and joins must not care;
- timestamps are naive `YYYY-MM-DD HH:mm[:ss]` strings in the tenant's time zone: they become aware
  datetimes (stored as TIMESTAMP WITH TIME ZONE); date-only fields become dates;
- numbers may arrive as localized strings (`"2,00"`, `"1.234,50"`) or coordinates as strings: they become
  Decimals. A finite JSON number is kept as it came: dlt's normalizer makes it the same `Decimal(str(number))`,
  the columns of these fields being DECIMAL by name in every table (`source.tenant_schema`), and dlt need not
  encode and decode a Decimal object per value on its way. A value that cannot be read is kept as it came, never
  dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

TIMESTAMP_FIELDS = frozenset(
    {
        "dateCreated",
        "dateModified",
        "scheduledStart",
        "scheduledEnd",
        "actualStart",
        "actualEnd",
        "datePaid",
        "start",
        "end",
        "dateStart",
        "dateEnd",
    }
)
DATE_FIELDS = frozenset({"dateDue", "validUntil"})
DECIMAL_FIELDS = frozenset(
    {
        "quantity",
        "unitPrice",
        "price",
        "total",
        "taxRate",
        "totalExclTax",
        "totalTax",
        "totalInclTax",
        "latitude",
        "longitude",
    }
)

# the fields whose values are converted; every other scalar is kept as it came
CONVERTED_FIELDS = TIMESTAMP_FIELDS | DATE_FIELDS | DECIMAL_FIELDS | {"id"}
_INT64 = range(-(2**63), 2**63)  # what a JSON number can be in dlt's files; a larger one goes as a Decimal
_KEYS: dict[str, str] = {}  # the API's field names, normalised once each (a record has dozens, a load millions)
_KEYS_KEPT = 10_000


def normalise_record(
    record: dict[str, Any], tz: tzinfo, unconverted: list[tuple[str, Any]] | None = None, prefix: str = ""
) -> dict[str, Any]:
    """A copy of `record` with keys, ids, timestamps and numbers normalised (see the module docstring).

    Null fields are left out: a merge replaces the whole row, so an absent field lands as NULL, and dlt does
    not warn about columns it cannot type. `unconverted`, when given, receives each field of CONVERTED_FIELDS
    whose value could not be converted, as (path, value as it came), in the record's order: one pass over the
    record both normalises and checks it (a second one names the paths, for the rare record that has any).
    """
    if unconverted is None:
        return _normalise(record, tz, None, None)
    found: list[tuple[str, Any]] = []
    out = _normalise(record, tz, found, None)
    if found:
        _normalise(record, tz, unconverted, prefix)
    return out


def _normalise(
    record: dict[str, Any], tz: tzinfo, unconverted: list[tuple[str, Any]] | None, prefix: str | None
) -> dict[str, Any]:
    """`normalise_record`'s pass; a field's path is only spelled out when `prefix` is given."""
    out: dict[str, Any] = {}
    keys, converters = _KEYS, _CONVERTERS
    for name, value in record.items():
        if value is None:
            continue
        key = keys.get(name) or _key(name)
        if isinstance(value, dict):
            out[key] = _normalise(value, tz, unconverted, None if prefix is None else f"{prefix}{key}.")
        elif isinstance(value, list):
            if prefix is None:
                out[key] = [_normalise(v, tz, unconverted, None) if isinstance(v, dict) else v for v in value]
            else:
                out[key] = [
                    _normalise(v, tz, unconverted, f"{prefix}{key}[{i}].") if isinstance(v, dict) else v
                    for i, v in enumerate(value)
                ]
        elif (convert := converters.get(key)) is None:
            out[key] = value
        elif (converted := convert(value, tz)) is _KEPT:
            out[key] = value
            if unconverted is not None:
                unconverted.append((key if prefix is None else f"{prefix}{key}", value))
        else:
            out[key] = converted
    return out


def _key(key: str) -> str:
    known = _KEYS.get(key)
    if known is None:
        known = key[:1].lower() + key[1:] if key else key
        if len(_KEYS) < _KEYS_KEPT:
            _KEYS[key] = known
    return known


# A converter returns the value in its column's type, or _KEPT: the value cannot be converted and is kept as it came.
_KEPT = object()


def _to_text(value: Any, tz: tzinfo) -> Any:
    return value if isinstance(value, str) else str(value)


def _to_timestamp(value: Any, tz: tzinfo) -> Any:
    if isinstance(value, str):
        return parse_timestamp(value, tz) or _KEPT
    return value if isinstance(value, datetime) else _KEPT


def _to_date(value: Any, tz: tzinfo) -> Any:
    if isinstance(value, str):
        parsed = parse_timestamp(value, tz)
        return parsed.date() if parsed else _KEPT
    return value if isinstance(value, date) else _KEPT


def _to_decimal(value: Any, tz: tzinfo) -> Any:
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else _KEPT
    if kind is int:
        return value if value in _INT64 else Decimal(value)
    if isinstance(value, bool):  # True is not a number, whatever Python says
        return _KEPT
    if isinstance(value, Decimal):
        return value
    parsed = parse_decimal(value)
    return _KEPT if parsed is None else parsed


_CONVERTERS: dict[str, Callable[[Any, tzinfo], Any]] = {
    "id": _to_text,
    **dict.fromkeys(TIMESTAMP_FIELDS, _to_timestamp),
    **dict.fromkeys(DATE_FIELDS, _to_date),
    **dict.fromkeys(DECIMAL_FIELDS, _to_decimal),
}
assert _CONVERTERS.keys() == CONVERTED_FIELDS


def parse_timestamp(value: str, tz: tzinfo) -> datetime | None:
    """`"2026-03-01 08:05"` (tenant-local) -> aware datetime; an explicit offset in the value wins. None if unreadable."""
    text = value.strip()
    if text[4:5] != "-" or text[7:8] != "-":  # YYYY-MM-DD first; fromisoformat reads "20260301" and week dates too
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo:
        return parsed
    # the constructor, not `replace(tzinfo=tz)`: the same value at half the cost, for millions of timestamps a load
    return datetime(
        parsed.year, parsed.month, parsed.day, parsed.hour, parsed.minute, parsed.second, parsed.microsecond, tz
    )


def parse_decimal(value: Any) -> Decimal | None:
    """Numbers in any of the shapes the API sends: 2, 2.5, "2.5", "2,00", "1.234,50", "1,234.50", " 3 "."""
    if type(value) is int:
        return Decimal(value)
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    text = value.strip().replace("\u00a0", "").replace(" ", "")
    if not text:
        return None
    if "," in text and "." in text:
        # the separator that comes last is the decimal one
        thousands = "." if text.rfind(",") > text.rfind(".") else ","
        text = text.replace(thousands, "")
    text = text.replace(",", ".")
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def to_api_timestamp(moment: datetime, tz: tzinfo) -> str:
    """An instant as the API's filters expect it: tenant-local `YYYY-MM-DD HH:mm:ss`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")

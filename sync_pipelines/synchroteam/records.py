"""Normalising Synchroteam records before dlt sees them.

- key casing: `CustomFieldValues` and `customFieldValues` are one field (first letter lower-cased);
- ids (`id` at any depth) are text: jobs have string ids, the rest integers, and joins must not care;
- timestamps are naive `YYYY-MM-DD HH:mm[:ss]` strings in the tenant's time zone: they become aware
  datetimes (stored as TIMESTAMP WITH TIME ZONE); date-only fields become dates;
- numbers may arrive as localized strings (`"2,00"`, `"1.234,50"`) or coordinates as strings: they become
  Decimals. A value that cannot be read is kept as it came, never dropped.
"""

from __future__ import annotations

import re
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
    }
)
DATE_FIELDS = frozenset({"dateDue", "validUntil"})
DECIMAL_FIELDS = frozenset(
    {"quantity", "unitPrice", "total", "taxRate", "totalExclTax", "totalTax", "totalInclTax", "latitude", "longitude"}
)

# the fields whose values are converted; every other scalar is kept as it came
CONVERTED_FIELDS = TIMESTAMP_FIELDS | DATE_FIELDS | DECIMAL_FIELDS | {"id"}
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?")
_KEYS: dict[str, str] = {}  # the API's field names, normalised once each (a record has dozens, a load millions)
_KEYS_KEPT = 10_000


def normalise_record(
    record: dict[str, Any], tz: tzinfo, unconverted: list[tuple[str, Any]] | None = None, prefix: str = ""
) -> dict[str, Any]:
    """A copy of `record` with keys, ids, timestamps and numbers normalised (see the module docstring).

    Null fields are left out: a merge replaces the whole row, so an absent field lands as NULL, and dlt does
    not warn about columns it cannot type. `unconverted`, when given, receives each field of CONVERTED_FIELDS
    whose value could not be converted, as (path, value as it came), in the record's order: one pass over the
    record both normalises and checks it.
    """
    out: dict[str, Any] = {}
    for name, value in record.items():
        if value is None:
            continue
        key = _key(name)
        if isinstance(value, dict):
            out[key] = normalise_record(value, tz, unconverted, f"{prefix}{key}." if unconverted is not None else "")
        elif isinstance(value, list):
            out[key] = [
                normalise_record(v, tz, unconverted, f"{prefix}{key}[{i}]." if unconverted is not None else "")
                if isinstance(v, dict)
                else v
                for i, v in enumerate(value)
            ]
        elif key in CONVERTED_FIELDS:
            converted = out[key] = _convert(key, value, tz)
            if unconverted is not None and not _fits(key, converted):
                unconverted.append((f"{prefix}{key}", value))
        else:
            out[key] = value
    return out


def _key(key: str) -> str:
    known = _KEYS.get(key)
    if known is None:
        known = key[:1].lower() + key[1:] if key else key
        if len(_KEYS) < _KEYS_KEPT:
            _KEYS[key] = known
    return known


def _convert(key: str, value: Any, tz: tzinfo) -> Any:
    """A scalar of CONVERTED_FIELDS, converted; kept as it came when it cannot be."""
    if key == "id":
        return str(value)
    if key in TIMESTAMP_FIELDS:
        return (parse_timestamp(value, tz) or value) if isinstance(value, str) else value
    if key in DATE_FIELDS:
        parsed = parse_timestamp(value, tz) if isinstance(value, str) else None
        return parsed.date() if parsed else value
    if isinstance(value, bool):  # a decimal field: True is not a number, whatever Python says
        return value
    parsed_number = parse_decimal(value)
    return value if parsed_number is None else parsed_number


def _fits(key: str, value: Any) -> bool:
    """Whether a converted value has its column's type (an id always has: it is text)."""
    if key in DECIMAL_FIELDS:  # a bool is an int to Python, not a number to a DECIMAL column
        return isinstance(value, (Decimal, int, float)) and not isinstance(value, bool)
    if key in TIMESTAMP_FIELDS:
        return isinstance(value, datetime)
    if key in DATE_FIELDS:
        return isinstance(value, date)
    return True


def parse_timestamp(value: str, tz: tzinfo) -> datetime | None:
    """`"2026-03-01 08:05"` (tenant-local) -> aware datetime; an explicit offset in the value wins. None if unreadable."""
    text = value.strip()
    if not _TIMESTAMP.match(text):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def parse_decimal(value: Any) -> Decimal | None:
    """Numbers in any of the shapes the API sends: 2, 2.5, "2.5", "2,00", "1.234,50", "1,234.50", " 3 "."""
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

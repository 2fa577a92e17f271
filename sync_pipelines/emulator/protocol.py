"""Wire details of the API: routes, list parameters and their validation, JSON encoding."""
from __future__ import annotations

import json
import re
from datetime import datetime

from .clock import norm_ts, parse_ts

JSON = "application/json; charset=utf-8"
ROUTE = re.compile(r"^/api/v3/([a-z]+)/(list|details)/?$", re.IGNORECASE)
PREFIX = re.compile(r"^/api/v3(/|$)", re.IGNORECASE)
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 25, 100


class BadRequest(Exception):
    """Invalid parameters; `errors` lists one message per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def dump(obj) -> bytes:
    """Compact UTF-8 JSON (serialized once per response)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _positive_int(params: dict[str, str], name: str, default: int, errors: list[str]) -> int:
    raw = params.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        errors.append(f"{name} must be an integer, got {raw!r}")
        return default
    if value < 1:
        errors.append(f"{name} must be at least 1, got {value}")
    return value


def list_params(params: dict[str, str]) -> tuple[int, int, dict[str, str]]:
    """(page, effective pageSize, filters) from a list query; raises BadRequest.

    changedSince comes back normalised to 'YYYY-MM-DD HH:mm:ss'; empty values count as absent.
    """
    errors: list[str] = []
    filters: dict[str, str] = {}
    page = _positive_int(params, "page", 1, errors)
    size = _positive_int(params, "pageSize", DEFAULT_PAGE_SIZE, errors)
    if raw := params.get("changedSince", "").strip():
        try:
            parse_ts(raw)
            filters["changedSince"] = norm_ts(raw)
        except ValueError:
            errors.append(f"changedSince must be 'YYYY-MM-DD HH:mm' or 'YYYY-MM-DD HH:mm:ss', got {raw!r}")
    for name in ("dateFrom", "dateTo"):
        if raw := params.get(name, "").strip():
            try:
                if len(raw) != 10:
                    raise ValueError(raw)
                filters[name] = datetime.strptime(raw, "%Y-%m-%d").strftime("%Y-%m-%d")
            except ValueError:
                errors.append(f"{name} must be 'YYYY-MM-DD', got {raw!r}")
    if params.get("status", ""):
        filters["status"] = params["status"]
    if errors:
        raise BadRequest(errors)
    return page, min(size, MAX_PAGE_SIZE), filters

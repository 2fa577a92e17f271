"""Wire details of the API: routes, list parameters and their validation, JSON encoding."""

from __future__ import annotations

import base64
import hashlib
import itertools
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


HTML = "text/html; charset=utf-8"
_IMPERVA_SITE = 2714153  # Imperva names its cookies after the protected site's id
_incidents = itertools.count(1)  # each block page names its own incident, as Imperva's do


def firewall_page() -> tuple[bytes, list[tuple[str, str]]]:
    """(body, headers) of an Imperva Incapsula block page, as the firewall in front of the API sends it.

    It comes from the firewall, not the API: HTML, Incapsula cookies, none of the API's headers.
    """
    incident = next(_incidents)
    ident = f"{1_287_000_030_000 + incident}-{(incident * 7_919_339) % 10**17:017d}"
    page = (
        '<html style="height:100%"><head><META NAME="ROBOTS" CONTENT="NOINDEX, NOFOLLOW">'
        '<meta name="format-detection" content="telephone=no">'
        f"<title>Request unsuccessful. Incapsula incident ID: {ident}</title></head>"
        '<body style="margin:0px;height:100%"><iframe id="main-iframe" '
        f'src="/_Incapsula_Resource?SWUDNSAI=31&xinfo=8-{incident}-0%200NNN%20RT&incident_id={ident}" '
        'frameborder=0 width="100%" height="100%" marginheight="0px" marginwidth="0px">'
        f"Request unsuccessful. Incapsula incident ID: {ident}</iframe></body></html>"
    )
    token = base64.b64encode(hashlib.sha256(ident.encode()).digest()).decode()
    headers = [
        (
            "Set-Cookie",
            f"visid_incap_{_IMPERVA_SITE}={token}; expires=Fri, 31 Dec 2027 23:59:59 GMT; HttpOnly; "
            "path=/; SameSite=None; Secure",
        ),
        ("Set-Cookie", f"incap_ses_1287_{_IMPERVA_SITE}={token[::-1]}; path=/; SameSite=None; Secure"),
        ("X-CDN", "Imperva"),
        ("X-Iinfo", f"8-{incident}-0 0NNN RT(1700000000000 0) q(0 -1 -1 -1) r(0 -1)"),
    ]
    return page.encode("utf-8"), headers

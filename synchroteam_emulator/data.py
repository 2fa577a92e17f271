"""Deterministic, seeded record generator (one random.Random per tenant, no wall clock)."""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from . import pools as P
from .clock import ANCHOR_MINUTE, fmt, fmt_date, gap_hours, parse_ts, to_minute

DIMENSIONS = ("user", "activity", "equipment", "jobtype", "part")  # what analysts join to (dimensions.py)
RESOURCES = ("customer", "site", "job", "invoice", "quotation", "creditnote", *DIMENSIONS)
FIRST_ID = {"customer": 1001, "site": 5001, "invoice": 20001, "quotation": 40001, "creditnote": 60001}
YEAR = 365 * 1440
DAY = 1440
LIST_ONLY = frozenset({"activity", "jobtype", "part"})  # no {resource}/details: 404, as an unknown path
# the field dateFrom/dateTo filter on (default dateCreated); None: the resource has none, the filters do not apply
DATE_FIELD: dict[str, str | None] = {"job": "scheduledStart", "activity": "dateStart", "jobtype": None, "part": None}
UNDATED = frozenset({"jobtype"})  # no dateModified: a lookup list, served whole whatever changedSince says
# the fewest records of a resource a tenant gets: the technicians, job types and products other records name
FLOOR = {"user": len(P.TECHNICIANS), "jobtype": len(P.JOB_TYPES), "part": len(P.PRODUCTS)}
_MAIN_COUNTS = {
    "customer": 120,
    "site": 150,
    "job": 250,
    "invoice": 200,
    "quotation": 80,
    "creditnote": 30,
    "user": 30,
    "activity": 530,
    "equipment": 225,
    "jobtype": 10,
    "part": 200,
}
_HEC_COUNTS = {
    "customer": 40,
    "site": 40,
    "invoice": 60,
    "creditnote": 10,
    "user": 18,
    "equipment": 60,
    "jobtype": 6,
    "part": 60,
}


@dataclass
class TenantSpec:
    """One emulated tenant: credentials, zone, how many records of each resource, seed.

    A resource left out of `counts` is not served (404). Users, job types and parts are at least FLOOR[resource];
    activities at least the work and travel of the jobs. no_activity_list: `activity/list` answers 404 as an
    unknown resource does (the endpoint is only inferred from the docs).
    """

    domain: str
    api_key: str
    timezone: str = "Europe/Paris"
    counts: dict[str, int] = field(default_factory=lambda: dict(_MAIN_COUNTS))
    seed: int = 1
    no_activity_list: bool = False

    @staticmethod
    def _scaled(counts: dict[str, int], scale: float) -> dict[str, int]:
        return {k: max(FLOOR.get(k, 1), round(v * scale)) for k, v in counts.items()}

    @classmethod
    def demo_main(cls, scale: float = 1.0) -> TenantSpec:
        return cls("demo", "demo-api-key-0000-main", "Europe/Paris", cls._scaled(_MAIN_COUNTS, scale), 1)

    @classmethod
    def demo_hec(cls, scale: float = 1.0) -> TenantSpec:
        return cls("demo-hec", "demo-api-key-0000-hec", "Europe/Paris", cls._scaled(_HEC_COUNTS, scale), 2)


def _ascii(text: str) -> str:
    return (
        unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower().replace(" ", "").replace("'", "")
    )


_CITY = {c[0]: c for c in P.CITIES}


class RecordFactory:
    """Builds single records; used for the seeded bulk and for store.add()."""

    def __init__(self, seed: int, tz_name: str) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.gaps = gap_hours(tz_name)
        r = self.rng.random
        # A few "busy" minutes shared by ~5% of records: same-minute dateModified collisions.
        self.hot = sorted(ANCHOR_MINUTE - int(r() * YEAR) // 1440 * 1440 + 10 * 60 + 15 for _ in range(3))
        self._cref: dict[tuple, dict] = {}
        self._pref: dict[tuple, dict] = {}
        self._pos: dict[tuple, dict] = {}
        self._cfv = [None, None] + [
            [{"label": "Segment", "value": s}, {"label": "Priorité", "value": p}]
            for s in P.SEGMENTS
            for p in ("haute", "normale")
        ]

    # -- small helpers -------------------------------------------------------------------
    def _pick(self, seq):
        return seq[int(self.rng.random() * len(seq))]

    def _valid(self, m: int) -> int:
        return m + 60 if m // 60 in self.gaps else m

    def times(self, ref: int = ANCHOR_MINUTE) -> tuple[int, int, bool]:
        """(created, modified, seconds-variant) spread over the year before ref."""
        r = self.rng.random
        c = self._valid(ref - 1 - int(r() * YEAR))
        x = r()
        if x < 0.05:
            m = self._pick(self.hot)
            c = min(c, m - int(r() * 30 * DAY))
        elif x < 0.45:
            m = c
        else:
            m = self._valid(min(ref, c + int(r() * r() * (ref - c))))
        return c, max(m, c), r() < 0.10

    def _phone(self, mobile: bool) -> str:
        n = f"{int(self.rng.random() * 1e8):08d}"
        head = ("06", "07")[n[0] < "5"] if mobile else "0" + "12345"[int(n[1]) % 5]
        if self.rng.random() < 0.2:
            return f"+33 {head[1]} {n[0:2]} {n[2:4]} {n[4:6]} {n[6:8]}"
        return f"{head} {n[0:2]} {n[2:4]} {n[4:6]} {n[6:8]}"

    def _cfv_pair(self, custom: list[dict[str, Any]] | None) -> tuple[str, list[dict[str, Any]] | None]:
        return ("CustomFieldValues" if self.rng.random() < 0.10 else "customFieldValues"), custom

    def _party(self, rid: int, name: str, c: int, m: int, secs: bool, kind: str) -> dict:
        r, pick = self.rng.random, self._pick
        city, zipc = pick(P.CITIES)[:2]
        first, last = pick(P.FIRST_NAMES), pick(P.LAST_NAMES)
        x, my_prefix = r(), kind[0].upper()
        my_id = f"{my_prefix}-{rid - FIRST_ID[kind] + 1}" if x < 0.7 else ("" if x < 0.85 else None)
        tags = [] if r() < 0.4 else sorted({pick(P.TAGS) for _ in range(1 + int(r() * 3))})
        custom = (
            None
            if r() < 0.3
            else [
                {"label": "Segment", "value": pick(P.SEGMENTS)},
                {"label": "Contrat", "value": f"CT-{int(r() * 9000) + 1000}"},
            ]
        )
        key, custom = self._cfv_pair(custom)
        return {
            "id": rid,
            "myId": my_id,
            "name": name,
            "address": f"{1 + int(r() * 180)} {pick(P.STREETS)}",
            "addressCity": city,
            "addressZIP": zipc,
            "addressCountry": P.COUNTRY_OF.get(city, "France"),
            "contactFirstName": first,
            "contactLastName": last,
            "contactEmail": f"{_ascii(first)}.{_ascii(last)}@{pick(P.MAIL_DOMAINS)}",
            "contactPhone": self._phone(False),
            "contactMobile": self._phone(True),
            "active": r() < 0.9,
            "tags": tags,
            key: custom,
            "dateCreated": fmt(c, secs),
            "dateModified": fmt(m, secs),
        }

    def phone(self) -> str:
        return self._phone(False)

    # -- entities -----------------------------------------------------------------------
    def customer(self, rid: int, c: int, m: int, secs: bool) -> dict:
        name = f"{self._pick(P.COMPANY_A)} {self._pick(P.COMPANY_B)}"
        return self._party(rid, name, c, m, secs, "customer")

    def site(self, rid: int, cust: dict, c: int, m: int, secs: bool) -> dict:
        rec = self._party(rid, "", c, m, secs, "site")
        rec["name"] = f"{cust['name']} — {rec['addressCity']}"
        rec["customer"] = self.short_ref(cust)
        return rec

    def short_ref(self, rec: dict) -> dict:
        """{id, name} shared between records referencing the same version of a record."""
        k = (rec["id"], rec.get("name"))
        ref = self._pref.get(k)
        if ref is None:
            ref = self._pref[k] = {"id": rec["id"], "name": rec.get("name")}
        return ref

    def _cust_ref(self, cust: dict) -> dict:
        k = (cust["id"], cust.get("myId"), cust.get("name"))
        ref = self._cref.get(k)
        if ref is None:
            ref = self._cref[k] = {"id": cust["id"], "myId": cust.get("myId"), "name": cust.get("name")}
        return ref

    def _position(self, place: dict) -> dict:
        k = (place["id"], place.get("addressCity"))
        pos = self._pos.get(k)
        if pos is None:
            city = _CITY.get(place.get("addressCity") or "", P.CITIES[0])
            h = (place["id"] * 2654435761) % 1000003
            pos = self._pos[k] = {
                "latitude": f"{city[2] + (h % 1000) / 10000 - 0.05:.6f}",
                "longitude": f"{city[3] + (h // 1000) / 10000 - 0.05:.6f}",
            }
        return pos

    def job_id(self, index: int) -> str:
        """'160453_2111190756181'-like; unique thanks to the index in the second part."""
        r = self.rng.random
        return f"{100000 + int(r() * 900000)}_{2101010000000 + index * 7919 + int(r() * 7919)}"

    def job(
        self,
        jid: str,
        index: int,
        num: int | None,
        cust: dict,
        site: dict | None,
        c: int,
        secs: bool,
        m: int | None = None,
        ref: int = ANCHOR_MINUTE,
    ) -> dict:
        r, pick = self.rng.random, self._pick
        place = site or cust
        s = (c // DAY + int(r() * 30)) * DAY + 7 * 60 + 30 * int(r() * 22)
        end = s + 30 * (1 + int(r() * 8))
        status = pick(P.JOB_STATUS_PAST if end < ref else P.JOB_STATUS_FUTURE)
        a_start = a_end = None
        if status in ("started", "paused", "completed", "validated"):
            a_start = s - 30 + int(r() * 90)
            if status in ("completed", "validated"):
                a_end = a_start + 20 + int(r() * 280)
        if m is None:
            m = c if a_end is None else min(max(c, a_end + int(r() * 3 * DAY)), ref)
            if r() < 0.05 and (busy := [h for h in self.hot if h >= c]):
                m = pick(busy)
        key, custom = self._cfv_pair(pick(self._cfv))
        return {
            "id": jid,
            "num": num,
            "myId": (f"J-{index + 1}" if r() < 0.6 else pick(("", None))),
            "status": status,
            "customer": self._cust_ref(cust),
            "site": self.short_ref(site) if site else None,
            "technician": pick(P.TECHNICIANS),
            "type": pick(P.JOB_TYPES),
            "address": place.get("address"),
            "addressCity": place.get("addressCity"),
            "addressZIP": place.get("addressZIP"),
            "addressCountry": place.get("addressCountry"),
            "contactFirstName": place.get("contactFirstName"),
            "contactLastName": place.get("contactLastName"),
            "contactPhone": place.get("contactPhone"),
            "contactMobile": place.get("contactMobile"),
            "contactEmail": place.get("contactEmail"),
            "scheduledStart": fmt(s),
            "scheduledEnd": fmt(end),
            "actualStart": None if a_start is None else fmt(a_start),
            "actualEnd": None if a_end is None else fmt(a_end),
            "position": self._position(place),
            key: custom,
            "description": pick(P.DESCRIPTIONS),
            "dateCreated": fmt(c, secs),
            "dateModified": fmt(max(m, c), secs),
        }

    def job_extras(self, job: dict) -> tuple[list, list]:
        """parts and timeEntries of a job, derived from its id (stable, generated on demand)."""
        rng = random.Random(f"{self.seed}:job:{job['id']}")
        r = rng.random
        parts = []
        for _ in range(int(r() * 5)):
            code, name, price = P.PRODUCTS[int(r() * len(P.PRODUCTS))]
            qty = P.LOCALIZED_QTY[int(r() * 6)] if r() < 0.25 else P.NUMERIC_QTY[int(r() * 9)]
            parts.append({"reference": code, "name": name, "quantity": qty, "unitPrice": price})
        entries = []
        start = job.get("actualStart")
        if start and job.get("status") != "cancelled":
            tech = job.get("technician") or P.TECHNICIANS[0]
            t = to_minute(parse_ts(start)) - 30
            for k in range(1 + int(r() * 3)):
                kind = "travel" if k == 0 and r() < 0.7 else "work"
                dur = 10 + int(r() * (40 if kind == "travel" else 240))
                entries.append(
                    {
                        "id": int(r() * 9e8) + 100000000,
                        "technician": {"id": tech["id"], "name": tech["name"]},
                        "start": fmt(t),
                        "end": fmt(t + dur),
                        "durationMinutes": dur,
                        "type": kind,
                    }
                )
                t += dur + int(r() * 20)
        return parts, entries

    def lines(self, max_lines: int = 4) -> tuple[list, float, float, float]:
        r = self.rng.random
        lines, excl, tax = [], 0.0, 0.0
        for _ in range(1 + int(r() * max_lines)):
            code, desc, price = P.PRODUCTS[int(r() * len(P.PRODUCTS))]
            qty: str | float
            if r() < 0.15:
                localized = P.LOCALIZED_QTY[int(r() * 6)]
                qty, q = localized, float(localized.replace(",", "."))
            else:
                qty = q = P.NUMERIC_QTY[int(r() * 9)]
            rate = P.TAX_RATES[int(r() * 5)]
            total = round(q * price, 2)
            excl += total
            tax += total * rate / 100
            lines.append(
                {
                    "partProductCode": code,
                    "description": desc,
                    "quantity": qty,
                    "unitPrice": price,
                    "taxRate": rate,
                    "total": total,
                }
            )
        excl, tax = round(excl, 2), round(tax, 2)
        return lines, excl, tax, round(excl + tax, 2)

    def _money_doc(
        self,
        rid: int,
        num: int | None,
        status: str,
        cust: dict,
        site: dict | None,
        c: int,
        m: int,
        secs: bool,
        prefix: str,
    ) -> dict:
        lines, excl, tax, incl = self.lines()
        r = self.rng.random
        return {
            "id": rid,
            "num": None if status == "draft" else num,
            "myId": f"{prefix}-{rid}" if r() < 0.5 else self._pick(("", None)),
            "status": status,
            "customer": self.short_ref(cust),
            "site": self.short_ref(site) if site else None,
            "dateCreated": fmt(c, secs),
            "dateModified": fmt(m, secs),
            "currency": "EUR",
            "totalExclTax": excl,
            "totalTax": tax,
            "totalInclTax": incl,
            "lines": lines,
        }

    def invoice(
        self,
        rid: int,
        num: int,
        cust: dict,
        site: dict | None,
        job: dict | None,
        c: int,
        m: int,
        secs: bool,
        status: str | None = None,
        kind: str = "invoice",
    ) -> dict:
        r = self.rng.random
        status = status or self._pick(P.INVOICE_STATUS)
        paid = None
        if status == "paid":
            paid = self._valid(c + DAY + int(r() * 45 * DAY))
            m = max(m, paid)
        doc = self._money_doc(rid, num, status, cust, site, c, m, secs, "F" if kind == "invoice" else "AV")
        doc["job"] = {"id": job["id"], "num": job.get("num")} if job else None
        doc["dateDue"] = fmt_date(c + 30 * DAY)
        doc["datePaid"] = None if paid is None else fmt(paid)
        return doc

    def quotation(
        self, rid: int, num: int, cust: dict, site: dict | None, c: int, m: int, secs: bool, status: str | None = None
    ) -> dict:
        doc = self._money_doc(rid, num, status or self._pick(P.QUOTATION_STATUS), cust, site, c, m, secs, "D")
        doc["validUntil"] = fmt_date(c + 30 * DAY)
        return doc

    def creditnote(
        self,
        rid: int,
        num: int,
        cust: dict,
        site: dict | None,
        invoice: dict | None,
        c: int,
        m: int,
        secs: bool,
        status: str | None = None,
    ) -> dict:
        doc = self.invoice(
            rid, num, cust, site, None, c, m, secs, status or self._pick(P.CREDITNOTE_STATUS), kind="creditnote"
        )
        doc["invoice"] = {"id": invoice["id"], "num": invoice.get("num")} if invoice else None
        return doc

"""The records analysts join to: users, activities, equipment, job types, parts and services.

Derived from what the bulk's records carry: jobs name the catalogue's technicians (users), types (job types) and
products (parts, which invoice lines name too); their time entries are the work and travel activities; equipment
sits on the sites. Drawn from a random generator of their own, so that the other resources' records, and what
`store.add()` builds after them, are the same with or without dimensions.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from . import pools as P
from .clock import ANCHOR_MINUTE, fmt, parse_ts, to_minute
from .data import DAY, FLOOR, YEAR, RecordFactory, TenantSpec, _ascii

TECH_ID = P.TECHNICIANS[0]["id"]  # users are numbered from the first technician on
FIRST_DIM_ID = {"user": TECH_ID, "activity": 100001, "equipment": 70001, "jobtype": P.JOB_TYPES[0]["id"], "part": 80001}
LUNCH_SLOTS = (12 * 60, 12 * 60 + 30, 13 * 60, 11 * 60 + 30, 13 * 60 + 30)


def _minute(ts: str) -> int:
    return to_minute(parse_ts(ts))


def next_id(resource: str, ids: list) -> int:
    """The id store.add() gives: after the largest ever listed (ids are never reused)."""
    return max(ids, default=FIRST_DIM_ID[resource] - 1) + 1


class DimensionFactory(RecordFactory):
    """Builds dimension records; its generator is seeded apart from the bulk's."""

    def __init__(self, seed: int, tz_name: str) -> None:
        super().__init__(seed, tz_name)  # the same busy minutes as the bulk: dateModified collisions across entities
        self.rng = random.Random(f"{seed}:dimensions")
        self._logins: set[str] = set()

    # -- users ---------------------------------------------------------------------------
    def user(self, uid: int, profile: str, c: int, m: int, secs: bool) -> dict:
        """Users 300.. : the catalogue's technicians first (as jobs name them), then anyone of `profile`."""
        r, pick = self.rng.random, self._pick
        index = uid - TECH_ID
        if index < len(P.TECHNICIANS):
            tech = P.TECHNICIANS[index]
            (first, last), login = tech["name"].split(" ", 1), tech["login"]
        else:
            first, last = pick(P.FIRST_NAMES), pick(P.LAST_NAMES)
            login = f"tech{index + 1:02d}" if profile == "technician" else f"{_ascii(first)[0]}.{_ascii(last)}"
            while login in self._logins:
                login += str(int(r() * 10))
        self._logins.add(login)
        technician = profile == "technician"
        return {
            "id": uid,
            "login": login,
            "firstName": first,
            "lastName": last,
            "email": f"{_ascii(first)}.{_ascii(last)}@entreprise.example",
            "phone": self._phone(technician),
            "profile": profile,
            "team": dict(pick(P.TEAMS)) if r() < (0.9 if technician else 0.2) else None,
            "active": r() < 0.92,
            "dateCreated": fmt(c, secs),
            "dateModified": fmt(m, secs),
        }

    def users(self, n: int) -> list[dict]:
        """n users (at least the catalogue's technicians): about a quarter office staff, the rest technicians."""
        n = max(n, FLOOR["user"])
        office = min(max(1, n // 4), n - len(P.TECHNICIANS))
        profiles = ["technician"] * (n - len(P.TECHNICIANS) - office) + [
            "administrator" if k == 0 else self._pick(P.OFFICE_PROFILES) for k in range(office)
        ]
        self.rng.shuffle(profiles)
        out = []
        for index in range(n):
            profile = "technician" if index < len(P.TECHNICIANS) else profiles[index - len(P.TECHNICIANS)]
            c, m, secs = self.times()
            if index < len(P.TECHNICIANS):  # on the payroll before the first job they are named on
                c = self._valid(c - YEAR)
            out.append(self.user(TECH_ID + index, profile, c, m, secs))
        return out

    # -- job types and parts -----------------------------------------------------------
    def jobtype(self, tid: int) -> dict:
        """Ids 10.. : the catalogue's types (as jobs name them), then more. A lookup: no dates."""
        index = tid - FIRST_DIM_ID["jobtype"]
        if index < len(P.JOB_TYPES):
            return {**P.JOB_TYPES[index], "duration": P.JOB_TYPE_MINUTES[index]}
        name, minutes = P.MORE_JOB_TYPES[(index - len(P.JOB_TYPES)) % len(P.MORE_JOB_TYPES)]
        lap = (index - len(P.JOB_TYPES)) // len(P.MORE_JOB_TYPES)
        return {"id": tid, "name": f"{name} {lap + 1}" if lap else name, "duration": minutes}

    def part(self, pid: int, taken: set[str]) -> dict:
        """Ids 80001.. : the catalogue's products (as job parts and invoice lines name them), then more."""
        r, pick = self.rng.random, self._pick
        index = pid - FIRST_DIM_ID["part"]
        _, m, secs = self.times()
        if index < len(P.PRODUCTS):
            reference, name, price = P.PRODUCTS[index]
            kind, rate, active = ("service" if reference in P.SERVICE_REFERENCES else "part"), 20.0, True
        else:
            kind = "service" if r() < 0.15 else "part"
            prefix, name = ("SRV", pick(P.SERVICES)) if kind == "service" else pick(P.PART_FAMILIES)
            if kind == "part":
                name = f"{name} {pick(P.PART_SIZES)}"
            reference = f"{prefix}-{100 + int(r() * 900)}"
            while reference in taken:
                reference = f"{prefix}-{100 + int(r() * 9900)}"
            price = round(2 + r() * r() * (400 if kind == "part" else 250), 2)
            rate, active = pick(P.TAX_RATES), r() < 0.9
        taken.add(reference)
        return {
            "id": pid,
            "reference": reference,
            "name": name,
            "type": kind,
            "price": price,
            "taxRate": rate,
            "active": active,
            "dateModified": fmt(m, secs),
        }

    # -- equipment -----------------------------------------------------------------------
    def equipment(self, eid: int, customer: dict, site: dict | None, ref: int = ANCHOR_MINUTE) -> dict:
        """On `site` of `customer` (site None: at the customer's), installed after the place was created."""
        r, pick = self.rng.random, self._pick
        c, m, secs = self.times(ref)
        since = _minute((site or customer)["dateCreated"])
        if c < since:
            c = self._valid(min(since + int(r() * 30 * DAY), ref))
            m = max(m, c)
        x = r()
        brand = pick(P.EQUIPMENT_BRANDS)
        return {
            "id": eid,
            "myId": f"EQ-{eid - FIRST_DIM_ID['equipment'] + 1}" if x < 0.7 else ("" if x < 0.85 else None),
            "name": f"{pick(P.EQUIPMENT_KINDS)} {brand}",
            "serialNumber": f"{_ascii(brand)[:3].upper()}{2015 + int(r() * 11)}-{int(r() * 1e6):06d}",
            "customer": {"id": customer["id"], "name": customer["name"]},
            "site": {"id": site["id"], "name": site["name"]} if site else None,
            "dateCreated": fmt(c, secs),
            "dateModified": fmt(m, secs),
        }

    # -- activities ----------------------------------------------------------------------
    def activity(self, kind: str, user: dict, job: dict | None, start: int, end: int, ref: int = ANCHOR_MINUTE) -> dict:
        """An activity without its id; one never runs past midnight (time sheets are per day)."""
        r = self.rng.random
        end = min(end, start // DAY * DAY + DAY - 1)
        m = max(end, min(end + int(r() * r() * 2 * DAY), ref))
        notes = P.WORK_NOTES if kind == "work" else P.BREAK_NOTES if kind == "break" else []
        return {
            "activityType": dict(P.ACTIVITY_TYPES[kind]),
            "user": {"id": user["id"], "login": user["login"]},
            "job": {"id": job["id"]} if job else None,
            "dateStart": fmt(start),
            "dateEnd": fmt(end),
            "note": self._pick(notes) if notes and r() < (0.9 if kind == "break" else 0.3) else None,
            "dateModified": fmt(m, r() < 0.10),
        }

    def activities(self, jobs: list[dict], entries: Callable[[dict], list], technicians: list[dict], n: int) -> list:
        """The jobs' time entries as work and travel activities, then breaks up to n activities in all."""
        out = []
        busy: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for job in jobs:
            tech = job["technician"]
            for e in entries(job):
                start, end = _minute(e["start"]), _minute(e["end"])
                out.append(self.activity(e["type"], tech, job, start, end))
                busy.setdefault((tech["id"], start // DAY), []).append((start, end))
        logins = {t["id"]: t for t in technicians} | {j["technician"]["id"]: j["technician"] for j in jobs}
        days = sorted(busy)
        self.rng.shuffle(days)
        for key in days:  # a lunch break on some of the days they worked, in a free slot
            if len(out) >= n:
                break
            if (slot := self._free_slot(key[1], busy[key])) is not None:
                out.append(self.activity("break", logins[key[0]], None, *slot))
        tries = 0
        while technicians and len(out) < n and tries < 20 * n:  # the rest on days without jobs (office days)
            tries += 1
            tech, day = self._pick(technicians), ANCHOR_MINUTE // DAY - 1 - int(self.rng.random() * 365)
            if (tech["id"], day) not in busy:
                busy[(tech["id"], day)] = []
                start = day * DAY + LUNCH_SLOTS[0]
                out.append(self.activity("break", tech, None, start, start + 30 + 15 * int(self.rng.random() * 3)))
        out.sort(key=lambda a: (a["dateStart"], a["user"]["id"]))
        return [{"id": FIRST_DIM_ID["activity"] + i, **a} for i, a in enumerate(out)]

    def _free_slot(self, day: int, taken: list[tuple[int, int]]) -> tuple[int, int] | None:
        minutes = 30 + 15 * int(self.rng.random() * 3)
        for at in LUNCH_SLOTS:
            start = day * DAY + at
            if all(start + minutes <= a or start >= b for a, b in taken):
                return start, start + minutes
        return None


def generate_dimensions(
    spec: TenantSpec, d: DimensionFactory, data: dict[str, list[dict]], entries: Callable[[dict], list]
) -> dict[str, list[dict]]:
    """resource -> records in list order, for the dimensions in spec.counts; `data` is the bulk's."""
    counts, r = spec.counts, d.rng.random
    out: dict[str, list[dict]] = {}
    users = d.users(counts.get("user", 0))  # drawn whether served or not: activities name them
    if "user" in counts:
        out["user"] = users
    if "jobtype" in counts:
        first = FIRST_DIM_ID["jobtype"]
        out["jobtype"] = [d.jobtype(first + i) for i in range(max(counts["jobtype"], FLOOR["jobtype"]))]
    if "part" in counts:
        taken: set[str] = set()
        out["part"] = [d.part(FIRST_DIM_ID["part"] + i, taken) for i in range(max(counts["part"], FLOOR["part"]))]
    if "equipment" in counts:
        sites, customers = data["site"], data["customer"]
        by_id = {c["id"]: c for c in customers}
        out["equipment"] = []
        for i in range(counts["equipment"]):
            site = sites[int(r() * len(sites))] if sites and r() < 0.85 else None
            customer = by_id[site["customer"]["id"]] if site else customers[int(r() * len(customers))]
            out["equipment"].append(d.equipment(FIRST_DIM_ID["equipment"] + i, customer, site))
    if "activity" in counts:
        technicians = [u for u in users if u["profile"] == "technician" and u["active"]]
        out["activity"] = d.activities(data["job"], entries, technicians, counts["activity"])
    return out

"""Per-tenant record store: ordered records, filtered-list cache, mutations, tenant clock.

Records are copy-on-write: a stored dict (and anything nested in it) is never changed in place, so the
server may serialize references it took under the lock after releasing it.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections import OrderedDict
from datetime import datetime, timedelta

from .bulk import generate
from .clock import TenantClock, fmt, to_minute
from .data import DATE_FIELD, DIMENSIONS, FIRST_ID, UNDATED, RecordFactory, TenantSpec
from .dimensions import DimensionFactory, generate_dimensions, next_id

_REV = re.compile(r" \[rev \d+\]$")
_CACHE_SIZE = 16


def copy_tree(obj):
    """Deep copy of JSON-like data (much faster than copy.deepcopy)."""
    if isinstance(obj, dict):
        return {k: copy_tree(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [copy_tree(v) for v in obj]
    return obj


def _qty(q) -> float:
    try:
        return float(str(q).replace(",", "."))
    except ValueError:
        return 0.0


def with_totals(doc: dict, lines: list) -> dict:
    """doc with `lines` and totals recomputed from them."""
    excl = round(sum(ln["total"] for ln in lines), 2)
    tax = round(sum(ln["total"] * ln["taxRate"] / 100 for ln in lines), 2)
    return {**doc, "lines": lines, "totalExclTax": excl, "totalTax": tax, "totalInclTax": round(excl + tax, 2)}


class TenantStore:
    """All records of one tenant. Thread-safe (one lock)."""

    def __init__(self, spec: TenantSpec) -> None:
        self.spec = spec
        self.domain = spec.domain
        self.api_key = spec.api_key
        self.timezone = spec.timezone
        self._lock = threading.RLock()
        self._clock = TenantClock(spec.timezone)
        self._f = RecordFactory(spec.seed, spec.timezone)
        self._d = DimensionFactory(spec.seed, spec.timezone)  # its own generator: the bulk's adds stay the same
        self.no_activity_list = spec.no_activity_list
        data = generate(spec, self._f)
        data.update(generate_dimensions(spec, self._d, data, lambda job: self._f.job_extras(job)[1]))
        self._recs: dict[str, dict] = {}
        self._order: dict[str, list] = {}  # sorted ids (list order) ...
        self._rows: dict[str, list[dict]] = {}  # ... and the records at the same positions
        for res, lst in data.items():
            if res in spec.counts:
                self._recs[res] = {rec["id"]: rec for rec in lst}
                self._order[res] = [rec["id"] for rec in lst]
                self._rows[res] = list(lst)
        self._hidden_customers = data["customer"] if "customer" not in spec.counts else []
        self._next_id = {res: FIRST_ID[res] + len(data[res]) for res in FIRST_ID}
        self._next_id.update({res: next_id(res, self._order[res]) for res in DIMENSIONS if res in self._order})
        self._next_num = {
            "job": 10000 + len(data["job"]),
            "invoice": 1000 + len(data["invoice"]),
            "quotation": 500 + len(data["quotation"]),
            "creditnote": 100 + len(data["creditnote"]),
        }
        self._next_job = len(data["job"])
        self._cache: OrderedDict[tuple, tuple[int, list]] = OrderedDict()
        self.version = 0

    # -- reading -----------------------------------------------------------------------
    def serves(self, resource: str) -> bool:
        return resource in self._recs

    def _key(self, resource: str, rid):
        if resource == "job":
            return str(rid)
        try:
            return int(rid)
        except (TypeError, ValueError):
            return None

    def _full(self, resource: str, rec: dict) -> dict:
        if resource != "job" or ("parts" in rec and "timeEntries" in rec):
            return rec
        parts, entries = self._f.job_extras(rec)
        return {**rec, "parts": rec.get("parts", parts), "timeEntries": rec.get("timeEntries", entries)}

    def details(self, resource: str, rid) -> dict | None:
        """The full stored record (a shared, never-mutated object: do not change it)."""
        with self._lock:
            rec = self._recs.get(resource, {}).get(self._key(resource, rid))
            return None if rec is None else self._full(resource, rec)

    def get(self, resource: str, rid) -> dict | None:
        rec = self.details(resource, rid)
        return None if rec is None else copy_tree(rec)

    def records(self, resource: str) -> list[dict]:
        with self._lock:
            return [copy_tree(self._full(resource, rec)) for rec in self._rows.get(resource, [])]

    def _matching(self, resource: str, filters: dict[str, str]) -> list[dict]:
        """Records passing the filters, in list order (cached until the next mutation)."""
        if not filters:
            return self._rows[resource]
        key = (resource, *sorted(filters.items()))
        hit = self._cache.get(key)
        if hit and hit[0] == self.version:
            self._cache.move_to_end(key)
            return hit[1]
        out = self._rows[resource]
        if (status := filters.get("status")) is not None:
            out = [r for r in out if r.get("status") == status]
        if (since := filters.get("changedSince")) is not None and resource not in UNDATED:
            s16, sec = since[:16], since[16:]  # compare 'YYYY-MM-DD HH:mm' then ':ss' (absent = ':00')
            out = [
                r
                for r in out
                if (d := r.get("dateModified")) and ((p := d[:16]) > s16 or (p == s16 and (d[16:] or ":00") >= sec))
            ]
        field = DATE_FIELD.get(resource, "dateCreated")
        if (lo := filters.get("dateFrom")) is not None and field:
            out = [r for r in out if (r.get(field) or "")[:10] >= lo]
        if (hi := filters.get("dateTo")) is not None and field:
            out = [r for r in out if "" < (r.get(field) or "")[:10] <= hi]
        self._cache[key] = (self.version, out)
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return out

    def list_page(self, resource: str, page: int, size: int, filters: dict[str, str]) -> tuple[int, list[dict]]:
        """(recordsTotal, rows of that page). changedSince must be normalised with clock.norm_ts."""
        with self._lock:
            matching = self._matching(resource, filters)
            start = (page - 1) * size
            rows = matching[start : start + size]
            total = len(matching)
        if resource == "job":
            rows = [
                r
                if "parts" not in r and "timeEntries" not in r
                else {k: v for k, v in r.items() if k not in ("parts", "timeEntries")}
                for r in rows
            ]
        return total, rows

    # -- clock -------------------------------------------------------------------------
    def now(self) -> datetime:
        return self._clock.now()

    def utc_now(self) -> datetime:
        return self._clock.utc_now()

    def set_clock(self, local: datetime) -> None:
        self._clock.set(local)

    def advance_clock(self, minutes: float = 0.0, *, hours: float = 0.0, days: float = 0.0) -> None:
        self._clock.advance(timedelta(minutes=minutes, hours=hours, days=days))

    def follow_real_time(self) -> None:
        self._clock.follow_real_time()

    # -- mutations ---------------------------------------------------------------------
    def _stamp(self, when: datetime | None) -> str:
        when = when or self.now()
        return when.strftime("%Y-%m-%d %H:%M:%S" if when.second else "%Y-%m-%d %H:%M")

    def _revised(self, text: str | None) -> str:
        return f"{_REV.sub('', text or '')} [rev {self.version + 1}]"

    def _default_edit(self, resource: str, rec: dict) -> dict:
        if resource == "job":
            return {"description": self._revised(rec.get("description"))}
        if resource in ("customer", "site"):
            return {"contactPhone": self._f.phone()}
        if resource == "user":
            return {"phone": self._d.phone()}
        if resource in ("activity", "equipment"):
            key = "note" if resource == "activity" else "name"
            return {key: self._revised(rec.get(key) or "Modifié")}
        if resource == "jobtype":
            return {"duration": rec["duration"] + 15}
        if resource == "part":
            return {"price": round(rec["price"] + 1, 2)}
        if resource == "quotation":
            until = datetime.strptime(rec["validUntil"], "%Y-%m-%d") + timedelta(days=15)
            return {"validUntil": until.strftime("%Y-%m-%d")}
        lines = list(rec.get("lines") or [])
        if not lines:
            lines = [
                {
                    "partProductCode": "DIV",
                    "description": "Ajustement",
                    "quantity": 1,
                    "unitPrice": 0.0,
                    "taxRate": 20.0,
                    "total": 0.0,
                }
            ]
        first = dict(lines[0])
        first["unitPrice"] = round(first["unitPrice"] + 10, 2)
        first["total"] = round(_qty(first["quantity"]) * first["unitPrice"], 2)
        lines[0] = first
        new = with_totals(rec, lines)
        return {k: new[k] for k in ("lines", "totalExclTax", "totalTax", "totalInclTax")}

    def edit(
        self, resource: str, rid, changes: dict | None = None, *, bump: bool = True, modified_at: datetime | None = None
    ) -> dict:
        """Merge `changes` (None = a visible default edit); bump dateModified unless bump=False."""
        with self._lock:
            key = self._key(resource, rid)
            recs = self._recs.get(resource)
            if recs is None or key not in recs:
                raise KeyError(f"{resource} {rid!r} not found")
            rec = recs[key]
            changes = self._default_edit(resource, rec) if changes is None else copy_tree(changes)
            changes.pop("id", None)
            new = {**rec, **changes}
            if bump and "dateModified" not in changes and resource not in UNDATED:
                new["dateModified"] = self._stamp(modified_at)
            recs[key] = new
            self._rows[resource][self._position(resource, key)] = new
            self.version += 1
            return copy_tree(self._full(resource, new))

    def _position(self, resource: str, key) -> int:
        return bisect.bisect_left(self._order[resource], key)

    def _any(self, resource: str, f: RecordFactory | None = None) -> dict | None:
        """A random record of `resource`, drawn with f's generator (default: the bulk's)."""
        r = (f or self._f).rng.random
        ids = self._order.get(resource)
        if resource == "customer" and ids is None:
            pool = self._hidden_customers
            return pool[int(r() * len(pool))] if pool else None
        if not ids:
            return None
        return self._recs[resource][ids[int(r() * len(ids))]]

    def _build_dimension(self, resource: str, c: int) -> dict:
        d = self._d
        if resource == "jobtype":
            return d.jobtype(self._take_id(resource))
        if resource == "part":
            return d.part(self._take_id(resource), {p["reference"] for p in self._rows["part"]})
        if resource == "user":
            return d.user(self._take_id(resource), "technician", c, c, False)
        if resource == "equipment":
            site = self._any("site", d) if d.rng.random() < 0.85 else None
            cust = self._any("customer", d)
            if site is not None:  # the site's customer, as the site names it if it is gone
                cust = self._recs.get("customer", {}).get(site["customer"]["id"]) or site["customer"]
            if cust is None:
                raise LookupError("no customer to reference")
            return {
                **d.equipment(self._take_id(resource), cust, site, c),
                "dateCreated": fmt(c),
                "dateModified": fmt(c),
            }
        job = self._any("job", d)  # work on a job, else a break
        tech = job["technician"] if job else self._any("user", d)
        if tech is None:
            raise LookupError("no user to reference")
        activity = d.activity("work" if job else "break", tech, job, c - 60, c, c)
        return {"id": self._take_id(resource), **activity, "dateModified": fmt(c)}

    def _build(self, resource: str, c: int) -> dict:
        f = self._f
        if resource in DIMENSIONS:
            return self._build_dimension(resource, c)
        if resource == "customer":
            return f.customer(self._take_id(resource), c, c, False)
        cust = self._any("customer")
        if cust is None:
            raise LookupError("no customer to reference")
        site = self._any("site") if f.rng.random() < 0.8 else None
        if site is not None:
            cust = self._recs.get("customer", {}).get(site["customer"]["id"]) or site["customer"]
        if resource == "site":
            return f.site(self._take_id(resource), cust, c, c, False)
        num = self._next_num[resource]
        self._next_num[resource] += 1
        if resource == "job":
            self._next_job += 1
            return f.job(f.job_id(self._next_job - 1), self._next_job - 1, num, cust, site, c, False, m=c, ref=c)
        if resource == "invoice":
            job = self._any("job")
            return f.invoice(self._take_id(resource), num, cust, site, job, c, c, False, status="new")
        if resource == "quotation":
            return f.quotation(self._take_id(resource), num, cust, site, c, c, False, status="new")
        inv = self._any("invoice")
        if inv is not None:
            cust, site = inv["customer"], inv["site"]
        return f.creditnote(self._take_id(resource), num, cust, site, inv, c, c, False, status="new")

    def _take_id(self, resource: str) -> int:
        rid = self._next_id[resource]
        self._next_id[resource] += 1
        return rid

    def add(self, resource: str, overrides: dict | None = None) -> dict:
        """A new record with the next id, created and modified now(), referencing existing records."""
        with self._lock:
            if resource not in self._recs:
                raise KeyError(f"tenant {self.domain} does not serve {resource}")
            overrides = copy_tree(overrides or {})
            if "id" in overrides:
                raise ValueError("ids are assigned by the store")
            rec = self._build(resource, to_minute(self.now()))
            if overrides.get("status") == "draft" and "num" not in overrides and "num" in rec:
                overrides["num"] = None  # drafts have no number
            rec.update(overrides)
            key = rec["id"]
            self._recs[resource][key] = rec
            pos = bisect.bisect_left(self._order[resource], key)
            self._order[resource].insert(pos, key)
            self._rows[resource].insert(pos, rec)
            self.version += 1
            return copy_tree(self._full(resource, rec))

    def delete(self, resource: str, rid) -> None:
        """Remove a record: gone from lists, details answer 404."""
        with self._lock:
            key = self._key(resource, rid)
            recs = self._recs.get(resource)
            if recs is None or key not in recs:
                raise KeyError(f"{resource} {rid!r} not found")
            del recs[key]
            pos = self._position(resource, key)
            del self._order[resource][pos]
            del self._rows[resource][pos]
            self.version += 1

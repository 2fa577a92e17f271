"""The seeded bulk: every resource of a tenant, consistent references, generated in one pass."""

from __future__ import annotations

import gc

from .data import FIRST_ID, RecordFactory, TenantSpec

HIDDEN_CUSTOMERS = 30  # references for tenants that do not serve customers themselves


def generate(spec: TenantSpec, f: RecordFactory) -> dict[str, list[dict]]:
    """resource -> records in list order; the cyclic GC is paused meanwhile (millions of young dicts)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _generate(spec, f)
    finally:
        if was_enabled:
            gc.enable()


def _generate(spec: TenantSpec, f: RecordFactory) -> dict[str, list[dict]]:
    """resource -> records in list order (ids increasing; job ids as strings).

    'customer' is always present (hidden references when the tenant does not serve customers).
    """
    counts = spec.counts
    r = f.rng.random
    times = f.times
    customers = [
        f.customer(FIRST_ID["customer"] + i, *times()) for i in range(counts.get("customer", HIDDEN_CUSTOMERS))
    ]
    cust_by_id = {c["id"]: c for c in customers}
    n_c = len(customers)
    sites = [f.site(FIRST_ID["site"] + i, customers[int(r() * n_c)], *times()) for i in range(counts.get("site", 0))]
    n_s = len(sites)

    def place() -> tuple[dict, dict | None]:
        if n_s and r() < 0.8:
            s = sites[int(r() * n_s)]
            return cust_by_id[s["customer"]["id"]], s
        return customers[int(r() * n_c)], None

    # Jobs are built in id (string) order so that list walks touch memory sequentially.
    jobs = []
    for i, jid in enumerate(sorted(f.job_id(i) for i in range(counts.get("job", 0)))):
        cust, site = place()
        c, _, secs = times()
        jobs.append(f.job(jid, i, 10000 + i if r() >= 0.05 else None, cust, site, c, secs))
    n_j = len(jobs)

    invoices = []
    for i in range(counts.get("invoice", 0)):
        job = jobs[int(r() * n_j)] if n_j and r() < 0.6 else None
        if job:
            cust, site = job["customer"], job["site"]
        else:
            cust, site = place()
        invoices.append(f.invoice(FIRST_ID["invoice"] + i, 1000 + i, cust, site, job, *times()))
    n_i = len(invoices)

    quotations = []
    for i in range(counts.get("quotation", 0)):
        cust, site = place()
        quotations.append(f.quotation(FIRST_ID["quotation"] + i, 500 + i, cust, site, *times()))

    notes = []
    for i in range(counts.get("creditnote", 0)):
        inv = invoices[int(r() * n_i)] if n_i else None
        cust, site = (inv["customer"], inv["site"]) if inv else place()
        notes.append(f.creditnote(FIRST_ID["creditnote"] + i, 100 + i, cust, site, inv, *times()))
    return {
        "customer": customers,
        "site": sites,
        "job": jobs,
        "invoice": invoices,
        "quotation": quotations,
        "creditnote": notes,
    }

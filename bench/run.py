"""`make bench`: the sync measured against the emulator over loopback; writes BENCHMARKS.md's tables.

    python -m bench.run            # the realistic scale (1.5-2.5 h on 2 cores), rewrites BENCHMARKS.md's tables
    python -m bench.run --quick    # a smoke run at 1/20 of the scale (a few minutes), writes bench/results/quick.*

Phases, each against an emulator in its own process (bench/emulator_server.py):
1. full first sync, one entity per `dagster job execute` (as users run it): wall, records/s, peak RSS;
   then Dagster's floor: a job of one asset that does nothing (bench/dagster_floor.py), run the same way;
5. the same full sync by (a) a hand-written httpx loop (bench/plain_loop.py) and (b) dlt's rest_api source
   with its defaults (bench/rest_api_source.py);
2. incremental runs of `sync_all` (every entity of both tenants, Dagster start-up included) after 1% of every
   entity changed and after no change, at look-back 0 and at the entity defaults, against the minimum number of
   requests; the two alternatives' incremental runs on the same data;
3. a full sync of customers under an emulator rate limit, known (paced) and unknown (429s);
4. peak RSS of the invoices sync at 1x and 10x the table size;
5b. every list entity's full sync at two sizes, by the product and by rest_api, alternating pairs over several
    rounds: the records a second one more record costs (bench/per_record.py runs one entity the same way).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench import common, report
from bench.common import (
    DOMAINS,
    ENTITIES,
    HEC_DOMAIN,
    KEYS,
    MAIN_DOMAIN,
    PYTHON,
    REPO,
    TIMEZONE,
    DagsterHome,
    EmulatorProcess,
    RequestStats,
    alternating,
    run_measured,
    tenant_specs,
)

RESULTS = Path(__file__).resolve().parent / "results"
TZ = ZoneInfo(TIMEZONE)
PAGE = 100
CHANGED_FRACTION = 0.01
ADDED_SHARE = 0.1  # of the changed records, the share that are new records (the rest are edits)
ROUND_MINUTES = 60  # the changes of one round are spread over this many minutes, one run per round
# Each run starts this long (tenant time) after the last change of its round, or after the run before: a run in
# the very minute of a change would see a list that may be changing as it is walked, and walk it twice.
SYNC_AFTER = timedelta(minutes=5)
REFETCH_RECENT_DAYS = {"invoices": 7, "credit_notes": 7}  # the entity defaults (catalogue.py)
REFETCH_STATUSES = {"quotations": ("draft", "new")}


@dataclass
class Scale:
    name: str
    main: dict[str, int]
    hec: dict[str, int]
    tenx_main: dict[str, int]  # the 10x memory run: main tenant only
    rate_limit: int  # requests per minute in the rate-limit phase
    no_retry_after: bool  # also run the variant whose 429s carry no Retry-After
    window: tuple[int, float]  # the announced fixed window of the rate-window phase: (requests, seconds)
    pair_rounds: int = 3  # rounds of the per-record phase's side-by-side pairs
    timeout_s: float = 3600


SCALES = {
    "1x": Scale(
        "1x",
        main={
            "customer": 20_000,
            "site": 30_000,
            "job": 100_000,
            "invoice": 100_000,
            "quotation": 20_000,
            "creditnote": 10_000,
        },
        hec={"invoice": 20_000, "creditnote": 5_000},
        tenx_main={"invoice": 1_000_000},
        rate_limit=120,
        no_retry_after=True,
        window=(40, 240.0),
    ),
    "quick": Scale(
        "quick",
        main={"customer": 1_000, "site": 1_500, "job": 5_000, "invoice": 5_000, "quotation": 1_000, "creditnote": 500},
        hec={"invoice": 1_000, "creditnote": 250},
        tenx_main={"invoice": 50_000},
        rate_limit=8,
        no_retry_after=False,
        window=(4, 6.0),
        pair_rounds=2,
        timeout_s=900,
    ),
}

LOOKBACK_ZERO: dict[str, dict[str, Any]] = {}
for _tenant, _entity, _ in ENTITIES:
    _cfg: dict[str, Any] = {"lookback_minutes": 0, "revisit_days": 0, "max_records": 0}
    if _entity in ("jobs", "invoices", "credit_notes"):
        _cfg["refetch_recent_days"] = 0
    if _entity == "quotations":
        _cfg["refetch_statuses"] = []
    LOOKBACK_ZERO[f"{_tenant}__{_entity}"] = _cfg


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def write_results(name: str, scale: str, started: datetime, fields: dict[str, Any]) -> Path:
    """`bench/results/<name>-<scale>.json` of a side-by-side script: when it started, its scale, the product's
    fingerprint, then `fields`."""
    out = {
        "started": started.isoformat(timespec="seconds"),
        "scale": scale,
        "fingerprint": common.code_fingerprint(REPO),
    }
    out.update(fields)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}-{scale}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    return path


def alt_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SYNCHROTEAM_", "SYNC_", "DAGSTER_"))}


def pages(n: int) -> int:
    return max(1, math.ceil(n / PAGE))


def requests_of(stats: RequestStats, tenant: str, resource: str) -> dict[str, int]:
    domain = DOMAINS[tenant]
    return {
        "list": stats.count(tenant=domain, resource=resource, action="list"),
        "details": stats.count(tenant=domain, resource=resource, action="details"),
        "total": stats.count(tenant=domain, resource=resource),
        "429": stats.count(tenant=domain, resource=resource, status=429),
        "count_checks": stats.page_size_1(tenant=domain, resource=resource),
    }


# -- 1. the product's full first sync ---------------------------------------------------------------------------


def phase_full_product(emu: EmulatorProcess, home: DagsterHome, scale: Scale) -> list[dict[str, Any]]:
    measured = []
    for tenant, entity, resource in ENTITIES:
        emu.stats(reset=True)
        log(f"full sync (product): {tenant}/{entity}")
        m = home.job(f"sync_{tenant}__{entity}", timeout=scale.timeout_s).check(f"full sync of {tenant}/{entity}")
        measured.append((tenant, entity, resource, m, emu.stats(reset=True)))
    return [product_row(*one, run) for one, run in zip(measured, home.runs(len(measured)))]


def product_row(
    tenant: str, entity: str, resource: str, m: Any, stats: RequestStats, run: dict[str, Any]
) -> dict[str, Any]:
    """One entity's full sync by the product's entity job, as the report reads it."""
    meta = run["materializations"][f"{tenant}/{entity}"]
    row = {
        "tenant": tenant,
        "entity": entity,
        "wall_s": m.wall_s,
        "rss_mb": m.peak_rss_mb,
        "requests": requests_of(stats, tenant, resource),
        "records": meta["loaded"],
        "api_requests": meta["api_requests"],
        "step_s": run["steps"].get(f"{tenant}__{entity}"),
        "analytics_s": run["steps"].get("analytics", 0.0),  # dbt's models over the entity's tables
        "run_status": run["status"],
    }
    row["records_per_s"] = row["records"] / row["wall_s"]
    row["load_records_per_s"] = row["records"] / (row["wall_s"] - row["analytics_s"])
    return row


# -- 5. the alternatives ----------------------------------------------------------------------------------------


def plain_spec(tenant: str, entity: str, resource: str) -> dict[str, Any]:
    domain = DOMAINS[tenant]
    return {
        "domain": domain,
        "api_key": KEYS[domain],
        "schema": tenant,
        "resource": resource,
        "table": entity,
        "details": entity == "jobs",
    }


def rest_spec(tenant: str, entity: str) -> dict[str, Any]:
    domain = DOMAINS[tenant]
    return {"domain": domain, "api_key": KEYS[domain], "schema": tenant, "entity": entity}


def run_plain(
    emu: EmulatorProcess, db: Path, entities: list[tuple[str, str, str]], incremental: bool, timeout: float
) -> tuple[Any, list[dict[str, Any]], RequestStats]:
    emu.stats(reset=True)
    cmd = [
        PYTHON,
        "-m",
        "bench.plain_loop",
        "--base-url",
        emu.base_url,
        "--db",
        str(db),
        "--entities",
        json.dumps([plain_spec(*e) for e in entities]),
    ] + (["--incremental"] if incremental else [])
    m = run_measured(cmd, alt_env(), timeout=timeout).check("plain loop")
    return m, [json.loads(line) for line in m.stdout.splitlines() if line.startswith("{")], emu.stats(reset=True)


def run_rest(
    emu: EmulatorProcess,
    db: Path,
    dlt_dir: Path,
    entities: list[tuple[str, str, str]],
    timeout: float,
    loader_file_format: str = "jsonl",
) -> tuple[Any, list[dict[str, Any]], RequestStats]:
    emu.stats(reset=True)
    cmd = [
        PYTHON,
        "-m",
        "bench.rest_api_source",
        "--base-url",
        emu.base_url,
        "--db",
        str(db),
        "--pipelines-dir",
        str(dlt_dir),
        "--loader-file-format",
        loader_file_format,
        "--entities",
        json.dumps([rest_spec(t, e) for t, e, _ in entities]),
    ]
    m = run_measured(cmd, alt_env(), timeout=timeout).check("rest_api source")
    return m, [json.loads(line) for line in m.stdout.splitlines() if line.startswith("{")], emu.stats(reset=True)


def phase_full_alternatives(emu: EmulatorProcess, work: Path, scale: Scale) -> dict[str, Any]:
    out: dict[str, Any] = {"plain": [], "rest_api": []}
    for tenant, entity, resource in ENTITIES:
        log(f"full sync (plain loop): {tenant}/{entity}")
        m, lines, stats = run_plain(emu, work / "plain.duckdb", [(tenant, entity, resource)], False, scale.timeout_s)
        out["plain"].append(
            {
                "tenant": tenant,
                "entity": entity,
                "wall_s": m.wall_s,
                "rss_mb": m.peak_rss_mb,
                "records": lines[0]["records"],
                "records_per_s": lines[0]["records"] / m.wall_s,
                "http_s": lines[0]["http_s"],
                "db_s": lines[0]["db_s"],
                "requests": requests_of(stats, tenant, resource),
            }
        )
    out["rest_api"] = rest_full_syncs(emu, work, "rest_api", ENTITIES, scale)
    # dlt's own default loader format (insert_values), on the smallest invoice table only: see rest_api_source.py
    tenant, entity, resource = "synchroteam_hec", "invoices", "invoice"
    log(f"full sync (rest_api, dlt's default loader format): {tenant}/{entity}")
    m, lines, stats = run_rest(
        emu,
        work / "rest_api_default_loader.duckdb",
        work / "rest_api_default_dlt",
        [(tenant, entity, resource)],
        scale.timeout_s,
        loader_file_format="default",
    )
    out["rest_api_default_loader"] = rest_row(tenant, entity, resource, m, lines, stats)
    return out


def rest_full_syncs(
    emu: EmulatorProcess, work: Path, name: str, entities: list[tuple[str, str, str]], scale: Scale
) -> list[dict[str, Any]]:
    """Each entity's full sync by the rest_api alternative, one process each, into `work/<name>.duckdb`."""
    rows = []
    for tenant, entity, resource in entities:
        log(f"full sync ({name}): {tenant}/{entity}")
        m, lines, stats = run_rest(
            emu, work / f"{name}.duckdb", work / f"{name}_dlt", [(tenant, entity, resource)], scale.timeout_s
        )
        rows.append(rest_row(tenant, entity, resource, m, lines, stats))
    return rows


def rest_row(
    tenant: str, entity: str, resource: str, m: Any, lines: list[dict[str, Any]], stats: Any
) -> dict[str, Any]:
    """One entity's full sync by the rest_api alternative, as the report reads it."""
    records = lines[0]["records"]
    return {
        "tenant": tenant,
        "entity": entity,
        "wall_s": m.wall_s,
        # the pipeline's own time in its process: `rest_api_source` and `pipeline.run`, after Python's imports
        "run_s": lines[0]["wall_s"],
        "rss_mb": m.peak_rss_mb,
        "records": records,
        "records_per_s": records / m.wall_s,
        "requests": requests_of(stats, tenant, resource),
    }


# -- 1b. Dagster's own cost of a run -----------------------------------------------------------------------------

FLOOR_ROUNDS = 5


def phase_dagster_floor(work: Path, scale: Scale) -> dict[str, Any]:
    """A one-asset job that does nothing (bench/dagster_floor.py), run as the product's jobs are: what every
    product job pays before and after its steps whatever its code does. Five runs; the report uses the median."""
    root = work / "floor"
    home = DagsterHome(root, "http://127.0.0.1:9", root / "unused.duckdb")  # the job reads neither
    walls, rss = [], []
    for k in range(FLOOR_ROUNDS):
        log(f"Dagster's floor: a one-asset job that does nothing, run {k + 1} of {FLOOR_ROUNDS}")
        m = home.job("floor", timeout=scale.timeout_s, module="bench.dagster_floor").check("the one-asset job")
        walls.append(m.wall_s)
        rss.append(m.peak_rss_mb)
    return {"walls_s": walls, "wall_s": statistics.median(walls), "rss_mb": max(rss)}


# -- 5b. list entities per record, product and rest_api side by side ---------------------------------------------


def per_record_counts(scale: Scale) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """Each list entity's two sizes, by tenant: the scale's and ten times it. Main invoices go from a tenth of the
    scale's to the scale's: ten times theirs is section 4's million, which would take an hour of pairs."""
    small: dict[str, dict[str, int]] = {"synchroteam": {}, "synchroteam_hec": {}}
    large: dict[str, dict[str, int]] = {"synchroteam": {}, "synchroteam_hec": {}}
    for tenant, counts in (("synchroteam", scale.main), ("synchroteam_hec", scale.hec)):
        for resource, count in counts.items():
            if resource == "job":
                continue
            if tenant == "synchroteam" and resource == "invoice":
                small[tenant][resource], large[tenant][resource] = count // 10, count
            else:
                small[tenant][resource], large[tenant][resource] = count, 10 * count
    return small, large


def measure_full_sync(
    who: str, emu: EmulatorProcess, root: Path, tenant: str, entity: str, resource: str, timeout: float
) -> dict[str, Any]:
    """One entity's full first sync into a fresh warehouse under `root`, by the product's entity job or by
    rest_api (the same `jsonl` loader), as the report reads it. `root` is removed once read: a 10x warehouse
    is a few hundred MB."""
    emu.stats(reset=True)
    try:
        if who == "product":
            home = DagsterHome(root, emu.base_url, root / "warehouse.duckdb")
            m = home.job(f"sync_{tenant}__{entity}", timeout=timeout).check(f"full sync of {tenant}/{entity}")
            return product_row(tenant, entity, resource, m, emu.stats(reset=True), home.runs(1)[0])
        root.mkdir(parents=True, exist_ok=True)
        m, lines, stats = run_rest(emu, root / "rest.duckdb", root / "dlt", [(tenant, entity, resource)], timeout)
        return rest_row(tenant, entity, resource, m, lines, stats)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def phase_per_record(work: Path, scale: Scale) -> dict[str, Any]:
    """Every list entity's full first sync at two sizes, by the product's entity job and by rest_api, side by
    side: each product run has its rest_api run next to it, in alternating order, `scale.pair_rounds` rounds,
    each run on a fresh warehouse. The report reads the records a second one more record costs, from the medians:
    what a process pays once cancels out, and the machine's drift falls on both ways alike."""
    small, large = per_record_counts(scale)
    entities = [e for e in ENTITIES if e[2] in small[e[0]]]
    out: dict[str, Any] = {"rounds": scale.pair_rounds, "small": small, "large": large, "entities": []}
    runs: dict[tuple[str, str], dict[str, dict[str, list[dict[str, Any]]]]] = {
        (t, e): {size: {"product": [], "rest_api": []} for size in ("small", "large")} for t, e, _ in entities
    }
    log(f"per record: emulators with {small} and {large}")
    with (
        EmulatorProcess(tenant_specs(small["synchroteam"], small["synchroteam_hec"])) as emu_small,
        EmulatorProcess(tenant_specs(large["synchroteam"], large["synchroteam_hec"])) as emu_large,
    ):
        out["emulator_build_s"] = {"small": emu_small.build_s, "large": emu_large.build_s}
        # one unrecorded run of each way first: a fresh copy's first import compiles its bytecode (15-20 s)
        for who in ("product", "rest_api"):
            measure_full_sync(who, emu_small, work / "per_record" / f"warm-up-{who}", *entities[0], scale.timeout_s)
        for r in range(scale.pair_rounds):
            for size, emu in (("small", emu_small), ("large", emu_large)):
                for i, (tenant, entity, resource) in enumerate(entities):
                    # reversed every other round and every other entity: neither way always goes first
                    for who in alternating(["product", "rest_api"], r + i):
                        root = work / "per_record" / f"{tenant}-{entity}-{size}-{r}-{who}"
                        row = measure_full_sync(who, emu, root, tenant, entity, resource, scale.timeout_s)
                        runs[(tenant, entity)][size][who].append(row)
                        wall = report.without_analytics(row)
                        log(f"per record, round {r + 1}, {tenant}/{entity} ({size}) {who}: {wall:.2f} s")
    for (tenant, entity), by_size in runs.items():
        out["entities"].append({"tenant": tenant, "entity": entity, **by_size})
    return out


# -- 2. incremental runs ----------------------------------------------------------------------------------------


def minimum_requests(
    emu: EmulatorProcess,
    tenant: str,
    entity: str,
    resource: str,
    meta: dict[str, Any],
    defaults: bool,
    changed: dict[str, Any] | None,
) -> dict[str, Any]:
    """Pages for the records in the run's change window (changedSince = cursor - look-back, inclusive, as the
    API counts them), plus with the entity defaults one walk per re-fetch filter (pages for what it matches),
    plus one details call per job changed since the previous run."""
    domain = DOMAINS[tenant]
    window_start = meta.get("window_start")
    since = datetime.fromtimestamp(window_start, TZ).strftime("%Y-%m-%d %H:%M:%S") if window_start else None
    in_window = emu.call("count", tenant=domain, resource=resource, filters={"changedSince": since} if since else {})
    walks = []
    if defaults:
        if entity in REFETCH_RECENT_DAYS:
            first_day = (datetime.now(TZ).date() - timedelta(days=REFETCH_RECENT_DAYS[entity])).isoformat()
            walks.append(emu.call("count", tenant=domain, resource=resource, filters={"dateFrom": first_day}))
        for status in REFETCH_STATUSES.get(entity, ()):
            walks.append(emu.call("count", tenant=domain, resource=resource, filters={"status": status}))
    changed_here = (changed or {}).get(domain, {}).get(resource, {"edited": 0, "added": 0})
    n_changed = changed_here["edited"] + changed_here["added"]
    details = n_changed if entity == "jobs" else 0
    list_pages = pages(in_window) + sum(pages(n) for n in walks)
    return {
        "window_since": since,
        "in_window": in_window,
        "refetch_matches": walks,
        "changed": n_changed,
        "list": list_pages,
        "details": details,
        "total": list_pages + details,
    }


def run_round(
    emu: EmulatorProcess,
    home: DagsterHome,
    work: Path,
    label: str,
    defaults: bool,
    changed: dict[str, Any] | None,
    scale: Scale,
    alternatives: bool = True,
) -> dict[str, Any]:
    log(f"incremental (product, sync_all): {label}")
    emu.stats(reset=True)
    m = home.job("sync_all", None if defaults else LOOKBACK_ZERO, timeout=scale.timeout_s).check(f"sync_all {label}")
    stats = emu.stats(reset=True)
    run = home.runs(1)[0]
    entities = []
    for tenant, entity, resource in ENTITIES:
        meta = run["materializations"].get(f"{tenant}/{entity}", {})
        req = requests_of(stats, tenant, resource)
        minimum = minimum_requests(emu, tenant, entity, resource, meta, defaults, changed)
        entities.append(
            {
                "tenant": tenant,
                "entity": entity,
                "requests": req,
                "minimum": minimum,
                "ratio": req["total"] / minimum["total"] if minimum["total"] else None,
                "step_s": run["steps"].get(f"{tenant}__{entity}"),
                "fetched": meta.get("fetched"),
                "loaded": meta.get("loaded"),
                "refetched": meta.get("refetched"),
                "details_fetched": meta.get("details_fetched"),
                "capped": meta.get("capped"),
                "api_requests": meta.get("api_requests"),
            }
        )
    total_req = sum(e["requests"]["total"] for e in entities)
    total_min = sum(e["minimum"]["total"] for e in entities)
    out: dict[str, Any] = {
        "label": label,
        "defaults": defaults,
        "changed": changed,
        "product": {
            "wall_s": m.wall_s,
            "rss_mb": m.peak_rss_mb,
            "steps_s": sum(run["steps"].values()),
            "asset_steps_s": sum(run["steps"].get(f"{t}__{e}", 0) for t, e, _ in ENTITIES),
            "requests": total_req,
            "minimum": total_min,
            "ratio": total_req / total_min,
            "entities": entities,
            "run_status": run["status"],
        },
    }
    if alternatives:
        log(f"incremental (plain loop): {label}")
        pm, plines, pstats = run_plain(emu, work / "plain.duckdb", ENTITIES, True, scale.timeout_s)
        log(f"incremental (rest_api): {label}")
        rm, rlines, rstats = run_rest(emu, work / "rest_api.duckdb", work / "rest_api_dlt", ENTITIES, scale.timeout_s)
        out["plain"] = alternative_round(pm, plines, pstats)
        out["rest_api"] = alternative_round(rm, rlines, rstats)
    return out


def alternative_round(m: Any, lines: list[dict[str, Any]], stats: Any) -> dict[str, Any]:
    """One incremental run of an alternative over every entity, as the report reads it."""
    return {
        "wall_s": m.wall_s,
        "rss_mb": m.peak_rss_mb,
        "requests": stats.raw["n"],
        "records": sum(line["records"] for line in lines),
        "per_entity": [{**requests_of(stats, t, r), "entity": f"{t}/{e}"} for t, e, r in ENTITIES],
    }


CATCH_UP_RUNS_MAX = 10  # sites, 300 changes at 100 a run, needs 2 after the capped round


def phase_incremental(emu: EmulatorProcess, home: DagsterHome, work: Path, scale: Scale) -> dict[str, Any]:
    now = datetime.now(TZ).replace(tzinfo=None, second=0, microsecond=0)
    t0 = now - timedelta(hours=6)
    resources = {MAIN_DOMAIN: [r for _, _, r in ENTITIES[:6]], HEC_DOMAIN: [r for _, _, r in ENTITIES[6:]]}

    clock = t0

    def tick(at: datetime) -> None:
        nonlocal clock
        clock = at
        emu.call("set_clock", local=clock.isoformat(sep=" "))

    def mutate(k: int) -> dict[str, Any]:
        start = t0 + timedelta(minutes=ROUND_MINUTES * k)
        log(f"changing {CHANGED_FRACTION:.0%} of every entity over {start:%H:%M}..+{ROUND_MINUTES} min (tenant time)")
        changed = emu.call(
            "mutate",
            start=start.isoformat(sep=" "),
            minutes=ROUND_MINUTES,
            fraction=CHANGED_FRACTION,
            add_share=ADDED_SHARE,
            seed=1000 + k,
            resources=resources,
        )
        tick(datetime.fromisoformat(changed["end"]) + SYNC_AFTER)
        return changed["changed"]

    def later() -> None:
        tick(clock + SYNC_AFTER)

    rounds = []
    rounds.append(
        run_round(
            emu, home, work, "warm-up: first incremental after the full load (1% changed)", True, mutate(0), scale
        )
    )
    rounds.append(run_round(emu, home, work, "1% changed, look-back 0", False, mutate(1), scale))
    later()
    rounds.append(run_round(emu, home, work, "no change, look-back 0", False, None, scale))
    rounds.append(run_round(emu, home, work, "1% changed, entity defaults", True, mutate(2), scale))
    # The caps (customers 200, sites 100 changes a run) hold back part of a 1% round: the scheduled runs after it
    # load the rest. They are run here, unmeasured, so that the no-change rounds below find nothing left to load.
    catch_up: list[dict[str, Any]] = []
    capped = [f"{e['tenant']}/{e['entity']}" for e in rounds[-1]["product"]["entities"] if e["capped"]]
    while capped and len(catch_up) < CATCH_UP_RUNS_MAX:
        later()
        log(f"catch-up (product, sync_all, entity defaults): {', '.join(capped)} held back by their caps")
        m = home.job("sync_all", timeout=scale.timeout_s).check("sync_all catch-up")
        run = home.runs(1)[0]
        loaded = {k: v.get("loaded") for k, v in run["materializations"].items() if v.get("loaded")}
        catch_up.append({"wall_s": m.wall_s, "capped_before": capped, "loaded": loaded})
        capped = [k for k, v in run["materializations"].items() if v.get("capped")]
    later()
    rounds.append(run_round(emu, home, work, "no change, entity defaults", True, None, scale))
    # The same no-change run again, product only: a second sample of the headline figure.
    later()
    rounds.append(
        run_round(emu, home, work, "no change, entity defaults (again)", True, None, scale, alternatives=False)
    )
    # The scheduled run of one entity, its job with its defaults, when nothing changed: every entity once.
    singles = []
    for tenant, entity, _ in ENTITIES:
        later()
        log(f"no-change scheduled run of {tenant}/{entity}")
        emu.stats(reset=True)
        m = home.job(f"sync_{tenant}__{entity}", timeout=scale.timeout_s).check(f"no-change {tenant}/{entity}")
        stats = emu.stats(reset=True)
        run = home.runs(1)[0]
        singles.append(
            {
                "tenant": tenant,
                "entity": entity,
                "wall_s": m.wall_s,
                "rss_mb": m.peak_rss_mb,
                "requests": stats.count(),
                "steps_s": sum(run["steps"].values()),
                "loaded": run["materializations"].get(f"{tenant}/{entity}", {}).get("loaded"),
            }
        )
    return {"t0": t0.isoformat(sep=" "), "rounds": rounds, "catch_up": catch_up, "single_entity_no_change": singles}


# -- 3. rate limit ----------------------------------------------------------------------------------------------


def phase_rate(emu: EmulatorProcess, work: Path, scale: Scale) -> list[dict[str, Any]]:
    limit = scale.rate_limit
    variants = [
        (
            "known limit: SYNCHROTEAM_REQUESTS_PER_MINUTE=" + str(limit),
            {"SYNCHROTEAM_REQUESTS_PER_MINUTE": str(limit)},
            True,
        ),
        ("unknown limit: 429 with Retry-After", {}, True),
    ]
    if scale.no_retry_after:
        variants.append(("unknown limit: 429 without Retry-After", {}, False))
    out = []
    for i, (label, env, retry_after) in enumerate(variants):
        root = work / f"rate{i}"
        home = DagsterHome(root, emu.base_url, root / "warehouse.duckdb", env)
        emu.call("set_rate_limit", per_minute=limit, retry_after=retry_after)
        emu.stats(reset=True)
        log(f"rate limit {limit}/min, full sync of customers: {label}")
        m = home.job("sync_synchroteam__customers", timeout=scale.timeout_s)
        stats = emu.stats(reset=True)
        emu.call("set_rate_limit", per_minute=None)
        run = home.runs(1)[0]
        ok, n429 = stats.count(status=200), stats.count(status=429)
        span = stats.ok_span_s
        per_min = (ok - 1) / span * 60 if span > 0 else None
        out.append(
            {
                "label": label,
                "limit_per_min": limit,
                "rc": m.rc,
                "run_status": run["status"],
                "not_ok_positions": stats.raw["not_ok_positions"],
                "requests": stats.raw["n"],
                "dagster_retries": run["retries"],
                "wall_s": m.wall_s,
                "ok": ok,
                "429": n429,
                "ok_span_s": span,
                "used_per_min": per_min,
                "share": per_min / limit if per_min else None,
                "records": run["materializations"].get("synchroteam/customers", {}).get("loaded"),
            }
        )
    return out


def phase_rate_window(emu: EmulatorProcess, work: Path, scale: Scale) -> dict[str, Any]:
    """A full sync of customers under a fixed window announced in X-RateLimit-* (the real API's habit, unknown
    size and length): 429s without Retry-After whose message speaks of a quota. No setting: the client paces
    from the headers alone."""
    limit, seconds = scale.window
    root = work / "rate_window"
    home = DagsterHome(root, emu.base_url, root / "warehouse.duckdb")
    emu.call(
        "set_rate_limit",
        per_minute=limit,
        retry_after=False,
        window_seconds=seconds,
        fixed=True,
        headers=True,
        message=f"API calls quota exceeded! maximum admitted {limit} per {seconds:.0f}s.",
    )
    emu.stats(reset=True)
    log(f"announced window of {limit} requests per {seconds:.0f} s, full sync of customers")
    m = home.job("sync_synchroteam__customers", timeout=scale.timeout_s)
    stats = emu.stats(reset=True, times=True)
    emu.call("set_rate_limit", per_minute=None)
    run = home.runs(1)[0]
    metadata = run["materializations"].get("synchroteam/customers", {})
    ok = stats.count(status=200)
    per_window = answered_per_window(stats.raw["ok_times"], seconds)
    # the last window holds what was left: the share is of the windows the run used up and waited out
    full = per_window[:-1]
    least = (math.ceil(ok / limit) - 1) * seconds  # the shortest time the window allows for these requests
    return {
        "limit": limit,
        "window_s": seconds,
        "rc": m.rc,
        "run_status": run["status"],
        "requests": stats.raw["n"],
        "ok": ok,
        "429": stats.count(status=429),
        "per_window": per_window,
        "windows": len(per_window),
        "share": sum(full) / (len(full) * limit) if full else None,
        "least_s": least,
        "wall_s": m.wall_s,
        "waits": metadata.get("rate_limit_waits"),
        "wait_s": metadata.get("rate_limit_wait_seconds"),
        "records": metadata.get("loaded"),
        "dagster_retries": run["retries"],
    }


def answered_per_window(times: list[float], seconds: float) -> list[int]:
    """Answered requests per fixed window, each opening at the first request after the last one ended."""
    counts: list[int] = []
    start = None
    for moment in times:
        if start is None or moment >= start + seconds:
            start = moment
            counts.append(0)
        counts[-1] += 1
    return counts


# -- 4. memory at 1x and 10x ------------------------------------------------------------------------------------


# The memory runs are repeated with DuckDB's own defaults (80% of RAM, a thread per core), set through the
# product's variables: what the product's bounds (settings.DEFAULT_DUCKDB_*) save in memory and cost in time.
_RAM_MB = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
DUCKDB_WHAT_IF = {"memory_limit": f"{_RAM_MB * 8 // 10}MB", "threads": os.cpu_count() or 1}
WHAT_IF_ENV = {
    "SYNC_DUCKDB_MEMORY_LIMIT": DUCKDB_WHAT_IF["memory_limit"],
    "SYNC_DUCKDB_THREADS": str(DUCKDB_WHAT_IF["threads"]),
}


def phase_memory_1x(emu: EmulatorProcess, home: DagsterHome, work: Path, scale: Scale) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not home.runs(1):
        # measured again alone (`--phases memory_1x`): nothing synced yet, so the first sync is this phase's own
        log("memory: full sync of invoices at 1x (the phase measured alone)")
        m = home.job("sync_synchroteam__invoices", timeout=scale.timeout_s).check("invoices full sync at 1x")
        records = home.runs(1)[0]["materializations"]["synchroteam/invoices"]["loaded"]
        out["full"] = {"wall_s": m.wall_s, "rss_mb": m.peak_rss_mb, "records": records}
        out["full"]["records_per_s"] = records / m.wall_s
    log("memory: a no-change run of invoices alone at 1x")
    m = home.job("sync_synchroteam__invoices", timeout=scale.timeout_s).check("invoices no-change at 1x")
    out["no_change"] = {"wall_s": m.wall_s, "rss_mb": m.peak_rss_mb}
    root = work / "what_if_1x"
    what_if = DagsterHome(root, emu.base_url, root / "warehouse.duckdb", WHAT_IF_ENV)
    log(f"memory: full sync of invoices at 1x with DuckDB {DUCKDB_WHAT_IF}")
    m = what_if.job("sync_synchroteam__invoices", timeout=scale.timeout_s).check("invoices what-if at 1x")
    records = what_if.runs(1)[0]["materializations"]["synchroteam/invoices"]["loaded"]
    out["what_if_full"] = {
        "wall_s": m.wall_s,
        "rss_mb": m.peak_rss_mb,
        "records": records,
        "records_per_s": records / m.wall_s,
    }
    emu.stats(reset=True)
    return out


def phase_memory_10x(work: Path, scale: Scale) -> dict[str, Any]:
    log(f"memory: emulator with {scale.tenx_main} (10x invoices)")
    with EmulatorProcess(tenant_specs(scale.tenx_main, None)) as emu:
        root = work / "tenx"
        home = DagsterHome(root, emu.base_url, root / "warehouse.duckdb")
        log("memory: full sync of invoices at 10x")
        full = home.job("sync_synchroteam__invoices", timeout=scale.timeout_s).check("invoices full sync at 10x")
        full_stats = emu.stats(reset=True)
        log("memory: no-change run of invoices at 10x")
        again = home.job("sync_synchroteam__invoices", timeout=scale.timeout_s).check("invoices no-change at 10x")
        emu.stats(reset=True)
        runs = home.runs(2)
        records = runs[0]["materializations"]["synchroteam/invoices"]["loaded"]
        out = {
            "emulator_build_s": emu.build_s,
            "records": records,
            "full": {
                "wall_s": full.wall_s,
                "rss_mb": full.peak_rss_mb,
                "records_per_s": records / full.wall_s,
                "requests": full_stats.raw["n"],
                "step_s": runs[0]["steps"].get("synchroteam__invoices"),
            },
            "no_change": {"wall_s": again.wall_s, "rss_mb": again.peak_rss_mb},
        }
        root = work / "what_if_10x"
        what_if = DagsterHome(root, emu.base_url, root / "warehouse.duckdb", WHAT_IF_ENV)
        log(f"memory: full sync of invoices at 10x with DuckDB {DUCKDB_WHAT_IF}")
        m = what_if.job("sync_synchroteam__invoices", timeout=scale.timeout_s).check("invoices what-if at 10x")
        emu.stats(reset=True)
        out["what_if_full"] = {"wall_s": m.wall_s, "rss_mb": m.peak_rss_mb, "records_per_s": records / m.wall_s}
        return out


# -- main -------------------------------------------------------------------------------------------------------


def product_version() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    dirty = git(
        "status", "--porcelain", "--", "sync_pipelines", "synchroteam_emulator", "pyproject.toml", "dagster.yaml"
    )
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_product_files": len(dirty.splitlines()),
        "fingerprint": common.code_fingerprint(REPO),
    }


def machine() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    versions = subprocess.run(
        [
            PYTHON,
            "-c",
            "import dagster, dlt, duckdb, httpx; print(dagster.__version__, dlt.__version__, "
            "duckdb.__version__, httpx.__version__)",
        ],
        capture_output=True,
        text=True,
    ).stdout.split()
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": round(mem_gib, 1) if mem_gib else None,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "dagster": versions[0] if versions else "?",
        "dlt": versions[1] if len(versions) > 1 else "?",
        "duckdb": versions[2] if len(versions) > 2 else "?",
        "httpx": versions[3] if len(versions) > 3 else "?",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1/20 of the scale, a smoke run of every phase")
    parser.add_argument("--workdir", help="keep DuckDB files and Dagster instances here (default: a temp dir, removed)")
    parser.add_argument("--no-markdown", action="store_true", help="do not rewrite BENCHMARKS.md (1x only)")
    parser.add_argument(
        "--phases",
        help="comma-separated phases to measure again (of: "
        + ", ".join(PHASES)
        + "), kept beside the last results of the others, each with its own date and commit",
    )
    args = parser.parse_args(argv)
    scale = SCALES["quick" if args.quick else "1x"]
    if args.phases:
        return remeasure(scale, [p.strip() for p in args.phases.split(",")], args)
    started = time.monotonic()
    work, version = prepare(args)
    results: dict[str, Any] = {
        "date": date.today().isoformat(),
        "started_at": datetime.now().isoformat(timespec="seconds"),
        "command": "make bench" + (" ARGS=--quick" if args.quick else ""),
        "scale": asdict(scale),
        "machine": machine(),
        "product": version,
    }
    log(f"scale {scale.name}: main {scale.main}, HEC {scale.hec}; work dir {work}")
    meter = common.CpuMeter()
    results["load"] = {}

    def phase(key: str, fn, *a):
        before, pauses = meter.mark(), len(common.PAUSES)
        results[key] = fn(*a)
        results["load"][key] = common.other_load(before, meter.mark())
        results.setdefault("pauses", {})[key] = common.PAUSES[pauses:]
        return results[key]

    try:
        with EmulatorProcess(tenant_specs(scale.main, scale.hec)) as emu:
            results["emulator_build_s"] = emu.build_s
            log(f"emulator up in {emu.start_s:.1f}s at {emu.base_url}")
            home = DagsterHome(work / "product", emu.base_url, work / "product" / "warehouse.duckdb")
            for key, (shared, measure) in PHASES.items():
                if shared:
                    phase(key, measure, emu, home, work, scale)
        for key, (shared, measure) in PHASES.items():
            if not shared:
                phase(key, measure, None, None, work, scale)
        results["load"]["all"] = common.other_load((0.0, 0.0, 0.0), meter.mark())
    finally:
        results["bench_wall_s"] = time.monotonic() - started
        results["product"]["changed_during_run"] = common.code_fingerprint(REPO) != version["fingerprint"]
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{scale.name}.json").write_text(json.dumps(results, indent=1, default=str))
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    publish(results, scale, args)
    log(f"done in {results['bench_wall_s'] / 60:.1f} min; results in {RESULTS / (scale.name + '.json')}")
    return 0


def prepare(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The work folder, and the product's version as a copy of its code that every measured process imports,
    whatever is edited meanwhile."""
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="sync-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    version = product_version()
    common.snapshot_code(work / "code")
    check = subprocess.run(
        [PYTHON, "-c", "import sync_pipelines, bench; print(sync_pipelines.__file__)"],
        cwd=common.CODE_DIR,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not check.startswith(str(common.CODE_DIR)):
        raise RuntimeError(f"subprocesses would import the live product ({check}), not the snapshot")
    return work, version


def publish(results: dict[str, Any], scale: Scale, args: argparse.Namespace) -> None:
    """The tables, in bench/results and (at 1x) in BENCHMARKS.md's generated block."""
    tables = report.render(results)
    (RESULTS / f"{scale.name}.md").write_text(tables)
    if scale.name == "1x" and not args.no_markdown:
        report.update_benchmarks_md(REPO / "BENCHMARKS.md", tables)
        log("BENCHMARKS.md updated")
    print(tables)


# phase -> (runs against the shared emulator, function); the order of a full run
PHASES: dict[str, tuple[bool, Any]] = {
    "full": (True, lambda emu, home, work, scale: phase_full_product(emu, home, scale)),
    "dagster_floor": (True, lambda emu, home, work, scale: phase_dagster_floor(work, scale)),
    "alternatives_full": (True, lambda emu, home, work, scale: phase_full_alternatives(emu, work, scale)),
    "incremental": (True, lambda emu, home, work, scale: phase_incremental(emu, home, work, scale)),
    "memory_1x": (True, lambda emu, home, work, scale: phase_memory_1x(emu, home, work, scale)),
    "rate": (True, lambda emu, home, work, scale: phase_rate(emu, work, scale)),
    "rate_window": (True, lambda emu, home, work, scale: phase_rate_window(emu, work, scale)),
    "memory_10x": (False, lambda emu, home, work, scale: phase_memory_10x(work, scale)),
    "per_record": (False, lambda emu, home, work, scale: phase_per_record(work, scale)),
}


def remeasure(scale: Scale, phases: list[str], args: argparse.Namespace) -> int:
    """Measure `phases` again into the last results of this scale; the report says when and on what."""
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        raise SystemExit(f"unknown phases {unknown}: choose among {', '.join(PHASES)}")
    path = RESULTS / f"{scale.name}.json"
    results = (
        json.loads(path.read_text())
        if path.exists()
        else {  # nothing measured yet: a header of its own
            "date": date.today().isoformat(),
            "started_at": datetime.now().isoformat(timespec="seconds"),
            "command": "(sections below only)",
            "scale": asdict(scale),
            "machine": machine(),
            "product": product_version(),
            "bench_wall_s": 0.0,
        }
    )
    started = time.monotonic()
    work, version = prepare(args)
    stamp = {
        "date": date.today().isoformat(),
        "started_at": datetime.now().isoformat(timespec="seconds"),
        "command": f'make bench ARGS="--phases {",".join(phases)}{" --quick" if args.quick else ""}"',
        "product": version,
    }
    try:
        with EmulatorProcess(tenant_specs(scale.main, scale.hec)) as emu:
            home = DagsterHome(work / "product", emu.base_url, work / "product" / "warehouse.duckdb")
            meter = common.CpuMeter()
            for phase in phases:
                log(f"phase {phase}, measured again")
                before, pauses = meter.mark(), len(common.PAUSES)
                results[phase] = PHASES[phase][1](emu if PHASES[phase][0] else None, home, work, scale)
                # the other processes' load and the machine's pauses during this phase, in place of the first run's
                results.setdefault("load", {})[phase] = common.other_load(before, meter.mark())
                results.setdefault("pauses", {})[phase] = common.PAUSES[pauses:]
                results.setdefault("remeasured", {})[phase] = {**stamp, "wall_s": time.monotonic() - started}
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    path.write_text(json.dumps(results, indent=1, default=str))
    publish(results, scale, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

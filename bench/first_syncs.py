"""The phases that time first syncs: every entity by the product (section 1), Dagster's floor, the same syncs by the
two alternatives (section 5), the list entities at two sizes side by side with rest_api (5b), and the memory of
the largest table at 1x and 10x (section 4)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
from pathlib import Path
from typing import Any

from bench import report
from bench.common import (
    ENTITIES,
    LISTED_WITHOUT_CHILDREN,
    MADE_FROM_JOBS,
    MAIN,
    MEMORY_TABLE,
    PER_RECORD_LEAST,
    PYTHON,
    DagsterHome,
    EmulatorProcess,
    Measured,
    RequestStats,
    Scale,
    alternating,
    api_key,
    clean_env,
    domain,
    job_name,
    log,
    records_1x,
    requests_of,
    run_measured,
    tenant_specs,
)
from sync_pipelines.catalogue import ENTITIES as CATALOGUE
from sync_pipelines.catalogue import TENANTS

Table = tuple[str, str, str]  # (tenant, entity, API resource), as common.ENTITIES lists them

# -- 1. the product's full first sync ------------------------------------------------------------------------------


def phase_full_product(emu: EmulatorProcess, home: DagsterHome, scale: Scale) -> list[dict[str, Any]]:
    measured = []
    for tenant, entity, resource in ENTITIES:
        emu.stats(reset=True)
        log(f"full sync (product): {tenant}/{entity}")
        m = home.job(job_name(tenant, entity), timeout=scale.timeout_s).check(f"full sync of {tenant}/{entity}")
        measured.append((tenant, entity, resource, m, emu.stats(reset=True)))
    return [product_row(*one, run) for one, run in zip(measured, home.runs(len(measured)))]


def product_row(
    tenant: str, entity: str, resource: str, m: Measured, stats: RequestStats, run: dict[str, Any]
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
        "step_s": run["steps"].get(tenant),  # the tenant's step, syncing this entity alone
        "analytics_s": run["steps"].get("analytics", 0.0),  # dbt's models over the entity's tables
        "run_status": run["status"],
    }
    row["records_per_s"] = row["records"] / row["wall_s"]
    row["load_records_per_s"] = row["records"] / (row["wall_s"] - row["analytics_s"])
    return row


# -- 1b. Dagster's own cost of a run -------------------------------------------------------------------------------

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


# -- 5. the alternatives -------------------------------------------------------------------------------------------


def table_spec(tenant: str, entity: str, resource: str) -> dict[str, Any]:
    """One table as the alternatives read it: the tenant's credentials, the API resource, where it lands, whether
    its records need their `details` and whether they carry `dateModified` (a lookup list does not)."""
    return {
        "domain": domain(tenant),
        "api_key": api_key(tenant),
        "schema": tenant,
        "table": entity,
        "resource": resource,
        "details": resource in LISTED_WITHOUT_CHILDREN,
        "dated": CATALOGUE[entity].dated,
    }


def run_alternative(
    module: str, emu: EmulatorProcess, args: list[str], tables: list[Table], timeout: float
) -> tuple[Measured, list[dict[str, Any]], RequestStats]:
    """`python -m <module>` over `tables`, one after the other in one process: the process measured, the JSON line
    it prints per table, and the requests the emulator saw."""
    emu.stats(reset=True)
    specs = json.dumps([table_spec(*table) for table in tables])
    cmd = [PYTHON, "-m", module, "--base-url", emu.base_url, *args, "--entities", specs]
    m = run_measured(cmd, clean_env(), timeout=timeout).check(module)
    return m, [json.loads(line) for line in m.stdout.splitlines() if line.startswith("{")], emu.stats(reset=True)


def run_plain(
    emu: EmulatorProcess, db: Path, tables: list[Table], incremental: bool, timeout: float
) -> tuple[Measured, list[dict[str, Any]], RequestStats]:
    args = ["--db", str(db), *(["--incremental"] if incremental else [])]
    return run_alternative("bench.plain_loop", emu, args, tables, timeout)


def run_dlt(
    way: str, emu: EmulatorProcess, db: Path, dlt_dir: Path, tables: list[Table], timeout: float, fmt: str | None
) -> tuple[Measured, list[dict[str, Any]], RequestStats]:
    """One of bench/dlt_alternatives.py's ways over `tables`, its loader file format unless `fmt` is given."""
    args = [way, "--db", str(db), "--pipelines-dir", str(dlt_dir), *(["--loader-file-format", fmt] if fmt else [])]
    return run_alternative("bench.dlt_alternatives", emu, args, tables, timeout)


def run_rest(
    emu: EmulatorProcess,
    db: Path,
    dlt_dir: Path,
    tables: list[Table],
    timeout: float,
    loader_file_format: str = "jsonl",
) -> tuple[Measured, list[dict[str, Any]], RequestStats]:
    return run_dlt("rest_api", emu, db, dlt_dir, tables, timeout, loader_file_format)


def run_straightforward(
    emu: EmulatorProcess, work: Path, tables: list[Table], timeout: float, fmt: str | None = None
) -> tuple[Measured, list[dict[str, Any]], RequestStats]:
    """The straightforward dlt pipeline over `tables` in one `pipeline.run`, its warehouse and state in `work`."""
    return run_dlt(
        "straightforward", emu, work / "straightforward.duckdb", work / "straightforward_dlt", tables, timeout, fmt
    )


def phase_full_alternatives(emu: EmulatorProcess, work: Path, scale: Scale) -> dict[str, Any]:
    out: dict[str, Any] = {"plain": [], "rest_api": []}
    for tenant, entity, resource in ENTITIES:
        log(f"full sync (plain loop): {tenant}/{entity}")
        m, lines, stats = run_plain(emu, work / "plain.duckdb", [(tenant, entity, resource)], False, scale.timeout_s)
        out["plain"].append(plain_row(tenant, entity, resource, m, lines, stats))
    out["rest_api"] = rest_full_syncs(emu, work, "rest_api", ENTITIES, scale)
    # dlt's own default loader format (insert_values) needs gigabytes (see dlt_alternatives.py): measured once, on
    # the smallest table of the entity section 4 grows tenfold
    table = min((t for t in ENTITIES if t[1] == MEMORY_TABLE), key=lambda t: scale.counts[t[0]][t[1]])
    log(f"full sync (rest_api, dlt's default loader format): {table[0]}/{table[1]}")
    db, dlt_dir = work / "rest_api_default_loader.duckdb", work / "rest_api_default_dlt"
    m, lines, stats = run_rest(emu, db, dlt_dir, [table], scale.timeout_s, loader_file_format="default")
    out["rest_api_default_loader"] = rest_row(*table, m, lines, stats)
    return out


def plain_row(
    tenant: str, entity: str, resource: str, m: Measured, lines: list[dict[str, Any]], stats: RequestStats
) -> dict[str, Any]:
    """One entity's full sync by the plain loop, as the report reads it."""
    return {
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


def rest_full_syncs(
    emu: EmulatorProcess, work: Path, name: str, tables: list[Table], scale: Scale
) -> list[dict[str, Any]]:
    """Each entity's full sync by the rest_api alternative, one process each, into `work/<name>.duckdb`."""
    rows = []
    for table in tables:
        log(f"full sync ({name}): {table[0]}/{table[1]}")
        m, lines, stats = run_rest(emu, work / f"{name}.duckdb", work / f"{name}_dlt", [table], scale.timeout_s)
        rows.append(rest_row(*table, m, lines, stats))
    return rows


def rest_row(
    tenant: str, entity: str, resource: str, m: Measured, lines: list[dict[str, Any]], stats: RequestStats
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


# -- 5b. list entities per record, product and rest_api side by side ----------------------------------------------


def read_per_record(tenant: str, entity: str) -> bool:
    """Whether section 5b reads a table per record: a list entity (no `details` calls) whose records the emulator
    makes on their own (not activities, made from the jobs), of PER_RECORD_LEAST records at least at 1x."""
    resource = CATALOGUE[entity].resource
    return (
        resource not in LISTED_WITHOUT_CHILDREN
        and resource not in MADE_FROM_JOBS
        and records_1x(TENANTS[tenant], entity) >= PER_RECORD_LEAST
    )


def per_record_counts(scale: Scale) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """Each table section 5b reads per record (`read_per_record`), its two sizes, by tenant: the scale's and ten
    times it. A table that section 4 already measures at ten times the scale goes from a tenth of the scale's to
    the scale's: ten times it would take an hour of pairs."""
    small: dict[str, dict[str, int]] = {}
    large: dict[str, dict[str, int]] = {}
    for tenant, entity, _ in ENTITIES:
        if not read_per_record(tenant, entity):
            continue
        count = scale.counts[tenant][entity]
        sizes = (count // 10, count) if entity in scale.tenx.get(tenant, {}) else (count, 10 * count)
        small.setdefault(tenant, {})[entity], large.setdefault(tenant, {})[entity] = sizes
    return small, large


def measure_full_sync(who: str, emu: EmulatorProcess, root: Path, table: Table, timeout: float) -> dict[str, Any]:
    """One entity's full first sync into a fresh warehouse under `root`, by the product's entity job or by
    rest_api (the same `jsonl` loader), as the report reads it. `root` is removed once read: a 10x warehouse
    is a few hundred MB."""
    tenant, entity, _ = table
    emu.stats(reset=True)
    try:
        if who == "product":
            home = DagsterHome(root, emu.base_url, root / "warehouse.duckdb")
            m = home.job(job_name(tenant, entity), timeout=timeout).check(f"full sync of {tenant}/{entity}")
            return product_row(*table, m, emu.stats(reset=True), home.runs(1)[0])
        root.mkdir(parents=True, exist_ok=True)
        m, lines, stats = run_rest(emu, root / "rest.duckdb", root / "dlt", [table], timeout)
        return rest_row(*table, m, lines, stats)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def phase_per_record(work: Path, scale: Scale) -> dict[str, Any]:
    """The list entities' full first syncs at two sizes (`per_record_counts`), by the product's entity job and by
    rest_api, side by side: each product run has its rest_api run next to it, in alternating order,
    `scale.pair_rounds` rounds, each run on a fresh warehouse. The report reads the records a second one more
    record costs, from the medians: what a process pays once cancels out, and the machine's drift falls on both
    ways alike."""
    small, large = per_record_counts(scale)
    tables = [t for t in ENTITIES if t[1] in small.get(t[0], {})]
    out: dict[str, Any] = {"rounds": scale.pair_rounds, "small": small, "large": large, "entities": []}
    log(f"per record: emulators with {small} and {large}")
    with EmulatorProcess(tenant_specs(small)) as emu_small, EmulatorProcess(tenant_specs(large)) as emu_large:
        out["emulator_build_s"] = {"small": emu_small.build_s, "large": emu_large.build_s}
        # one unrecorded run of each way first: a fresh copy's first import compiles its bytecode (15-20 s)
        for who in ("product", "rest_api"):
            measure_full_sync(who, emu_small, work / "per_record" / f"warm-up-{who}", tables[0], scale.timeout_s)
        runs: dict[Table, dict[str, dict[str, list[dict[str, Any]]]]] = {
            t: {size: {"product": [], "rest_api": []} for size in ("small", "large")} for t in tables
        }
        for r in range(scale.pair_rounds):
            for size, emu in (("small", emu_small), ("large", emu_large)):
                for i, (tenant, entity, resource) in enumerate(tables):
                    # reversed every other round and every other entity: neither way always goes first
                    for who in alternating(["product", "rest_api"], r + i):
                        root = work / "per_record" / f"{tenant}-{entity}-{size}-{r}-{who}"
                        row = measure_full_sync(who, emu, root, (tenant, entity, resource), scale.timeout_s)
                        runs[(tenant, entity, resource)][size][who].append(row)
                        wall = report.without_analytics(row)
                        log(f"per record, round {r + 1}, {tenant}/{entity} ({size}) {who}: {wall:.2f} s")
    out["entities"] = [{"tenant": t, "entity": e, **by_size} for (t, e, _), by_size in runs.items()]
    return out


# -- 4. memory at 1x and 10x ---------------------------------------------------------------------------------------

# The memory runs are repeated with DuckDB's own defaults (80% of RAM, a thread per core), set through the
# product's variables: what the product's bounds (settings.DEFAULT_DUCKDB_*) save in memory and cost in time.
_RAM_MB = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
DUCKDB_WHAT_IF = {"memory_limit": f"{_RAM_MB * 8 // 10}MB", "threads": str(os.cpu_count() or 1)}
WHAT_IF_ENV = {
    "SYNC_DUCKDB_MEMORY_LIMIT": DUCKDB_WHAT_IF["memory_limit"],
    "SYNC_DUCKDB_THREADS": DUCKDB_WHAT_IF["threads"],
}
MEMORY_JOB = job_name(MAIN.name, MEMORY_TABLE)
MEMORY_ASSET = f"{MAIN.name}/{MEMORY_TABLE}"


def memory_full_sync(home: DagsterHome, what: str, timeout: float) -> dict[str, Any]:
    """A first sync of the memory table: wall, peak RSS, records, records/s."""
    m = home.job(MEMORY_JOB, timeout=timeout).check(what)
    run = home.runs(1)[0]
    records = run["materializations"][MEMORY_ASSET]["loaded"]
    return {
        "wall_s": m.wall_s,
        "rss_mb": m.peak_rss_mb,
        "records": records,
        "records_per_s": records / m.wall_s,
        "step_s": run["steps"].get(MAIN.name),
    }


def phase_memory_1x(emu: EmulatorProcess, home: DagsterHome, work: Path, scale: Scale) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not home.runs(1):
        # measured again alone (`--phases memory_1x`): nothing synced yet, so the first sync is this phase's own
        log(f"memory: full sync of {MEMORY_ASSET} at 1x (the phase measured alone)")
        out["full"] = memory_full_sync(home, "the full sync at 1x", scale.timeout_s)
    log(f"memory: a no-change run of {MEMORY_ASSET} alone at 1x")
    m = home.job(MEMORY_JOB, timeout=scale.timeout_s).check("the no-change run at 1x")
    out["no_change"] = {"wall_s": m.wall_s, "rss_mb": m.peak_rss_mb}
    root = work / "what_if_1x"
    what_if = DagsterHome(root, emu.base_url, root / "warehouse.duckdb", WHAT_IF_ENV)
    log(f"memory: full sync of {MEMORY_ASSET} at 1x with DuckDB {DUCKDB_WHAT_IF}")
    out["what_if_full"] = memory_full_sync(what_if, "the what-if at 1x", scale.timeout_s)
    emu.stats(reset=True)
    return out


def phase_memory_10x(work: Path, scale: Scale) -> dict[str, Any]:
    log(f"memory: emulator with {scale.tenx} (10x)")
    with EmulatorProcess(tenant_specs(scale.tenx)) as emu:
        root = work / "tenx"
        home = DagsterHome(root, emu.base_url, root / "warehouse.duckdb")
        log(f"memory: full sync of {MEMORY_ASSET} at 10x")
        full = memory_full_sync(home, "the full sync at 10x", scale.timeout_s)
        full["requests"] = emu.stats(reset=True).raw["n"]
        log(f"memory: no-change run of {MEMORY_ASSET} at 10x")
        again = home.job(MEMORY_JOB, timeout=scale.timeout_s).check("the no-change run at 10x")
        emu.stats(reset=True)
        root = work / "what_if_10x"
        what_if = DagsterHome(root, emu.base_url, root / "warehouse.duckdb", WHAT_IF_ENV)
        log(f"memory: full sync of {MEMORY_ASSET} at 10x with DuckDB {DUCKDB_WHAT_IF}")
        what_if_full = memory_full_sync(what_if, "the what-if at 10x", scale.timeout_s)
        emu.stats(reset=True)
        return {
            "emulator_build_s": emu.build_s,
            "records": full["records"],
            "full": full,
            "no_change": {"wall_s": again.wall_s, "rss_mb": again.peak_rss_mb},
            "what_if_full": what_if_full,
        }

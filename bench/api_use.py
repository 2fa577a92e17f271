"""The phases that count and pace requests: incremental runs against the minimum number of requests (section 2),
the scheduled run side by side with the alternatives (2b), and first syncs under an emulator rate limit, known or
not (section 3), or announced in headers (3b)."""

from __future__ import annotations

import concurrent.futures
import itertools
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.common import (
    ENTITIES,
    MAIN,
    RATE_TABLE,
    TIMEZONE,
    DagsterHome,
    EmulatorProcess,
    Scale,
    alternating,
    domain,
    job_name,
    log,
    needs_details,
    requests_of,
)
from bench.first_syncs import Table, run_plain, run_rest, run_straightforward
from sync_pipelines.catalogue import ENTITIES as CATALOGUE
from sync_pipelines.catalogue import TENANTS

TZ = ZoneInfo(TIMEZONE)
PAGE = 100
CHANGED_FRACTION = 0.01
ADDED_SHARE = 0.1  # of the changed records, the share that are new records (the rest are edits)
ROUND_MINUTES = 60  # the changes of one round are spread over this many minutes, one run per round
# Each run starts this long (tenant time) after the last change of its round, or after the run before: a run in
# the very minute of a change would see a list that may be changing as it is walked, and walk it twice.
SYNC_AFTER = timedelta(minutes=5)
CATCH_UP_RUNS_MAX = 10  # sites, 300 changes at 100 a run, needs 2 after the capped round


def lookback_zero() -> dict[str, dict[str, Any]]:
    """The run config of every tenant's step, each entity with no look-back, no revisit, no cap and no re-fetch
    (`ops.<tenant>.config.<entity>`); a lookup list (read whole every run, none of these knobs) keeps its
    defaults."""
    config: dict[str, dict[str, Any]] = {}
    for tenant, entity, _ in ENTITIES:
        if not CATALOGUE[entity].dated:
            continue
        step: dict[str, Any] = {"lookback_minutes": 0, "revisit_days": 0, "max_records": 0}
        refetch = CATALOGUE[entity].refetch
        if refetch == "recent":
            step["refetch_recent_days"] = 0
        elif refetch == "statuses":
            step["refetch_statuses"] = []
        config.setdefault(tenant, {})[entity] = step
    return config


def pages(n: int) -> int:
    return max(1, math.ceil(n / PAGE))


# -- 2. incremental runs -------------------------------------------------------------------------------------------


class Timeline:
    """The tenants' clock through the incremental rounds: changes spread over an hour, each run a while after."""

    def __init__(self, emu: EmulatorProcess) -> None:
        self.emu = emu
        now = datetime.now(TZ).replace(tzinfo=None, second=0, microsecond=0)
        self.t0 = self.clock = now - timedelta(hours=6)
        self.resources = {domain(t): [r for name, _, r in ENTITIES if name == t] for t in TENANTS}

    @classmethod
    def resume(cls, emu: EmulatorProcess) -> Timeline:
        """A timeline that goes on from an earlier phase's: from the tenants' clock where that one left it frozen
        (behind real time), else a new one."""
        timeline = cls(emu)
        clock = max(datetime.fromisoformat(local) for local in emu.call("clock").values())
        if timeline.t0 < clock < datetime.now(TZ).replace(tzinfo=None) - SYNC_AFTER:
            timeline.t0 = timeline.clock = clock
        return timeline

    def tick(self, at: datetime) -> None:
        self.clock = at
        self.emu.call("set_clock", local=at.isoformat(sep=" "))

    def later(self) -> None:
        self.tick(self.clock + SYNC_AFTER)

    def mutate(self, k: int) -> dict[str, Any]:
        """Round `k`'s changes: CHANGED_FRACTION of every entity; the clock then stands SYNC_AFTER past the last."""
        start = self.t0 + timedelta(minutes=ROUND_MINUTES * k)
        log(f"changing {CHANGED_FRACTION:.0%} of every entity over {start:%H:%M}..+{ROUND_MINUTES} min (tenant time)")
        changed = self.emu.call(
            "mutate",
            start=start.isoformat(sep=" "),
            minutes=ROUND_MINUTES,
            fraction=CHANGED_FRACTION,
            add_share=ADDED_SHARE,
            seed=1000 + k,
            resources=self.resources,
        )
        self.tick(datetime.fromisoformat(changed["end"]) + SYNC_AFTER)
        return changed["changed"]


def phase_incremental(emu: EmulatorProcess, home: DagsterHome, work: Path, scale: Scale) -> dict[str, Any]:
    timeline = Timeline(emu)

    def measure(label: str, defaults: bool, changed: dict[str, Any] | None, alternatives: bool = True) -> None:
        rounds.append(run_round(emu, home, work, label, defaults, changed, scale, alternatives))

    rounds: list[dict[str, Any]] = []
    measure("warm-up: first incremental after the full load (1% changed)", True, timeline.mutate(0))
    measure("1% changed, look-back 0", False, timeline.mutate(1))
    timeline.later()
    measure("no change, look-back 0", False, None)
    measure("1% changed, entity defaults", True, timeline.mutate(2))
    # The caps (customers 200, sites 100 changes a run) hold back part of a 1% round: the scheduled runs after it
    # load the rest. They are run here, unmeasured, so that the no-change rounds below find nothing left to load.
    capped = [f"{e['tenant']}/{e['entity']}" for e in rounds[-1]["product"]["entities"] if e["capped"]]
    caught_up = catch_up(home, timeline, capped, scale)
    timeline.later()
    measure("no change, entity defaults", True, None)
    # The same no-change run again, product only: a second sample of the headline figure.
    timeline.later()
    measure("no change, entity defaults (again)", True, None, alternatives=False)
    return {
        "t0": timeline.t0.isoformat(sep=" "),
        "rounds": rounds,
        "catch_up": caught_up,
        "single_entity_no_change": single_entity_runs(emu, home, timeline, scale),
    }


def catch_up(
    home: DagsterHome, timeline: Timeline, capped: list[str], scale: Scale, job: str = "sync_all"
) -> list[dict[str, Any]]:
    """`job` (`sync_all`) with the defaults until no entity is held back by its cap (unmeasured runs)."""
    runs: list[dict[str, Any]] = []
    while capped and len(runs) < CATCH_UP_RUNS_MAX:
        timeline.later()
        log(f"catch-up (product, {job}, entity defaults): {', '.join(capped)} held back by their caps")
        m = home.job(job, timeout=scale.timeout_s).check(f"{job} catch-up")
        run = home.runs(1)[0]
        loaded = {k: v.get("loaded") for k, v in run["materializations"].items() if v.get("loaded")}
        runs.append({"job": job, "wall_s": m.wall_s, "capped_before": capped, "loaded": loaded})
        capped = [k for k, v in run["materializations"].items() if v.get("capped")]
    return runs


def single_entity_runs(
    emu: EmulatorProcess, home: DagsterHome, timeline: Timeline, scale: Scale
) -> list[dict[str, Any]]:
    """The scheduled run of one entity, its job with its defaults, when nothing changed: every entity once."""
    singles = []
    for tenant, entity, _ in ENTITIES:
        timeline.later()
        log(f"no-change scheduled run of {tenant}/{entity}")
        emu.stats(reset=True)
        m = home.job(job_name(tenant, entity), timeout=scale.timeout_s).check(f"no-change {tenant}/{entity}")
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
    return singles


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
    plus one details call per record changed since the previous run of an entity listed without its children.
    A lookup list (no dateModified, no window) is read whole: its pages."""
    window_start = meta.get("window_start") if CATALOGUE[entity].dated else None
    since = datetime.fromtimestamp(window_start, TZ).strftime("%Y-%m-%d %H:%M:%S") if window_start else None

    def count(**filters: str) -> int:
        return int(emu.call("count", tenant=domain(tenant), resource=resource, filters=filters))

    in_window = count(changedSince=since) if since else count()
    walks = []
    if defaults:
        recent_days = CATALOGUE[entity].defaults.get("refetch_recent_days", 0)
        if recent_days:
            walks.append(count(dateFrom=(datetime.now(TZ).date() - timedelta(days=recent_days)).isoformat()))
        walks.extend(count(status=status) for status in CATALOGUE[entity].defaults.get("refetch_statuses", ()))
    changed_here = (changed or {}).get(domain(tenant), {}).get(resource, {"edited": 0, "added": 0})
    n_changed = changed_here["edited"] + changed_here["added"]
    details = n_changed if needs_details(entity) else 0
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
    """One incremental `sync_all` by the product, against the minimum; then, with `alternatives`, the plain loop's
    and rest_api's incremental runs on the same data."""
    out: dict[str, Any] = {
        "label": label,
        "defaults": defaults,
        "changed": changed,
        "product": product_round(emu, home, label, defaults, changed, scale),
    }
    if alternatives:
        log(f"incremental (plain loop): {label}")
        out["plain"] = alternative_round(*run_plain(emu, work / "plain.duckdb", ENTITIES, True, scale.timeout_s))
        log(f"incremental (rest_api): {label}")
        rest = run_rest(emu, work / "rest_api.duckdb", work / "rest_api_dlt", ENTITIES, scale.timeout_s)
        out["rest_api"] = alternative_round(*rest)
    return out


def product_round(
    emu: EmulatorProcess,
    home: DagsterHome,
    label: str,
    defaults: bool,
    changed: dict[str, Any] | None,
    scale: Scale,
) -> dict[str, Any]:
    log(f"incremental (product, sync_all): {label}")
    emu.stats(reset=True)
    m = home.job("sync_all", None if defaults else lookback_zero(), timeout=scale.timeout_s)
    m.check(f"sync_all {label}")
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
                **{key: meta.get(key) for key in ("fetched", "loaded", "refetched", "details_fetched", "capped")},
                "api_requests": meta.get("api_requests"),
            }
        )
    total_req = sum(e["requests"]["total"] for e in entities)
    total_min = sum(e["minimum"]["total"] for e in entities)
    return {
        "wall_s": m.wall_s,
        "rss_mb": m.peak_rss_mb,
        "steps_s": sum(run["steps"].values()),
        "asset_steps_s": sum(run["steps"].get(t, 0) for t in {t for t, _, _ in ENTITIES}),  # each tenant's step
        "requests": total_req,
        "minimum": total_min,
        "ratio": total_req / total_min,
        "entities": entities,
        "run_status": run["status"],
    }


def alternative_round(
    m: Any, lines: list[dict[str, Any]], stats: Any, tables: list[Table] = ENTITIES
) -> dict[str, Any]:
    """One incremental run of an alternative over `tables` (every entity), as the report reads it."""
    return {
        "wall_s": m.wall_s,
        "rss_mb": m.peak_rss_mb,
        "requests": stats.raw["n"],
        "records": sum(line["records"] for line in lines),
        "per_entity": [{**requests_of(stats, t, r), "entity": f"{t}/{e}"} for t, e, r in tables],
    }


# -- 2b. the scheduled run -----------------------------------------------------------------------------------------

ROUNDS = 4  # of the whole runs' comparison: each round on changes of its own, then on none
ENTITY_ROUNDS = 2  # of each entity's own job next to the straightforward pipeline given that entity alone
# the whole scheduled run, each way over every entity of every tenant, in a round's order (reversed every other)
WAYS = ("sync_all", "straightforward", "rest_api", "plain")
ENTITY_KEYS = frozenset(f"{tenant}/{entity}" for tenant, entity, _ in ENTITIES)


def phase_scheduled(emu: EmulatorProcess, home: DagsterHome, work: Path, scale: Scale) -> dict[str, Any]:
    """The scheduled run (section 2b), each round on 1% of every entity changed and then on no change:
    `sync_all` with its defaults and the alternatives side by side; then, on changes of their own, each entity's
    own job next to the straightforward dlt pipeline given that entity alone. The first syncs are the earlier
    phases' (the incremental phase's warehouses and states, its timeline's clock) or, measured alone, this
    phase's own, followed by an unmeasured round of changes. Every round is measured after the caps caught up."""
    timeline = Timeline.resume(emu)
    first = [way for way in WAYS if not synced(way, home, work)]
    out: dict[str, Any] = {"rounds": ROUNDS, "entity_rounds": ENTITY_ROUNDS, "first": first}
    out["settle_s"] = settle(emu, home, work, scale, first)
    out["catch_up"], mutations = [], itertools.count()
    if first:
        timeline.mutate(next(mutations))
        warm_up = side_by_side(emu, home, work, scale, 0, "warm-up after the first syncs")
        out["catch_up"] += catch_up(home, timeline, warm_up["sync_all"]["capped"], scale)
    for key in ("changed", "no_change", "entities_changed", "entities_no_change"):
        out[key] = []
    for r in range(ROUNDS):
        changes = timeline.mutate(next(mutations))
        out["changed"].append({**side_by_side(emu, home, work, scale, r, "1% changed"), "changes": changes})
        out["catch_up"] += catch_up(home, timeline, out["changed"][-1]["sync_all"]["capped"], scale)
        timeline.later()
        out["no_change"].append(side_by_side(emu, home, work, scale, r, "no change"))
    # the entity rounds come last: rest_api and the plain loop, which they leave behind, have no round after them
    for r in range(ENTITY_ROUNDS):
        timeline.mutate(next(mutations))
        changed, still, caught_up = entity_round(emu, home, work, timeline, scale, r)
        out["entities_changed"].append(changed)
        out["entities_no_change"].append(still)
        out["catch_up"] += caught_up
    return out


def settle(emu: EmulatorProcess, home: DagsterHome, work: Path, scale: Scale, first: list[str]) -> dict[str, float]:
    """Every way's run before the rounds, unmeasured and all at once: the first sync of each way in `first`, a
    run on the data as it stands of the others. Returns their walls, side by side."""
    log(f"scheduled run: first syncs of {', '.join(first) or 'none'}, at once; the other ways' runs beside them")
    with concurrent.futures.ThreadPoolExecutor(len(WAYS)) as pool:
        runs = {way: pool.submit(run_way, way, emu, home, work, scale, first=way in first) for way in WAYS}
        return {way: run.result()["wall_s"] for way, run in runs.items()}


def synced(way: str, home: DagsterHome, work: Path) -> bool:
    """Whether `way` has synced before in this work dir (an earlier phase's first syncs)."""
    if way == "sync_all":
        return bool(home.runs(1))
    return (
        work / {"straightforward": "straightforward_dlt", "rest_api": "rest_api_dlt"}.get(way, "plain.duckdb")
    ).exists()


def run_way(
    way: str,
    emu: EmulatorProcess,
    home: DagsterHome,
    work: Path,
    scale: Scale,
    tables: list[Table] = ENTITIES,
    first: bool = False,
) -> dict[str, Any]:
    """One scheduled run of `tables` by `way` (`entity_job`: the product's job of the one table given), on the
    data as it stands: its wall, requests, records loaded. A first sync of the straightforward pipeline loads
    `jsonl` (dlt's default format needs gigabytes for a first load: see bench/dlt_alternatives.py)."""
    timeout = scale.timeout_s
    if way in ("sync_all", "entity_job"):
        return product_run(emu, home, "sync_all" if way == "sync_all" else job_name(*tables[0][:2]), scale)
    if way == "straightforward":
        return alternative_round(*run_straightforward(emu, work, tables, timeout, "jsonl" if first else None), tables)
    if way == "rest_api":
        return alternative_round(
            *run_rest(emu, work / "rest_api.duckdb", work / "rest_api_dlt", tables, timeout), tables
        )
    return alternative_round(*run_plain(emu, work / "plain.duckdb", tables, True, timeout), tables)


def product_run(emu: EmulatorProcess, home: DagsterHome, job: str, scale: Scale) -> dict[str, Any]:
    """One product job with its defaults: its wall, requests, records loaded, the entities its caps held back."""
    emu.stats(reset=True)
    m = home.job(job, timeout=scale.timeout_s).check(job)
    stats = emu.stats(reset=True)
    run = home.runs(1)[0]
    entities = {key: meta for key, meta in run["materializations"].items() if key in ENTITY_KEYS}
    return {
        "wall_s": m.wall_s,
        "rss_mb": m.peak_rss_mb,
        "requests": stats.raw["n"],
        "records": sum(meta.get("loaded") or 0 for meta in entities.values()),
        "loaded": {key: meta.get("loaded") for key, meta in entities.items()},
        "capped": [key for key, meta in entities.items() if meta.get("capped")],
        "steps_s": sum(run["steps"].values()),
        "analytics_s": run["steps"].get("analytics"),
        "run_status": run["status"],
    }


def side_by_side(
    emu: EmulatorProcess, home: DagsterHome, work: Path, scale: Scale, r: int, label: str
) -> dict[str, Any]:
    """Every way's scheduled run of every entity on the same data, in round `r`'s order."""
    out: dict[str, Any] = {"order": alternating(list(WAYS), r)}
    for way in out["order"]:
        log(f"scheduled run, {label}, round {r + 1}: {way}")
        out[way] = run_way(way, emu, home, work, scale)
    return out


def entity_round(
    emu: EmulatorProcess, home: DagsterHome, work: Path, timeline: Timeline, scale: Scale, r: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """After a round of changes, each entity in turn: its own job and the straightforward pipeline given that entity
    alone, on its changes; its caps caught up; then the two again, a scheduled interval later, on no change. Which
    of the two goes first alternates. Returns the changed runs, the no-change runs and the catch-up runs."""
    changed: list[dict[str, Any]] = []
    still: list[dict[str, Any]] = []
    caught_up: list[dict[str, Any]] = []
    for i, table in enumerate(ENTITIES):
        for label, rows in (("1% changed", changed), ("no change", still)):
            row: dict[str, Any] = {"tenant": table[0], "entity": table[1]}
            for way in alternating(["entity_job", "straightforward"], r + i):
                log(f"scheduled run of {table[0]}/{table[1]}, {label}, round {r + 1}: {way}")
                row[way] = run_way(way, emu, home, work, scale, [table])
            rows.append(row)
            if label != "no change":
                caught_up += catch_up(home, timeline, row["entity_job"]["capped"], scale, job_name(*table[:2]))
                timeline.later()
    return changed, still, caught_up


# -- 3. rate limit -------------------------------------------------------------------------------------------------

RATE_JOB = job_name(MAIN.name, RATE_TABLE)
RATE_ASSET = f"{MAIN.name}/{RATE_TABLE}"


def phase_rate(emu: EmulatorProcess, work: Path, scale: Scale) -> list[dict[str, Any]]:
    limit = scale.rate_limit
    setting = MAIN.env("REQUESTS_PER_MINUTE")
    variants = [
        (f"known limit: {setting}={limit}", {setting: str(limit)}, True),
        ("unknown limit: 429 with Retry-After", {}, True),
    ]
    if scale.no_retry_after:
        variants.append(("unknown limit: 429 without Retry-After", {}, False))
    return [rate_run(emu, work / f"rate{i}", scale, *variant) for i, variant in enumerate(variants)]


def rate_run(
    emu: EmulatorProcess, root: Path, scale: Scale, label: str, env: dict[str, str], retry_after: bool
) -> dict[str, Any]:
    """A full sync of the rate-limit table under the emulator's sliding limit, in a fresh warehouse."""
    limit = scale.rate_limit
    home = DagsterHome(root, emu.base_url, root / "warehouse.duckdb", env)
    emu.call("set_rate_limit", per_minute=limit, retry_after=retry_after)
    emu.stats(reset=True)
    log(f"rate limit {limit}/min, full sync of {RATE_ASSET}: {label}")
    m = home.job(RATE_JOB, timeout=scale.timeout_s)
    stats = emu.stats(reset=True)
    emu.call("set_rate_limit", per_minute=None)
    run = home.runs(1)[0]
    ok, span = stats.count(status=200), stats.ok_span_s
    per_min = (ok - 1) / span * 60 if span > 0 else None
    return {
        "label": label,
        "limit_per_min": limit,
        "rc": m.rc,
        "run_status": run["status"],
        "not_ok_positions": stats.raw["not_ok_positions"],
        "requests": stats.raw["n"],
        "dagster_retries": run["retries"],
        "wall_s": m.wall_s,
        "ok": ok,
        "429": stats.count(status=429),
        "ok_span_s": span,
        "used_per_min": per_min,
        "share": per_min / limit if per_min else None,
        "records": run["materializations"].get(RATE_ASSET, {}).get("loaded"),
    }


def phase_rate_window(emu: EmulatorProcess, work: Path, scale: Scale) -> dict[str, Any]:
    """A full sync of the rate-limit table under a fixed window announced in X-RateLimit-* (the real API's habit,
    unknown size and length): 429s without Retry-After whose message speaks of a quota. No setting: the client
    paces from the headers alone."""
    limit, seconds = scale.window
    root = work / "rate_window"
    home = DagsterHome(root, emu.base_url, root / "warehouse.duckdb")
    message = f"API calls quota exceeded! maximum admitted {limit} per {seconds:.0f}s."
    window = {"window_seconds": seconds, "fixed": True, "headers": True, "message": message}
    emu.call("set_rate_limit", per_minute=limit, retry_after=False, **window)
    emu.stats(reset=True)
    log(f"announced window of {limit} requests per {seconds:.0f} s, full sync of {RATE_ASSET}")
    m = home.job(RATE_JOB, timeout=scale.timeout_s)
    stats = emu.stats(reset=True, times=True)
    emu.call("set_rate_limit", per_minute=None)
    run = home.runs(1)[0]
    metadata = run["materializations"].get(RATE_ASSET, {})
    ok = stats.count(status=200)
    per_window = answered_per_window(stats.raw["ok_times"], seconds)
    # the last window holds what was left: the share is of the windows the run used up and waited out
    full = per_window[:-1]
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
        "least_s": (math.ceil(ok / limit) - 1) * seconds,  # the shortest time the window allows for these requests
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

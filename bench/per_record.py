"""One list entity's first sync, whole processes, side by side at two sizes: the product's entity job and dlt's
`rest_api` (same `jsonl` loader), alternating, several rounds, each run on a fresh warehouse (not part of
`make bench`).

    python -m bench.per_record [--entity quotations] [--sizes 20000,200000] [--rounds 3]

`make bench` runs all the product's 10x syncs, then all of `rest_api`'s: minutes apart on a machine whose speed
drifts. Here each product run has its `rest_api` run next to it, in alternating order. The per-record rate is
(records at the large size − records at the small one) ÷ (median wall at the large size − at the small one), the
product's analytics step aside as in `make bench`: what a process pays once cancels out. Writes
`bench/results/per-record-<entity>.json`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import ENTITIES, DagsterHome, EmulatorProcess, alternating, snapshot_code, tenant_specs
from bench.run import log, run_rest, write_results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entity", default="quotations")
    parser.add_argument("--sizes", default="20000,200000")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    tenant, entity, resource = next(e for e in ENTITIES if e[0] == "synchroteam" and e[1] == args.entity)
    started = datetime.now()
    walls: dict[int, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-per-record-") as tmp:
        work = Path(tmp)
        snapshot_code(work / "code")
        for size in (int(s) for s in args.sizes.split(",")):
            walls[size] = {"product": [], "rest_api": []}
            with EmulatorProcess(tenant_specs({resource: size}, None)) as emu:
                for r in range(args.rounds):
                    for who in alternating(["product", "rest_api"], r):
                        root = work / f"{size}-{r}-{who}"
                        if who == "product":
                            home = DagsterHome(root, emu.base_url, root / "warehouse.duckdb")
                            m = home.job(f"sync_{tenant}__{entity}").check(f"{entity} ({size})")
                            wall = m.wall_s - home.runs(1)[0]["steps"].get("analytics", 0.0)
                        else:
                            root.mkdir(parents=True)
                            m, _, _ = run_rest(
                                emu, root / "rest.duckdb", root / "dlt", [(tenant, entity, resource)], 3600
                            )
                            wall = m.wall_s
                        walls[size][who].append(wall)
                        log(f"{entity} {size} round {r + 1} {who}: {wall:.2f} s")
    small, large = sorted(walls)
    summary: dict[str, Any] = {}
    for who in ("product", "rest_api"):
        a, b = statistics.median(walls[small][who]), statistics.median(walls[large][who])
        summary[who] = {
            "median_small_s": round(a, 2),
            "median_large_s": round(b, 2),
            "per_s": (large - small) / (b - a),
        }
    summary["product_over_rest_api"] = summary["product"]["per_s"] / summary["rest_api"]["per_s"]
    path = write_results("per-record", entity, started, {"sizes": [small, large], "walls": walls, "summary": summary})
    for who in ("product", "rest_api"):
        s = summary[who]
        log(f"{who}: {s['median_small_s']} s → {s['median_large_s']} s, {s['per_s']:,.0f} records/s per record")
    log(f"product ÷ rest_api per record: {summary['product_over_rest_api']:.2f}×; written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""One list entity's first sync, whole processes, side by side at two sizes: the product's entity job and dlt's
`rest_api` (same `jsonl` loader), alternating, several rounds, each run on a fresh warehouse. `make bench` does
the same for every list entity (its `per_record` phase, section 5b); this runs one, with more rounds or other sizes.

    python -m bench.per_record [--entity quotations | synchroteam_hec/invoices] [--sizes 20000,200000] [--rounds 3]

The per-record rate is (records at the large size − at the small one) ÷ (median wall at the large size − at the
small one), the product's analytics step aside as in `make bench`: what a process pays once cancels out. Writes
`bench/results/per-record-<entity>.json` (`per-record-<tenant>-<entity>.json` for the HEC tenant).
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.common import ENTITIES, EmulatorProcess, alternating, snapshot_code, tenant_specs
from bench.run import log, measure_full_sync, write_results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entity", default="quotations", help="an entity of the main tenant, or <tenant>/<entity>")
    parser.add_argument("--sizes", default="20000,200000")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    tenant, _, entity = args.entity.rpartition("/")
    tenant = tenant or "synchroteam"
    matches = [e for e in ENTITIES if e[:2] == (tenant, entity)]
    if not matches:
        parser.error(f"no entity {tenant}/{entity}: choose among {', '.join(f'{t}/{e}' for t, e, _ in ENTITIES)}")
    resource = matches[0][2]
    small, large = sorted(int(s) for s in args.sizes.split(","))
    started = datetime.now()
    runs: dict[str, Any] = {"tenant": tenant, "entity": entity}
    with tempfile.TemporaryDirectory(prefix="bench-per-record-") as tmp:
        work = Path(tmp)
        snapshot_code(work / "code")
        for label, size in (("small", small), ("large", large)):
            runs[label] = {"product": [], "rest_api": []}
            counts = {resource: size}
            with EmulatorProcess(
                tenant_specs({}, counts) if tenant == "synchroteam_hec" else tenant_specs(counts, None)
            ) as emu:
                if label == "small":  # unrecorded: a fresh copy's first import compiles its bytecode
                    for who in ("product", "rest_api"):
                        measure_full_sync(who, emu, work / f"warm-up-{who}", tenant, entity, resource, 3600)
                for r in range(args.rounds):
                    for who in alternating(["product", "rest_api"], r):
                        root = work / f"{size}-{r}-{who}"
                        row = measure_full_sync(who, emu, root, tenant, entity, resource, 3600)
                        runs[label][who].append(row)
                        log(f"{tenant}/{entity} {size} round {r + 1} {who}: {report.without_analytics(row):.2f} s")
    summary = report.per_record_row(runs)
    name = entity if tenant == "synchroteam" else f"{tenant}-{entity}"
    path = write_results("per-record", name, started, {"rounds": args.rounds, "runs": runs, "summary": summary})
    for who in ("product", "rest_api"):
        s = summary[who]
        log(f"{who}: {s['median_s'][0]:.2f} s → {s['median_s'][1]:.2f} s, {report.n(s['per_s'])} records/s per record")
    ours, theirs = summary["product"]["per_s"], summary["rest_api"]["per_s"]
    log(f"product ÷ rest_api per record: {report.ratio(ours, theirs)}; written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

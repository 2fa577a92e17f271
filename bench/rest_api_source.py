"""Baseline (b): dlt's generic `rest_api` source configured for the same endpoints, with its defaults.

    python -m bench.rest_api_source --base-url URL --db FILE --pipelines-dir DIR \
        --entities '[{"domain": "...", "api_key": "...", "schema": "synchroteam", "table": "jobs", "resource": "job",
                      "details": true}]'

What is configured is only what the API needs: the base URL, HTTP basic auth, `data` as the data selector, a
page-number paginator starting at page 1 with `pageSize=100` (rest_api's `total_path` counts *pages* and the API
gives `recordsTotal` in *records*, so it is switched off and the paginator stops on the first empty page, its
default), `id` as the primary key with `merge` (so reruns update rows), and `changedSince` bound to an
incremental cursor on `dateModified` as the rest_api docs show. A resource listed without its children (`details`:
jobs, without their parts and time entries) gets them from a dependent resource (`job_details`) resolving
`<resource>/details?id=` for each listed record. Everything else is dlt's
default: the requests-based client and its retries, no parallelism. The loader file format is a pipeline
setting, not the source's: `--loader-file-format jsonl` (what the product uses) by default, `default` for dlt's
own default (`insert_values` on DuckDB: about 4 GB peak RSS to load 20k invoices, so only tried on a small table).
Prints one JSON line per entity: rows per table, seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import dlt
from dlt.sources.rest_api import rest_api_source


def source_config(base_url: str, spec: dict) -> Any:  # dlt's RESTAPIConfig, a TypedDict
    table, resource = spec["table"], spec["resource"]
    list_resource = {
        "name": table,
        "primary_key": "id",
        "write_disposition": "merge",
        "endpoint": {
            "path": f"{resource}/list",
            "params": {
                "pageSize": 100,
                "changedSince": {
                    "type": "incremental",
                    "cursor_path": "dateModified",
                    "initial_value": "2000-01-01 00:00",
                },
            },
        },
    }
    resources: list[dict] = [list_resource]
    if spec["details"]:
        resources.append(
            {
                "name": f"{resource}_details",
                "primary_key": "id",
                "write_disposition": "merge",
                "endpoint": {
                    "path": f"{resource}/details",
                    "params": {"id": f"{{resources.{table}.id}}"},
                    "paginator": "single_page",
                    "data_selector": "$",
                },
            }
        )
    return {
        "client": {
            "base_url": base_url + "/",
            "auth": {"type": "http_basic", "username": spec["domain"], "password": spec["api_key"]},
            "paginator": {"type": "page_number", "base_page": 1, "page_param": "page", "total_path": None},
        },
        "resource_defaults": {"endpoint": {"data_selector": "data"}},
        "resources": resources,
    }


def run(spec: dict, base_url: str, db: str, pipelines_dir: str, loader_file_format: str) -> dict:
    started = time.monotonic()
    entity, schema = spec["table"], spec["schema"]
    source = rest_api_source(source_config(base_url, spec))
    pipeline = dlt.pipeline(
        pipeline_name=f"rest_api__{schema}__{entity}",
        destination=dlt.destinations.duckdb(db),
        dataset_name=schema,
        pipelines_dir=pipelines_dir,
    )
    fmt: Any = None if loader_file_format == "default" else loader_file_format
    pipeline.run(source, loader_file_format=fmt).raise_on_failed_jobs()
    normalized = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
    counts = dict(normalized.row_counts) if normalized else {}
    return {
        "schema": schema,
        "table": entity,
        "rows": counts,
        "records": counts.get(entity, 0),
        "wall_s": round(time.monotonic() - started, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--pipelines-dir", required=True)
    parser.add_argument(
        "--entities",
        required=True,
        help='JSON list of {"domain", "api_key", "schema", "table", "resource", "details"}, one after the other',
    )
    parser.add_argument("--loader-file-format", default="jsonl", help="jsonl (as the product) or default")
    args = parser.parse_args(argv)
    for spec in json.loads(args.entities):
        print(json.dumps(run(spec, args.base_url, args.db, args.pipelines_dir, args.loader_file_format)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

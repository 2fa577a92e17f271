"""The two dlt alternatives: (b) dlt's generic `rest_api` source configured for the API's endpoints, and (c) the
straightforward dlt pipeline, resources written by hand. Each with dlt's defaults where the API asks nothing else.

    python -m bench.dlt_alternatives rest_api --base-url URL --db FILE --pipelines-dir DIR \
        --entities '[{"domain": "...", "api_key": "...", "schema": "synchroteam", "table": "jobs", "resource": "job",
                      "details": true, "dated": true}]'
    python -m bench.dlt_alternatives straightforward --base-url URL --db FILE --pipelines-dir DIR --entities '[...]'

(b) `rest_api`: what is configured is only what the API needs: the base URL, HTTP basic auth, `data` as the data
selector, a page-number paginator starting at page 1 with `pageSize=100` (rest_api's `total_path` counts *pages* and
the API gives `recordsTotal` in *records*, so it is switched off and the paginator stops on the first empty page,
its default), `id` as the primary key with `merge` (so reruns update rows), and `changedSince` bound to an
incremental cursor on `dateModified` as the rest_api docs show. A resource listed without its children (`details`:
jobs, without their parts and time entries) gets them from a dependent resource (`job_details`) resolving
`<resource>/details?id=` for each listed record. Everything else is dlt's default: the requests-based client and
its retries, no parallelism. A lookup list without `dateModified` (job types) has no incremental: it is read whole
every run, merged on `id`. One pipeline per table, run one after the other.

(c) straightforward: what dlt's incremental-loading guide leads one to write. One `@dlt.resource` per table
(`merge` on `id`): httpx pages `{resource}/list` (`pageSize=100`, until a short page) with `changedSince` from
`dlt.sources.incremental("dateModified")` (none on the first run), and for a resource listed without its children
yields each listed record's `details` instead; a lookup list's resource has no incremental and reads the list whole
every run. Every table given, of every tenant, is a resource of one source loaded by ONE `pipeline.run`: tables
`<tenant>__<table>` in one dataset, each resource's cursor in the pipeline's state. A run given some of the tables
runs the same pipeline with only their resources (the others' cursors stay).

The loader file format is a pipeline setting, not the source's: `--loader-file-format` is `jsonl` (the product's)
by default for rest_api and `default` (dlt's own: `insert_values` on DuckDB) for the straightforward pipeline.
`insert_values` needs about 4 GB of peak RSS to load 20k invoices at once, so the bench gives the straightforward
pipeline's first sync `jsonl` and its scheduled runs dlt's default. Prints one JSON line per table: records (rows
of its top-level table), rows per table, seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from typing import Any

import dlt
import httpx
from dlt.sources.rest_api import rest_api_source

PAGE_SIZE = 100
DEFAULT_FORMAT = {"rest_api": "jsonl", "straightforward": "default"}

# -- (b) dlt's rest_api source ------------------------------------------------------------------------------------


def source_config(base_url: str, spec: dict) -> Any:  # dlt's RESTAPIConfig, a TypedDict
    table, resource = spec["table"], spec["resource"]
    params: dict[str, Any] = {"pageSize": PAGE_SIZE}
    if spec["dated"]:
        params["changedSince"] = {
            "type": "incremental",
            "cursor_path": "dateModified",
            "initial_value": "2000-01-01 00:00",
        }
    list_resource = {
        "name": table,
        "primary_key": "id",
        "write_disposition": "merge",
        "endpoint": {"path": f"{resource}/list", "params": params},
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


def run_rest_api(specs: list[dict], base_url: str, db: str, pipelines_dir: str, fmt: Any) -> Iterator[dict]:
    """Each table by a pipeline of its own, one after the other: one line each."""
    for spec in specs:
        started = time.monotonic()
        entity, schema = spec["table"], spec["schema"]
        pipeline = dlt.pipeline(
            pipeline_name=f"rest_api__{schema}__{entity}",
            destination=dlt.destinations.duckdb(db),
            dataset_name=schema,
            pipelines_dir=pipelines_dir,
        )
        pipeline.run(rest_api_source(source_config(base_url, spec)), loader_file_format=fmt).raise_on_failed_jobs()
        counts = row_counts(pipeline)
        yield {
            "schema": schema,
            "table": entity,
            "rows": counts,
            "records": counts.get(entity, 0),
            "wall_s": round(time.monotonic() - started, 3),
        }


# -- (c) the straightforward dlt pipeline -------------------------------------------------------------------------


def table_name(spec: dict) -> str:
    return f"{spec['schema']}__{spec['table']}"


def listed(base_url: str, spec: dict) -> Any:  # a dlt resource
    """One table's resource: its list pages from the cursor on, or with `details` each listed record's details; a
    lookup list (no `dateModified`) whole, every run."""
    if not spec["dated"]:

        @dlt.resource(name=table_name(spec), primary_key="id", write_disposition="merge")
        def lookup() -> Iterator[list[dict]]:
            yield from pages(base_url, spec, None)

        return lookup

    @dlt.resource(name=table_name(spec), primary_key="id", write_disposition="merge")
    def records(
        changed: dlt.sources.incremental[str] = dlt.sources.incremental("dateModified"),  # noqa: B008 - dlt's idiom
    ) -> Iterator[list[dict]]:
        yield from pages(base_url, spec, changed.start_value)

    return records


def pages(base_url: str, spec: dict, since: str | None) -> Iterator[list[dict]]:
    """`{resource}/list` page by page until a short page, changed since `since` if given."""
    auth = (spec["domain"], spec["api_key"])
    with httpx.Client(base_url=base_url + "/", auth=auth, timeout=60) as client:
        page = 1
        while True:
            params: dict[str, Any] = {"page": page, "pageSize": PAGE_SIZE}
            if since:
                params["changedSince"] = since
            response = client.get(f"{spec['resource']}/list", params=params)
            response.raise_for_status()
            rows = response.json()["data"]
            yield [details(client, spec, row["id"]) for row in rows] if spec["details"] else rows
            if len(rows) < PAGE_SIZE:
                return
            page += 1


def details(client: httpx.Client, spec: dict, record_id: Any) -> dict:
    response = client.get(f"{spec['resource']}/details", params={"id": record_id})
    response.raise_for_status()
    return dict(response.json())


@dlt.source(name="synchroteam")
def straightforward_source(base_url: str, specs: list[dict]) -> Any:
    return [listed(base_url, spec) for spec in specs]


def run_straightforward(specs: list[dict], base_url: str, db: str, pipelines_dir: str, fmt: Any) -> Iterator[dict]:
    """Every table in one `pipeline.run`: one line per table, each with the run's seconds."""
    started = time.monotonic()
    pipeline = dlt.pipeline(
        pipeline_name="straightforward",
        destination=dlt.destinations.duckdb(db),
        dataset_name="synchroteam",
        pipelines_dir=pipelines_dir,
    )
    pipeline.run(straightforward_source(base_url, specs), loader_file_format=fmt).raise_on_failed_jobs()
    counts = row_counts(pipeline)
    wall = round(time.monotonic() - started, 3)
    for spec in specs:
        name = table_name(spec)
        rows = {table: n for table, n in counts.items() if table == name or table.startswith(name + "__")}
        yield {
            "schema": spec["schema"],
            "table": spec["table"],
            "rows": rows,
            "records": counts.get(name, 0),
            "wall_s": wall,
        }


def row_counts(pipeline: Any) -> dict[str, int]:
    """Rows per table that the pipeline's last run normalized (what it loaded)."""
    normalized = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
    return dict(normalized.row_counts) if normalized else {}


RUNS = {"rest_api": run_rest_api, "straightforward": run_straightforward}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dlt_alternatives", description=__doc__.splitlines()[0])
    parser.add_argument("way", choices=RUNS)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--pipelines-dir", required=True)
    parser.add_argument(
        "--entities",
        required=True,
        help='JSON list of {"domain", "api_key", "schema", "table", "resource", "details", "dated"}',
    )
    parser.add_argument("--loader-file-format", help="jsonl, or default (dlt's own); see above for each way's")
    args = parser.parse_args(argv)
    fmt = args.loader_file_format or DEFAULT_FORMAT[args.way]
    lines = RUNS[args.way](
        json.loads(args.entities), args.base_url, args.db, args.pipelines_dir, None if fmt == "default" else fmt
    )
    for line in lines:
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

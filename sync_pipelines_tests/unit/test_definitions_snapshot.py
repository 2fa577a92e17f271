"""A snapshot of the code location's public interface: every asset (key, group, partitioning, pool, checks), job
(tags, selection), schedule (cron, job), sensor and run-config field (type, default). A rename or a changed default
is a visible diff of `snapshots/definitions.json`, not a silent break for the users who launch, schedule or query
by these names.

After an intended change: `SNAPSHOT_UPDATE=1 .venv/bin/python -m pytest sync_pipelines_tests/unit/test_definitions_snapshot.py`,
and say in CHANGELOG.md what changed, with its migration note.
"""

import json
import os
from pathlib import Path
from typing import Any

from sync_pipelines.definitions import defs

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def _config_fields(assets_def: Any) -> dict[str, Any]:
    schema = assets_def.op.config_schema
    if schema is None or not hasattr(schema, "as_field"):
        return {}
    fields = getattr(schema.as_field().config_type, "fields", {}) or {}
    return {
        name: {
            "type": field.config_type.given_name or field.config_type.key,
            "default": field.default_value if field.default_provided else None,
        }
        for name, field in sorted(fields.items())
    }


def interface() -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    checks: dict[str, list[str]] = {}
    for check_key in graph.asset_check_keys:
        checks.setdefault(check_key.asset_key.to_user_string(), []).append(check_key.name)
    assets = {}
    for assets_def in defs.assets:
        for key in assets_def.keys:
            node = graph.get(key)
            assets[key.to_user_string()] = {
                "group": node.group_name,
                "partitioned": type(node.partitions_def).__name__ if node.partitions_def else None,
                "pool": assets_def.op.pool,
                "op": assets_def.op.name,
                "checks": sorted(checks.get(key.to_user_string(), [])),
                "run_config": _config_fields(assets_def),
            }
    jobs = {}
    for job in defs.jobs:
        resolved = defs.resolve_job_def(job.name)
        jobs[job.name] = {
            "tags": dict(sorted((resolved.tags or {}).items())),
            "assets": sorted(k.to_user_string() for k in resolved.asset_layer.executable_asset_keys),
            "checks": sorted(
                f"{k.asset_key.to_user_string()}:{k.name}" for k in resolved.asset_layer.asset_graph.asset_check_keys
            ),
        }
    schedules = {
        s.name: {"job": s.job_name, "cron": s.cron_schedule, "default_status": s.default_status.value}
        for s in defs.schedules
    }
    sensors = {s.name: {"default_status": s.default_status.value} for s in defs.sensors}
    return {
        "assets": dict(sorted(assets.items())),
        "jobs": dict(sorted(jobs.items())),
        "schedules": dict(sorted(schedules.items())),
        "sensors": sensors,
    }


def test_the_public_interface_matches_its_snapshot():
    current = json.loads(json.dumps(interface(), default=str))
    if os.environ.get("SNAPSHOT_UPDATE") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=False) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())

"""The dbt project of the analytics layer (`analytics/` in the repository): where it is, how dbt is run against the
configured warehouse, and the parts of it that follow the catalogue.

dbt runs in a virtualenv of its own (`.venv/dbt`, `make install`): dbt-core 1.11 pins `pathspec<0.13`, which the
test tools' mypy (pathspec 1.x) cannot share. Its profile (`analytics/profiles.yml`) reads the warehouse from
variables this module sets in dbt's environment only, from `settings.warehouse()`; the PostgreSQL password goes in
`DBT_ENV_SECRET_SYNC_PG_PASSWORD`, which dbt scrubs from its logs, and never into a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sync_pipelines.catalogue import (
    CHILD_COLUMNS,
    COLUMN_DESCRIPTIONS,
    ENTITY_COLUMNS,
    TENANTS,
    Entity,
    tenant_entities,
)
from sync_pipelines.warehouse.settings import (
    DuckDBWarehouse,
    Warehouse,
    duckdb_selected,
    duckdb_settings,
    read_copy_path,
)

SCHEMA = "analytics"
PROJECT_DIR = Path(__file__).resolve().parents[2] / "analytics"
SOURCES_FILE = PROJECT_DIR / "models" / "sources.yml"
TENANTS_MACRO = PROJECT_DIR / "macros" / "tenants.sql"
DBT_EXECUTABLE = "SYNC_DBT_EXECUTABLE"
GENERATED = "# Generated from sync_pipelines/catalogue.py by `make analytics-sources`: do not edit."


def dbt_executable() -> Path:
    """dbt in its own virtualenv beside ours (`.venv/dbt/bin/dbt`), or `SYNC_DBT_EXECUTABLE`."""
    configured = os.environ.get(DBT_EXECUTABLE, "").strip()
    return Path(configured) if configured else Path(sys.prefix) / "dbt" / "bin" / "dbt"


def dbt_version() -> str:
    """The installed dbt-core's version, read from its virtualenv (`dbt --version` would ask PyPI for the latest)."""
    for info in (dbt_executable().parent.parent / "lib").glob("python*/site-packages/dbt_core-*.dist-info"):
        return info.name.removeprefix("dbt_core-").removesuffix(".dist-info")
    raise FileNotFoundError(f"dbt-core is not installed beside {dbt_executable()}: run `make install`.")


def profile_target(environ: Mapping[str, str] | None = None) -> str:
    """The profile's output: `duckdb` or `postgres`, as the warehouse's settings say."""
    return "duckdb" if duckdb_selected(environ) else "postgres"


def dbt_env(target: Warehouse) -> dict[str, str]:
    """The variables `analytics/profiles.yml` reads, for `target`, plus dbt's own switches: no usage statistics."""
    env = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DBT_PROFILES_DIR": str(PROJECT_DIR)}
    if isinstance(target, DuckDBWarehouse):
        settings = duckdb_settings()
        return {
            **env,
            "SYNC_DBT_DUCKDB_PATH": str(target.path),
            "SYNC_DBT_DUCKDB_MEMORY_LIMIT": str(settings["memory_limit"]),
            "SYNC_DBT_DUCKDB_THREADS": str(settings["threads"]),
        }
    return {
        **env,
        "SYNC_DBT_PG_HOST": target.host,
        "SYNC_DBT_PG_PORT": str(target.port),
        "SYNC_DBT_PG_DATABASE": target.database,
        "SYNC_DBT_PG_USER": target.user,
        "DBT_ENV_SECRET_SYNC_PG_PASSWORD": target.password,
        "SYNC_DBT_PG_SSLMODE": target.options().get("sslmode", "prefer"),
    }


def child_table(entity: Entity, child: str) -> str:
    """dlt's name of a child list's table: `jobs__time_entries` for the jobs' `timeEntries`."""
    return f"{entity.name}__{re.sub(r'(?<!^)(?=[A-Z])', '_', child).lower()}"


def source_tables() -> dict[str, list[str]]:
    """Every tenant's tables the analytics models read: each entity's table and its child lists' tables."""
    return {
        tenant.name: [
            table
            for entity in tenant_entities(tenant)
            for table in (entity.name, *(child_table(entity, child) for child in entity.children))
        ]
        for tenant in TENANTS.values()
    }


def sources_yaml() -> str:
    """`analytics/models/sources.yml`: one dbt source per tenant schema, its tables as the catalogue has them,
    each described, with the columns every entity's table (or child list's table) has."""
    lines = [GENERATED, "version: 2", "sources:"]
    for tenant in TENANTS.values():
        lines += [
            f"  - name: {tenant.name}",
            f"    description: {json.dumps(f'Tenant {tenant.label}, as dlt loads it (the analytics models read it).')}",
            "    tables:",
        ]
        for entity in tenant_entities(tenant):
            lines += _source_table(entity.name, entity.description, _entity_columns(entity), entity.statuses)
            for child in entity.children:
                table = child_table(entity, child)
                what = f"One row per item of a {entity.name} row's `{child}` list (a child table of `{entity.name}`)."
                lines += _source_table(table, what, CHILD_COLUMNS)
    return "\n".join(lines) + "\n"


def _entity_columns(entity: Entity) -> list[str]:
    """The columns of ENTITY_COLUMNS the entity's table has: `status` if it has statuses, no dates if a lookup."""
    undated = () if entity.dated else ("date_created", "date_modified")
    return [c for c in ENTITY_COLUMNS if (c != "status" or entity.statuses) and c not in undated]


def _source_table(name: str, description: str, columns: Sequence[str], statuses: Sequence[str] = ()) -> list[str]:
    lines = [f"      - name: {name}", f"        description: {json.dumps(description)}", "        columns:"]
    for column in columns:
        said = COLUMN_DESCRIPTIONS[column]
        if column == "status":
            said += f" One of: {', '.join(statuses)}."
        lines += [f"          - name: {column}", f"            description: {json.dumps(said)}"]
    return lines


def tenants_macro() -> str:
    """`analytics/macros/tenants.sql`: the tenants and their entities, which the models union."""
    tenants = {tenant.name: list(tenant.entities) for tenant in TENANTS.values()}
    return (
        f"{{# {GENERATED.removeprefix('# ')} #}}\n"
        f"{{% macro tenants() %}}{{{{ return({json.dumps(tenants)}) }}}}{{% endmacro %}}\n"
    )


def write_generated() -> list[Path]:
    """Write the files of the project that follow the catalogue; the ones that changed."""
    changed = []
    for path, text in ((SOURCES_FILE, sources_yaml()), (TENANTS_MACRO, tenants_macro())):
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    return changed


def project_digest(project: Path = PROJECT_DIR) -> str:
    """What a manifest is parsed from: the project's files and dbt's version."""
    digest = hashlib.sha256(dbt_version().encode())
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project)
        if path.is_file() and relative.parts[0] not in ("target", "logs") and path.suffix in (".yml", ".sql", ".md"):
            digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def model_code_versions(manifest: Mapping[str, Any]) -> dict[str, str]:
    """Each model's code version: what dbt builds it and tests it from. Its SQL, configuration and documentation
    (persisted as comments), its tests, every macro of the project (`union_tenants`, the `stable_view`
    materialization, the generated tenants) and dbt's version. A model whose code version and inputs have not
    changed since dbt last built it needs no build (dagster-dbt's own code version is its SQL alone)."""
    project = manifest["metadata"]["project_name"]
    common = hashlib.sha256(str(manifest["metadata"].get("dbt_version")).encode())
    for unique_id, macro in sorted(manifest.get("macros", {}).items()):
        if macro.get("package_name") == project:
            common.update(unique_id.encode() + b"\0" + str(macro.get("macro_sql")).encode() + b"\0")
    nodes = manifest.get("nodes", {})
    versions = {}
    for unique_id, node in nodes.items():
        if node.get("resource_type") != "model":
            continue
        digest = common.copy()
        for part_id in [unique_id, *sorted(manifest.get("child_map", {}).get(unique_id, []))]:
            part = nodes.get(part_id)
            if part is None or (part_id != unique_id and part.get("resource_type") != "test"):
                continue
            kept = {k: part.get(k) for k in ("raw_code", "config", "description", "columns", "test_metadata")}
            digest.update(part_id.encode() + b"\0" + json.dumps(kept, sort_keys=True, default=str).encode() + b"\0")
        versions[unique_id] = digest.hexdigest()[:16]
    return versions


def prepared_manifest(project: Path = PROJECT_DIR) -> Path:
    """dbt's manifest of the project (what dagster-dbt builds the assets from), parsed again when a project file
    changed since: `dbt parse`, a few seconds, once. A project that does not parse raises here, when the
    definitions load, with dbt's own message (the definitions' test), never in a run."""
    manifest = project / "target" / "manifest.json"
    stamp = manifest.with_name("manifest.digest")
    digest = project_digest(project)
    if manifest.exists() and stamp.exists() and stamp.read_text() == digest:
        return manifest
    scratch = manifest.parent / f"parse-{os.getpid()}"  # two processes loading at once parse apart
    try:
        run_dbt(["parse"], DuckDBWarehouse(Path("parse-only.duckdb")), target_path=scratch, project=project)
    except DbtFailed:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    os.replace(scratch / "manifest.json", manifest)
    os.replace(scratch / "partial_parse.msgpack", manifest.with_name("partial_parse.msgpack"))
    shutil.rmtree(scratch, ignore_errors=True)
    stamp.write_text(digest)
    return manifest


class DbtFailed(RuntimeError):
    """dbt exited with an error outside a run (parse, docs)."""


def run_dbt(args: list[str], target: Warehouse, target_path: Path | None = None, project: Path = PROJECT_DIR) -> str:
    """`dbt <args>` in `project` against `target`; its output. Raises `DbtFailed` with dbt's messages."""
    env = {**os.environ, **dbt_env(target), "DBT_PROFILES_DIR": str(project)}
    env["DBT_LOG_PATH"] = str(target_path or project / "logs")
    if target_path is not None:
        env["DBT_TARGET_PATH"] = str(target_path)
    kind = "duckdb" if isinstance(target, DuckDBWarehouse) else "postgres"
    done = subprocess.run(
        [str(dbt_executable()), *args, "--target", kind], cwd=project, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise DbtFailed(f"dbt {' '.join(args)} failed in {project}:\n{done.stdout[-4000:]}{done.stderr[-2000:]}")
    return done.stdout


def build_docs(target: Warehouse) -> Path:
    """dbt's docs site (`analytics/target/docs/index.html`): the models, their columns described, and the columns'
    types as the warehouse has them. On DuckDB it reads a scratch copy of the analysts' read copy, so it needs no
    turn of the warehouse and disturbs no sync, and names the relations as analysts see them there
    (`warehouse_read.analytics.invoices`); PostgreSQL is read in place."""
    docs = PROJECT_DIR / "target" / "docs"
    if not isinstance(target, DuckDBWarehouse):
        run_dbt(["docs", "generate"], target, target_path=docs)
        return docs / "index.html"
    with tempfile.TemporaryDirectory() as scratch:
        read_copy = read_copy_path(target.path)
        copy = Path(scratch) / read_copy.name  # DuckDB names the database after the file, as `make sql` shows it
        if read_copy.exists():
            shutil.copyfile(read_copy, copy)
        run_dbt(["docs", "generate"], DuckDBWarehouse(copy), target_path=docs)
    return docs / "index.html"


def main(argv: list[str]) -> None:
    """`python -m sync_pipelines.warehouse.analytics sources|docs`: write the catalogue's files; build dbt's docs
    site of the configured warehouse."""
    from sync_pipelines.warehouse.settings import warehouse

    command = argv[0] if argv else ""
    if command == "sources":
        changed = write_generated()
        print("\n".join(f"wrote {path}" for path in changed) or "sources already follow the catalogue")
    elif command == "docs":
        print(f"dbt's docs site of the analytics schema: {build_docs(warehouse())} (`make docs-serve` serves it)")
    else:
        raise SystemExit("usage: python -m sync_pipelines.warehouse.analytics sources|docs")


if __name__ == "__main__":
    main(sys.argv[1:])

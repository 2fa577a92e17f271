"""The code location: its public names (asset keys, groups, jobs) are interface; a rename shows up here."""

import os
import subprocess
import sys

MODELS = ("jobs", "job_parts", "job_time_entries", "invoices", "invoice_lines", "quotations", "quotation_lines")
MODELS += ("credit_notes", "credit_note_lines", "customers", "sites")
MODELS += ("users", "activities", "equipment", "job_types", "parts")


def test_on_postgresql_there_is_no_read_copy_and_the_pools_are_per_tenant():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCHROTEAM", "SYNC_"))}
    env["SYNC_WAREHOUSE_URL"] = "postgresql://sync:secret@db.invalid:5432/warehouse"  # never connected to
    code = (
        "from sync_pipelines.definitions import defs\n"
        "keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}\n"
        "print('warehouse/read_copy' in keys, len(keys))\n"
        "print(sorted({a.op.pool for a in defs.assets}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "False 48",
        "['analytics_writer', 'synchroteam_hec_writer', 'synchroteam_writer']",
    ]


def test_definitions_load_without_any_secret_set(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCHROTEAM", "SYNC_"))}
    env["SYNC_DUCKDB_PATH"] = str(tmp_path / "w.duckdb")
    code = "from sync_pipelines.definitions import defs; print(len(defs.resolve_asset_graph().get_all_asset_keys()))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # 17 entities, their reconciliations but the 2 of job types, 16 analytics models, the read copy
    assert out.stdout.strip() == "49"


def test_processes_loading_the_definitions_at_once_neither_race_nor_write_next_to_the_warehouse(tmp_path):
    # two schedules firing together start two processes; dlt writes a pipeline's folder when it is created,
    # and the pipelines that only describe the assets used to share one folder: one process failed to import
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCHROTEAM", "SYNC_"))}
    env["SYNC_DUCKDB_PATH"] = str(tmp_path / "w.duckdb")
    code = "import sync_pipelines.definitions"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True) for _ in range(4)
    ]
    errors = [proc.communicate(timeout=180)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, errors
    assert list(tmp_path.iterdir()) == []  # loading the code location writes nothing next to the warehouse


def test_loading_the_definitions_leaves_the_process_as_it_was():
    # an import assembles definitions and nothing else: the collector runs as usual, and what the process prints
    # at exit (here: an exit handler registered before the import) still reaches its standard error
    code = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('exit handler speaking', file=sys.stderr, flush=True))\n"
        "import sync_pipelines.definitions\n"
        "print(gc.isenabled(), gc.get_freeze_count())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "0"]
    assert "exit handler speaking" in out.stderr

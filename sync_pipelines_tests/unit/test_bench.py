"""`make bench` stays runnable between its runs: its command line parses, it measures what the catalogue holds, and
BENCHMARKS.md's tables are what its report renders (nothing is measured here: no process, no emulator)."""

import json

import pytest

from bench import api_use, dlt_alternatives, report, run
from bench.common import ENTITIES, MAIN, REPO, RESULTS, SCALES
from bench.first_syncs import table_spec
from sync_pipelines.catalogue import ENTITIES as CATALOGUE
from sync_pipelines.catalogue import TENANTS, tenant_entities
from synchroteam_emulator.data import FLOOR


def test_make_bench_takes_a_quick_run_of_chosen_sections_with_more_rounds():
    args = run.parser().parse_args(["--quick", "--phases", "rate_window, per_record", "--rounds", "5"])
    assert args.quick and args.phases == ["rate_window", "per_record"] and args.rounds == 5


def test_make_bench_refuses_a_section_it_does_not_have(capsys):
    with pytest.raises(SystemExit):
        run.parser().parse_args(["--phases", "full,collector"])
    assert "unknown phases ['collector']" in capsys.readouterr().err


def test_the_bench_measures_every_entity_of_every_tenant_of_the_catalogue_at_every_scale():
    catalogue = [(tenant.name, entity.name) for tenant in TENANTS.values() for entity in tenant_entities(tenant)]
    assert [(tenant, entity) for tenant, entity, _ in ENTITIES] == catalogue
    for scale in SCALES.values():
        assert [(tenant, entity) for tenant, sizes in scale.counts.items() for entity in sizes] == catalogue


def test_every_phase_of_the_bench_has_a_name_in_the_report():
    assert set(run.PHASES) == set(report.PHASE_NAMES)


def test_benchmarks_md_holds_the_tables_the_report_renders_from_the_last_full_run():
    results = json.loads((RESULTS / "1x.json").read_text())
    block = f"{report.BEGIN}\n\n{report.render(results)}\n{report.END}"
    assert block in (REPO / "BENCHMARKS.md").read_text(), "run `python -m bench.report bench/results/1x.json --update`"


def test_every_alternative_reads_a_lookup_list_whole_and_the_others_from_their_cursor():
    lookup, dated = table_spec(MAIN.name, "job_types", "jobtype"), table_spec(MAIN.name, "parts", "part")
    assert not lookup["dated"] and dated["dated"]

    def params(spec: dict) -> dict:
        return dlt_alternatives.source_config("http://127.0.0.1:9", spec)["resources"][0]["endpoint"]["params"]

    assert "changedSince" not in params(lookup) and params(dated)["changedSince"]["cursor_path"] == "dateModified"
    assert dlt_alternatives.listed("http://127.0.0.1:9", lookup).incremental is None
    assert dlt_alternatives.listed("http://127.0.0.1:9", dated).incremental is not None


def test_the_look_back_0_rounds_give_a_lookup_list_no_run_config():
    config = api_use.lookback_zero()
    assert "job_types" not in config["synchroteam"] and "job_types" not in config["synchroteam_hec"]
    assert config["synchroteam"]["parts"] == {"lookback_minutes": 0, "revisit_days": 0, "max_records": 0}


def test_every_scale_asks_the_emulator_for_no_fewer_records_than_it_serves():
    for scale in SCALES.values():
        for sizes in scale.counts.values():
            for entity, count in sizes.items():
                assert count >= FLOOR.get(CATALOGUE[entity].resource, 1), (scale.name, entity)

"""What a materialization says, as the asset page shows it: our numbers first, the table as analysts name it."""

import pytest

from sync_pipelines.catalogue import TENANTS


def test_asset_definitions_carry_no_unserializable_dlt_objects_and_name_their_table():
    from dagster import AssetKey

    from sync_pipelines.definitions import defs

    for key in (AssetKey(["synchroteam", "jobs"]), AssetKey(["synchroteam_hec", "invoices_reconciliation"])):
        metadata = dict(defs.resolve_assets_def(key).specs_by_key[key].metadata)
        assert not [name for name in metadata if name.startswith("dagster_dlt/")], metadata
        assert metadata["dagster/table_name"] == f"{key.path[0]}.{key.path[1].removesuffix('_reconciliation')}"


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_entity_specs_are_what_dagster_dlt_makes_of_the_entitys_dlt_resource(destination, monkeypatch, tmp_path):
    """The definitions describe the entity assets from the catalogue, importing no dlt (`assets.entity_spec`):
    each spec must stay what dagster-dlt's `build_dlt_asset_specs` makes of the entity's dlt resource and pipeline
    (its kinds, storage kind and every default), with our key, group, description, tags and table name and
    without its dlt objects. A dagster-dlt upgrade that describes a resource differently fails here."""
    import dlt
    from dagster import AssetKey, AssetSpec
    from dagster_dlt import DagsterDltTranslator, build_dlt_asset_specs
    from dagster_dlt.translator import DltResourceTranslatorData

    from sync_pipelines.catalogue import tenant_entities
    from sync_pipelines.defs.assets import entity_spec
    from sync_pipelines.synchroteam.source import source_from

    monkeypatch.setenv("SYNC_WAREHOUSE_URL", "postgresql://u:p@127.0.0.1:1/db" if destination == "postgres" else "")
    pipeline = dlt.pipeline(
        pipeline_name="describing", destination=getattr(dlt.destinations, destination)(), pipelines_dir=str(tmp_path)
    )

    class Translator(DagsterDltTranslator):  # what the definitions gave dagster-dlt before they stopped using it
        def __init__(self, name: str, description: str, tenant: str, table: str) -> None:
            self.name, self.description, self.tenant, self.table = name, description, tenant, table

        def get_asset_spec(self, data: DltResourceTranslatorData) -> AssetSpec:
            spec = super().get_asset_spec(data)
            return spec.replace_attributes(
                key=AssetKey([self.tenant, self.name]),
                deps=[],
                group_name=self.tenant,
                description=self.description,
                tags={"tenant": self.tenant},
                metadata={**spec.metadata, "dagster/table_name": self.table},
            )

    compared = 0
    for tenant in TENANTS.values():
        for entity in tenant_entities(tenant):
            for reconciliation in (False, True):
                ours = entity_spec(tenant, entity, reconciliation=reconciliation)
                name = entity.name + ("_reconciliation" if reconciliation else "")
                assert ours.key == AssetKey([tenant.name, name])
                translator = Translator(name, ours.description or "", tenant.name, f"{tenant.name}.{entity.name}")
                (theirs,) = build_dlt_asset_specs(source_from(tenant, {entity: None}), pipeline, translator)  # type: ignore[dict-item]
                theirs = theirs.replace_attributes(
                    metadata={k: v for k, v in theirs.metadata.items() if not k.startswith("dagster_dlt/")}
                )
                assert ours == theirs
                assert ours.kinds == {"dlt", destination}
                compared += 1
    assert compared == 2 * sum(len(tenant_entities(t)) for t in TENANTS.values())

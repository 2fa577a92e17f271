"""The freshness sensor: Dagster's, less the entities never loaded (their first sync may still be running)."""

from dagster import AssetKey, AssetMaterialization, DagsterInstance, RunRequest, SkipReason, build_sensor_context

from sync_pipelines.definitions import defs

INVOICES = AssetKey(["synchroteam", "invoices"])


def evaluate(instance: DagsterInstance) -> RunRequest | SkipReason | None:
    (sensor,) = defs.sensors
    context = build_sensor_context(instance=instance, sensor_name=sensor.name, definitions=defs)
    return sensor(context)


def test_an_entity_never_loaded_has_its_freshness_checked_only_after_its_first_sync():
    with DagsterInstance.ephemeral() as instance:
        before = evaluate(instance)  # nothing loaded yet: Dagster's sensor would fail all eight at once
        assert isinstance(before, SkipReason) and "not loaded yet" in before.skip_message

        instance.report_runless_asset_event(AssetMaterialization(INVOICES))  # its first sync ended
        after = evaluate(instance)
        assert isinstance(after, RunRequest)
        assert [key.asset_key for key in after.asset_check_keys or ()] == [INVOICES]

"""Check results outside the run's plan.

The sync jobs select their assets without their checks: Dagster would otherwise plan every check of every
selected asset, and a run that evaluates none of them (one that changed nothing: the analytics tests have nothing new
to test) would end with each reported as skipped, three events per check stored in the run's history and a console
line naming them all. Instead, a step that evaluates checks reports each as an evaluation in the run's event log:
the asset's Checks tab shows it as any other, and a run that evaluates none leaves every check its last result.

A check the run did select (launched on its own, or with its asset from the UI) is yielded, as Dagster's plan
expects.
"""

from collections.abc import Iterable, Iterator
from typing import TypeVar

from dagster import AssetCheckEvaluation, AssetCheckKey, AssetCheckResult, AssetExecutionContext

Result = TypeVar("Result")


def planned_or_logged(context: AssetExecutionContext, results: Iterable[Result]) -> Iterator[Result]:
    """`results`, less the check results the run did not plan: those are logged as evaluations, after the rest,
    so that a check's evaluation follows the materialization it checked in the run's events."""
    unplanned = []
    for result in results:
        if isinstance(result, AssetCheckResult) and _key(result) not in context.selected_asset_check_keys:
            unplanned.append(result)
        else:
            yield result
    for check in unplanned:
        context.log_event(evaluation(check))


def evaluation(result: AssetCheckResult) -> AssetCheckEvaluation:
    """The evaluation Dagster would store for `result`, as a check that blocks nothing; its target is the asset's
    latest materialization, which the UI finds by the evaluation's time."""
    key = _key(result)
    return AssetCheckEvaluation(
        asset_key=key.asset_key,
        check_name=key.name,
        passed=result.passed,
        metadata=result.metadata,
        target_materialization_data=None,
        severity=result.severity,
        description=result.description,
        blocking=False,
    )


def _key(result: AssetCheckResult) -> AssetCheckKey:
    if result.asset_key is None or result.check_name is None:  # ours always name both
        raise ValueError(f"A check result outside the plan must name its asset and check: {result!r}")
    return AssetCheckKey(result.asset_key, result.check_name)

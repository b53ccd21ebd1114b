"""From measurements to the numbers the planner optimises."""

from __future__ import annotations

import math
from collections.abc import Mapping

from athanor.analysis import AnalysisResult, Measurement, analyse
from athanor.config import CampaignConfig, DerivedOutcome
from athanor.store import Outcome


def analyse_all(config: CampaignConfig, measured: list[Measurement]) -> list[AnalysisResult]:
    """Run the campaign's analysis method on each measurement."""
    return [analyse(m, config.analysis[m.kind]) for m in measured if m.kind in config.analysis]


def derive(values: Mapping[str, float], derived: Mapping[str, DerivedOutcome]) -> dict[str, float]:
    """Derived outcomes (products of desirabilities) from measured values."""
    out: dict[str, float] = {}
    for name, spec in derived.items():
        total = 1.0
        for term in spec.product:
            total *= term.of(values[term.outcome])
        out[name] = total
    return out


def stored_outcomes(results: list[AnalysisResult]) -> list[Outcome]:
    """Every analysis outcome as a store row, with its method and parameters."""
    rows = []
    for result in results:
        for name, quantity in result.outcomes.items():
            rows.append(
                Outcome(
                    experiment_id=0,
                    name=name,
                    value=quantity.value,
                    uncertainty=quantity.uncertainty,
                    unit=quantity.unit,
                    method=result.method,
                    method_params=result.params,
                    run_uid=result.source or None,
                )
            )
    return rows


def planner_outcomes(
    config: CampaignConfig, results: list[AnalysisResult]
) -> tuple[dict[str, float], dict[str, float], str]:
    """(outcomes for the planner, every value measured or derived, why not when it failed).

    An experiment whose measurements were rejected or that lacks an outcome the
    objectives need gives an empty first dict and the reason.
    """
    values: dict[str, float] = {}
    for result in results:
        if not result.ok:
            return {}, values, f"{result.method} rejected the measurement: {result.rejected}"
        values.update({k: q.value for k, q in result.outcomes.items()})
    return outcomes_from_values(config, values)


def outcomes_from_values(
    config: CampaignConfig, measured: Mapping[str, float]
) -> tuple[dict[str, float], dict[str, float], str]:
    """(outcomes for the planner, measured and derived values, why not) from measured values."""
    values = dict(measured)
    try:
        values.update(derive(values, config.derived))
    except KeyError as exc:
        return {}, values, f"no measured outcome {exc} for a derived outcome"
    wanted = [o.name for o in config.objectives] + [c.name for c in config.outcome_constraints]
    components = [t.outcome for o in config.planner_objectives() for t in o.product or []]
    outcomes: dict[str, float] = {}
    for name in wanted + components:
        source = config.outcome_source(name)
        if source not in values or not math.isfinite(values[source]):
            return {}, values, f"no finite outcome {source!r} for {name!r}"
        outcomes[name] = values[source]
    return outcomes, values, ""

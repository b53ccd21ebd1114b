"""How close a simulated campaign came to the simulator's true optimum (never used to plan)."""

from __future__ import annotations

from typing import Any

from athanor.config import CampaignConfig
from athanor.planner.space import Continuous, Fixed
from athanor.simulators.materials import RECIPE_SPACE, MaterialsTruth

#: Measured outcome -> the ground truth's name for it.
TRUTH_OF = {"fraction_BaTiO3": "target_fraction", "band_gap_ev": "band_gap_ev"}


def truth_objective(config: CampaignConfig) -> tuple[str, dict[str, float]] | None:
    """The ground truth's objective (and its options) matching the campaign's, if any."""
    if len(config.objectives) != 1:
        return None
    source = config.outcomes.get(config.objectives[0].name, config.objectives[0].name)
    if source in TRUTH_OF:
        return TRUTH_OF[source], {}
    derived = config.derived.get(source)
    if derived is None:
        return None
    terms = {t.outcome: t for t in derived.product}
    gap = terms.get("band_gap_ev")
    if set(terms) == {"fraction_BaTiO3", "band_gap_ev"} and gap and gap.target is not None:
        return "score", {
            "band_gap_target_ev": gap.target,
            "band_gap_tolerance_ev": gap.tolerance or 0.05,
        }
    return None


def recipe_space(config: CampaignConfig) -> dict[str, tuple[float, float]]:
    """The campaign's bounds on the recipe (the truth's defaults for what it does not vary)."""
    space = dict(RECIPE_SPACE)
    for p in config.search_space.parameters:
        if isinstance(p, Continuous) and p.name in space:
            space[p.name] = (p.low, p.high)
        elif isinstance(p, Fixed) and p.name in space:
            value = float(p.value)
            space[p.name] = (value, value + 1e-9)
    return space


def compare_with_truth(
    config: CampaignConfig, truth: MaterialsTruth, params: dict[str, Any]
) -> str:
    """One line: the true value of the recipe found, against the true optimum."""
    objective = truth_objective(config)
    if objective is None:
        return "no ground-truth comparison for this campaign's objective"
    key, options = objective
    space = recipe_space(config)
    recipe = {name: float(params.get(name, sum(space[name]) / 2)) for name in RECIPE_SPACE}
    found = truth.evaluate(recipe, **options)[key]
    best_recipe, best = truth.optimum(space, objective=key, **options)
    ratio = found / best if best else float("nan")
    where = ", ".join(f"{k}={v:.4g}" for k, v in best_recipe.items())
    return (
        f"simulator truth: the recipe found scores {found:.4g}; the true optimum is "
        f"{best:.4g} ({where}): {ratio:.1%} of it"
    )

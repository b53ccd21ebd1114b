"""What an experiment costs the campaign: its lab hours, for cost-aware planning."""

from __future__ import annotations

from typing import Any

from athanor.campaign.dryrun import dry_run
from athanor.config import CampaignConfig
from athanor.lab_config import LabConfig
from athanor.planner.planner import CostFunction


def cost_planning(
    config: CampaignConfig, lab: LabConfig
) -> tuple[dict[str, Any], CostFunction | None]:
    """The planner settings and cost function for the campaign's ``planner.cost``.

    The budget is ``budget.max_lab_hours`` furnace hours for each of the lab's furnaces
    (they anneal at once); an experiment's cost is its lab hours: by its dry run
    (``dry_run``: ramp, dwell, cooling, moves and measurements) or learnt from the hours
    the experiments took (``measured``: no cost function; ``Planner.ingest(cost=...)``).
    ``({}, None)`` for a cost-blind campaign.
    """
    if config.planner.cost == "none":
        return {}, None
    assert config.budget.max_lab_hours is not None  # the config's validation says so
    furnaces = sum(i.kind == "furnace" for i in lab.instruments.values())
    settings = {"cost": {"budget": config.budget.max_lab_hours * max(furnaces, 1)}}
    if config.planner.cost == "measured":
        return settings, None

    def lab_hours(params: dict[str, Any]) -> float:
        return dry_run(config.protocol, {**params, **config.protocol_args}, lab).duration / 3600

    return settings, lab_hours

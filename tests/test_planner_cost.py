"""Cost-aware planning: improvement per unit of predicted cost, cooled as the budget goes."""

from __future__ import annotations

import json

import pytest
from campaign_files import write_campaign
from test_planner import FAST, MAXIMIZE_F, SQUARE

from athanor.campaign.costs import cost_planning
from athanor.config import load_campaign
from athanor.config_files import ConfigError
from athanor.lab_config import load_lab
from athanor.planner import Planner, PlannerError
from athanor.planner.cost import cooling


def only_y(p: dict) -> float:
    """An objective that ``x`` does not change: equal improvement at every ``x``."""
    return -((p["y"] - 0.7) ** 2)


def cost(p: dict) -> float:
    """20 times dearer at ``x = 1`` than at ``x = 0``."""
    return 20.0 ** p["x"]


def aware(**kw) -> Planner:
    settings = {**FAST, "cost": {"budget": 200}}
    return Planner(SQUARE, MAXIMIZE_F, seed=3, n_initial=4, settings=settings, **kw)


def run(planner: Planner, steps: int, measured: bool = False) -> list:
    suggestions = []
    for _ in range(steps):
        (s,) = planner.suggest(1)
        planner.ingest(s.params, {"f": only_y(s.params)}, cost=cost(s.params) if measured else None)
        suggestions.append(s)
    return suggestions


def test_cooling_goes_from_one_after_the_design_to_zero_once_spent():
    assert cooling(100, spent=20, initial=20) == 1.0
    assert cooling(100, spent=60, initial=20) == 0.5
    assert cooling(100, spent=150, initial=20) == 0.0
    assert cooling(10, spent=20, initial=20) == 0.0


def test_cost_aware_planning_picks_cheaper_points_when_improvement_is_equal():
    blind = Planner(SQUARE, MAXIMIZE_F, seed=3, n_initial=4, settings=FAST)
    blind_costs = [cost(s.params) for s in run(blind, 10)[4:]]
    chosen = run(aware(cost=cost), 10)[4:]
    assert all(s.phase == "model" and "cost-cooled" in s.model for s in chosen)
    assert sum(s.predicted_cost for s in chosen) < 0.5 * sum(blind_costs)


def test_provenance_carries_the_predicted_cost():
    planner = aware(cost=cost)
    suggestions = run(planner, 6)
    assert all(s.predicted_cost == pytest.approx(cost(s.params)) for s in suggestions)
    assert json.loads(json.dumps(suggestions[-1].to_dict()))["predicted_cost"] > 0
    blind = Planner(SQUARE, MAXIMIZE_F, seed=3, n_initial=4, settings=FAST)
    assert [s.predicted_cost for s in run(blind, 6)] == [None] * 6
    assert "cost" not in blind.suggest(1)[0].model


def test_costs_are_learnt_from_measured_ones_and_survive_a_restart():
    planner = aware()
    (first,) = planner.suggest(1)
    assert first.predicted_cost is None  # nothing to learn from yet
    planner.ingest(first.params, {"f": only_y(first.params)}, cost=cost(first.params))
    run(planner, 7, measured=True)
    (s,) = planner.suggest(1)
    assert "cost-cooled" in s.model
    assert s.predicted_cost == pytest.approx(cost(s.params), rel=0.3)
    restored = Planner.from_state(json.loads(json.dumps(planner.state())))
    assert restored.suggest(1) == planner.suggest(1)


def test_bad_costs_are_refused():
    with pytest.raises(PlannerError, match=r"cost: a cost function needs settings.cost"):
        Planner(SQUARE, MAXIMIZE_F, cost=cost)
    with pytest.raises(PlannerError, match=r"cost: -1 is not allowed; give a finite number"):
        aware().ingest({"x": 0.1, "y": 0.2}, {"f": 0.0}, cost=-1)
    with pytest.raises(PlannerError, match=r"settings.cost.budget: .*greater than 0"):
        Planner(SQUARE, MAXIMIZE_F, settings={"cost": {"budget": 0}})
    planner = aware(cost=lambda p: 0.0)
    with pytest.raises(PlannerError, match=r"the cost function gave 0\.0"):
        planner.suggest(1)


def test_campaign_cost_option_needs_lab_hours_and_names_the_line(tmp_path):
    path = write_campaign(tmp_path, planner={"cost": "dry_run"})
    with pytest.raises(ConfigError, match=r"mini.yaml:\d+: planner: cost: 'dry_run' plans by lab"):
        load_campaign(path)
    path = write_campaign(tmp_path, planner={"cost": "hours"})
    with pytest.raises(ConfigError, match=r"planner.cost: 'hours' is not allowed"):
        load_campaign(path)


def test_dry_run_cost_is_the_protocols_lab_hours(tmp_path):
    budget = {"max_experiments": 10, "max_lab_hours": 50}
    config = load_campaign(write_campaign(tmp_path, planner={"cost": "dry_run"}, budget=budget))
    lab = load_lab(config.lab_path())
    settings, lab_hours = cost_planning(config, lab)
    assert settings == {"cost": {"budget": 50 * 4}}  # four furnaces
    assert lab_hours is not None
    recipe = {"temperature_c": 900, "ramp_c_per_min": 10, "ba_ti_ratio": 1, "dopant": 0.1}
    short, long = lab_hours({**recipe, "dwell_h": 1}), lab_hours({**recipe, "dwell_h": 5})
    assert long - short == pytest.approx(4.0)
    assert short > 1 + 2 * 875 / 10 / 60  # the dwell, ramps up and down, and measurements
    blind = load_campaign(write_campaign(tmp_path, "blind"))
    assert cost_planning(blind, lab) == ({}, None)

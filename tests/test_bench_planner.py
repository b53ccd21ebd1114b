"""The planner benchmark keeps every run, so long comparisons can be split and resumed."""

from __future__ import annotations

import argparse
import math
from dataclasses import replace

import pytest

from benchmarks import bench_planner
from benchmarks.planner_methods import BEFORE_ISSUE_18, METHODS
from benchmarks.planner_problems import branin as branin_function
from benchmarks.planner_problems import synthetic


def branin_value(p: dict) -> float:
    return branin_function(p["x1"], p["x2"])


@pytest.fixture
def branin(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_planner, "CACHE", tmp_path)
    problem = next(p for p in synthetic(quick=False) if p.name == "branin")
    return replace(problem, budget=6)


def test_runs_are_cached_per_seed_and_not_run_again(branin, tmp_path) -> None:
    first = bench_planner.run_problem(branin, ["random"], range(0, 2), quick=False)
    assert sorted(p.name for p in (tmp_path / "branin" / "random").iterdir()) == [
        "seed00.json",
        "seed01.json",
    ]
    again = bench_planner.run_problem(branin, ["random"], range(0, 3), quick=False)
    assert again["runs"]["random"][:2] == first["runs"]["random"]
    assert (tmp_path / "branin" / "random" / "seed02.json").is_file()


def test_a_cached_run_with_another_budget_is_run_again(branin) -> None:
    bench_planner.run_problem(branin, ["random"], range(1), quick=False)
    longer = replace(branin, budget=8)
    result = bench_planner.run_problem(longer, ["random"], range(1), quick=False)
    assert len(result["runs"]["random"][0]["regret"]) == 8


def test_quick_runs_leave_the_cache_alone(branin, tmp_path) -> None:
    bench_planner.run_problem(branin, ["random"], range(1), quick=True)
    assert not any(tmp_path.iterdir())


def test_seeds_are_a_count_or_a_range() -> None:
    assert bench_planner.seed_range("20") == range(20)
    assert bench_planner.seed_range("10-19") == range(10, 20)
    with pytest.raises(argparse.ArgumentTypeError, match="'ten' is neither a count"):
        bench_planner.seed_range("ten")


def test_plain_botorch_ei_chooses_untried_pool_rows(branin) -> None:
    grid = [{"x1": -5 + 1.5 * i, "x2": 1.5 * j} for i in range(11) for j in range(11)]
    pool = replace(branin, pool=grid, ax=False)
    runner = METHODS["botorch-ei"](pool, 0)
    asked = []
    for _ in range(15):
        params, handle = runner.ask([])
        asked.append(params)
        runner.tell(handle, params, pool.evaluate(params, None))
    assert all(p in grid for p in asked)
    assert len({tuple(p.values()) for p in asked}) == 15
    assert len(runner.latencies) == 10  # model-based after 5 random rows
    # among the best 5 of 121 rows: random picks of 15 reach that only 1 time in 2
    assert min(branin_value(p) for p in asked) <= sorted(branin_value(p) for p in grid)[4]


def test_latency_compares_the_old_settings_with_the_defaults_in_one_run() -> None:
    result = bench_planner.latency_scenario(quick=True)
    assert list(result["cases"]) == list(bench_planner.LATENCY_CASES)
    assert bench_planner.LATENCY_CASES["before (#18)"] == BEFORE_ISSUE_18
    assert all(len(r["times"]) == result["calls"] for r in result["cases"].values())


def test_cost_problems_spend_their_budget_in_cost_units(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(bench_planner, "CACHE", tmp_path)
    problem = next(p for p in synthetic(quick=False) if p.name == "branin_cost")
    problem = replace(problem, budget=40)
    result = bench_planner.run_problem(problem, ["random"], range(2), quick=False)
    for run in result["runs"]["random"]:
        costs = run["cost"]
        assert len(costs) == len(run["regret"]) and costs[-2] < 40 <= costs[-1]
        assert math.isnan(bench_planner.regret_at_cost(run, costs[0] / 2))
        assert bench_planner.regret_at_cost(run, costs[-1]) == run["regret"][-1]
    bench_planner.report(problem, result)  # a table in cost units

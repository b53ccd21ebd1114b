"""The planner benchmark keeps every run, so long comparisons can be split and resumed."""

from __future__ import annotations

import argparse
from dataclasses import replace

import pytest

from benchmarks import bench_planner
from benchmarks.planner_problems import synthetic


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

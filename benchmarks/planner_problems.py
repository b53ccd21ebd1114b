"""Planner benchmark problems: test functions, lab-like spaces, the simulated lab, real pools.

Every problem reports the true value of each experiment "larger is better" (``true``),
from which the runner computes regret against the known optimum. ``evaluate`` returns the
outcomes the planner sees (noisy where the problem is noisy), or None for a failure.
A problem with a ``cost`` has its budget in cost units: experiments are issued until
their costs add up to it.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]

Params = dict[str, Any]


@dataclass
class Problem:
    name: str
    space: dict[str, Any]
    objectives: list[dict[str, Any]]
    #: outcomes the planner sees, or None when the experiment fails
    evaluate: Callable[[Params, np.random.Generator], dict[str, float] | None]
    #: the true value ("larger is better") of a completed experiment; None if infeasible
    true: Callable[[Params], float | None]
    optimum: float
    threshold: float  # regret counted as "reached"
    budget: int
    quick_budget: int
    outcome_constraints: list[dict[str, Any]] = field(default_factory=list)
    pool: list[Params] | None = None
    workers: int = 1
    #: for several objectives: hypervolume of the true values, replaces ``true``
    hypervolume: Callable[[list[Params]], float] | None = None
    ax: bool = True  # whether the Ax Client can express it
    #: README's exact random medians (experiments to top 5 %, to top 1 %)
    random_medians: tuple[int, int] | None = None
    top1: float | None = None
    note: str = ""
    #: the cost of an experiment; with one, ``budget`` is in cost units
    cost: Callable[[Params], float] | None = None
    max_experiments: int = 200  # with a cost: at most this many experiments


def cont(name: str, low: float, high: float, **kw: Any) -> dict[str, Any]:
    return {"name": name, "type": "continuous", "low": low, "high": high, **kw}


def branin(x1: float, x2: float) -> float:
    return (
        (x2 - 5.1 / (4 * math.pi**2) * x1**2 + 5 / math.pi * x1 - 6) ** 2
        + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1)
        + 10
    )


BRANIN_MIN = 0.397887357729739
BRANIN_SPACE = {"parameters": [cont("x1", -5, 10), cont("x2", 0, 15)]}

_H_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
HARTMANN_MIN = -3.32236801141551


def hartmann6(x: np.ndarray) -> float:
    return float(-(_H_ALPHA * np.exp(-(_H_A * (x - _H_P) ** 2).sum(axis=1))).sum())


H6_SPACE = {"parameters": [cont(f"x{i}", 0, 1) for i in range(6)]}


def _h6(p: Params) -> float:
    return hartmann6(np.array([p[f"x{i}"] for i in range(6)]))


def synthetic(quick: bool) -> list[Problem]:
    """Test functions and stress variants."""
    b = lambda p: -branin(p["x1"], p["x2"])  # noqa: E731
    br = Problem(
        "branin",
        BRANIN_SPACE,
        [{"name": "f", "goal": "minimize"}],
        lambda p, r: {"f": -b(p)},
        b,
        -BRANIN_MIN,
        0.05,
        30,
        10,
    )
    out = [br]
    h6 = Problem(
        "hartmann6",
        H6_SPACE,
        [{"name": "f", "goal": "minimize"}],
        lambda p, r: {"f": _h6(p)},
        lambda p: -_h6(p),
        -HARTMANN_MIN,
        0.05,
        50,
        14,
    )
    out.append(h6)
    out.append(
        Problem(
            "hartmann6_noisy",
            H6_SPACE,
            [{"name": "f", "goal": "minimize"}],
            lambda p, r: {"f": _h6(p) + 0.1 * r.normal()},
            lambda p: -_h6(p),
            -HARTMANN_MIN,
            0.1,
            50,
            14,
            note="observation noise sd 0.1; regret of the true values tried",
        )
    )

    def disc(p: Params) -> float:
        return (p["x1"] - 2.5) ** 2 + (p["x2"] - 7.5) ** 2

    g1, g2 = np.meshgrid(np.linspace(-5, 10, 1501), np.linspace(0, 15, 1501))
    grid = (
        [
            -branin(a, c)
            for a, c in zip(g1.ravel(), g2.ravel(), strict=True)
            if (a - 2.5) ** 2 + (c - 7.5) ** 2 <= 50
        ]
        if not quick
        else [-BRANIN_MIN]
    )
    out.append(
        Problem(
            "constrained",
            BRANIN_SPACE,
            [{"name": "f", "goal": "minimize"}],
            lambda p, r: {"f": -b(p), "c": disc(p)},
            lambda p: b(p) if disc(p) <= 50 else None,
            max(grid),
            0.05,
            30,
            10,
            outcome_constraints=[{"name": "c", "op": "<=", "bound": 50}],
            note="Branin subject to (x1-2.5)^2 + (x2-7.5)^2 <= 50 (an outcome constraint)",
        )
    )
    out.append(composition_problem())
    out.append(mixed_problem())
    out.append(two_objective_problem())
    out.append(
        Problem(
            "branin_failures",
            BRANIN_SPACE,
            [{"name": "f", "goal": "minimize"}],
            lambda p, r: None if p["x1"] < 0 else {"f": -b(p)},
            lambda p: None if p["x1"] < 0 else b(p),
            -BRANIN_MIN,
            0.05,
            30,
            10,
            note="experiments with x1 < 0 (a third of the space, one of three optima) fail",
        )
    )
    out.append(simulated_lab_problem())
    out.append(
        replace(
            h6,
            name="hartmann6_async4",
            workers=4,
            note="4 workers, durations U(0.5, 1.5); running experiments are pending",
        )
    )
    out.append(
        replace(
            br,
            name="branin_cost",
            budget=150,
            quick_budget=60,
            cost=lambda p: COST_SPAN ** ((p["x1"] + 5) / 15),
            note=f"cost {COST_SPAN:g}^((x1+5)/15), 1 to {COST_SPAN:g}: the three minima cost "
            "1.5, 5.1 and 17.8, a uniform point 6.3 on average",
        )
    )
    out.append(
        replace(
            h6,
            name="hartmann6_cost",
            threshold=0.1,
            budget=150,
            quick_budget=60,
            max_experiments=100,
            cost=lambda p: COST_SPAN ** ((p["x0"] + p["x5"]) / 2),
            note=f"cost {COST_SPAN:g}^((x0+x5)/2), 1 to {COST_SPAN:g}: the minimum costs 3.6, "
            "a uniform point 6.3 on average",
        )
    )
    return out


#: How much the most expensive experiment of a cost problem costs against the cheapest.
COST_SPAN = 20.0


_C_BEST = np.array([0.15, 0.45, 0.3, 0.1])
_C_LOCAL = np.array([0.7, 0.1, 0.1, 0.1])


def _composition_value(p: Params) -> float:
    c = np.array([p[k] for k in ("a", "b", "c", "d")])
    t = p["temperature"]
    main = math.exp(-12 * ((c - _C_BEST) ** 2).sum() - ((t - 900) / 120) ** 2)
    local = 0.6 * math.exp(-30 * ((c - _C_LOCAL) ** 2).sum() - ((t - 700) / 80) ** 2)
    return main + local


def composition_problem() -> Problem:
    space = {
        "parameters": [cont(k, 0, 1) for k in "abcd"] + [cont("temperature", 600, 1100)],
        "compositions": [{"name": "mix", "components": list("abcd"), "total": 1}],
    }
    best = _composition_value(dict(zip("abcd", _C_BEST, strict=True), temperature=900))
    return Problem(
        "composition",
        space,
        [{"name": "f", "goal": "maximize"}],
        lambda p, r: {"f": _composition_value(p)},
        _composition_value,
        best,
        0.05,
        40,
        12,
        note="4 fractions summing to 1 plus a temperature; a second, lower optimum",
    )


_SHIFT = {"oxide": 0.0, "nitrate": 0.5, "acetate": 0.2}


def _mixed_value(p: Params) -> float:
    return (
        _SHIFT[p["precursor"]]
        - 0.05 * (p["passes"] - 4) ** 2
        - branin(-5 + 15 * p["u"], 15 * p["v"]) / 50
    )


def mixed_problem() -> Problem:
    space = {
        "parameters": [
            cont("u", 0, 1),
            cont("v", 0, 1),
            {"name": "passes", "type": "integer", "low": 1, "high": 6},
            {"name": "precursor", "type": "categorical", "values": list(_SHIFT)},
        ]
    }
    return Problem(
        "mixed",
        space,
        [{"name": "f", "goal": "maximize"}],
        lambda p, r: {"f": _mixed_value(p)},
        _mixed_value,
        0.5 - BRANIN_MIN / 50,
        0.02,
        40,
        12,
        note="a categorical precursor, an integer number of passes, two continuous",
    )


def _branin_currin(p: Params) -> tuple[float, float]:
    x0, x1 = p["x"], p["y"]
    f1 = branin(15 * x0 - 5, 15 * x1)
    f2 = (
        (1 - math.exp(-1 / (2 * x1 + 1e-12)))
        * (2300 * x0**3 + 1900 * x0**2 + 2092 * x0 + 60)
        / (100 * x0**3 + 500 * x0**2 + 4 * x0 + 20)
    )
    return f1, f2


def two_objective_problem() -> Problem:
    ref = np.array([18.0, 6.0])  # BoTorch's BraninCurrin reference point (minimisation)

    def hv(ps: list[Params]) -> float:
        pts = np.array([_branin_currin(p) for p in ps]).reshape(-1, 2)
        pts = pts[(pts < ref).all(axis=1)]
        if not len(pts):
            return 0.0
        pts = pts[np.argsort(pts[:, 0])]
        front: list[tuple[float, float]] = []
        for a, c in pts:
            if not front or c < front[-1][1]:
                front.append((a, c))
        xs = [a for a, _ in front] + [ref[0]]
        area = sum((xs[j + 1] - xs[j]) * (ref[1] - front[j][1]) for j in range(len(front)))
        return float(area)

    optimum = 59.36011874867746
    return Problem(
        "two_objectives",
        {"parameters": [cont("x", 0, 1), cont("y", 0, 1)]},
        [{"name": "f1", "goal": "minimize"}, {"name": "f2", "goal": "minimize"}],
        lambda p, r: dict(zip(("f1", "f2"), _branin_currin(p), strict=True)),
        lambda p: None,
        optimum,
        0.1 * optimum,
        30,
        10,
        hypervolume=hv,
        note="BraninCurrin, regret = 59.36 - hypervolume (reference point 18, 6); "
        "threshold: within 10 % of the optimal hypervolume",
    )


def simulated_lab_problem() -> Problem:
    """The demo campaign's search on the simulated lab's ground truth, 4 furnaces at once.

    The planner sees the BaTiO3 fraction and band gap with the noise of their analyses
    (sd 0.02 and 0.01 eV) and the demo's score made of them; athanor models the two and
    combines them (a composite objective), the other methods optimise the score.
    """
    import yaml

    from athanor.planner.space import Objective
    from athanor.simulators.materials import MaterialsTruth

    demo = yaml.safe_load((REPO / "lab_configs" / "campaigns" / "demo.yaml").read_text())
    space = demo["search_space"]
    product = demo["derived"]["score"]["product"]
    objective = Objective(name="score", goal="maximize", product=product)
    gap = {t["outcome"]: t for t in product}["band_gap_ev"]
    truth = MaterialsTruth(seed=0)
    kw = {"band_gap_target_ev": gap["target"], "band_gap_tolerance_ev": gap["tolerance"]}

    def evaluate(p: Params, r: np.random.Generator) -> dict[str, float]:
        out = truth.evaluate(p, **kw)
        measured = {
            "fraction_BaTiO3": float(np.clip(out["target_fraction"] + 0.02 * r.normal(), 0, 1)),
            "band_gap_ev": out["band_gap_ev"] + 0.01 * r.normal(),
        }
        return {"score": objective.value(measured), **measured}

    bounds = {q["name"]: (q["low"], q["high"]) for q in space["parameters"]}
    return Problem(
        "batio3_sim",
        space,
        [objective.model_dump(exclude_defaults=True)],
        evaluate,
        lambda p: float(truth.evaluate(p, **kw)["score"]),
        truth.optimum(bounds, **kw)[1],
        0.05,
        40,
        12,
        workers=4,
        note="the demo campaign's 5-dimensional recipe search on the simulated lab's "
        "ground truth; 4 furnaces, running experiments pending; analysis noise on the "
        "outcomes; athanor-direct models the score itself instead of its two outcomes",
    )


# ------------------------------------------------------------------------- datasets


def datasets_dir() -> Path | None:
    """The datasets folder: ``<repo>/../shared/datasets`` (CI), ``<repo>/shared/datasets``
    or ``$ATHANOR_DATASETS``."""
    candidates = [
        os.environ.get("ATHANOR_DATASETS"),
        REPO.parent / "shared" / "datasets",
        REPO / "shared" / "datasets",
    ]
    for c in candidates:
        if c and (Path(c) / "p3ht_cnt.csv").is_file():
            return Path(c)
    return None


_DATASETS = {
    # file: (objective column, integer columns, random medians (top 5 %, top 1 %), budget)
    "p3ht_cnt.csv": ("Conductivity (measured) (S/cm)", (), (13, 52), 60),
    "crossed_barrel.csv": ("toughness", ("n",), (14, 66), 70),
    "autoam.csv": ("Score", (), (13, 50), 50),
}


def _ident(name: str) -> str:
    return re.sub(r"\W+", "_", name.split("(")[0].strip()).strip("_").lower()


def dataset_problem(folder: Path, file: str) -> Problem:
    """Pool-based optimisation on one table: unique input rows, replicates averaged."""
    target, integers, medians, budget = _DATASETS[file]
    with open(folder / file, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    inputs = [c for c in rows[0] if c != target]
    names = {c: _ident(c) for c in inputs}
    groups: dict[tuple[float, ...], list[float]] = {}
    for r in rows:
        groups.setdefault(tuple(float(r[c]) for c in inputs), []).append(float(r[target]))
    pool = [
        {names[c]: (int(v) if c in integers else v) for c, v in zip(inputs, k, strict=True)}
        for k in groups
    ]
    value = {
        tuple(sorted(p.items())): float(np.mean(v))
        for p, v in zip(pool, groups.values(), strict=True)
    }
    params = []
    for c in inputs:
        col = [p[names[c]] for p in pool]
        kind = "integer" if c in integers else "continuous"
        params.append({"name": names[c], "type": kind, "low": min(col), "high": max(col)})
    ordered = sorted(value.values(), reverse=True)
    top5 = ordered[math.ceil(0.05 * len(ordered)) - 1]
    top1 = ordered[math.ceil(0.01 * len(ordered)) - 1]
    true = lambda p: value[tuple(sorted(p.items()))]  # noqa: E731
    return Problem(
        file.removesuffix(".csv"),
        {"parameters": params},
        [{"name": "y", "goal": "maximize"}],
        lambda p, r: {"y": true(p)},
        true,
        ordered[0],
        ordered[0] - top5,
        budget,
        15,
        pool=pool,
        ax=False,
        random_medians=medians,
        top1=top1,
        note=f"pool of {len(pool)} unique rows; threshold = top 5 % ({top5:.4g}); "
        f"top 1 % = {top1:.4g}",
    )


def datasets() -> tuple[list[Problem], str]:
    folder = datasets_dir()
    if folder is None:
        return [], (
            "datasets skipped: no p3ht_cnt.csv in <repo>/../shared/datasets, "
            "<repo>/shared/datasets or $ATHANOR_DATASETS"
        )
    return [dataset_problem(folder, f) for f in _DATASETS], f"datasets from {folder}"

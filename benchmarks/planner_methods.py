"""The methods compared: athanor's planner, uniform random, scrambled Sobol, Ax ``Client``.

Each is asked for one experiment at a time (``ask(pending)``) and told its result
(``tell``: outcomes, or None for a failed experiment).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

import numpy as np

from athanor.planner import Planner
from athanor.planner.design import SobolDesign
from benchmarks.planner_problems import Params, Problem

try:
    import ax  # noqa: F401

    HAVE_AX = True
except ImportError:  # the 'bench' extra is not installed
    HAVE_AX = False


class Athanor:
    name = "athanor"

    def __init__(self, problem: Problem, seed: int, **planner: Any) -> None:
        self.planner = Planner(
            problem.space,
            problem.objectives,
            problem.outcome_constraints,
            seed=seed,
            pool=problem.pool,
            **planner,
        )
        self.latencies: list[float] = []

    def ask(self, pending: list[Params]) -> tuple[Params, Any]:
        start = time.perf_counter()
        (s,) = self.planner.suggest(1, pending=pending)
        if s.phase == "model":
            self.latencies.append(time.perf_counter() - start)
        return s.params, None

    def tell(self, handle: Any, params: Params, outcomes: dict[str, float] | None) -> None:
        if outcomes is None:
            self.planner.ingest(params, status="failed")
        else:
            self.planner.ingest(params, outcomes)


#: The planner's settings before issue 18 (``PlannerSettings`` names them).
BEFORE_ISSUE_18 = {
    "refit_growth": 0.0,
    "outcome_transform": "raw",
    "batch": "greedy",
    "pool_design": "random",
}


class AthanorCost(Athanor):
    """athanor planning by cost (the problem's cost function, its budget)."""

    name = "athanor-cost"

    def __init__(self, problem: Problem, seed: int) -> None:
        if problem.cost is None:
            raise ValueError("athanor-cost runs problems with a cost")
        settings = {"cost": {"budget": problem.budget}}
        super().__init__(problem, seed, settings=settings, cost=problem.cost)


class AthanorBefore(Athanor):
    """athanor with the settings it had before issue 18, for before/after tables."""

    name = "athanor-before"

    def __init__(self, problem: Problem, seed: int) -> None:
        super().__init__(problem, seed, settings=BEFORE_ISSUE_18)


class AthanorEvidence(Athanor):
    """athanor with the outcome transform chosen by leave-one-out evidence and the pool's
    initial design stratified by k-means clusters (options, off by default)."""

    name = "athanor-loo"

    def __init__(self, problem: Problem, seed: int) -> None:
        settings = {"outcome_transform": "auto", "pool_design": "clusters"}
        super().__init__(problem, seed, settings=settings)


class AthanorDirect(Athanor):
    """athanor modelling a composite objective's value itself, not its outcomes."""

    name = "athanor-direct"

    def __init__(self, problem: Problem, seed: int) -> None:
        direct = [{k: v for k, v in o.items() if k != "product"} for o in problem.objectives]
        super().__init__(replace(problem, objectives=direct), seed)


class Sobol(Athanor):
    """The planner's own constraint-respecting scrambled Sobol design, all the way."""

    name = "sobol"

    def __init__(self, problem: Problem, seed: int) -> None:
        super().__init__(problem, seed, n_initial=10**9)


class Random:
    """Uniform random points (rejection for constraints) or random untried pool rows."""

    name = "random"

    def __init__(self, problem: Problem, seed: int) -> None:
        self.planner = Planner(problem.space, problem.objectives, pool=problem.pool)
        self.design = SobolDesign(self.planner.encoder, seed)
        self.rng = np.random.default_rng(10_000 + seed)
        self.pool = problem.pool
        self.tried: set[int] = set()
        self.latencies: list[float] = []

    def ask(self, pending: list[Params]) -> tuple[Params, Any]:
        if self.pool is not None:
            i = int(self.rng.choice(sorted(set(range(len(self.pool))) - self.tried)))
            self.tried.add(i)
            return self.pool[i], None
        enc = self.planner.encoder
        while True:
            rows = self.design.map(self.rng.random((64, self.design.n_coords)))
            ok = rows[enc.feasible(rows)]
            if len(ok):
                return enc.decode(ok[0]), None

    def tell(self, handle: Any, params: Params, outcomes: dict[str, float] | None) -> None:
        pass


class BotorchEI:
    """Plain BoTorch on a pool: ``SingleTaskGP`` with its default transforms, fitted by
    ``fit_gpytorch_mll``, ``LogExpectedImprovement`` at the best value seen, maximised
    over the untried rows; 5 random rows first (as Ax's initial design)."""

    name = "botorch-ei"

    def __init__(self, problem: Problem, seed: int) -> None:
        if problem.pool is None or len(problem.objectives) != 1:
            raise ValueError("botorch-ei runs pool problems with one objective")
        encoder = Planner(problem.space, problem.objectives, pool=problem.pool).encoder
        self.pool = problem.pool
        self.X = np.array([encoder.encode(encoder.check(row)) for row in problem.pool])
        self.objective = problem.objectives[0]
        self.rng = np.random.default_rng(20_000 + seed)
        self.tried: list[int] = []
        self.y: list[float] = []
        self.latencies: list[float] = []

    def ask(self, pending: list[Params]) -> tuple[Params, Any]:
        import torch
        from botorch.acquisition import LogExpectedImprovement
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from botorch.models.transforms import Normalize, Standardize
        from gpytorch.mlls import ExactMarginalLogLikelihood

        untried = np.setdiff1d(np.arange(len(self.pool)), self.tried)
        if len(self.y) < 5:
            i = int(self.rng.choice(untried))
        else:
            start = time.perf_counter()
            sign = -1.0 if self.objective["goal"] == "minimize" else 1.0
            X = torch.as_tensor(self.X[self.tried])
            Y = sign * torch.as_tensor(self.y, dtype=torch.float64).unsqueeze(-1)
            model = SingleTaskGP(
                X, Y, input_transform=Normalize(X.shape[-1]), outcome_transform=Standardize(1)
            )
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
            acqf = LogExpectedImprovement(model, best_f=Y.max())
            with torch.no_grad():
                values = acqf(torch.as_tensor(self.X[untried]).unsqueeze(1))
            i = int(untried[int(values.argmax())])
            self.latencies.append(time.perf_counter() - start)
        self.tried.append(i)
        return self.pool[i], None

    def tell(self, handle: Any, params: Params, outcomes: dict[str, float] | None) -> None:
        if outcomes is None:
            raise ValueError("botorch-ei runs problems without failures")
        self.y.append(outcomes[self.objective["name"]])


class Ax:
    """Ax ``Client`` with its default generation strategy."""

    name = "ax"

    def __init__(self, problem: Problem, seed: int) -> None:
        from ax import ChoiceParameterConfig, Client, RangeParameterConfig
        from ax.api.configs import DerivedParameterConfig

        self.client = Client(random_seed=seed)
        for name in list(logging.root.manager.loggerDict):
            if name.startswith("ax"):
                logging.getLogger(name).setLevel(logging.WARNING)
        space = problem.space
        derived = {g["components"][-1]: g for g in space.get("compositions", [])}
        params: list[Any] = []
        constraints = list(space.get("constraints", []))
        for p in space["parameters"]:
            if p["name"] in derived:
                g = derived[p["name"]]
                others = " - ".join(g["components"][:-1])
                params.append(
                    DerivedParameterConfig(
                        name=p["name"],
                        expression_str=f"{g['total']} - {others}",
                        parameter_type="float",
                    )
                )
                rest = " + ".join(g["components"][:-1])
                constraints.append(f"{rest} <= {g['total'] - p['low']}")
                constraints.append(f"{rest} >= {g['total'] - p['high']}")
            elif p["type"] in ("continuous", "integer"):
                params.append(
                    RangeParameterConfig(
                        name=p["name"],
                        bounds=(p["low"], p["high"]),
                        parameter_type="float" if p["type"] == "continuous" else "int",
                        scaling="log" if p.get("log") else None,
                    )
                )
            else:
                params.append(
                    ChoiceParameterConfig(
                        name=p["name"],
                        values=p["values"],
                        parameter_type="str" if isinstance(p["values"][0], str) else "float",
                        is_ordered=p["type"] == "ordinal",
                    )
                )
        self.client.configure_experiment(parameters=params, parameter_constraints=constraints)
        sign = {"maximize": "", "minimize": "-"}
        objective = ", ".join(sign[o["goal"]] + o["name"] for o in problem.objectives)
        self.client.configure_optimization(
            objective=objective,
            outcome_constraints=[
                f"{c['name']} {c['op']} {c['bound']}" for c in problem.outcome_constraints
            ],
        )
        self.objectives = problem.objectives
        self.constraints = problem.outcome_constraints
        self.latencies: list[float] = []
        self._asked = 0

    def ask(self, pending: list[Params]) -> tuple[Params, Any]:
        start = time.perf_counter()
        trials = self.client.get_next_trials(max_trials=1)
        if not trials:
            raise RuntimeError("Ax generated no trial")
        ((index, params),) = trials.items()
        self._asked += 1
        if self._asked > 5:  # Ax's default initial design is 5 Sobol trials
            self.latencies.append(time.perf_counter() - start)
        return dict(params), index

    def tell(self, handle: Any, params: Params, outcomes: dict[str, float] | None) -> None:
        if outcomes is None:
            self.client.mark_trial_failed(handle)
        else:
            known = {o["name"] for o in self.objectives} | {c["name"] for c in self.constraints}
            raw = {k: v for k, v in outcomes.items() if k in known}
            self.client.complete_trial(handle, raw_data=raw)


METHODS = {
    m.name: m
    for m in (
        Athanor,
        AthanorCost,
        AthanorBefore,
        AthanorEvidence,
        AthanorDirect,
        BotorchEI,
        Random,
        Sobol,
        Ax,
    )
}

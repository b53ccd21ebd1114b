"""Surrogate models and acquisition functions (BoTorch defaults).

One ``SingleTaskGP`` (``Normalize`` inputs, ``Standardize`` outcomes) per modelled
outcome, fitted with ``fit_gpytorch_mll``. A composite objective (a product of
desirabilities) is computed from the outcome models' joint samples in the Monte Carlo
objective, the composite-function idea of Astudillo & Frazier (2019). Outliers on the bad
side of an objective are winsorized before fitting, as Ax does by default.

When experiments have failed, one more GP is fitted to a success indicator (1 = gave
outcomes, 0 = failed) over every attempted point; the acquisition treats "indicator >
0.5" as a constraint, which multiplies the expected improvement by the modelled
probability that the experiment succeeds.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from botorch.acquisition import qLogNoisyExpectedImprovement
from botorch.acquisition.multi_objective.logei import (
    qLogNoisyExpectedHypervolumeImprovement,
)
from botorch.acquisition.multi_objective.objective import GenericMCMultiOutputObjective
from botorch.acquisition.objective import GenericMCObjective
from botorch.fit import fit_gpytorch_mll
from botorch.models import ModelListGP, SingleTaskGP
from botorch.models.model import Model
from botorch.models.transforms import Normalize, Standardize
from botorch.sampling import SobolQMCNormalSampler
from botorch.utils.multi_objective.hypervolume import infer_reference_point
from botorch.utils.multi_objective.pareto import is_non_dominated
from gpytorch.constraints import GreaterThan
from gpytorch.mlls import ExactMarginalLogLikelihood
from torch import Tensor

from athanor.planner.space import Objective, OutcomeConstraint


@dataclass
class TrainingData:
    """Encoded training data for one suggestion."""

    X: Tensor  # completed experiments, n x d
    Y: Tensor  # their outcomes, n x m (columns: ``outcomes``)
    outcomes: list[str]
    X_attempted: Tensor  # completed and failed experiments
    succeeded: Tensor  # 1.0 for completed, 0.0 for failed, per attempted row


#: Fitted hyperparameters by outcome name: state-dict entry -> values (plain lists).
Hyperparameters = dict[str, dict[str, list[float]]]
FEASIBILITY = "__succeeded__"
#: Failure regions are broad: without this bound the indicator GP fits a step with a tiny
#: lengthscale and forgets the failures a short distance away from them.
FEASIBILITY_MIN_LENGTHSCALE = 0.15


def fit_gp(
    X: Tensor,
    y: Tensor,
    start: dict[str, list[float]] | None = None,
    min_lengthscale: float | None = None,
) -> SingleTaskGP:
    """A ``SingleTaskGP`` with BoTorch's default transforms, fitted by marginal likelihood.

    ``start``: hyperparameters of an earlier fit to start from (fewer optimiser steps).
    ``min_lengthscale``: lower bound on the lengthscales (in normalised inputs).
    """
    model = SingleTaskGP(
        X,
        y,
        input_transform=Normalize(d=X.shape[-1]),
        outcome_transform=Standardize(m=1),
    )
    if min_lengthscale is not None:
        model.covar_module.register_constraint(
            "raw_lengthscale", GreaterThan(min_lengthscale, initial_value=0.5)
        )
    if start:
        current = model.state_dict()
        if all(k in current and current[k].numel() == len(v) for k, v in start.items()):
            model.load_state_dict(
                {
                    k: torch.tensor(v, dtype=X.dtype).reshape(current[k].shape)
                    for k, v in start.items()
                },
                strict=False,
            )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    return model


def hyperparameters(model: SingleTaskGP) -> dict[str, list[float]]:
    """The fitted hyperparameters as plain data (for the next fit's start)."""
    return {
        k: v.reshape(-1).tolist()
        for k, v in model.state_dict().items()
        if k.rsplit(".", 1)[-1].startswith("raw_")
    }


def outcome_view(Z: Tensor, outcomes: Sequence[str]) -> dict[str, Tensor]:
    """Outcome name -> its values, from a tensor whose last dimension is ``outcomes``."""
    return {name: Z[..., i] for i, name in enumerate(outcomes)}


def winsorized(
    data: TrainingData, objectives: Sequence[Objective], constraints: Sequence[OutcomeConstraint]
) -> Tensor:
    """The outcomes the models are fitted to, with outliers on the bad side pulled in.

    As Ax's default ``Winsorize``: an objective's values worse than the Tukey fence
    (``q1 - 1.5 IQR`` when maximising, ``q3 + 1.5 IQR`` when minimising) are set to it,
    so a few very bad experiments do not flatten the model where the optimum is; a
    constrained outcome only on its infeasible side, never across the bound. Targets
    and the outcomes of composite objectives are left as they are.
    """
    Y = data.Y.clone()
    for o in objectives:
        if o.product or o.goal == "target":
            continue
        y = Y[:, data.outcomes.index(o.name)]
        q1, q3 = _quartiles(y)
        if o.goal == "maximize":
            y.clamp_(min=q1 - 1.5 * (q3 - q1))
        else:
            y.clamp_(max=q3 + 1.5 * (q3 - q1))
    for c in constraints:
        y = Y[:, data.outcomes.index(c.name)]
        q1, q3 = _quartiles(y)
        if c.op == "<=":
            top = max(q3, c.bound)
            y.clamp_(max=top + 1.5 * (top - q1))
        else:
            bottom = min(q1, c.bound)
            y.clamp_(min=bottom - 1.5 * (q3 - bottom))
    return Y


def _quartiles(y: Tensor) -> tuple[float, float]:
    q1 = torch.quantile(y, 0.25, interpolation="lower")
    q3 = torch.quantile(y, 0.75, interpolation="higher")
    return float(q1), float(q3)


@dataclass
class Acquisition:
    """A ready acquisition function and what it is, for provenance."""

    function: object
    model_name: str


def build_acquisition(
    data: TrainingData,
    objectives: Sequence[Objective],
    constraints: Sequence[OutcomeConstraint],
    X_pending: Tensor | None,
    seed: int,
    mc_samples: int,
    hyper: Hyperparameters,
) -> Acquisition:
    """Fit the models and build qLogNEI (one objective) or qLogNEHVI (several).

    ``hyper`` holds each model's last hyperparameters; it is updated with the new fits.
    """
    models: list[Model] = []
    Y = winsorized(data, objectives, constraints)
    for i, outcome in enumerate(data.outcomes):
        models.append(fit_gp(data.X, Y[:, [i]], hyper.get(outcome)))
        hyper[outcome] = hyperparameters(models[-1])
    index = {name: i for i, name in enumerate(data.outcomes)}
    constraint_fns: list[Callable[[Tensor], Tensor]] = []
    for c in constraints:
        i = index[c.name]
        if c.op == ">=":
            constraint_fns.append(lambda Z, i=i, b=c.bound: b - Z[..., i])
        else:
            constraint_fns.append(lambda Z, i=i, b=c.bound: Z[..., i] - b)
    name = "SingleTaskGP"
    if bool((data.succeeded < 0.5).any()):
        f = len(models)
        models.append(
            fit_gp(
                data.X_attempted,
                data.succeeded.unsqueeze(-1),
                hyper.get(FEASIBILITY),
                min_lengthscale=FEASIBILITY_MIN_LENGTHSCALE,
            )
        )
        hyper[FEASIBILITY] = hyperparameters(models[-1])
        constraint_fns.append(lambda Z, f=f: 0.5 - Z[..., f])
        name += "+feasibility GP"
    model: Model = models[0] if len(models) == 1 else ModelListGP(*models)
    sampler = SobolQMCNormalSampler(sample_shape=torch.Size([mc_samples]), seed=seed)
    common = dict(
        model=model,
        X_baseline=data.X,
        sampler=sampler,
        constraints=constraint_fns or None,
        X_pending=X_pending,
        prune_baseline=True,
    )
    if any(o.product for o in objectives):
        name += " (composite objective)"
    if len(objectives) == 1:
        obj = objectives[0]
        acqf = qLogNoisyExpectedImprovement(
            objective=GenericMCObjective(
                lambda Z, X=None: obj.value(outcome_view(Z, data.outcomes))
            ),
            **common,
        )
        return Acquisition(acqf, f"{name}/qLogNEI")

    def mo(Z: Tensor, X: Tensor | None = None) -> Tensor:
        view = outcome_view(Z, data.outcomes)
        return torch.stack([o.value(view) for o in objectives], dim=-1)

    acqf = qLogNoisyExpectedHypervolumeImprovement(
        ref_point=reference_point(data, objectives, constraints),
        objective=GenericMCMultiOutputObjective(mo),
        **common,
    )
    return Acquisition(acqf, f"{name}/qLogNEHVI")


def feasible_mask(data: TrainingData, constraints: Sequence[OutcomeConstraint]) -> Tensor:
    """Which completed experiments met every outcome constraint."""
    ok = torch.ones(len(data.Y), dtype=torch.bool)
    for c in constraints:
        y = data.Y[:, data.outcomes.index(c.name)]
        ok &= (y >= c.bound) if c.op == ">=" else (y <= c.bound)
    return ok


def objective_values(data: TrainingData, objectives: Sequence[Objective]) -> Tensor:
    """Completed experiments' objectives, "larger is better", n x k."""
    view = outcome_view(data.Y, data.outcomes)
    return torch.stack([o.value(view) for o in objectives], dim=-1)


def reference_point(
    data: TrainingData,
    objectives: Sequence[Objective],
    constraints: Sequence[OutcomeConstraint],
) -> Tensor:
    """A hypervolume reference point a little worse than the observed Pareto front."""
    values = objective_values(data, objectives)
    ok = feasible_mask(data, constraints)
    if ok.any():
        values = values[ok]
    front = values[is_non_dominated(values)]
    return infer_reference_point(front)

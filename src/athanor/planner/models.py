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

Each modelled outcome is fitted on the member of the Box-Cox family (raw, square root,
log, square; of the outcome shifted to be positive) that the model's own evidence
prefers: the leave-one-out predictive log likelihood of the outcomes as measured (the
Jacobian of the transform included), in closed form (Rasmussen & Williams 2006, 5.4.2;
gpytorch's ``LeaveOneOutPseudoLikelihood``). The acquisition takes the model's samples
back to the measured scale, so objectives, composites and constraints see real values.

Fits are cached: with more than ``FitPolicy.large_data`` points the hyperparameters (and
the transform) are kept until the data has grown by ``refit_growth``; in between the GP is
only conditioned on the new data.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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
from gpytorch.mlls import ExactMarginalLogLikelihood, LeaveOneOutPseudoLikelihood
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
#: When each model was last fitted, by outcome name: ``n`` (training points then),
#: ``transform`` (Box-Cox ``[lam, shift]``) and ``transform_n`` (points when it was chosen).
FitRecords = dict[str, dict[str, Any]]
FEASIBILITY = "__succeeded__"
#: Failure regions are broad: without this bound the indicator GP fits a step with a tiny
#: lengthscale and forgets the failures a short distance away from them.
FEASIBILITY_MIN_LENGTHSCALE = 0.15


@dataclass(frozen=True)
class FitPolicy:
    """When to refit hyperparameters and choose the outcome transform again.

    Attributes
    ----------
    large_data : int
        Up to this many training points every call refits.
    refit_growth : float
        Above ``large_data``, refit once the points have grown by this fraction since the
        last fit (0: every call).
    choose_transform : bool
        Choose each outcome's transform by leave-one-out evidence (False: raw outcomes).
    transform_growth : float
        At a refit, choose the transform again if the points have grown by this fraction
        since it was chosen.
    """

    large_data: int
    refit_growth: float
    choose_transform: bool
    transform_growth: float = 0.25

    def refit(self, n: int, record: dict[str, Any] | None) -> bool:
        """Whether a model last fitted as ``record`` says is refitted on ``n`` points."""
        if record is None or n <= self.large_data:
            return True
        return n >= record["n"] * (1 + self.refit_growth)

    def rechoose(self, n: int, record: dict[str, Any] | None) -> bool:
        """Whether the outcome transform is chosen again on ``n`` points (at refits only)."""
        if record is None:
            return True
        grown = n >= record["transform_n"] * (1 + self.transform_growth)
        return grown and self.refit(n, record)


@dataclass(frozen=True)
class BoxCox:
    """The Box-Cox transform ``((y - shift)^lam - 1) / lam`` (``log(y - shift)`` at 0)."""

    lam: float
    shift: float = 0.0

    @property
    def name(self) -> str:
        return {0.0: "log", 1.0: "raw"}.get(self.lam, f"Box-Cox {self.lam:g}")

    def valid_for(self, y: Tensor) -> bool:
        return self.lam == 1.0 or bool((y > self.shift).all())

    def forward(self, y: Tensor) -> Tensor:
        if self.lam == 1.0:
            return y
        u = y - self.shift
        return u.log() if self.lam == 0 else (u.pow(self.lam) - 1) / self.lam

    def inverse(self, z: Tensor) -> Tensor:
        if self.lam == 1.0:
            return z
        if self.lam == 0:
            return z.exp() + self.shift
        return (1 + self.lam * z).clamp(min=0).pow(1 / self.lam) + self.shift

    def log_jacobian(self, y: Tensor) -> Tensor:
        """``log |d forward / d y|`` at each ``y``."""
        if self.lam == 1.0:
            return torch.zeros_like(y)
        return (self.lam - 1) * (y - self.shift).log()


RAW = BoxCox(1.0)
#: The family the evidence chooses from (1: raw; 0: log).
BOX_COX_LAMBDAS = (1.0, 0.5, 0.0, 2.0)


def transform_candidates(y: Tensor) -> list[BoxCox]:
    """The Box-Cox family for ``y``, shifted so that every value is positive.

    Positive outcomes are not shifted (log is then the plain log); others are shifted to
    start 5 % of their range above zero.
    """
    low, high = float(y.min()), float(y.max())
    if high - low <= 0:
        return [RAW]
    shift = 0.0 if low > 0 else low - 0.05 * (high - low)
    return [BoxCox(lam, 0.0 if lam == 1.0 else shift) for lam in BOX_COX_LAMBDAS]


def loo_log_likelihood(model: SingleTaskGP, y: Tensor, transform: BoxCox) -> float:
    """Leave-one-out predictive log likelihood of the measured ``y`` (n x 1) under ``model``.

    The model was fitted to ``transform.forward(y)``, standardised; the Jacobians of both
    steps bring the densities back to the measured scale.
    """
    mll = LeaveOneOutPseudoLikelihood(model.likelihood, model)
    mll.train()
    with torch.no_grad():
        per_point = mll(model(*model.train_inputs), model.train_targets)
    mll.eval()
    n = len(y)
    standardize = model.outcome_transform
    assert isinstance(standardize, Standardize)
    scale = float(standardize.stdvs.reshape(-1)[0])
    return float(per_point) * n - n * math.log(scale) + float(transform.log_jacobian(y).sum())


def fit_gp(
    X: Tensor,
    y: Tensor,
    start: dict[str, list[float]] | None = None,
    min_lengthscale: float | None = None,
    fit: bool = True,
) -> SingleTaskGP:
    """A ``SingleTaskGP`` with BoTorch's default transforms, fitted by marginal likelihood.

    ``start``: hyperparameters of an earlier fit to start from (fewer optimiser steps).
    ``min_lengthscale``: lower bound on the lengthscales (in normalised inputs).
    ``fit``: False keeps ``start`` as it is and only conditions on the data.
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
    if not fit and start:
        return model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    return model


def fit_outcome(
    X: Tensor,
    y: Tensor,
    name: str,
    hyper: Hyperparameters,
    records: FitRecords,
    policy: FitPolicy,
) -> tuple[SingleTaskGP, BoxCox]:
    """The model of one outcome and its transform, fitted or reused as ``policy`` says.

    ``hyper`` and ``records`` are updated with what was fitted.
    """
    n, record = len(y), records.get(name)
    transform = BoxCox(*record["transform"]) if record and policy.choose_transform else RAW
    chosen_on = record["transform_n"] if record else n
    if policy.choose_transform and policy.rechoose(n, record):
        fits = {}
        for candidate in transform_candidates(y):
            model = fit_gp(X, candidate.forward(y), hyper.get(name))
            fits[candidate] = (loo_log_likelihood(model, y, candidate), model)
        transform = max(fits, key=lambda t: fits[t][0])
        model, chosen_on = fits[transform][1], n
    else:
        if not transform.valid_for(y):  # a value below the shift: the same power, shifted
            family = transform_candidates(y)
            transform = next((t for t in family if t.lam == transform.lam), RAW)
            assert record is not None
            record["transform"] = [transform.lam, transform.shift]
        refit = policy.refit(n, record)
        model = fit_gp(X, transform.forward(y), hyper.get(name), fit=refit)
        if not refit:
            return model, transform
    hyper[name] = hyperparameters(model)
    records[name] = {
        "n": n,
        "transform": [transform.lam, transform.shift],
        "transform_n": chosen_on,
    }
    return model, transform


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
    records: FitRecords,
    policy: FitPolicy,
) -> Acquisition:
    """Fit the models and build qLogNEI (one objective) or qLogNEHVI (several).

    ``hyper`` and ``records`` hold each model's last fit; they are updated with new fits.
    """
    models: list[Model] = []
    transforms: list[BoxCox] = []
    Y = winsorized(data, objectives, constraints)
    for i, outcome in enumerate(data.outcomes):
        gp, transform = fit_outcome(data.X, Y[:, [i]], outcome, hyper, records, policy)
        models.append(gp)
        transforms.append(transform)

    def measured(Z: Tensor) -> Tensor:
        """Model samples (last dimension: outcomes, then feasibility) on the measured scale."""
        parts = [t.inverse(Z[..., i]) for i, t in enumerate(transforms)]
        return torch.stack(parts + [Z[..., j] for j in range(len(parts), Z.shape[-1])], -1)

    index = {name: i for i, name in enumerate(data.outcomes)}
    constraint_fns: list[Callable[[Tensor], Tensor]] = []
    for c in constraints:
        i = index[c.name]
        if c.op == ">=":
            constraint_fns.append(lambda Z, i=i, b=c.bound: b - measured(Z)[..., i])
        else:
            constraint_fns.append(lambda Z, i=i, b=c.bound: measured(Z)[..., i] - b)
    name = "SingleTaskGP"
    shown = [f"{o} {t.name}" for o, t in zip(data.outcomes, transforms, strict=True)]
    if any(t.lam != 1.0 for t in transforms):
        name += f" ({', '.join(shown)})"
    if bool((data.succeeded < 0.5).any()):
        f = len(models)
        n = len(data.X_attempted)
        refit = policy.refit(n, records.get(FEASIBILITY))
        models.append(
            fit_gp(
                data.X_attempted,
                data.succeeded.unsqueeze(-1),
                hyper.get(FEASIBILITY),
                min_lengthscale=FEASIBILITY_MIN_LENGTHSCALE,
                fit=refit,
            )
        )
        if refit:
            hyper[FEASIBILITY] = hyperparameters(models[-1])
            records[FEASIBILITY] = {"n": n, "transform": [1.0, 0.0], "transform_n": n}
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
                lambda Z, X=None: obj.value(outcome_view(measured(Z), data.outcomes))
            ),
            **common,
        )
        return Acquisition(acqf, f"{name}/qLogNEI")

    def mo(Z: Tensor, X: Tensor | None = None) -> Tensor:
        view = outcome_view(measured(Z), data.outcomes)
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

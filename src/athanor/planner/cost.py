"""Cost-aware acquisition: expected improvement per unit cost, cooled as the budget is spent.

The rule is CArBO's cost cooling (Lee, Eriksson, Perrone & Seeger 2020, "Cost-aware
Bayesian optimization", arXiv:2003.10870, "EI-cool")::

    a(x) = EI(x) / c(x) ** alpha,    alpha = (tau - tau_k) / (tau - tau_0)

with ``tau`` the budget, ``tau_k`` the cost spent so far (pending experiments' predicted
cost included: it is committed) and ``tau_0`` the cost of the initial design. At first
(``alpha = 1``) it is expected improvement per unit cost (Snoek, Larochelle & Adams 2012,
"EI per second"); as the budget runs out it becomes plain expected improvement, so that
the last experiments are not spent on cheap ones only. The planner's acquisitions are
logarithmic (qLogNEI, qLogNEHVI), so the rule is ``log a = log EI - alpha log c``.

``c(x)`` is the exponential of the posterior mean of a GP on log cost (as Snoek et al.),
fitted to known costs: a cost function's values (e.g. the protocol's dry-run duration) at
a Sobol design of the space and at every suggestion, and measured costs. A batch's cost is
the sum of its points' costs: the lab time it occupies.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from botorch.acquisition import AcquisitionFunction
from botorch.models import SingleTaskGP
from pydantic import Field
from torch import Tensor

from athanor.planner.encoding import PlannerError
from athanor.planner.models import fit_gp
from athanor.schema import StrictModel


class CostSettings(StrictModel):
    """Cost-aware planning: the budget, and how many cost-function values to learn from."""

    budget: float = Field(gt=0, allow_inf_nan=False, description="total cost, in its units")
    samples: int = Field(
        32, ge=2, le=1000, description="cost-function values at a Sobol design, first"
    )


def cooling(budget: float, spent: float, initial: float) -> float:
    """CArBO's cost exponent ``alpha``: 1 after the initial design, 0 once spent."""
    if budget <= initial:
        return 0.0
    return float(np.clip((budget - spent) / (budget - initial), 0.0, 1.0))


def fit_cost(X: Tensor, costs: Tensor) -> SingleTaskGP:
    """A GP on log cost (n x d inputs, n positive costs)."""
    return fit_gp(X, costs.log().unsqueeze(-1))


def predict_cost(model: SingleTaskGP, X: Tensor) -> Tensor:
    """Predicted costs (``exp`` of the log-cost posterior mean) at ``X`` (... x d)."""
    return model.posterior(X).mean.squeeze(-1).exp()


class CostCooled(AcquisitionFunction):
    """``log a(X) - alpha * log(sum of the batch's predicted costs)`` for a log acquisition.

    Pending points are the wrapped acquisition's (``set_X_pending`` passes them on).
    """

    def __init__(self, acquisition: AcquisitionFunction, cost: SingleTaskGP, alpha: float):
        super().__init__(model=acquisition.model)
        self.acquisition, self.cost, self.alpha = acquisition, cost, alpha

    @property
    def X_pending(self) -> Tensor | None:  # type: ignore[override]
        return self.acquisition.X_pending

    def set_X_pending(self, X_pending: Tensor | None = None) -> None:
        self.acquisition.set_X_pending(X_pending)

    def forward(self, X: Tensor) -> Tensor:
        log_cost = self.cost.posterior(X).mean.squeeze(-1)  # b x q
        return self.acquisition(X) - self.alpha * torch.logsumexp(log_cost, dim=-1)


class CostBook:
    """The costs the planner knows: a cost function's values, kept as plain data.

    Parameters
    ----------
    settings : CostSettings
        The budget and the size of the first design of cost-function values.
    function : callable, optional
        Parameters -> cost (e.g. the dry run's lab hours); None: costs are only measured.
    samples : list of (params, cost), optional
        Values of ``function`` already known (from the planner's state).
    designed : bool, optional
        Whether ``samples`` hold the first design already.
    """

    def __init__(
        self,
        settings: CostSettings,
        function: Callable[[dict[str, Any]], float] | None,
        samples: Sequence[Sequence[Any]] = (),
        designed: bool = False,
    ) -> None:
        self.settings, self.function, self.designed = settings, function, designed
        self.samples = [(dict(p), float(c)) for p, c in samples]

    def value(self, params: dict[str, Any], what: str = "cost") -> float:
        """The cost function at ``params``, recorded; PlannerError if it is not positive."""
        assert self.function is not None
        cost = float(self.function(params))
        if not (math.isfinite(cost) and cost > 0):
            raise PlannerError(
                f"{what}: the cost function gave {cost!r} for {params}; "
                "costs must be finite numbers above 0"
            )
        self.samples.append((dict(params), cost))
        return cost

    def design(self, rows: Iterable[dict[str, Any]]) -> None:
        """Evaluate the cost function at the first design's ``rows``, once."""
        if self.function is not None and not self.designed:
            for params in rows:
                self.value(params, "cost design")
        self.designed = True

    def state(self) -> dict[str, Any]:
        """Plain data for the planner's state."""
        return {"samples": [list(s) for s in self.samples], "designed": self.designed}

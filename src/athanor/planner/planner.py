"""The experiment planner: ``suggest`` what to run next, ``ingest`` what happened.

Typical use by a scheduler::

    planner = Planner(space, objectives, seed=7)
    for s in planner.suggest(1, pending=[e.params for e in running]):
        start(s.params)                      # s also says how it was chosen
    planner.ingest(params, {"target_fraction": 0.83})          # outcome arrived
    planner.ingest(params, status="failed")                    # experiment failed
    blob = json.dumps(planner.state())                         # store it ...
    planner = Planner.from_state(json.loads(blob))             # ... and carry on

Until ``n_initial`` experiments have been issued (and two have given outcomes) the
planner walks a constraint-respecting scrambled Sobol sequence; from then on it fits
Gaussian processes and maximises qLogNEI (one objective) or qLogNEHVI (several). If
fitting or optimisation fails numerically it falls back to the Sobol sequence and says
so in the suggestion's ``model``. With a pool, the initial design takes untried rows at
random, or (``pool_design='clusters'``) one from each of ``n_initial`` k-means clusters
of the pool in turn.

Cost-aware planning (``settings.cost``: a budget; and a cost function, or costs given to
``ingest``) chooses by expected improvement per unit cost, cooled towards plain expected
improvement as the budget is spent (:mod:`athanor.planner.cost`); each suggestion then
carries its predicted cost.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from botorch.exceptions.warnings import BotorchWarning
from linear_operator.utils.warnings import NumericalWarning
from pydantic import Field, ValidationError
from scipy.cluster.vq import kmeans2

from athanor.planner import candidates
from athanor.planner.cost import CostBook, CostCooled, CostSettings, cooling, fit_cost, predict_cost
from athanor.planner.design import SobolDesign, check_feasible
from athanor.planner.encoding import Encoder, PlannerError
from athanor.planner.models import (
    FitPolicy,
    FitRecords,
    Hyperparameters,
    TrainingData,
    build_acquisition,
    feasible_mask,
    objective_values,
)
from athanor.planner.space import Objective, OutcomeConstraint, SearchSpace
from athanor.schema import StrictModel

log = logging.getLogger(__name__)

Status = Literal["completed", "failed", "abandoned"]
#: Parameters -> cost of the experiment (e.g. lab hours), a finite number above 0.
CostFunction = Callable[[dict[str, Any]], float]
STATE_VERSION = 1
DEFAULT_N_INITIAL = 5


class PlannerSettings(StrictModel):
    """How much work each model-based suggestion does, and how.

    Above ``large_data`` completed experiments the search uses the ``*_large`` sizes and
    keeps the fitted hyperparameters until the data has grown by ``refit_growth``, which
    keeps a suggestion within a second for hundreds of experiments. The settings before
    issue 18 were ``refit_growth=0, batch='greedy'``. ``outcome_transform='auto'`` and
    ``pool_design='clusters'`` are options, off by default: on the benchmark (3-6 seeds)
    they did not yet give the same or better regret.
    """

    raw_samples: int = Field(512, ge=16)
    num_restarts: int = Field(8, ge=1)
    raw_samples_large: int = Field(256, ge=16)
    num_restarts_large: int = Field(2, ge=1)
    large_data: int = Field(100, ge=1)
    mc_samples: int = Field(128, ge=16)
    max_assignments: int = Field(4, ge=1, description="discrete assignments polished")
    maxiter: int = Field(100, ge=1, description="optimiser iterations per polish")
    refit_growth: float = Field(
        0.1, ge=0, description="above large_data, refit once the data grew by this fraction"
    )
    outcome_transform: Literal["auto", "raw"] = Field(
        "raw", description="'auto': Box-Cox family member by leave-one-out evidence"
    )
    batch: Literal["joint", "greedy"] = Field(
        "joint", description="optimise a batch in a continuous space jointly, or greedily"
    )
    pool_design: Literal["clusters", "random"] = Field(
        "random", description="initial pool rows: one per k-means cluster, or at random"
    )
    cost: CostSettings | None = Field(
        None, description="cost-aware planning with this budget; None: cost-blind"
    )


@dataclass(frozen=True)
class Suggestion:
    """One proposed experiment and how it was chosen.

    Attributes
    ----------
    params : dict
        Parameter name -> value, fixed parameters included; ready to run.
    phase : {'initial', 'model'}
        Initial space-filling design, or model-based.
    model : str
        What chose it, e.g. ``'SingleTaskGP/qLogNEI'``, ``'Sobol'``, or
        ``'Sobol (fallback: ...)'`` when the model could not be used.
    acquisition_value : float or None
        The (log-)acquisition value at ``params``; None for design points.
    n_observations : int
        Completed experiments (outcomes) the planner had seen, prior data included.
    n_failures : int
        Failed experiments it had seen.
    n_pending : int
        Experiments it was told were still running.
    seed : int
        The random seed used for this call (derived from the planner's seed).
    data_digest : str
        SHA-256 (first 16 hex digits) of the observations and pending parameters it saw,
        in order: two suggestions with the same digest and seed saw the same data.
    predicted_cost : float or None
        Cost-aware planning only: the cost function's value at ``params``, or else the
        cost model's prediction (None before it has two costs to learn from).
    """

    params: dict[str, Any]
    phase: Literal["initial", "model"]
    model: str
    acquisition_value: float | None
    n_observations: int
    n_failures: int
    n_pending: int
    seed: int
    data_digest: str
    predicted_cost: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable data."""
        return asdict(self)


@dataclass(frozen=True)
class Observation:
    """One experiment the planner was told about.

    Attributes
    ----------
    params : dict
        The parameters it ran with (checked against the space).
    outcomes : dict
        Measured outcomes by name (empty unless ``status == 'completed'``).
    status : {'completed', 'failed', 'abandoned'}
        Completed experiments train the outcome models; failed ones train the
        feasibility model; abandoned ones (stopped for reasons unrelated to the
        parameters) are kept for the record only.
    prior : bool
        True for data from an earlier campaign (see :meth:`Planner.warm_start`).
    cost : float or None
        Its measured cost (e.g. lab hours), when known; cost-aware planning learns from it.
    """

    params: dict[str, Any]
    outcomes: dict[str, float] = field(default_factory=dict)
    status: Status = "completed"
    prior: bool = False
    cost: float | None = None


class Planner:
    """Bayesian optimisation planner over a :class:`~athanor.planner.space.SearchSpace`.

    Parameters
    ----------
    space : SearchSpace or mapping
        The search space (a mapping is validated as the campaign YAML's ``search_space``).
    objectives : sequence of Objective or mapping
        One objective (qLogNEI) or several (qLogNEHVI, Pareto front). An objective with a
        ``product`` of desirabilities is composite: its outcomes are modelled one by one
        and ``ingest`` takes them (the product itself need not be given).
    outcome_constraints : sequence of OutcomeConstraint or mapping, optional
        Outcomes that must stay on one side of a bound.
    seed : int, optional
        Seed of the design and of every model-based suggestion.
    n_initial : int, optional
        Size of the initial Sobol design; default 5, as Ax's ``Client``. A larger design
        (``2 * dimensions`` was tried) left Hartmann6 at its second mode in more seeds.
    pool : sequence of mappings, optional
        Candidate rows; suggestions are then only rows not yet tried or pending. Default:
        the CSV named by ``space.pool``, if any (path relative to the working directory).
    settings : PlannerSettings or mapping, optional
        Search effort, and the budget of cost-aware planning (``cost``).
    cost : callable, optional
        Parameters -> predicted cost (e.g. the protocol's dry-run lab hours), for
        cost-aware planning; needs ``settings.cost``. Without it, cost-aware planning
        learns from the costs given to :meth:`ingest`.

    Raises
    ------
    PlannerError
        For an invalid or contradictory space, objectives, constraints or pool.
    """

    def __init__(
        self,
        space: SearchSpace | Mapping[str, Any],
        objectives: Sequence[Objective | Mapping[str, Any]],
        outcome_constraints: Sequence[OutcomeConstraint | Mapping[str, Any]] = (),
        *,
        seed: int = 0,
        n_initial: int | None = None,
        pool: Sequence[Mapping[str, Any]] | None = None,
        settings: PlannerSettings | Mapping[str, Any] | None = None,
        cost: CostFunction | None = None,
    ) -> None:
        self.space = _validate(SearchSpace, space, "search_space")
        self.objectives = [
            _validate(Objective, o, f"objectives[{i}]") for i, o in enumerate(objectives)
        ]
        self.outcome_constraints = [
            _validate(OutcomeConstraint, c, f"outcome_constraints[{i}]")
            for i, c in enumerate(outcome_constraints)
        ]
        self.settings = _validate(PlannerSettings, settings or {}, "settings")
        if not self.objectives:
            raise PlannerError("objectives: give at least one objective")
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            raise PlannerError(f"objectives: names must be unique, got {names}")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise PlannerError(f"seed: {seed!r} is not allowed; give an integer >= 0")
        self.seed = seed
        self.encoder = Encoder(self.space)
        if n_initial is None:
            n_initial = DEFAULT_N_INITIAL
        if not isinstance(n_initial, int) or n_initial < 1:
            raise PlannerError(f"n_initial: {n_initial!r} is not allowed; give an integer >= 1")
        self.n_initial = n_initial
        named = [*self.objectives, *self.outcome_constraints]
        #: outcome column -> outcome name, for outcomes reported under their column
        self._columns = {o.column: o.name for o in named if o.column and o.column != o.name}
        modelled = [n for o in self.objectives for n in o.modelled]
        self.outcomes = list(dict.fromkeys(modelled + [c.name for c in self.outcome_constraints]))
        if pool is None and self.space.pool:
            pool = read_pool(self.space.pool, self.space)
        self.pool: list[dict[str, Any]] | None = None
        self._pool_X = np.zeros((0, self.encoder.dim))
        if pool is not None:
            self.pool = [self.encoder.check(row, f"pool[{i}]") for i, row in enumerate(pool)]
            if not self.pool:
                raise PlannerError("pool: the candidate pool is empty")
            self._pool_X = np.array([self.encoder.encode(r) for r in self.pool])
        else:
            check_feasible(self.encoder)
        self._design = SobolDesign(self.encoder, seed)
        self.observations: list[Observation] = []
        self._sobol_drawn = 0
        self._calls = 0
        self._hyper: Hyperparameters = {}
        self._fits: FitRecords = {}
        self._clusters: np.ndarray | None = None
        if cost is not None and self.settings.cost is None:
            raise PlannerError("cost: a cost function needs settings.cost (the budget)")
        self.costs = CostBook(self.settings.cost, cost) if self.settings.cost else None

    # ------------------------------------------------------------------ observations

    def check(self, params: Mapping[str, Any], what: str = "params") -> dict[str, Any]:
        """``params`` checked against the space: names, ranges, choices and constraints.

        Returns them as the planner would store them; raises :class:`PlannerError`
        naming the parameter and what is allowed, or the constraint broken.
        """
        checked = self.encoder.check(params, what)
        if not self.encoder.feasible(self.encoder.encode(checked)[None, :])[0]:
            rules = [str(c) for c in self.space.constraints] or ["the compositions' totals"]
            raise PlannerError(f"{what}: breaks the search space's constraints: {'; '.join(rules)}")
        return checked

    def ingest(
        self,
        params: Mapping[str, Any],
        outcomes: Mapping[str, float] | None = None,
        *,
        status: Status = "completed",
        cost: float | None = None,
    ) -> Observation:
        """Record what happened to one experiment.

        Parameters
        ----------
        params : mapping
            The parameters it ran with; every non-fixed parameter, known names only.
        outcomes : mapping, optional
            Measured outcomes, by name or by the ``column`` an objective or constraint
            declares; required (finite numbers for every objective and outcome
            constraint) when ``status == 'completed'``, ignored otherwise. Other outcome
            names are kept but not modelled.
        status : {'completed', 'failed', 'abandoned'}
            ``'failed'``: the experiment could not give outcomes because of where it was
            in the space (it trains the feasibility model). ``'abandoned'``: stopped for
            reasons unrelated to its parameters; only recorded.
        cost : float, optional
            What it cost (e.g. its lab hours), a finite number above 0; cost-aware
            planning learns its cost model from these.

        Returns
        -------
        Observation
            The checked record that was stored.

        Raises
        ------
        PlannerError
            Unknown or missing parameters, values outside the space, missing or
            non-finite outcomes, an unknown status.
        """
        obs = self._observation(params, outcomes, status, prior=False, cost=cost)
        self.observations.append(obs)
        return obs

    def warm_start(self, records: Iterable[Observation | Mapping[str, Any]]) -> int:
        """Add data from an earlier campaign before (or while) planning.

        Parameters
        ----------
        records : iterable of Observation or mappings
            Each with ``params``, ``outcomes`` and optionally ``status``
            (default ``'completed'``). Prior experiments count towards the initial design.

        Returns
        -------
        int
            How many records were added.
        """
        added = []
        for i, rec in enumerate(records):
            if isinstance(rec, Observation):
                rec = asdict(rec)
            if not isinstance(rec, Mapping) or "params" not in rec:
                raise PlannerError(f"prior[{i}]: give a mapping with 'params' and 'outcomes'")
            added.append(
                self._observation(
                    rec["params"],
                    rec.get("outcomes"),
                    rec.get("status", "completed"),
                    prior=True,
                    what=f"prior[{i}]",
                    cost=rec.get("cost"),
                )
            )
        self.observations.extend(added)
        return len(added)

    def _observation(
        self,
        params: Mapping[str, Any],
        outcomes: Mapping[str, float] | None,
        status: str,
        prior: bool,
        what: str = "params",
        cost: float | None = None,
    ) -> Observation:
        if cost is not None and not (
            isinstance(cost, int | float) and math.isfinite(cost) and cost > 0
        ):
            raise PlannerError(f"cost: {cost!r} is not allowed; give a finite number above 0")
        if status not in ("completed", "failed", "abandoned"):
            raise PlannerError(
                f"status: {status!r} is not allowed; use 'completed', 'failed' or 'abandoned'"
            )
        checked = self.encoder.check(params, what)
        if self.pool is not None and status != "abandoned" and self._pool_index(checked) is None:
            log.info("observation outside the pool: %s", checked)
        values: dict[str, float] = {}
        if status == "completed":
            if isinstance(outcomes, Mapping):
                outcomes = {self._columns.get(k, k): v for k, v in outcomes.items()}
            if not isinstance(outcomes, Mapping):
                raise PlannerError(
                    f"outcomes: a completed experiment needs outcomes for "
                    f"{', '.join(self.outcomes)}; got {outcomes!r}"
                )
            missing = [n for n in self.outcomes if n not in outcomes]
            if missing:
                raise PlannerError(
                    f"outcomes: missing {', '.join(map(repr, missing))}; a completed "
                    "experiment needs every modelled and constrained outcome (report it as "
                    "status='failed' if it gave none)"
                )
            for name, value in outcomes.items():
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    raise PlannerError(f"outcomes.{name}: {value!r} is not a number") from None
                if name in self.outcomes and not math.isfinite(number):
                    raise PlannerError(
                        f"outcomes.{name}: {value!r} is not a finite number; report a "
                        "failed measurement as status='failed'"
                    )
                values[str(name)] = number
        return Observation(checked, values, status, prior, cost)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ suggestions

    def suggest(self, n: int = 1, pending: Iterable[Mapping[str, Any]] = ()) -> list[Suggestion]:
        """Propose ``n`` experiments to run next.

        Parameters
        ----------
        n : int
            How many (a batch is chosen jointly: each point accounts for the others).
        pending : iterable of mappings
            Parameters of experiments still running; suggestions keep away from them
            (BoTorch ``X_pending``) and pool rows that are pending are not offered.

        Returns
        -------
        list of Suggestion
            ``n`` suggestions (fewer only when a pool runs out of untried rows). In
            cost-aware planning pending experiments' predicted costs count as spent.

        Raises
        ------
        PlannerError
            For a bad ``n`` or bad pending parameters, or an exhausted pool.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise PlannerError(f"n: {n!r} is not allowed; give an integer >= 1")
        pending_params = [self.encoder.check(p, f"pending[{i}]") for i, p in enumerate(pending)]
        X_pending = np.array([self.encoder.encode(p) for p in pending_params])
        seed = int(np.random.SeedSequence([self.seed, self._calls]).generate_state(1)[0] >> 1)
        self._calls += 1
        completed = [o for o in self.observations if o.status == "completed"]
        failed = [o for o in self.observations if o.status == "failed"]
        seen = json.dumps(
            [[asdict(o) for o in self.observations], pending_params], sort_keys=True, default=str
        )
        info: dict[str, Any] = dict(
            n_observations=len(completed),
            n_failures=len(failed),
            n_pending=len(pending_params),
            seed=seed,
            data_digest=hashlib.sha256(seen.encode()).hexdigest()[:16],
        )
        if self.pool is not None:
            available = self._available(X_pending)
            if not len(available):
                raise PlannerError(
                    "pool: every candidate row has been tried or is pending; nothing to suggest"
                )
            n = min(n, len(available))
        issued = len(completed) + len(failed) + len(pending_params)
        if issued < self.n_initial or len(completed) < 2:
            return self._priced(self._design_points(n, X_pending, "initial", "Sobol", info))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.random.fork_rng(), warnings.catch_warnings():
                warnings.simplefilter("ignore", NumericalWarning)
                warnings.simplefilter("ignore", BotorchWarning)
                torch.manual_seed(seed)
                X, values, model = self._model_points(n, X_pending, completed, failed, seed)
        except PlannerError:  # a cost function's bad value is the caller's to fix
            raise
        except Exception as exc:  # numerical trouble must not stop a campaign
            log.warning("model-based suggestion failed, using Sobol: %r", exc)
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            fallback = f"Sobol (fallback: {reason})"
            return self._priced(self._design_points(n, X_pending, "model", fallback, info))
        finally:
            torch.set_num_threads(threads)
        suggestions = [
            Suggestion(self._decode(x), "model", model, v, **info)
            for x, v in zip(X, values, strict=True)
        ]
        return self._priced(suggestions)

    def _priced(self, suggestions: list[Suggestion]) -> list[Suggestion]:
        """``suggestions`` with their predicted costs (cost-aware planning only)."""
        if self.costs is None:
            return suggestions
        if self.costs.function is not None:
            costs = [self.costs.value(s.params) for s in suggestions]
        else:
            model = self._cost_model()
            if model is None:
                return suggestions
            X = torch.as_tensor(
                np.array([self.encoder.encode(s.params) for s in suggestions]), dtype=torch.float64
            )
            with torch.no_grad():
                costs = predict_cost(model, X).tolist()
        return [replace(s, predicted_cost=c) for s, c in zip(suggestions, costs, strict=True)]

    def _cost_model(self) -> Any:
        """The GP on log cost over every known cost; None with fewer than two."""
        assert self.costs is not None
        known = self.costs.samples + [
            (o.params, o.cost) for o in self.observations if o.cost is not None
        ]
        if len(known) < 2:
            return None
        X = np.array([self.encoder.encode(p) for p, _ in known])
        costs = np.array([c for _, c in known])
        return fit_cost(torch.as_tensor(X), torch.as_tensor(costs, dtype=torch.float64))

    def _cost_design(self) -> list[dict[str, Any]]:
        """Where a cost function is evaluated first: Sobol points, or random pool rows."""
        assert self.costs is not None
        k = self.costs.settings.samples
        if self.pool is not None:
            rng = np.random.default_rng([self.seed, 1])
            rows = rng.choice(len(self.pool), min(k, len(self.pool)), replace=False)
            return [self.pool[i] for i in rows]
        X, _ = SobolDesign(self.encoder, self.seed + 1).draw(k)
        return [self.encoder.decode(list(x)) for x in X]

    def _cost_cooled(self, acqf: Any, X_pending: np.ndarray) -> tuple[Any, str]:
        """``acqf`` per unit predicted cost to the power ``alpha`` (CArBO's cost cooling),
        and what to add to the model's name; ``acqf`` as it is without a cost model."""
        assert self.costs is not None
        self.costs.design(self._cost_design() if self.costs.function else [])
        model = self._cost_model()
        if model is None:
            return acqf, ""
        spent_on = [o for o in self.observations if not o.prior and o.status != "abandoned"]
        X = np.array([self.encoder.encode(o.params) for o in spent_on]).reshape(
            -1, self.encoder.dim
        )
        with torch.no_grad():
            predicted = predict_cost(
                model, torch.as_tensor(np.concatenate([X, X_pending.reshape(-1, self.encoder.dim)]))
            )
        costs = [o.cost or float(c) for o, c in zip(spent_on, predicted, strict=False)]
        spent = sum(costs) + float(predicted[len(spent_on) :].sum())
        alpha = cooling(self.costs.settings.budget, spent, sum(costs[: self.n_initial]))
        return CostCooled(acqf, model, alpha), f"/cost-cooled (alpha {alpha:.2f})"

    def _decode(self, x: np.ndarray) -> dict[str, Any]:
        if self.pool is not None:
            i = self._pool_index_encoded(x)
            assert i is not None
            return dict(self.pool[i])
        return self.encoder.decode(list(x))

    def _design_points(
        self, n: int, X_pending: np.ndarray, phase: str, model: str, info: dict[str, Any]
    ) -> list[Suggestion]:
        if self.pool is None:
            X, self._sobol_drawn = self._design.draw(n, self._sobol_drawn)
        else:
            X = self._pool_design(n, X_pending)
        return [
            Suggestion(self._decode(x), phase, model, None, **info)  # type: ignore[arg-type]
            for x in X
        ]

    def _pool_design(self, n: int, X_pending: np.ndarray) -> np.ndarray:
        """Untried pool rows, seeded and repeatable after a restore.

        Rows nearest to space-filling points would favour the rows at the edges of a
        clustered pool (real libraries are clustered), and rows drawn at random the dense
        clusters; so the ``i``-th design row is a random untried row of k-means cluster
        ``i mod n_initial`` (any untried row once that cluster is used up).
        """
        available = self._available_index(X_pending)
        chosen: list[int] = []
        for _ in range(min(n, len(available))):
            rng = np.random.default_rng([self.seed, self._sobol_drawn])
            left = np.setdiff1d(available, chosen)
            if self.settings.pool_design == "clusters":
                cluster = self._pool_clusters() == self._sobol_drawn % self.n_initial
                left = left[cluster[left]] if cluster[left].any() else left
            chosen.append(int(rng.choice(left)))
            self._sobol_drawn += 1
        return self._pool_X[chosen]

    def _pool_clusters(self) -> np.ndarray:
        """Each pool row's k-means cluster (``n_initial`` clusters, seeded)."""
        if self._clusters is None:
            k = min(self.n_initial, len(self._pool_X))
            _, self._clusters = kmeans2(self._pool_X, k, seed=self.seed, minit="++")
        return self._clusters

    def _model_points(
        self,
        n: int,
        X_pending: np.ndarray,
        completed: list[Observation],
        failed: list[Observation],
        seed: int,
    ) -> tuple[np.ndarray, list[float], str]:
        data = self._training_data(completed, failed)
        pending_t = torch.as_tensor(X_pending, dtype=torch.float64) if len(X_pending) else None
        acq = build_acquisition(
            data,
            self.objectives,
            self.outcome_constraints,
            pending_t,
            seed,
            self.settings.mc_samples,
            self._hyper,
            self._fits,
            FitPolicy(
                large_data=self.settings.large_data,
                refit_growth=self.settings.refit_growth,
                choose_transform=self.settings.outcome_transform == "auto",
            ),
        )
        function, name = acq.function, acq.model_name
        if self.costs is not None:
            function, cooled = self._cost_cooled(function, X_pending)
            name += cooled
        if self.pool is not None:
            X, values = candidates.choose_from_pool(function, self._available(X_pending), n)
            return X, values, name
        large = len(completed) > self.settings.large_data
        s = self.settings
        search = candidates.SearchSettings(
            raw_samples=s.raw_samples_large if large else s.raw_samples,
            num_restarts=s.num_restarts_large if large else s.num_restarts,
            max_assignments=s.max_assignments,
            maxiter=s.maxiter,
            joint=s.batch == "joint",
        )
        centres = data.X.numpy()[self._best_indices(data)]
        X, values = candidates.optimise(function, self.encoder, n, pending_t, centres, seed, search)
        return X, values, name

    def _training_data(
        self, completed: list[Observation], failed: list[Observation]
    ) -> TrainingData:
        X = np.array([self.encoder.encode(o.params) for o in completed])
        Y = np.array([[o.outcomes[name] for name in self.outcomes] for o in completed])
        X_failed = np.array([self.encoder.encode(o.params) for o in failed]).reshape(
            -1, self.encoder.dim
        )
        t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
        succeeded = np.concatenate([np.ones(len(X)), np.zeros(len(X_failed))])
        return TrainingData(
            t(X), t(Y), self.outcomes, t(np.concatenate([X, X_failed])), t(succeeded)
        )

    def _best_indices(self, data: TrainingData, k: int = 5) -> np.ndarray:
        values = objective_values(data, self.objectives).numpy()
        ok = feasible_mask(data, self.outcome_constraints).numpy()
        score = values.sum(axis=1) if values.shape[1] > 1 else values[:, 0]
        score = np.where(ok, score, -np.inf)
        return np.argsort(-score, kind="stable")[:k]

    # ------------------------------------------------------------------ pool helpers

    def _pool_index_encoded(self, x: np.ndarray) -> int | None:
        dist = np.abs(self._pool_X - x).max(axis=1)
        i = int(np.argmin(dist))
        return i if dist[i] < 1e-9 else None

    def _pool_index(self, params: Mapping[str, Any]) -> int | None:
        return self._pool_index_encoded(self.encoder.encode(params))

    def _available_index(self, X_pending: np.ndarray) -> np.ndarray:
        used = np.zeros(len(self._pool_X), dtype=bool)
        tried = [self.encoder.encode(o.params) for o in self.observations]
        for x in [*tried, *X_pending]:
            used |= np.abs(self._pool_X - x).max(axis=1) < 1e-9
        return np.flatnonzero(~used)

    def _available(self, X_pending: np.ndarray) -> np.ndarray:
        return self._pool_X[self._available_index(X_pending)]

    # ------------------------------------------------------------------ results

    def best(self) -> Observation | None:
        """The best completed experiment meeting the outcome constraints (one objective).

        With several objectives use :meth:`pareto_front`. None before any such experiment.
        """
        completed = [o for o in self.observations if o.status == "completed"]
        if not completed:
            return None
        data = self._training_data(completed, [])
        i = self._best_indices(data, 1)[0]
        return completed[i] if feasible_mask(data, self.outcome_constraints)[i] else None

    def pareto_front(self) -> list[Observation]:
        """Completed experiments meeting the outcome constraints that no other dominates."""
        completed = [o for o in self.observations if o.status == "completed"]
        if not completed:
            return []
        data = self._training_data(completed, [])
        values = objective_values(data, self.objectives).numpy()
        ok = feasible_mask(data, self.outcome_constraints).numpy()
        front = []
        for i in np.flatnonzero(ok):
            others = values[ok]
            dominated = np.any(
                np.all(others >= values[i], axis=1) & np.any(others > values[i], axis=1)
            )
            if not dominated:
                front.append(completed[i])
        return front

    # ------------------------------------------------------------------ state

    def state(self) -> dict[str, Any]:
        """Everything needed to carry on, as plain JSON-serialisable data.

        ``Planner.from_state(planner.state())`` suggests exactly what ``planner`` would.
        """
        return {
            "version": STATE_VERSION,
            "space": self.space.model_dump(mode="json"),
            "objectives": [o.model_dump(mode="json") for o in self.objectives],
            "outcome_constraints": [c.model_dump(mode="json") for c in self.outcome_constraints],
            "seed": self.seed,
            "n_initial": self.n_initial,
            "settings": self.settings.model_dump(mode="json"),
            "pool": self.pool,
            "observations": [asdict(o) for o in self.observations],
            "sobol_drawn": self._sobol_drawn,
            "suggest_calls": self._calls,
            "hyperparameters": self._hyper,
            "fits": self._fits,
            "costs": self.costs.state() if self.costs else None,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], cost: CostFunction | None = None) -> Planner:
        """Rebuild a planner from :meth:`state` data, with its cost function if it had one.

        Without ``cost`` a cost-aware planner goes on from the cost-function values and
        measured costs its state holds.

        Raises
        ------
        PlannerError
            When ``state`` is not planner state of a version this code reads.
        """
        if not isinstance(state, Mapping) or state.get("version") != STATE_VERSION:
            version = state.get("version") if isinstance(state, Mapping) else None
            raise PlannerError(
                f"state: not planner state of version {STATE_VERSION} (version {version!r})"
            )
        try:
            planner = cls(
                state["space"],
                state["objectives"],
                state["outcome_constraints"],
                seed=state["seed"],
                n_initial=state["n_initial"],
                pool=state["pool"],
                settings=state["settings"],
                cost=cost,
            )
            for rec in state["observations"]:
                planner.observations.append(
                    planner._observation(
                        rec["params"],
                        rec["outcomes"],
                        rec["status"],
                        rec["prior"],
                        "state",
                        rec.get("cost"),
                    )
                )
            if planner.costs is not None and state.get("costs"):
                planner.costs = CostBook(planner.costs.settings, cost, **state["costs"])
            planner._sobol_drawn = int(state["sobol_drawn"])
            planner._calls = int(state["suggest_calls"])
            planner._hyper = {k: dict(v) for k, v in state["hyperparameters"].items()}
            # state written before fits were cached has none: everything is refitted
            planner._fits = {k: dict(v) for k, v in state.get("fits", {}).items()}
        except KeyError as exc:
            raise PlannerError(f"state: missing key {exc}") from None
        return planner


def _validate(model: type, value: Any, what: str) -> Any:
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)  # type: ignore[attr-defined]
    except ValidationError as exc:
        problems = "; ".join(
            f"{what}.{'.'.join(str(k) for k in e['loc'] if '[' not in str(k))}: "
            f"{e['msg'].removeprefix('Value error, ')} (got {e.get('input')!r})"
            for e in exc.errors(include_url=False)
        )
        raise PlannerError(problems) from None


def read_pool(path: str | Path, space: SearchSpace) -> list[dict[str, str]]:
    """Rows of a candidate-pool CSV by parameter name, each read from its ``column``.

    Other columns (outcomes, notes) are ignored; a fixed parameter's column may be absent.
    """
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except OSError as exc:
        raise PlannerError(f"search_space.pool: cannot read {str(path)!r} ({exc})") from None
    for p in space.parameters:
        if p.source not in header and p.type != "fixed":
            raise PlannerError(
                f"search_space.pool: {str(path)!r} has no column {p.source!r} for parameter "
                f"{p.name!r}; its columns: {', '.join(map(repr, header))}"
            )
    sources = {p.source: p.name for p in space.parameters if p.source in header}
    return [{sources[k]: v for k, v in row.items() if k in sources} for row in rows]

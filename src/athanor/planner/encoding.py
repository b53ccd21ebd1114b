"""Parameter dicts <-> points in the unit cube the models and optimisers work in.

Every parameter that is not fixed gets columns in ``[0, 1]``: continuous values are
scaled linearly (or on a log scale), integers and ordinals by their position, categorical
choices one-hot. Compositions and linear constraints become linear equalities and
inequalities on those columns, in BoTorch's ``(indices, coefficients, rhs)`` form.
A log-scaled parameter named in a linear constraint is encoded linearly, so that the
constraint stays linear for the optimiser.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from athanor.planner.space import (
    Categorical,
    Continuous,
    Fixed,
    Integer,
    Ordinal,
    SearchSpace,
)

#: Integers with more levels than this are optimised as continuous values and rounded.
MAX_INTEGER_LEVELS = 32
_TOL = 1e-9


class PlannerError(ValueError):
    """Input the planner cannot use; the message names the field and what is allowed."""


Constraint = tuple[list[int], list[float], float]


@dataclass
class _Column:
    """How one parameter maps to encoded columns."""

    param: Continuous | Integer | Ordinal | Categorical
    start: int
    width: int
    log: bool = False
    #: Encoded values a discrete parameter may take (per column block); None: continuous.
    levels: list[tuple[float, ...]] | None = None


@dataclass
class Encoder:
    """Maps parameter dicts to unit-cube rows and back, and holds the encoded constraints."""

    space: SearchSpace
    columns: list[_Column] = field(init=False)
    fixed: dict[str, Any] = field(init=False)
    dim: int = field(init=False)
    equalities: list[Constraint] = field(init=False)
    inequalities: list[Constraint] = field(init=False)

    def __post_init__(self) -> None:
        in_constraint = {n for c in self.space.constraints for n in c.coefficients}
        self.columns, self.fixed, start = [], {}, 0
        for p in self.space.parameters:
            if isinstance(p, Fixed):
                self.fixed[p.name] = p.value
                continue
            if isinstance(p, Categorical):
                eye = np.eye(len(p.values))
                col = _Column(p, start, len(p.values), levels=[tuple(r) for r in eye])
            elif isinstance(p, Ordinal):
                n = len(p.values)
                col = _Column(p, start, 1, levels=[(i / (n - 1),) for i in range(n)])
            elif isinstance(p, Integer):
                n = p.high - p.low + 1
                levels: list[tuple[float, ...]] | None = (
                    [(i / (n - 1),) for i in range(n)] if n <= MAX_INTEGER_LEVELS else None
                )
                col = _Column(p, start, 1, levels=levels)
            else:
                col = _Column(p, start, 1, log=p.log and p.name not in in_constraint)
            self.columns.append(col)
            start += col.width
        if not self.columns:
            raise PlannerError(
                "search_space: every parameter is fixed, so there is nothing to plan; "
                "give at least one continuous, integer, ordinal or categorical parameter"
            )
        self.dim = start
        self.equalities = [
            self._linear(g.components, [1.0] * len(g.components), g.total)
            for g in self.space.compositions
        ]
        self.inequalities = []
        for c in self.space.constraints:
            idx, coef, rhs = self._linear(
                list(c.coefficients), list(c.coefficients.values()), c.rhs
            )
            if c.op == "<=":
                coef, rhs = [-v for v in coef], -rhs
            self.inequalities.append((idx, coef, rhs))

    # ------------------------------------------------------------------ structure

    @property
    def names(self) -> list[str]:
        """Names of the encoded (not fixed) parameters, in column order."""
        return [c.param.name for c in self.columns]

    def column(self, name: str) -> _Column:
        return next(c for c in self.columns if c.param.name == name)

    @property
    def discrete(self) -> list[_Column]:
        return [c for c in self.columns if c.levels is not None]

    def combinations(self) -> int:
        """How many assignments of the discrete parameters exist."""
        return math.prod(len(c.levels or ()) for c in self.discrete)

    def all_fixed_features(self) -> list[dict[int, float]]:
        """Every assignment of the discrete columns, as optimiser ``fixed_features``."""
        blocks = [[self._fix(c, lv) for lv in c.levels or ()] for c in self.discrete]
        return [
            {k: v for part in combo for k, v in part.items()}
            for combo in itertools.product(*blocks)
        ]

    def fixed_features_of(self, row: np.ndarray) -> dict[int, float]:
        """The discrete columns' values of one encoded row, as ``fixed_features``."""
        out: dict[int, float] = {}
        for c in self.discrete:
            for j in range(c.width):
                out[c.start + j] = float(row[c.start + j])
        return out

    @staticmethod
    def _fix(col: _Column, level: tuple[float, ...]) -> dict[int, float]:
        return {col.start + j: float(v) for j, v in enumerate(level)}

    def _linear(self, names: Sequence[str], coefs: Sequence[float], rhs: float) -> Constraint:
        """``sum coef * x[name] (op) rhs`` rewritten on the encoded columns."""
        idx, out = [], []
        for name, coef in zip(names, coefs, strict=True):
            col = self.column(name)
            p = col.param
            assert isinstance(p, Continuous | Integer)
            idx.append(col.start)
            out.append(coef * (p.high - p.low))
            rhs -= coef * p.low
        return idx, out, rhs

    # ------------------------------------------------------------------ encode/decode

    def check(self, params: Mapping[str, Any], what: str = "params") -> dict[str, Any]:
        """Validate a parameter dict: known names, all present, values allowed."""
        if not isinstance(params, Mapping):
            raise PlannerError(
                f"{what} must be a mapping of parameter names to values, "
                f"got {type(params).__name__}"
            )
        known = {p.name for p in self.space.parameters}
        unknown = sorted(set(params) - known)
        if unknown:
            raise PlannerError(
                f"{what}: unknown parameter(s) {', '.join(map(repr, unknown))}; "
                f"the search space has {', '.join(sorted(known))}"
            )
        missing = [c.param.name for c in self.columns if c.param.name not in params]
        if missing:
            raise PlannerError(f"{what}: missing parameter(s) {', '.join(map(repr, missing))}")
        for name, value in self.fixed.items():
            if name in params and params[name] != value and str(params[name]) != str(value):
                raise PlannerError(
                    f"{what}.{name}: {params[name]!r} is not allowed; the parameter is fixed "
                    f"at {value!r}"
                )
        out = dict(self.fixed)
        for c in self.columns:
            out[c.param.name] = self._check_value(c.param, params[c.param.name], what)
        return out

    @staticmethod
    def _check_value(p: Any, value: Any, what: str) -> Any:
        where = f"{what}.{p.name}"
        if isinstance(p, Ordinal):  # includes Categorical
            for allowed in p.values:
                if value == allowed or str(value) == str(allowed):
                    return allowed
            raise PlannerError(f"{where}: {value!r} is not one of the choices {p.values}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise PlannerError(f"{where}: {value!r} is not a number") from None
        if not math.isfinite(number):
            raise PlannerError(f"{where}: {value!r} is not a finite number")
        span = (p.high - p.low) * 1e-9
        if not p.low - span <= number <= p.high + span:
            raise PlannerError(
                f"{where}: {number:g} is outside the allowed range {p.low:g} to {p.high:g}"
            )
        if isinstance(p, Integer):
            if abs(number - round(number)) > 1e-9:
                raise PlannerError(f"{where}: {value!r} is not a whole number")
            return round(number)
        return min(max(number, p.low), p.high)

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        """One checked parameter dict -> one encoded row."""
        row = np.zeros(self.dim)
        for c in self.columns:
            p, value = c.param, params[c.param.name]
            if isinstance(p, Ordinal):
                i = [str(v) for v in p.values].index(str(value))
                if isinstance(p, Categorical):
                    row[c.start + i] = 1.0
                else:
                    row[c.start] = i / (len(p.values) - 1)
            elif c.log:
                row[c.start] = math.log(value / p.low) / math.log(p.high / p.low)
            else:
                row[c.start] = (value - p.low) / (p.high - p.low)
        return row

    def decode(self, row: Sequence[float]) -> dict[str, Any]:
        """One encoded row -> a parameter dict (fixed parameters included)."""
        out: dict[str, Any] = {}
        for c in self.columns:
            p = c.param
            u = min(max(float(row[c.start]), 0.0), 1.0)
            if isinstance(p, Categorical):
                block = [float(v) for v in row[c.start : c.start + c.width]]
                out[p.name] = p.values[int(np.argmax(block))]
            elif isinstance(p, Ordinal):
                out[p.name] = p.values[round(u * (len(p.values) - 1))]
            elif isinstance(p, Integer):
                out[p.name] = round(p.low + u * (p.high - p.low))
            elif c.log:
                out[p.name] = float(p.low * (p.high / p.low) ** u)
            else:
                out[p.name] = float(p.low + u * (p.high - p.low))
        out.update(self.fixed)
        return {name: out[name] for name in self.space.names}

    def snap(self, rows: np.ndarray) -> np.ndarray:
        """Round discrete columns of encoded rows to their nearest allowed level."""
        rows = np.array(rows, dtype=float, copy=True)
        for c in self.columns:
            block = rows[:, c.start : c.start + c.width]
            if c.levels is not None:
                levels = np.array(c.levels)
                nearest = np.argmin(((block[:, None, :] - levels[None]) ** 2).sum(-1), axis=1)
                rows[:, c.start : c.start + c.width] = levels[nearest]
            elif isinstance(c.param, Integer):
                n = c.param.high - c.param.low
                rows[:, c.start] = np.round(np.clip(block[:, 0], 0, 1) * n) / n
        return rows

    def feasible(self, rows: np.ndarray, tol: float = 1e-6) -> np.ndarray:
        """Which encoded rows satisfy the bounds, compositions and linear constraints."""
        ok = np.all((rows >= -tol) & (rows <= 1 + tol), axis=1)
        for idx, coef, rhs in self.equalities:
            ok &= np.abs(rows[:, idx] @ np.array(coef) - rhs) <= tol * max(1.0, abs(rhs))
        for idx, coef, rhs in self.inequalities:
            ok &= rows[:, idx] @ np.array(coef) >= rhs - tol * max(1.0, abs(rhs))
        return ok

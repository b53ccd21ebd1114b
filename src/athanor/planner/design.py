"""Space-filling points that respect the space: scrambled Sobol with constraints.

Each parameter takes one Sobol coordinate (a composition group takes one per component,
turned into a point of the simplex and fitted into the components' bounds); points that
break a linear constraint are skipped. The count of Sobol points drawn is the only state,
so a design continues exactly where it stopped.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linprog

from athanor.planner.encoding import Encoder, PlannerError
from athanor.planner.space import Categorical, Continuous, Integer

_CHUNK = 256
_MAX_DRAWS = 1 << 16


def check_feasible(encoder: Encoder) -> None:
    """Raise :class:`PlannerError` when no point satisfies the bounds and constraints.

    Checks the continuous relaxation with a linear programme (integers may take any value
    in their range here; categorical one-hot blocks sum to one).
    """
    if not encoder.equalities and not encoder.inequalities:
        return
    d = encoder.dim
    a_eq, b_eq = [], []
    for idx, coef, rhs in encoder.equalities:
        row = np.zeros(d)
        row[idx] = coef
        a_eq.append(row)
        b_eq.append(rhs)
    for c in encoder.columns:
        if isinstance(c.param, Categorical):
            row = np.zeros(d)
            row[c.start : c.start + c.width] = 1.0
            a_eq.append(row)
            b_eq.append(1.0)
    a_ub, b_ub = [], []
    for idx, coef, rhs in encoder.inequalities:
        row = np.zeros(d)
        row[idx] = -np.asarray(coef)
        a_ub.append(row)
        b_ub.append(-rhs)
    result = linprog(
        np.zeros(d),
        A_ub=np.array(a_ub) if a_ub else None,
        b_ub=b_ub or None,
        A_eq=np.array(a_eq) if a_eq else None,
        b_eq=b_eq or None,
        bounds=[(0.0, 1.0)] * d,
        method="highs",
    )
    if result.status == 2:
        parts = [f"'{c}'" for c in encoder.space.constraints]
        parts += [
            f"composition {g.name!r} ({' + '.join(g.components)} = {g.total:g})"
            for g in encoder.space.compositions
        ]
        raise PlannerError(
            "search_space: no point satisfies the parameter bounds together with "
            f"{', '.join(parts)}; loosen a bound or a constraint"
        )


class SobolDesign:
    """Scrambled Sobol points mapped into the space and filtered by its constraints."""

    def __init__(self, encoder: Encoder, seed: int) -> None:
        self.encoder = encoder
        self.seed = seed
        in_group = {n for g in encoder.space.compositions for n in g.components}
        self._singles = [c for c in encoder.columns if c.param.name not in in_group]
        self._groups = [
            [encoder.column(n) for n in g.components] for g in encoder.space.compositions
        ]
        self._totals = [g.total for g in encoder.space.compositions]
        self.n_coords = len(self._singles) + sum(len(g) for g in self._groups)

    def draw(self, n: int, start: int = 0) -> tuple[np.ndarray, int]:
        """``n`` feasible encoded rows from Sobol point ``start`` on, and the next start."""
        engine = torch.quasirandom.SobolEngine(self.n_coords, scramble=True, seed=self.seed)
        if start:
            engine.fast_forward(start)
        found: list[np.ndarray] = []
        count, position = 0, start
        while count < n and position - start < _MAX_DRAWS:
            u = engine.draw(_CHUNK, dtype=torch.float64).numpy()
            rows = self.map(u)
            ok = self.encoder.feasible(rows)
            taken = 0
            for i in np.flatnonzero(ok)[: n - count]:
                found.append(rows[i])
                taken = int(i) + 1
            count = len(found)
            position += taken if count >= n else _CHUNK
        if count < n:
            raise PlannerError(
                "search_space: the constraints leave so little room that no feasible point "
                f"was found in {_MAX_DRAWS} Sobol draws; loosen a constraint"
            )
        return np.array(found), position

    def map(self, u: np.ndarray) -> np.ndarray:
        """Unit-cube Sobol coordinates -> encoded rows (constraints not yet checked)."""
        rows = np.zeros((len(u), self.encoder.dim))
        k = 0
        for c in self._singles:
            x = u[:, k]
            k += 1
            if c.levels is not None:
                levels = np.array(c.levels)
                pick = np.minimum((x * len(levels)).astype(int), len(levels) - 1)
                rows[:, c.start : c.start + c.width] = levels[pick]
            elif isinstance(c.param, Integer):
                span = c.param.high - c.param.low
                rows[:, c.start] = np.round(x * span) / span
            else:
                rows[:, c.start] = x
        for group, total in zip(self._groups, self._totals, strict=True):
            g = len(group)
            e = -np.log(np.clip(u[:, k : k + g], 1e-12, 1.0))
            k += g
            params = [c.param for c in group]
            assert all(isinstance(p, Continuous) for p in params)
            lows = np.array([p.low for p in params])  # type: ignore[union-attr]
            caps = np.array([p.high for p in params]) - lows  # type: ignore[union-attr]
            y = fill_simplex(e / e.sum(axis=1, keepdims=True), caps, total - lows.sum())
            for j, c in enumerate(group):
                rows[:, c.start] = y[:, j] / caps[j]
        return rows


def fill_simplex(shares: np.ndarray, caps: np.ndarray, free: float) -> np.ndarray:
    """Split ``free`` by ``shares`` (rows sum to 1) without any part exceeding its cap.

    What a capped part cannot take is handed to the others in proportion to their shares.
    """
    y = shares * free
    for _ in range(shares.shape[1]):
        y = np.minimum(y, caps)
        excess = free - y.sum(axis=1)
        open_ = y < caps - 1e-12
        weight = np.where(open_, shares + 1e-12, 0.0)
        y = y + excess[:, None] * weight / np.maximum(weight.sum(axis=1, keepdims=True), 1e-300)
    return np.minimum(y, caps)

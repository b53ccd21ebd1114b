"""Maximising an acquisition function over the encoded space.

Continuous and mixed spaces: a scored screen of feasible Sobol points (plus small
perturbations of the best experiments so far), then gradient polishing with
``optimize_acqf`` from the best screened points, one discrete assignment at a time (the
``optimize_acqf_mixed`` idea, limited to the assignments the screen rates highest), with
composition equalities and linear inequalities passed to the optimiser.

A batch in a continuous space is optimised jointly (one ``optimize_acqf`` over all ``q``
points), started from the best of random batches of the best screened points; in a space
with discrete parameters, or with ``joint=False``, it is built greedily, each polished
point becoming pending for the next. Pools: ``optimize_acqf_discrete`` over the rows not yet tried.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from botorch.optim import optimize_acqf, optimize_acqf_discrete
from torch import Tensor

from athanor.planner.design import SobolDesign
from athanor.planner.encoding import Encoder

_DTYPE = torch.float64


@dataclass(frozen=True)
class SearchSettings:
    """How hard to search; smaller is faster."""

    raw_samples: int
    num_restarts: int
    max_assignments: int
    maxiter: int
    joint: bool = True


def score(acqf: object, X: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Acquisition values of single points (rows of ``X``)."""
    out = [_joint_score(acqf, X[i : i + chunk, None]) for i in range(0, len(X), chunk)]
    return np.concatenate(out) if out else np.zeros(0)


def perturbed(
    encoder: Encoder, centres: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Feasible points scattered around ``centres`` (none when compositions fix sums)."""
    if encoder.equalities or not len(centres) or n <= 0:
        return np.zeros((0, encoder.dim))
    continuous = np.array([c.levels is None for c in encoder.columns for _ in range(c.width)])
    base = centres[rng.integers(len(centres), size=n)]
    scale = rng.choice([0.01, 0.05, 0.15], size=(n, 1))
    noise = rng.normal(size=base.shape) * scale * continuous
    rows = encoder.snap(np.clip(base + noise, 0.0, 1.0))
    return rows[encoder.feasible(rows)]


def optimise(
    acqf: object,
    encoder: Encoder,
    q: int,
    X_pending: Tensor | None,
    centres: np.ndarray,
    seed: int,
    settings: SearchSettings,
) -> tuple[np.ndarray, list[float]]:
    """A batch of ``q`` encoded points and each one's acquisition value.

    Built greedily, a point's value is the acquisition given ``X_pending`` and the batch's
    earlier points; optimised jointly, every point carries the batch's joint value.
    """
    rng = np.random.default_rng(seed)
    raw, _ = SobolDesign(encoder, seed).draw(settings.raw_samples)
    raw = np.concatenate([raw, perturbed(encoder, centres, settings.raw_samples // 2, rng)])
    bounds = torch.stack([torch.zeros(encoder.dim), torch.ones(encoder.dim)]).to(_DTYPE)
    continuous = all(c.levels is None for c in encoder.columns)
    if 1 < q <= len(raw) // 2 and continuous and settings.joint:
        starts = _batch_starts(acqf, raw, q, settings.num_restarts, rng)
        batch = _polish(acqf, encoder, starts, bounds, settings)
        value = float(_joint_score(acqf, batch[None])[0])
        return batch, [value] * q
    has_continuous = any(c.levels is None for c in encoder.columns)
    chosen: list[np.ndarray] = []
    values: list[float] = []
    for _ in range(q):
        vals = score(acqf, raw)
        best_x, best_v = raw[int(np.argmax(vals))], float(np.max(vals))
        if has_continuous:
            for rows in _groups(encoder, raw, vals, settings.max_assignments):
                starts = raw[rows[: settings.num_restarts]][:, None]
                x = _polish(acqf, encoder, starts, bounds, settings)
                v = float(score(acqf, x)[0]) if encoder.feasible(x)[0] else -np.inf
                if v > best_v:
                    best_x, best_v = x[0], v
        chosen.append(best_x)
        values.append(best_v)
        _set_pending(acqf, X_pending, np.array(chosen))
    return np.array(chosen), values


def _set_pending(acqf: object, X_pending: Tensor | None, points: np.ndarray) -> None:
    """Make ``X_pending`` and ``points`` (k x d) the acquisition's pending points."""
    pending = torch.as_tensor(points, dtype=_DTYPE)
    if X_pending is not None:
        pending = torch.cat([X_pending, pending])
    acqf.set_X_pending(pending)  # type: ignore[attr-defined]


def _joint_score(acqf: object, batches: np.ndarray) -> np.ndarray:
    """Joint acquisition values of q-batches (b x q x d)."""
    with torch.no_grad():
        return acqf(torch.as_tensor(batches, dtype=_DTYPE)).detach().numpy()  # type: ignore[operator]


def _batch_starts(
    acqf: object, raw: np.ndarray, q: int, count: int, rng: np.random.Generator, top: int = 32
) -> np.ndarray:
    """The ``count`` best q-batches: the ``q`` best screened points, and random q-subsets
    of the ``top`` best."""
    best = raw[np.argsort(-score(acqf, raw), kind="stable")[: max(top, q)]]
    subsets = [np.arange(q)] + [rng.choice(len(best), q, replace=False) for _ in range(2 * top)]
    batches = best[np.array(subsets)]
    return batches[np.argsort(-_joint_score(acqf, batches), kind="stable")[:count]]


def _groups(encoder: Encoder, raw: np.ndarray, vals: np.ndarray, limit: int) -> list[np.ndarray]:
    """Row indices of ``raw`` by discrete assignment, best first, best ``limit`` ones."""
    order = np.argsort(-vals, kind="stable")
    discrete = [i for c in encoder.discrete for i in range(c.start, c.start + c.width)]
    if not discrete:
        return [order]
    keys = [tuple(raw[i, discrete]) for i in order]
    groups: dict[tuple[float, ...], list[int]] = {}
    for key, i in zip(keys, order, strict=True):
        groups.setdefault(key, []).append(int(i))
    return [np.array(rows) for rows in list(groups.values())[:limit]]


def _polish(
    acqf: object, encoder: Encoder, starts: np.ndarray, bounds: Tensor, settings: SearchSettings
) -> np.ndarray:
    """The best of gradient runs from ``starts`` (restarts x q x d), snapped, q x d.

    Discrete columns stay at the first start's values. A result that is not feasible
    after snapping is replaced by the first start.
    """
    fixed = encoder.fixed_features_of(starts[0, 0]) or None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        X, _ = optimize_acqf(
            acqf,  # type: ignore[arg-type]
            bounds=bounds,
            q=starts.shape[1],
            num_restarts=len(starts),
            batch_initial_conditions=torch.as_tensor(starts, dtype=_DTYPE),
            fixed_features=fixed,
            equality_constraints=_tensors(encoder.equalities),
            inequality_constraints=_tensors(encoder.inequalities),
            options={"maxiter": settings.maxiter},
        )
    x = encoder.snap(X.detach().numpy().reshape(starts.shape[1], -1))
    return x if encoder.feasible(x).all() else starts[0]


def _tensors(constraints: list[tuple[list[int], list[float], float]]) -> list | None:
    if not constraints:
        return None
    return [
        (torch.tensor(idx, dtype=torch.long), torch.tensor(coef, dtype=_DTYPE), float(rhs))
        for idx, coef, rhs in constraints
    ]


def choose_from_pool(acqf: object, choices: np.ndarray, q: int) -> tuple[np.ndarray, list[float]]:
    """The best ``q`` rows of ``choices`` (greedy, each conditioned on the earlier ones)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        X, v = optimize_acqf_discrete(
            acqf,  # type: ignore[arg-type]
            q=q,
            choices=torch.as_tensor(choices, dtype=_DTYPE),
            max_batch_size=256,
            unique=True,
        )
    values = v.detach().reshape(-1).tolist()
    return X.detach().numpy(), values if len(values) == q else [float(values[0])] * q

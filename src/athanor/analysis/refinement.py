"""The whole-pattern least squares: parameters, bounds, the solver and what the fit says.

Parameters: a scale factor per phase (≥ 0), the background correction's coefficients
(either sign), the pattern's zero offset and sample-displacement shift (global), and,
for phases with enough intensity to shape them, lattice scale and log crystallite size.
Peaks shift in 2θ by ``zero + D cos θ`` with ``D = −2 s / R`` (displacement ``s``,
goniometer radius ``R``), which no lattice change can mimic for every phase at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import nnls

from athanor.analysis.profiles import PhaseProfile


@dataclass(frozen=True)
class Bounds:
    """Ranges of the nonlinear parameters (a zero width fixes the parameter at 0)."""

    lattice: float  # scale within 1 ± this
    size_nm: tuple[float, float]
    zero_deg: float  # within ± this
    zero_sd_deg: float  # restrained to 0 ± this: the instrument's zero is calibrated
    cos_shift_deg: float  # within ± this
    min_shape_fraction: float  # share of the peak area above which shapes are refined


@dataclass
class Fit:
    """The refined parameters with their covariance, the model and its misfit."""

    c: np.ndarray
    scale: np.ndarray
    size: np.ndarray
    shift: np.ndarray  # (zero_deg, cos_shift_deg)
    cov_c: np.ndarray  # of the scale factors, scaled by the misfit (:func:`misfit_scale`)
    variance: np.ndarray  # (3, n): of c, lattice scale, ln size (0: not refined)
    shift_sd: np.ndarray  # of zero and cos shift (0: not refined)
    model: np.ndarray  # the fitted peaks
    columns: list[np.ndarray]  # each phase's profile at its fitted shape
    correction: np.ndarray  # the fitted background correction
    background_coef: np.ndarray  # its coefficients
    chi2: float
    dof: int
    misfit: float  # the factor the covariance was scaled by
    at_bound: dict[int, list[str]] = field(default_factory=dict)  # phase -> parameters
    shift_at_bound: list[str] = field(default_factory=list)


def refine(
    profiles: list[PhaseProfile],
    c0: np.ndarray,
    b0: np.ndarray,
    s0: np.ndarray,
    size0: np.ndarray,
    shift0: np.ndarray,
    smooth: np.ndarray,
    net: np.ndarray,
    sigma: np.ndarray,
    two_theta: np.ndarray,
    bounds: Bounds,
    correlation_lag: int,
) -> Fit:
    """Poisson-weighted bounded least squares of the pattern (module docstring).

    Profile derivatives by size come from differences of renders; by lattice scale and
    the global shifts, from the slope of the rendered profile, which they move.
    ``correlation_lag`` (points) is how far misfit residuals are taken to be correlated.
    """
    n, m = len(profiles), smooth.shape[1]
    lo_s, hi_s = 1 - bounds.lattice, 1 + bounds.lattice
    lo_l, hi_l = np.log(bounds.size_nm[0]), np.log(bounds.size_nm[1])
    shift_hi = np.array([bounds.zero_deg, bounds.cos_shift_deg])
    free_shift = np.flatnonzero(shift_hi > 0)
    scale, log_size = np.clip(s0, lo_s, hi_s), np.clip(np.log(size0), lo_l, hi_l)
    shift = np.clip(shift0, -shift_hi, shift_hi)
    areas = c0 * np.array(
        [
            pr.render(s, L, *shift).sum()
            for pr, s, L in zip(profiles, scale, np.exp(log_size), strict=True)
        ]
    )
    shaped = np.flatnonzero(areas >= bounds.min_shape_fraction * max(areas.sum(), 1e-300))
    k, h = shaped.size, free_shift.size
    weighted_smooth = smooth / sigma[:, None]
    cos_theta = np.cos(np.radians(two_theta) / 2)
    tan_theta = np.tan(np.radians(two_theta) / 2)
    cache: dict[tuple[int, float, float, float, float], np.ndarray] = {}

    def column(i: int, s: float, g: float, z: float, d: float) -> np.ndarray:
        key = (i, s, g, z, d)
        if key not in cache:
            if len(cache) > 8 * n:
                cache.clear()
            cache[key] = profiles[i].render(s, float(np.exp(g)), z, d)
        return cache[key]

    def unpack(x: np.ndarray):
        s, g, t = scale.copy(), log_size.copy(), shift.copy()
        t[free_shift] = x[n + m : n + m + h]
        s[shaped], g[shaped] = x[n + m + h : n + m + h + k], x[n + m + h + k :]
        return x[:n], x[n : n + m], s, g, t

    def peaks(x: np.ndarray) -> np.ndarray:
        c, _, s, g, t = unpack(x)
        return sum((c[i] * column(i, s[i], g[i], *t) for i in range(n)), np.zeros(net.size))

    restrained = 0 in free_shift.tolist()  # the zero offset, when refined, is its first

    def residual(x: np.ndarray) -> np.ndarray:
        r = (peaks(x) + smooth @ x[n : n + m] - net) / sigma
        return np.append(r, x[n + m] / bounds.zero_sd_deg) if restrained else r

    size_derivatives: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def shape_derivatives(
        i: int, s: float, g: float, t: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """d profile / d lattice scale and / d ln size.

        A lattice scaled by ``s`` moves every line by d2θ/ds = −2 tan θ / s (radians) and
        scales its intensity by s⁻³, which the profile's slope gives without a render; the
        size derivative is a difference of renders, reused while the shape barely moves.
        """
        base = column(i, s, g, *t)
        d_s = (np.degrees(2 * tan_theta) * np.gradient(base, two_theta) - 3 * base) / s
        known = size_derivatives.get(i)
        here = np.array([s, g, *t])
        if known is None or np.any(np.abs(known[0] - here) > [1e-4, 0.02, 2e-3, 2e-3]):
            dg = 1e-3 if g + 1e-3 <= hi_l else -1e-3
            known = (here, (column(i, s, g + dg, *t) - base) / dg)
            size_derivatives[i] = known
        return d_s, known[1]

    def jacobian(x: np.ndarray) -> np.ndarray:
        c, _, s, g, t = unpack(x)
        jac = np.zeros((net.size + restrained, n + m + h + 2 * k))
        if restrained:
            jac[-1, n + m] = 1 / bounds.zero_sd_deg
        jac[: net.size, n : n + m] = weighted_smooth
        for i in range(n):
            jac[: net.size, i] = column(i, s[i], g[i], *t) / sigma
        if h:
            slope = -np.gradient(peaks(x), two_theta) / sigma  # d model / d zero
            by_shift = [slope, slope * cos_theta]
            for j, which in enumerate(free_shift.tolist()):
                jac[: net.size, n + m + j] = by_shift[which]
        for j, phase in enumerate(shaped.tolist()):
            d_s, d_g = shape_derivatives(phase, s[phase], g[phase], t)
            jac[: net.size, n + m + h + j] = c[phase] * d_s / sigma
            jac[: net.size, n + m + h + k + j] = c[phase] * d_g / sigma
        return jac

    x = np.concatenate([c0, b0, shift[free_shift], scale[shaped], log_size[shaped]])
    lower = np.concatenate(
        [
            np.zeros(n),
            np.full(m, -np.inf),
            -shift_hi[free_shift],
            np.full(k, lo_s),
            np.full(k, lo_l),
        ]
    )
    upper = np.concatenate(
        [np.full(n + m, np.inf), shift_hi[free_shift], np.full(k, hi_s), np.full(k, hi_l)]
    )
    if n:
        x = levenberg_marquardt(residual, jacobian, x, lower, upper)
    c, b, s, g, t = unpack(x)
    columns = [column(i, s[i], g[i], *t) for i in range(n)]
    model, correction = peaks(x), smooth @ b
    r = (model + correction - net) / sigma
    chi2 = float(r @ r)
    dof = max(net.size - x.size, 1)
    misfit = misfit_scale(r, chi2 / dof, correlation_lag)
    jac = jacobian(x)
    norm = 1.0 / np.maximum(np.linalg.norm(jac, axis=0), 1e-150)
    inverse = np.linalg.pinv((jac * norm).T @ (jac * norm)) * np.outer(norm, norm) * misfit
    diag = np.maximum(np.diag(inverse), 0.0)
    variance = np.zeros((3, n))
    variance[0] = diag[:n]
    variance[1, shaped] = diag[n + m + h : n + m + h + k]
    variance[2, shaped] = diag[n + m + h + k :]
    shift_sd = np.zeros(2)
    shift_sd[free_shift] = np.sqrt(diag[n + m : n + m + h])
    at_bound: dict[int, list[str]] = {}
    span = upper - lower
    at_lower = np.abs(x - lower) < 1e-3 * span
    near = at_lower | (np.abs(upper - x) < 1e-3 * span)
    for j, phase in enumerate(shaped.tolist()):
        # a size at its upper bound only says the lines are as narrow as the instrument's
        hits = ["lattice_scale"] * bool(near[n + m + h + j])
        hits += ["crystallite_nm"] * bool(at_lower[n + m + h + k + j])
        hits = hits if c[phase] > 0 else []
        if hits:
            at_bound[phase] = hits
    shift_at_bound = [
        ("zero_shift", "sample_displacement")[which]
        for j, which in enumerate(free_shift.tolist())
        if near[n + m + j]
    ]
    return Fit(
        c=c,
        scale=s,
        size=np.exp(g),
        shift=t,
        cov_c=inverse[:n, :n],
        variance=variance,
        shift_sd=shift_sd,
        model=model,
        columns=columns,
        correction=correction,
        background_coef=b,
        chi2=chi2,
        dof=dof,
        misfit=misfit,
        at_bound=at_bound,
        shift_at_bound=shift_at_bound,
    )


def misfit_scale(weighted_residual: np.ndarray, chi2_reduced: float, lag: int) -> float:
    """How much the covariance of a least-squares fit understates the errors.

    ``max(1, χ²_red)`` for a misfit larger than the counting noise, times the
    correlation of neighbouring residuals (Bérar & Lelann 1991): a misfitting peak leaves
    residuals of one sign over its width, so there are fewer independent points than
    points. The factor is ``1 + 2 Σ ρ_k`` over lags 1..``lag`` (≥ 1).
    """
    r = weighted_residual - weighted_residual.mean()
    power = float(r @ r)
    if power <= 0 or lag < 1:
        return max(1.0, chi2_reduced)
    rho = np.array([float(r[:-j] @ r[j:]) / power for j in range(1, lag + 1)])
    return max(1.0, chi2_reduced) * max(1.0, 1.0 + 2.0 * float(rho.sum()))


class LinearPart:
    """Linear fits beside the free-signed background basis, which is projected out once.

    Scale factors (≥ 0) of fixed profiles, their χ², and the σ a new profile's scale
    factor would have: what the evidence tests and detection limits ask, many times per
    pattern.
    """

    def __init__(self, smooth: np.ndarray, sigma: np.ndarray) -> None:
        self.basis = smooth / sigma[:, None]
        self.gram = cho_factor(self.basis.T @ self.basis)
        self.sigma = sigma

    def coefficients(self, weighted: np.ndarray) -> np.ndarray:
        """Least-squares coefficients of the weighted basis for ``weighted`` values."""
        return cho_solve(self.gram, self.basis.T @ weighted)

    def residual_part(self, values: np.ndarray) -> np.ndarray:
        """Weighted ``values`` (one column each) less what the background basis explains."""
        weighted = values / (self.sigma[:, None] if values.ndim == 2 else self.sigma)
        return weighted - self.basis @ self.coefficients(weighted)

    def nonnegative(self, columns: list[np.ndarray], net: np.ndarray) -> tuple[np.ndarray, float]:
        """Scale factors (≥ 0) of ``columns`` fitted to ``net``, and the fit's χ²."""
        target = self.residual_part(net)
        if not columns:
            return np.zeros(0), float(target @ target)
        coef, norm = nnls(self.residual_part(np.column_stack(columns)), target)
        return coef, float(norm**2)

    def without(
        self, columns: list[np.ndarray], net: np.ndarray, groups: list[list[int]]
    ) -> tuple[np.ndarray, float, np.ndarray]:
        """:meth:`nonnegative` of all ``columns``, and the χ² with each group of them left
        out in turn (the columns projected once)."""
        target = self.residual_part(net)
        projected = self.residual_part(np.column_stack(columns))
        coef, norm = nnls(projected, target)
        left_out = np.empty(len(groups))
        for k, group in enumerate(groups):
            keep = np.setdiff1d(np.arange(len(columns)), group)
            rest = nnls(projected[:, keep], target)[1] if keep.size else np.linalg.norm(target)
            left_out[k] = rest**2
        return coef, float(norm**2), left_out

    def sd_at_zero(self, candidate: np.ndarray, others: list[np.ndarray], misfit: float) -> float:
        """σ of a profile's scale factor were it added at zero beside ``others`` (all free):
        the noise a trace of that phase must rise above."""
        u = self.residual_part(candidate)
        if others:
            basis = self.residual_part(np.column_stack(others))
            u = u - basis @ np.linalg.lstsq(basis, u, rcond=None)[0]
        information = float(u @ u)
        return float(np.sqrt(misfit / information)) if information > 0 else float("inf")


def levenberg_marquardt(
    residual: Callable[[np.ndarray], np.ndarray],
    jacobian: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    max_iter: int = 20,
    ftol: float = 1e-4,
) -> np.ndarray:
    """Bounded Levenberg-Marquardt (Marquardt's diagonal scaling, steps clipped to bounds).

    Few parameters and many points: the normal equations are tiny, so this is much
    cheaper per step than a general trust-region solver.
    """
    r = residual(x)
    cost = float(r @ r)
    damping = 1e-3
    for _ in range(max_iter):
        jac = jacobian(x)
        gradient, hessian = jac.T @ r, jac.T @ jac
        scale = np.maximum(np.diag(hessian), 1e-300)
        while True:
            try:
                step = np.linalg.solve(hessian + damping * np.diag(scale), -gradient)
            except np.linalg.LinAlgError:
                step = np.zeros_like(x)
            trial = np.clip(x + step, lower, upper)
            r_trial = residual(trial)
            trial_cost = float(r_trial @ r_trial)
            if trial_cost < cost or damping > 1e8:
                break
            damping *= 10
        if trial_cost >= cost:
            return x
        gain = (cost - trial_cost) / cost
        x, r, cost = trial, r_trial, trial_cost
        damping = max(damping / 10, 1e-9)
        if gain < ftol:
            break
    return x

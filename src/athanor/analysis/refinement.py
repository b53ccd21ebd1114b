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
from scipy.sparse import csr_array

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
    linear: LinearPart,
    net: np.ndarray,
    two_theta: np.ndarray,
    bounds: Bounds,
    correlation_lag: int,
) -> Fit:
    """Poisson-weighted bounded least squares of the pattern (module docstring).

    The background correction's basis and weights are ``linear``'s. Profile derivatives
    by size come from differences of renders; by lattice scale and the global shifts,
    from the slope of the rendered profile, which they move. ``correlation_lag``
    (points) is how far misfit residuals are taken to be correlated.
    """
    n, m = len(profiles), linear.basis.shape[1]
    lo_s, hi_s = 1 - bounds.lattice, 1 + bounds.lattice
    lo_l, hi_l = np.log(bounds.size_nm[0]), np.log(bounds.size_nm[1])
    shift_hi = np.array([bounds.zero_deg, bounds.cos_shift_deg])
    free_shift = np.flatnonzero(shift_hi > 0)
    scale, log_size = np.clip(s0, lo_s, hi_s), np.clip(np.log(size0), lo_l, hi_l)
    shift = np.clip(shift0, -shift_hi, shift_hi)
    sigma = linear.sigma
    cos_theta = np.cos(np.radians(two_theta) / 2)
    tan_theta = np.tan(np.radians(two_theta) / 2)
    draw = _Renderer(profiles, net.size)
    if bounds.min_shape_fraction > 0:
        areas = c0 * draw.columns(scale, log_size, shift).sum(axis=1)
        shaped = np.flatnonzero(areas >= bounds.min_shape_fraction * max(areas.sum(), 1e-300))
    else:
        shaped = np.arange(n)
    k, h = shaped.size, free_shift.size
    background = np.arange(n, n + m)
    others = np.setdiff1d(np.arange(n + m + h + 2 * k), background)

    def unpack(x: np.ndarray):
        s, g, t = scale.copy(), log_size.copy(), shift.copy()
        t[free_shift] = x[n + m : n + m + h]
        s[shaped], g[shaped] = x[n + m + h : n + m + h + k], x[n + m + h + k :]
        return x[:n], x[n : n + m], s, g, t

    def peaks(x: np.ndarray) -> np.ndarray:
        c, _, s, g, t = unpack(x)
        return c @ draw.columns(s, g, t)

    restrained = 0 in free_shift.tolist()  # the zero offset, when refined, is its first

    def residual(x: np.ndarray) -> np.ndarray:
        r = (peaks(x) - net) / sigma + linear.basis @ x[n : n + m]
        return np.append(r, x[n + m] / bounds.zero_sd_deg) if restrained else r

    def jacobian(x: np.ndarray) -> np.ndarray:
        """The Jacobian's columns other than the background's (which is ``linear.basis``)."""
        c, _, s, g, t = unpack(x)
        columns = draw.columns(s, g, t)
        jac = np.zeros((net.size + restrained, others.size))
        if restrained:
            jac[-1, n] = 1 / bounds.zero_sd_deg
        jac[: net.size, :n] = (columns / sigma).T
        if h:
            slope = -np.gradient(c @ columns, two_theta) / sigma  # d model / d zero
            by_shift = [slope, slope * cos_theta]
            for j, which in enumerate(free_shift.tolist()):
                jac[: net.size, n + j] = by_shift[which]
        if k:
            # a lattice scaled by s moves every line by d2θ/ds = −2 tan θ / s (radians)
            # and scales its intensity by s⁻³, which the profile's slope gives
            base = columns[shaped]
            d_s = np.degrees(2 * tan_theta) * np.gradient(base, two_theta, axis=1) - 3 * base
            d_s /= s[shaped, None]
            d_g = draw.size_derivatives(shaped, s, g, t, hi_l)
            weight = c[shaped, None] / sigma
            jac[: net.size, n + h : n + h + k] = (weight * d_s).T
            jac[: net.size, n + h + k :] = (weight * d_g).T
        return jac

    def normal(x: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """JᵀJ and Jᵀr, the background's blocks from its sparse basis."""
        jac = jacobian(x)
        cross = (linear.basis_t @ jac[: net.size]).T
        hessian = np.empty((x.size, x.size))
        hessian[np.ix_(others, others)] = jac.T @ jac
        hessian[np.ix_(others, background)] = cross
        hessian[np.ix_(background, others)] = cross.T
        hessian[np.ix_(background, background)] = linear.gram_matrix
        gradient = np.empty(x.size)
        gradient[others] = jac.T @ r
        gradient[background] = linear.basis_t @ r[: net.size]
        return hessian, gradient

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
        x = levenberg_marquardt(residual, normal, x, lower, upper)
    c, b, s, g, t = unpack(x)
    columns = draw.columns(s, g, t)
    model, correction = c @ columns, sigma * (linear.basis @ b)
    r = residual(x)
    chi2 = float(r[: net.size] @ r[: net.size])
    dof = max(net.size - x.size, 1)
    misfit = misfit_scale(r[: net.size], chi2 / dof, correlation_lag)
    hessian, _ = normal(x, r)
    norm = 1.0 / np.sqrt(np.maximum(np.diag(hessian), 1e-300))
    inverse = np.linalg.pinv(hessian * np.outer(norm, norm)) * np.outer(norm, norm) * misfit
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
        columns=list(columns),
        correction=correction,
        background_coef=b,
        chi2=chi2,
        dof=dof,
        misfit=misfit,
        at_bound=at_bound,
        shift_at_bound=shift_at_bound,
    )


class _Renderer:
    """The phases' profiles at the shapes a fit asks for, drawn together and kept while
    it comes back to them; a size step reuses the lines' transform at that shape."""

    def __init__(self, profiles: list[PhaseProfile], points: int) -> None:
        self.profiles, self.points = profiles, points
        self._columns: dict[tuple[int, float, float, float, float], np.ndarray] = {}
        self._spectra: dict[tuple[int, float, float, float], np.ndarray] = {}
        self._size_steps: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _draw(self, keys: list[tuple[int, float, float, float, float]]) -> list[np.ndarray]:
        """Profiles at (phase, lattice scale, ln size, zero, cos shift)."""
        if len(self._columns) > 8 * len(self.profiles):
            self._columns.clear()
            self._spectra.clear()
        missing = [key for key in dict.fromkeys(keys) if key not in self._columns]
        if missing:
            spectra = []
            for i, s, _, z, d in missing:
                if (i, s, z, d) not in self._spectra:
                    self._spectra[i, s, z, d] = self.profiles[i].spectrum(s, z, d)
                spectra.append(self._spectra[i, s, z, d])
            grid = self.profiles[0].grid
            drawn = grid.draw(np.stack(spectra), [float(np.exp(key[2])) for key in missing])
            self._columns.update(zip(missing, drawn, strict=True))
        return [self._columns[key] for key in keys]

    def columns(self, s: np.ndarray, g: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Every phase's profile (one row each) at lattice scales ``s``, ln sizes ``g``
        and the pattern's shift ``t``."""
        z, d = float(t[0]), float(t[1])
        keys = [(i, float(s[i]), float(g[i]), z, d) for i in range(len(self.profiles))]
        return np.array(self._draw(keys)).reshape(len(keys), self.points)

    def size_derivatives(
        self, phases: np.ndarray, s: np.ndarray, g: np.ndarray, t: np.ndarray, hi_l: float
    ) -> np.ndarray:
        """d profile / d ln size of ``phases``: a difference of renders, reused while the
        shape barely moves."""
        z, d = float(t[0]), float(t[1])
        stale = []
        for i in phases.tolist():
            known = self._size_steps.get(i)
            here = np.array([s[i], g[i], z, d])
            if known is None or np.any(np.abs(known[0] - here) > [1e-4, 0.02, 2e-3, 2e-3]):
                stale.append((i, here))
        if stale:
            keys = [(i, float(s[i]), float(g[i]), z, d) for i, _ in stale]
            steps = [1e-3 if key[2] + 1e-3 <= hi_l else -1e-3 for key in keys]
            moved = [
                (i, sv, gv + dg, zv, dv)
                for (i, sv, gv, zv, dv), dg in zip(keys, steps, strict=True)
            ]
            drawn = self._draw(keys + moved)
            for j, ((i, here), dg) in enumerate(zip(stale, steps, strict=True)):
                self._size_steps[i] = (here, (drawn[len(keys) + j] - drawn[j]) / dg)
        return np.array([self._size_steps[i][1] for i in phases.tolist()])


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

    def __init__(self, smooth: csr_array, sigma: np.ndarray) -> None:
        weights = np.repeat(1 / sigma, np.diff(smooth.indptr))
        self.basis = csr_array((smooth.data * weights, smooth.indices, smooth.indptr), smooth.shape)
        self.basis_t = csr_array(self.basis.T)
        self.gram_matrix = (self.basis_t @ self.basis).toarray()
        self.gram = cho_factor(self.gram_matrix)
        self.sigma = sigma

    def coefficients(self, weighted: np.ndarray) -> np.ndarray:
        """Least-squares coefficients of the weighted basis for ``weighted`` values."""
        return cho_solve(self.gram, self.basis_t @ weighted, check_finite=False)

    def residual_part(self, values: np.ndarray) -> np.ndarray:
        """Weighted ``values`` (one column each) less what the background basis explains."""
        weighted = values / (self.sigma[:, None] if values.ndim == 2 else self.sigma)
        return weighted - self.basis @ self.coefficients(weighted)

    def nonnegative(self, columns: list[np.ndarray], net: np.ndarray) -> tuple[np.ndarray, float]:
        """Scale factors (≥ 0) of ``columns`` fitted to ``net``, and the fit's χ²."""
        if not columns:
            target = self.residual_part(net)
            return np.zeros(0), float(target @ target)
        coef, chi2, _ = self.without(columns, net, [])
        return coef, chi2

    def without(
        self, columns: list[np.ndarray], net: np.ndarray, groups: list[list[int]]
    ) -> tuple[np.ndarray, float, np.ndarray]:
        """:meth:`nonnegative` of all ``columns``, and the χ² with each group of them left
        out in turn (the columns projected once, the fits made on a factor of their Gram
        matrix: as many rows as columns)."""
        r, reduced, beyond = _reduced(
            self.residual_part(np.column_stack(columns)), self.residual_part(net)
        )
        coef, norm = nnls(r, reduced)
        left_out = np.empty(len(groups))
        for k, group in enumerate(groups):
            keep = np.setdiff1d(np.arange(len(columns)), group)
            rest = nnls(r[:, keep], reduced)[1] if keep.size else np.linalg.norm(reduced)
            left_out[k] = rest**2 + beyond
        return coef, float(norm**2) + beyond, left_out

    def sd_at_zero(self, candidate: np.ndarray, others: list[np.ndarray], misfit: float) -> float:
        """σ of a profile's scale factor were it added at zero beside ``others`` (all free):
        the noise a trace of that phase must rise above."""
        u = self.residual_part(candidate)
        if others:
            basis = self.residual_part(np.column_stack(others))
            u = u - basis @ np.linalg.lstsq(basis, u, rcond=None)[0]
        information = float(u @ u)
        return float(np.sqrt(misfit / information)) if information > 0 else float("inf")


def _reduced(a: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """``R``, ``z`` and ``rest`` with ``|a c − t|² = |R c − z|² + rest`` for every ``c``,
    ``R`` having a row per independent column of ``a`` (from the eigenvectors of ``aᵀa``)."""
    w, v = np.linalg.eigh(a.T @ a)
    ok = w > 1e-12 * max(float(w.max()), 1e-300)
    root = np.sqrt(w[ok])
    z = v[:, ok].T @ (a.T @ t) / root
    return root[:, None] * v[:, ok].T, z, max(float(t @ t - z @ z), 0.0)


def levenberg_marquardt(
    residual: Callable[[np.ndarray], np.ndarray],
    normal: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    x: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    max_iter: int = 20,
    ftol: float = 1e-4,
) -> np.ndarray:
    """Bounded Levenberg-Marquardt (Marquardt's diagonal scaling, steps clipped to bounds).

    Few parameters and many points: the normal equations (``normal(x, r)`` gives JᵀJ
    and Jᵀr) are tiny, so this is much cheaper per step than a general trust-region
    solver. It stops when a step gains less than ``ftol`` of the cost, or when the
    linearised model, bounds aside, promises less than that (no renders spent on steps
    that could not gain more).
    """
    r = residual(x)
    cost = float(r @ r)
    damping = 1e-3
    for _ in range(max_iter):
        hessian, gradient = normal(x, r)
        scale = np.maximum(np.diag(hessian), 1e-300)
        while True:
            try:
                step = np.linalg.solve(hessian + damping * np.diag(scale), -gradient)
            except np.linalg.LinAlgError:
                step = np.zeros_like(x)
            promised = -float(2 * gradient @ step + step @ hessian @ step)
            if promised < ftol * cost:
                return x
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

"""Phase identification and quantification from powder diffraction patterns.

Method ``xrd.wpf`` (whole-pattern fitting):

1. Background: pybaselines' SNIP (Morháč's clipping filter, the usual choice for
   diffraction and X-ray spectra: one parameter, the broadest peak's half width, no
   assumed shape, so it follows the steep low-angle air scatter as well as the flat
   part) on the pattern binned to 0.05°. SNIP also clips the pedestal that the
   Lorentzian tails of many overlapping lines build (about 10 % of the peak area on
   these phases, more for small crystallites), so the fit adds a smooth correction
   (cubic B-splines, knots every 5°, either sign) fitted together with the peaks, whose
   own tails then account for the pedestal.
2. Each candidate phase's lattice scale is located by matching its strongest reference
   lines to the pattern over 1 ± ``max_lattice_shift``.
3. Non-negative least squares over each phase's profile at a few crystallite sizes
   (background projected out) gives starting scale factors and sizes; phases that get
   none are dropped.
4. Levenberg-Marquardt with Poisson weights refines the scale factors, the background
   correction and, for phases with ≥ ``min_shape_fraction`` of the peak area, the
   lattice scale and crystallite size. Profiles are rendered in q, where widths are
   nearly constant, with one FFT convolution (:class:`_PhaseProfile`).
5. Scale factors become weight fractions with the Hill & Howard convention of the
   references (:mod:`athanor.analysis.references`): ``w_p = c_p / Σ c`` for a fully
   crystalline sample, or, with the instrument's count rate calibrated on the unit
   phase, absolute fractions ``w_p = c_p μ*_mix / (R t μ*_unit)`` that leave room for
   an amorphous part. Uncertainties come from the fit covariance.
6. Peaks the fit leaves in the residual, where the model has little intensity, are
   reported as unexplained intensity.

Method ``xrd.peak_ratio`` is the naive baseline: each phase's strongest reference line,
its background-subtracted height at the reference position, divided by the reference
intensity, normalised over phases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pybaselines import Baseline
from pydantic import Field
from scipy.fft import next_fast_len
from scipy.interpolate import BSpline
from scipy.optimize import nnls

from athanor.analysis.outcomes import AnalysisError, AnalysisResult, Quantity
from athanor.analysis.references import (
    CU_KA1,
    CU_KA2,
    UNIT_PHASE,
    ReferenceSet,
    load_references,
)
from athanor.powder import pseudo_voigt_parameters
from athanor.schema import StrictModel

_MIN_POINTS = 50
_BACKGROUND_STEP = 0.05  # degrees: the background is estimated at this resolution
_START_SIZES = (10.0, 50.0, 300.0)  # nm: size columns of the first fit


class InstrumentProfile(StrictModel):
    """The diffractometer's resolution and wavelengths (calibrated on a line standard)."""

    caglioti_u: float = Field(0.004, description="U of H² = U tan²θ + V tanθ + W (deg²)")
    caglioti_v: float = Field(-0.001, description="V (deg²)")
    caglioti_w: float = Field(0.0036, gt=0, description="W (deg²)")
    scherrer_k: float = Field(0.9, gt=0, le=2, description="Scherrer shape factor K")
    ka2_ratio: float = Field(0.5, ge=0, le=1, description="Kα2/Kα1 intensity ratio")
    ka1_angstrom: float = Field(CU_KA1, gt=0, lt=5)
    ka2_angstrom: float = Field(CU_KA2, gt=0, lt=5)

    def gaussian_fwhm(self, two_theta: np.ndarray) -> np.ndarray:
        """Instrument FWHM (degrees, Caglioti)."""
        tan = np.tan(np.radians(two_theta) / 2)
        h2 = self.caglioti_u * tan**2 + self.caglioti_v * tan + self.caglioti_w
        return np.sqrt(np.maximum(h2, 1e-8))


class XRDParams(StrictModel):
    """Parameters of ``xrd.wpf`` (and, where they apply, ``xrd.peak_ratio``)."""

    phases: list[str] | None = Field(None, description="candidate phases (default: all)")
    background: Literal["snip", "arpls"] = "snip"
    background_window_deg: float = Field(
        2.5, gt=0, le=30, description="SNIP half window: wider than the broadest peak"
    )
    min_shape_fraction: float = Field(
        0.02,
        ge=0,
        le=1,
        description="share of the peak area above which a phase's lattice and size are refined",
    )
    background_knot_deg: float = Field(
        5.0, gt=0, le=90, description="knot spacing of the fitted background correction"
    )
    instrument: InstrumentProfile = Field(default_factory=InstrumentProfile)
    max_lattice_shift: float = Field(
        0.025, ge=0, le=0.1, description="lattice scale searched within 1 ± this"
    )
    crystallite_nm: tuple[float, float] = Field((3.0, 3000.0), description="size bounds")
    count_rate: float | None = Field(
        None,
        gt=0,
        description="counts/s·degree of the unit phase's strongest line (absolute fractions)",
    )
    min_fraction: float = Field(0.01, ge=0, le=1, description="smallest fraction reported present")
    min_significance: float = Field(3.0, ge=0, description="scale factor / its σ to be present")
    unexplained_sigma: float = Field(8.0, gt=0, description="residual peak threshold in σ")
    unexplained_min_fraction: float = Field(
        0.01, ge=0, le=1, description="residual peak area, of the fitted area, to flag"
    )
    min_line: float = Field(1e-3, ge=0, lt=1, description="weakest line drawn, of strongest")


class _PhaseProfile:
    """Draws one phase's pattern per unit weight fraction at the measured 2θ points.

    Lines are convolved in q = 4π sin θ / λ1, where Scherrer widths are constant and
    instrument widths nearly so: sticks on a uniform q grid, one FFT, the pseudo-Voigt
    kernel's Fourier transform (interpolated between a few q segments where the width
    changes), then the density is carried back to 2θ.
    """

    def __init__(
        self,
        phase: str,
        two_theta: np.ndarray,
        references: ReferenceSet,
        instrument: InstrumentProfile,
        min_line: float,
    ) -> None:
        self.phase, self.references, self.inst, self.min_line = (
            phase,
            references,
            instrument,
            min_line,
        )
        self.k1 = 2 * np.pi / instrument.ka1_angstrom  # q = 2 k1 sin θ
        self.q_data = 2 * self.k1 * np.sin(np.radians(two_theta) / 2)
        # dq per degree of 2θ: turns a density in q into counts per degree
        self.jacobian = self.k1 * np.cos(np.radians(two_theta) / 2) * np.pi / 180
        step = float(self._gauss_q(self.q_data).min()) / 8
        pad = 0.2  # Å⁻¹ either side, so that tails wrap little
        self.q0 = float(self.q_data[0]) - pad
        size = next_fast_len(int(np.ceil((self.q_data[-1] - self.q0 + pad) / step)) + 1)
        self.step, self.size = step, size
        self.freq = np.fft.rfftfreq(size, d=step)
        # sticks are spread linearly over two grid points: undo that triangle's smoothing
        self.unspread = 1.0 / np.maximum(np.sinc(self.freq * step) ** 2, 1e-3)
        grid_q = self.q0 + np.arange(size) * step
        # segments where the Gaussian width differs by ≤ 4 % from its neighbours (one if ≤ 3 %)
        g = self._gauss_q(np.linspace(self.q_data[0], self.q_data[-1], 64))
        spread = float(np.log(g.max() / g.min()))
        count = 1 if spread < np.log(1.03) else int(min(np.ceil(spread / np.log(1.04)) + 1, 12))
        self.centres = (
            np.linspace(self.q_data[0], self.q_data[-1], count)
            if count > 1
            else np.array([float(np.mean(self.q_data))])
        )
        self.blend = (
            [np.interp(grid_q, self.centres, np.eye(count)[k]) for k in range(count)]
            if count > 1
            else [1.0]
        )
        # cubic (Catmull-Rom) interpolation from the grid to the data points
        x = (self.q_data - self.q0) / step
        i = np.floor(x).astype(np.int64)
        t = x - i
        self.taps = [i - 1, i, i + 1, i + 2]
        self.tap_weights = [
            0.5 * (-(t**3) + 2 * t**2 - t),
            0.5 * (3 * t**3 - 5 * t**2 + 2),
            0.5 * (-3 * t**3 + 4 * t**2 + t),
            0.5 * (t**3 - t**2),
        ]

    def _gauss_q(self, q: np.ndarray) -> np.ndarray:
        """Instrument FWHM in q at ``q``."""
        theta = np.arcsin(np.clip(q / (2 * self.k1), 0, 1))
        return self.k1 * np.cos(theta) * np.radians(self.inst.gaussian_fwhm(2 * np.degrees(theta)))

    def render(self, lattice_scale: float, size_nm: float) -> np.ndarray:
        inst = self.inst
        positions, areas = [], []
        for wavelength, weight in ((inst.ka1_angstrom, 1.0), (inst.ka2_angstrom, inst.ka2_ratio)):
            tth, area = self.references.lines(self.phase, wavelength, lattice_scale)
            positions.append(2 * self.k1 * np.sin(np.radians(tth) / 2))
            areas.append(area * weight)
        q, area = np.concatenate(positions), np.concatenate(areas)
        keep = (
            (area > self.min_line * area.max())
            & (q > self.q0)
            & (q < self.q0 + (self.size - 1) * self.step)
        )
        x = (q[keep] - self.q0) / self.step
        i = np.floor(x).astype(np.int64)
        frac = x - i
        sticks = np.bincount(i, area[keep] * (1 - frac), minlength=self.size + 1)
        sticks += np.bincount(i + 1, area[keep] * frac, minlength=self.size + 1)
        spectrum = np.fft.rfft(sticks[: self.size]) * self.unspread
        lorentz = 2 * np.pi * inst.scherrer_k / (10.0 * size_nm)  # FWHM in q, all lines
        fwhm, eta = pseudo_voigt_parameters(
            self._gauss_q(self.centres), np.full(self.centres.size, lorentz)
        )
        density = np.zeros(self.size)
        for h, e, weight in zip(fwhm, eta, self.blend, strict=True):
            kernel = pseudo_voigt_transform(self.freq.size, self.freq[1], float(h), float(e))
            density += weight * np.fft.irfft(spectrum * kernel, self.size)
        out = sum(w * density[i] for i, w in zip(self.taps, self.tap_weights, strict=True))
        return out * (self.jacobian / self.step)


def pseudo_voigt_transform(size: int, df: float, fwhm: float, eta: float) -> np.ndarray:
    """Fourier transform of a unit-area pseudo-Voigt at frequencies 0, df, 2 df, ...

    ``η exp(−π H f) + (1 − η) exp(−2 (π σ f)²)``, built by running products (far cheaper
    than ``exp``) and left at zero where both terms are below 1e-30.
    """
    out = np.zeros(size)
    a = 2 * (np.pi * fwhm / (2 * np.sqrt(2 * np.log(2))) * df) ** 2
    n = min(size, int(np.sqrt(69.0 / a)) + 2)
    ratio = np.full(n, np.exp(-2 * a))
    ratio[0] = np.exp(a)  # G_k / G_(k-1) = exp(−a (2k − 1))
    ratio = np.cumprod(ratio)
    ratio[0] = 1.0
    out[:n] = (1 - eta) * np.cumprod(ratio)
    if eta > 0:
        step = np.pi * fwhm * df
        n = min(size, int(69.0 / step) + 2)
        lorentz = np.full(n, np.exp(-step))
        lorentz[0] = 1.0
        out[:n] += eta * np.cumprod(lorentz)
    return out


_PROFILES: dict[tuple, _PhaseProfile] = {}


def _profile(phase: str, tth: np.ndarray, refs: ReferenceSet, p: XRDParams) -> _PhaseProfile:
    """A phase's renderer for this grid, reused across patterns measured on the same grid."""
    key = (
        phase,
        id(refs.reference(phase)),
        refs.unit,
        tth.size,
        hash(tth.tobytes()),
        p.instrument.model_dump_json(),
        p.min_line,
    )
    if key not in _PROFILES:
        if len(_PROFILES) >= 32:
            _PROFILES.clear()
        _PROFILES[key] = _PhaseProfile(phase, tth, refs, p.instrument, p.min_line)
    return _PROFILES[key]


# ----------------------------------------------------------------------------- input


def read_pattern_file(path: str | Path):
    """Read ``.xrdml`` / ``.xy`` / ``.xye`` (errors name the file and the problem)."""
    from athanor.drivers.xrdml import PatternFileError, read_pattern

    try:
        return read_pattern(path)
    except PatternFileError as exc:
        raise AnalysisError(str(exc)) from exc


def check_pattern(two_theta, counts, source: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Validated float arrays of a pattern; :class:`AnalysisError` says what is wrong."""
    where = f"{source}: " if source else ""
    try:
        tth = np.asarray(two_theta, dtype=float)
        y = np.asarray(counts, dtype=float)
    except (TypeError, ValueError) as exc:
        raise AnalysisError(f"{where}pattern is not numeric ({exc})") from None
    if tth.ndim != 1 or y.ndim != 1:
        raise AnalysisError(f"{where}2θ and counts must be 1-D, got shapes {tth.shape}, {y.shape}")
    if tth.size != y.size:
        raise AnalysisError(f"{where}{tth.size} 2θ positions but {y.size} counts")
    if y.size == 0:
        raise AnalysisError(f"{where}the pattern is empty")
    if y.size < _MIN_POINTS:
        raise AnalysisError(f"{where}only {y.size} points; a pattern needs ≥ {_MIN_POINTS}")
    if not (np.isfinite(tth).all() and np.isfinite(y).all()):
        raise AnalysisError(f"{where}the pattern holds values that are not finite")
    if np.any(np.diff(tth) <= 0):
        raise AnalysisError(f"{where}2θ must increase strictly")
    if np.any(y < 0):
        raise AnalysisError(f"{where}counts must not be negative")
    if not y.any():
        raise AnalysisError(f"{where}the pattern holds no counts")
    return tth, y


def background(two_theta: np.ndarray, counts: np.ndarray, params: XRDParams) -> np.ndarray:
    """The pattern's background (counts), by pybaselines SNIP or arPLS.

    The background is smooth on the scale of peaks, so it is estimated on the pattern
    binned to about 0.05° and interpolated back: the same baseline, far fewer points.
    """
    x, y = _binned(two_theta, counts)
    fitter = Baseline(x, check_finite=False)
    binned_step = float(np.median(np.diff(x))) if x.size > 1 else _BACKGROUND_STEP
    if params.background == "snip":
        half = max(2, round(params.background_window_deg / binned_step))
        half = min(half, (y.size - 1) // 2)
        base, _ = fitter.snip(
            y, max_half_window=half, decreasing=True, smooth_half_window=max(1, half // 20)
        )
    else:
        base, _ = fitter.arpls(y, lam=1e5 * (_BACKGROUND_STEP / binned_step) ** 4)
    return np.minimum(np.interp(two_theta, x, base), counts)


def _binned(two_theta: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pattern averaged in bins of about :data:`_BACKGROUND_STEP` degrees."""
    step = float(np.median(np.diff(two_theta)))
    factor = max(1, round(_BACKGROUND_STEP / step))
    usable = counts.size - counts.size % factor
    x = two_theta[:usable].reshape(-1, factor).mean(axis=1)
    y = counts[:usable].reshape(-1, factor).mean(axis=1)
    if usable < counts.size:
        x = np.append(x, two_theta[usable:].mean())
        y = np.append(y, counts[usable:].mean())
    return x, y


# ----------------------------------------------------------------------------- whole-pattern fit


def analyse_pattern(
    two_theta,
    counts,
    params: XRDParams | dict | None = None,
    *,
    counting_time: float | None = None,
    references: ReferenceSet | None = None,
    source: str = "",
) -> AnalysisResult:
    """Phase fractions of a powder pattern by whole-pattern fitting (``xrd.wpf``).

    Parameters
    ----------
    two_theta, counts
        The pattern: degrees (increasing) and counts per step.
    params
        :class:`XRDParams` (or a dict of them); defaults when None.
    counting_time
        Seconds per step; needed for absolute fractions (``params.count_rate``).
    references
        Reference lines; default: computed from the CIFs of the candidate phases.
    source
        Names the data in messages (a file, a run uid).

    Returns
    -------
    AnalysisResult
        ``fraction_<phase>`` (g/g), ``lattice_scale_<phase>``, ``crystallite_nm_<phase>``
        for the phases found, ``rwp`` (%), ``chi2_reduced``, ``unexplained_fraction``;
        ``details["identified"]`` lists the phases present; the flag
        ``unexplained_intensity`` is raised when residual peaks remain.
    """
    p = _params(params)
    tth, y = check_pattern(two_theta, counts, source)
    refs = _references(references, p)
    if p.count_rate is not None and not (counting_time and counting_time > 0):
        raise AnalysisError(
            f"{source + ': ' if source else ''}absolute fractions (count_rate) need the "
            "counting time per step, which the data does not give"
        )
    net = y - background(tth, y, p)
    sigma = np.sqrt(np.maximum(y, 1.0))
    smooth = _background_basis(tth, p.background_knot_deg)
    names = list(refs.names)
    profiles = [_profile(n, tth, refs, p) for n in names]
    scales = np.array([_locate(refs, n, tth, net, p) for n in names])
    c0, b0, sizes = _start(profiles, scales, smooth, net, sigma, p)
    active = [i for i in range(len(names)) if c0[i] > 0]
    fit = _refine(
        [profiles[i] for i in active],
        c0[active],
        b0,
        scales[active],
        sizes[active],
        smooth,
        net,
        sigma,
        p,
    )
    net = net - fit.correction
    return _result(names, active, fit, refs, tth, y, net, sigma, p, counting_time, source)


def _background_basis(two_theta: np.ndarray, knot_deg: float) -> np.ndarray:
    """Cubic B-splines with knots every ~``knot_deg``: the background correction's basis."""
    pieces = max(1, round((two_theta[-1] - two_theta[0]) / knot_deg))
    inner = np.linspace(two_theta[0], two_theta[-1], pieces + 1)
    knots = np.concatenate([[inner[0]] * 3, inner, [inner[-1]] * 3])
    return BSpline.design_matrix(two_theta, knots, 3).toarray()


def _start(
    profiles: list[_PhaseProfile],
    scales: np.ndarray,
    smooth: np.ndarray,
    net: np.ndarray,
    sigma: np.ndarray,
    p: XRDParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale factors, background correction and crystallite sizes to start from.

    Bounded linear least squares over a few sizes per phase (scale factors ≥ 0) and the
    background basis; how a phase's scale factor spreads over its size columns locates
    its size.
    """
    lo, hi = p.crystallite_nm
    sizes = np.array([s for s in _START_SIZES if lo <= s <= hi] or [np.sqrt(lo * hi)])
    columns = [pr.render(s, size) for pr, s in zip(profiles, scales, strict=True) for size in sizes]
    # NNLS for the peaks with the (free-signed) background projected out
    q, rq = np.linalg.qr(smooth / sigma[:, None])
    target = net / sigma
    peaks = np.column_stack(columns) / sigma[:, None] if columns else np.zeros((net.size, 0))
    coef_flat = nnls(peaks - q @ (q.T @ peaks), target - q @ (q.T @ target))[0] if columns else []
    b0 = np.linalg.solve(rq, q.T @ (target - peaks @ coef_flat))
    coef = np.reshape(coef_flat, (len(profiles), sizes.size))
    c0 = coef.sum(axis=1)
    share = coef / np.maximum(c0[:, None], 1e-300)
    size0 = np.exp(share @ np.log(sizes))
    return c0, b0, np.where(c0 > 0, size0, np.sqrt(lo * hi))


@dataclass
class _Fit:
    c: np.ndarray
    scale: np.ndarray
    size: np.ndarray
    cov_c: np.ndarray  # covariance of the scale factors, scaled by max(1, χ²_red)
    variance: np.ndarray  # (3, n): variances of c, lattice scale, ln size (0: not refined)
    model: np.ndarray  # the fitted peaks
    correction: np.ndarray  # the fitted background correction
    chi2: float
    dof: int


def _refine(
    profiles: list[_PhaseProfile],
    c0: np.ndarray,
    b0: np.ndarray,
    s0: np.ndarray,
    size0: np.ndarray,
    smooth: np.ndarray,
    net: np.ndarray,
    sigma: np.ndarray,
    p: XRDParams,
) -> _Fit:
    """Poisson-weighted least squares over scale factors, background correction, and the
    lattice scale and (log) crystallite size of each phase large enough to shape them.

    Jacobian columns of the profiles come from differences of renders.
    """
    n, m = len(profiles), smooth.shape[1]
    lo_s, hi_s = 1 - p.max_lattice_shift, 1 + p.max_lattice_shift
    lo_l, hi_l = np.log(p.crystallite_nm[0]), np.log(p.crystallite_nm[1])
    areas = c0 * np.array(
        [pr.render(s, L).sum() for pr, s, L in zip(profiles, s0, size0, strict=True)]
    )
    shaped = np.flatnonzero(areas >= p.min_shape_fraction * max(areas.sum(), 1e-300))
    k = shaped.size
    scale, log_size = np.clip(s0, lo_s, hi_s), np.clip(np.log(size0), lo_l, hi_l)
    weighted_smooth = smooth / sigma[:, None]
    cache: dict[tuple[int, float, float], np.ndarray] = {}

    def column(i: int, s: float, g: float) -> np.ndarray:
        key = (i, s, g)
        if key not in cache:
            if len(cache) > 8 * n:
                cache.clear()
            cache[key] = profiles[i].render(s, float(np.exp(g)))
        return cache[key]

    def unpack(x: np.ndarray):
        s, g = scale.copy(), log_size.copy()
        s[shaped], g[shaped] = x[n + m : n + m + k], x[n + m + k :]
        return x[:n], x[n : n + m], s, g

    def peaks(x: np.ndarray) -> np.ndarray:
        c, _, s, g = unpack(x)
        return sum((c[i] * column(i, s[i], g[i]) for i in range(n)), np.zeros(net.size))

    def residual(x: np.ndarray) -> np.ndarray:
        return (peaks(x) + smooth @ x[n : n + m] - net) / sigma

    derivatives: dict[int, tuple[float, float, np.ndarray, np.ndarray]] = {}

    def shape_derivatives(i: int, s: float, g: float) -> tuple[np.ndarray, np.ndarray]:
        """d profile / d lattice scale and / d ln size, reused while the shape barely moves."""
        known = derivatives.get(i)
        if known is None or abs(known[0] - s) > 1e-4 or abs(known[1] - g) > 0.02:
            base = column(i, s, g)
            ds = 2e-5 if s + 2e-5 <= hi_s else -2e-5
            dg = 1e-3 if g + 1e-3 <= hi_l else -1e-3
            known = (s, g, (column(i, s + ds, g) - base) / ds, (column(i, s, g + dg) - base) / dg)
            derivatives[i] = known
        return known[2], known[3]

    def jacobian(x: np.ndarray) -> np.ndarray:
        c, _, s, g = unpack(x)
        jac = np.empty((net.size, n + m + 2 * k))
        jac[:, n : n + m] = weighted_smooth
        for i in range(n):
            jac[:, i] = column(i, s[i], g[i]) / sigma
        for j, phase in enumerate(shaped.tolist()):
            d_s, d_g = shape_derivatives(phase, s[phase], g[phase])
            jac[:, n + m + j] = c[phase] * d_s / sigma
            jac[:, n + m + k + j] = c[phase] * d_g / sigma
        return jac

    x = np.concatenate([c0, b0, scale[shaped], log_size[shaped]])
    lower = np.concatenate([np.zeros(n), np.full(m, -np.inf), np.full(k, lo_s), np.full(k, lo_l)])
    upper = np.concatenate([np.full(n + m, np.inf), np.full(k, hi_s), np.full(k, hi_l)])
    if n:
        x = _levenberg_marquardt(residual, jacobian, x, lower, upper)
    c, b, s, g = unpack(x)
    model, correction = peaks(x), smooth @ b
    chi2 = float(np.sum(((model + correction - net) / sigma) ** 2))
    dof = max(net.size - x.size, 1)
    jac = jacobian(x)
    norm = 1.0 / np.maximum(np.linalg.norm(jac, axis=0), 1e-300)
    inverse = np.linalg.pinv((jac * norm).T @ (jac * norm)) * np.outer(norm, norm)
    inverse *= max(1.0, chi2 / dof)
    variance = np.zeros((3, n))  # of c, s and ln size; zero where not refined
    variance[0] = np.diag(inverse)[:n]
    variance[1, shaped] = np.diag(inverse)[n + m : n + m + k]
    variance[2, shaped] = np.diag(inverse)[n + m + k :]
    return _Fit(c, s, np.exp(g), inverse[:n, :n], variance, model, correction, chi2, dof)


def _levenberg_marquardt(
    residual: Callable[[np.ndarray], np.ndarray],
    jacobian: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    max_iter: int = 20,
    ftol: float = 1e-5,
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


def _locate(
    refs: ReferenceSet, phase: str, tth: np.ndarray, net: np.ndarray, p: XRDParams
) -> float:
    """The lattice scale within 1 ± max shift at which the phase's strong lines meet peaks.

    The score is a low quantile, over the phase's strongest lines, of the smoothed pattern
    at each line over the line's intensity: high only where all of them find a peak, not
    where one of them lands on another phase's strong peak.
    """
    if p.max_lattice_shift == 0:
        return 1.0
    step = float(np.median(np.diff(tth)))
    width = max(1, round(0.03 / step))
    kernel = np.exp(-0.5 * (np.arange(-3 * width, 3 * width + 1) / width) ** 2)
    smooth = np.convolve(np.maximum(net, 0), kernel / kernel.sum(), mode="same")
    wavelength = p.instrument.ka1_angstrom
    pos, intensity = refs.lines(phase, wavelength)
    inside = (pos > tth[0] + 1) & (pos < tth[-1] - 1)
    if not inside.any():
        return 1.0
    strongest = np.argsort(-np.where(inside, intensity, -1))[: min(8, int(inside.sum()))]
    d = wavelength / (2 * np.sin(np.radians(pos[strongest]) / 2))
    candidates = np.arange(1 - p.max_lattice_shift, 1 + p.max_lattice_shift + 1e-9, 2.5e-4)
    sin = np.minimum(wavelength / (2 * d[None, :] * candidates[:, None]), 1.0)
    positions = 2 * np.degrees(np.arcsin(sin))
    ratio = np.interp(positions, tth, smooth) / intensity[strongest][None, :]
    score = np.quantile(ratio, 0.25, axis=1) if strongest.size > 2 else ratio.min(axis=1)
    score = score - 1e-9 * np.abs(candidates - 1) * max(float(score.max()), 1e-300)
    return float(candidates[int(np.argmax(score))])


def _result(
    names: list[str],
    active: list[int],
    fit: _Fit,
    refs: ReferenceSet,
    tth: np.ndarray,
    counts: np.ndarray,
    net: np.ndarray,
    sigma: np.ndarray,
    p: XRDParams,
    counting_time: float | None,
    source: str,
) -> AnalysisResult:
    n = len(active)
    c = fit.c
    cov_c = fit.cov_c
    fractions, jac_w = _fractions(c, [names[i] for i in active], refs, p, counting_time)
    cov_w = jac_w @ cov_c @ jac_w.T if n else np.zeros((0, 0))
    outcomes: dict[str, Quantity] = {}
    identified = []
    for k, i in enumerate(active):
        name = names[i]
        sd_c = float(np.sqrt(fit.variance[0, k]))
        outcomes[f"fraction_{name}"] = Quantity(fractions[k], np.sqrt(max(cov_w[k, k], 0)), "g/g")
        outcomes[f"lattice_scale_{name}"] = Quantity(
            fit.scale[k], np.sqrt(fit.variance[1, k]) or None, ""
        )
        outcomes[f"crystallite_nm_{name}"] = Quantity(
            fit.size[k], fit.size[k] * np.sqrt(fit.variance[2, k]) or None, "nm"
        )
        if fractions[k] >= p.min_fraction and c[k] >= p.min_significance * sd_c:
            identified.append(name)
    for name in names:
        outcomes.setdefault(f"fraction_{name}", Quantity(0.0, None, "g/g"))
    if p.count_rate is not None:
        outcomes["amorphous_fraction"] = Quantity(
            1.0 - float(np.sum(fractions)), float(np.sqrt(max(cov_w.sum(), 0.0))), "g/g"
        )
    weighted = float(np.sum((counts / sigma) ** 2))
    outcomes["rwp"] = Quantity(100 * np.sqrt(fit.chi2 / max(weighted, 1e-300)), None, "%")
    outcomes["chi2_reduced"] = Quantity(fit.chi2 / fit.dof, None, "")
    peaks, area = _unexplained(tth, net, fit.model, sigma, p)
    total = float(np.sum(np.maximum(fit.model, 0)))
    outcomes["unexplained_fraction"] = Quantity(area / total if total > 0 else 0.0, None, "")
    flags = ("unexplained_intensity",) if peaks else ()
    return AnalysisResult(
        method="xrd.wpf",
        params=p.model_dump(mode="json"),
        outcomes=outcomes,
        flags=flags,
        details={"identified": identified, "unexplained_peaks_deg": peaks},
        source=source,
    )


def _fractions(
    c: np.ndarray,
    names: list[str],
    refs: ReferenceSet,
    p: XRDParams,
    counting_time: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Weight fractions from scale factors and their Jacobian d w / d c."""
    n = c.size
    total = float(c.sum())
    if n == 0 or total <= 0:
        return np.zeros(n), np.zeros((n, n))
    if p.count_rate is None:
        w = c / total
        return w, (np.eye(n) - w[:, None]) / total
    if counting_time is None:
        raise AnalysisError("absolute fractions (count_rate given) need the counting time")
    mu = np.array([refs.reference(nm).mass_attenuation for nm in names])
    unit_name = UNIT_PHASE if UNIT_PHASE in refs.phases else refs.names[0]
    norm = p.count_rate * counting_time * refs.reference(unit_name).mass_attenuation

    def weights(cc: np.ndarray) -> np.ndarray:
        return cc * float(cc @ mu) / (float(cc.sum()) * norm)

    w = weights(c)
    jac = np.empty((n, n))
    for j in range(n):
        dc = np.zeros(n)
        dc[j] = 1e-6 * max(c[j], total * 1e-3)
        jac[:, j] = (weights(c + dc) - w) / dc[j]
    return w, jac


def _unexplained(
    tth: np.ndarray, net: np.ndarray, model: np.ndarray, sigma: np.ndarray, p: XRDParams
) -> tuple[list[float], float]:
    """Positions of peaks left in the residual that the model does not account for."""
    step = float(np.median(np.diff(tth)))
    fwhm = float(p.instrument.gaussian_fwhm(np.array([45.0]))[0])
    narrow = max(1, round(fwhm / step))
    wide = 15 * narrow
    resid = net - model
    # peak-like residual: a local sum over a peak width minus its wider surroundings
    local = np.convolve(resid, np.ones(2 * narrow + 1), "same")
    around = np.convolve(resid, np.ones(2 * wide + 1), "same") * (2 * narrow + 1) / (2 * wide + 1)
    noise = np.sqrt(np.convolve(sigma**2, np.ones(2 * narrow + 1), "same"))
    z = (local - around) / noise
    explained = np.convolve(np.maximum(model, 0), np.ones(2 * narrow + 1), "same")
    candidate = (z > p.unexplained_sigma) & (local - around > explained)
    total = float(np.sum(np.maximum(model, 0)))
    peaks, area = [], 0.0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], candidate.astype(int), [0]])))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        lo, hi = max(0, start - narrow), min(tth.size, stop + narrow)
        region = float(np.sum(np.maximum(resid[lo:hi], 0)))
        if total <= 0 or region >= p.unexplained_min_fraction * total:
            peaks.append(round(float(tth[start + int(np.argmax(z[start:stop]))]), 3))
            area += region
    return peaks, area


# ----------------------------------------------------------------------------- baseline method


def analyse_pattern_peak_ratio(
    two_theta,
    counts,
    params: XRDParams | dict | None = None,
    *,
    counting_time: float | None = None,
    references: ReferenceSet | None = None,
    source: str = "",
) -> AnalysisResult:
    """Naive fractions from each phase's strongest line (``xrd.peak_ratio``, a baseline).

    The background-subtracted height at each phase's strongest reference line (nominal
    position, ± half the line width) over that line's reference height, normalised over
    the phases.
    """
    p = _params(params)
    tth, y = check_pattern(two_theta, counts, source)
    refs = _references(references, p)
    net = y - background(tth, y, p)
    inst = p.instrument
    heights = {}
    for name in refs.names:
        pos, area = refs.lines(name, inst.ka1_angstrom)
        inside = (pos > tth[0]) & (pos < tth[-1])
        if not inside.any():
            heights[name] = 0.0
            continue
        k = int(np.argmax(np.where(inside, area, -1)))
        fwhm = float(inst.gaussian_fwhm(pos[k : k + 1])[0])
        near = np.abs(tth - pos[k]) <= max(fwhm, 2 * np.median(np.diff(tth)))
        heights[name] = max(float(net[near].max()), 0.0) / area[k]
    total = sum(heights.values())
    outcomes = {
        f"fraction_{n}": Quantity(h / total if total > 0 else 0.0, None, "g/g")
        for n, h in heights.items()
    }
    identified = [n for n, q in outcomes.items() if q.value >= p.min_fraction]
    return AnalysisResult(
        method="xrd.peak_ratio",
        params=p.model_dump(mode="json"),
        outcomes=outcomes,
        details={"identified": [n.removeprefix("fraction_") for n in identified]},
        source=source,
    )


# ----------------------------------------------------------------------------- helpers


def _params(params: XRDParams | dict | None) -> XRDParams:
    if isinstance(params, XRDParams):
        return params
    try:
        return XRDParams.model_validate(params or {})
    except ValueError as exc:
        raise AnalysisError(f"XRD analysis parameters: {exc}") from None


def _references(references: ReferenceSet | None, p: XRDParams) -> ReferenceSet:
    refs = references or load_references()
    return refs.subset(p.phases) if p.phases else refs


def analyse_pattern_file(
    path: str | Path, params: XRDParams | dict | None = None, *, method: str = "xrd.wpf"
) -> AnalysisResult:
    """Read ``.xrdml``/``.xy``/``.xye`` and analyse it with ``method``."""
    pattern = read_pattern_file(path)
    fn = analyse_pattern if method == "xrd.wpf" else analyse_pattern_peak_ratio
    return fn(
        pattern.two_theta,
        pattern.counts,
        params,
        counting_time=pattern.counting_time,
        source=str(path),
    )


__all__ = [
    "InstrumentProfile",
    "XRDParams",
    "analyse_pattern",
    "analyse_pattern_file",
    "analyse_pattern_peak_ratio",
    "background",
    "check_pattern",
]

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

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pybaselines import Baseline
from pydantic import Field
from scipy.interpolate import BSpline
from scipy.stats import f as f_distribution

from athanor.analysis.outcomes import AnalysisError, AnalysisResult, Quantity
from athanor.analysis.profiles import InstrumentProfile, PhaseProfile, phase_profile
from athanor.analysis.references import (
    UNIT_PHASE,
    ReferenceSet,
    load_references,
)
from athanor.analysis.refinement import (
    Bounds,
    Fit,
    LinearPart,
    refine,
)
from athanor.schema import StrictModel

_MIN_POINTS = 50
_BACKGROUND_STEP = 0.05  # degrees: the background is estimated at this resolution
_START_SIZES = (10.0, 50.0, 300.0)  # nm: size columns of the first fit


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
        3.0, gt=0, le=90, description="knot spacing of the fitted background correction"
    )
    instrument: InstrumentProfile = Field(default_factory=InstrumentProfile)
    max_lattice_shift: float = Field(
        0.025, ge=0, le=0.1, description="lattice scale searched within 1 ± this"
    )
    crystallite_nm: tuple[float, float] = Field(
        (5.0, 3000.0),
        description="size bounds (nm): below ~5 nm lines are as broad as an amorphous hump",
    )
    max_zero_shift_deg: float = Field(
        0.1, ge=0, le=1, description="zero offset refined within ± this (0: fixed at 0)"
    )
    zero_shift_sd_deg: float = Field(
        0.02, gt=0, le=1, description="the zero offset's calibration: restrained to 0 ± this"
    )
    max_displacement_mm: float = Field(
        0.4, ge=0, le=5, description="sample displacement refined within ± this (0: fixed)"
    )
    goniometer_radius_mm: float = Field(145.0, gt=0, le=1000)
    count_rate: float | None = Field(
        None,
        gt=0,
        description="counts/s·degree of the unit phase's strongest line (absolute fractions)",
    )
    min_fraction: float = Field(0.01, ge=0, le=1, description="smallest fraction reported present")
    min_significance: float = Field(3.0, ge=0, description="scale factor / its σ to be present")
    presence_confidence: float = Field(
        0.999,
        ge=0,
        lt=1,
        description="F-test level a phase's improvement of the fit must pass (0: no test)",
    )
    detection_sigma: float = Field(3.0, gt=0, description="detection limit, in σ at zero")
    reference_uncertainty: float = Field(
        0.03,
        ge=0,
        le=0.5,
        description="relative uncertainty of each reference's intensity (structure model)",
    )
    correlated_residuals: bool = Field(
        True, description="widen uncertainties by the residuals' serial correlation"
    )
    unexplained_sigma: float = Field(8.0, gt=0, description="residual peak threshold in σ")
    unexplained_min_fraction: float = Field(
        0.01, ge=0, le=1, description="residual peak area, of the fitted area, to flag"
    )
    min_line: float = Field(1e-3, ge=0, lt=1, description="weakest line drawn, of strongest")


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
    return np.interp(two_theta, x, base)


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
    linear = LinearPart(smooth, sigma)
    names = list(refs.names)
    profiles = [phase_profile(n, tth, refs, p.instrument, p.min_line) for n in names]
    scales = np.array([_locate(refs, n, tth, net, p) for n in names])
    step = float(np.median(np.diff(tth)))
    lag = round(2 * float(p.instrument.gaussian_fwhm(np.array([45.0]))[0]) / step)
    problem = _Problem(
        tth,
        net,
        sigma,
        smooth,
        linear,
        profiles,
        Bounds(
            p.max_lattice_shift,
            p.crystallite_nm,
            p.max_zero_shift_deg,
            p.zero_shift_sd_deg,
            np.degrees(2 * p.max_displacement_mm / p.goniometer_radius_mm),
            p.min_shape_fraction,
        ),
        lag if p.correlated_residuals else 0,
        p,
    )
    c0, b0, sizes = _start(problem, scales)
    active = [i for i in range(len(names)) if c0[i] > 0]
    fit, active = _fit_by_evidence(problem, active, c0, b0, scales, sizes, np.zeros(2))
    added = _traces(problem, fit, active, names, refs, c0, scales, sizes)
    if added:
        fit, active = _fit_by_evidence(
            problem, sorted(active + added), c0, fit.background_coef, scales, sizes, fit.shift
        )
    limits = _detection_limits(problem, names, active, fit, scales, refs, counting_time)
    net = net - fit.correction
    return _result(names, active, fit, limits, refs, tth, y, net, sigma, p, counting_time, source)


@dataclass(frozen=True)
class _Problem:
    """What every refinement of one pattern shares."""

    two_theta: np.ndarray
    net: np.ndarray
    sigma: np.ndarray
    smooth: np.ndarray
    linear: LinearPart
    profiles: list[PhaseProfile]
    bounds: Bounds
    lag: int
    params: XRDParams


def _fit_by_evidence(
    problem: _Problem,
    active: list[int],
    c0: np.ndarray,
    b0: np.ndarray,
    scales: np.ndarray,
    sizes: np.ndarray,
    shift: np.ndarray,
) -> tuple[Fit, list[int]]:
    """Refine ``active`` phases, drop those the F-test finds no evidence for, refine again
    from where the fit stood, until every phase left has earned its place."""
    c0, scales, sizes = c0.copy(), scales.copy(), sizes.copy()
    pr = problem
    while True:
        fit = refine(
            [pr.profiles[i] for i in active],
            c0[active],
            b0,
            scales[active],
            sizes[active],
            shift,
            pr.smooth,
            pr.net,
            pr.sigma,
            pr.two_theta,
            pr.bounds,
            pr.lag,
        )
        weak = _without_evidence(pr, fit)
        if not weak:
            return fit, active
        c0[active], sizes[active], scales[active] = fit.c, fit.size, fit.scale
        b0, shift = fit.background_coef, fit.shift
        active = [i for j, i in enumerate(active) if j not in weak]


def _passes(problem: _Problem, gain: float, nu: int, misfit: float, dof: int) -> bool:
    """Whether a χ² ``gain`` from ``nu`` more parameters passes the F-test.

    ``F = (Δχ² / ν) / s²``, with ``s²`` the ``misfit`` scale of one residual, against
    F(ν, dof).
    """
    level = 1 - problem.params.presence_confidence
    return bool(f_distribution.sf(gain / nu / misfit, nu, max(dof, 1)) <= level)


def _without_evidence(problem: _Problem, fit: Fit) -> list[int]:
    """Fitted phases whose share of the fit does not pass the F-test: the fit without each
    (the other scale factors and the background refitted, shapes kept) against the fit."""
    if problem.params.presence_confidence == 0 or not fit.columns:
        return []
    _, full = problem.linear.nonnegative(fit.columns, problem.net)
    weak = []
    for i in range(len(fit.columns)):
        others = fit.columns[:i] + fit.columns[i + 1 :]
        gain = problem.linear.nonnegative(others, problem.net)[1] - full
        nu = 1 + 2 * int(fit.variance[2, i] > 0)
        if fit.c[i] <= 0 or not _passes(problem, gain, nu, fit.misfit, fit.dof):
            weak.append(i)
    return weak


def _traces(
    problem: _Problem,
    fit: Fit,
    active: list[int],
    names: list[str],
    refs: ReferenceSet,
    c0: np.ndarray,
    scales: np.ndarray,
    sizes: np.ndarray,
) -> list[int]:
    """Phases not found, looked for again in what the fit leaves, their lines located
    there (the strong phases no longer in the way); those that improve the residual's fit
    past the F-test are returned, with ``c0``, ``scales`` and ``sizes`` set to start from."""
    missing = [i for i in range(len(names)) if i not in active]
    if not missing or problem.params.presence_confidence == 0:
        return []
    left = problem.net - fit.correction - fit.model
    size = float(np.median(fit.size)) if active else 50.0
    c0[active], sizes[active], scales[active] = fit.c, fit.size, fit.scale
    _, before = problem.linear.nonnegative([], left)
    added = []
    for i in missing:
        scale = _locate(refs, names[i], problem.two_theta, left, problem.params)
        column = problem.profiles[i].render(scale, size, *fit.shift)
        (c,), after = problem.linear.nonnegative([column], left)
        if c > 0 and _passes(problem, before - after, 1, fit.misfit, fit.dof):
            c0[i], sizes[i], scales[i] = c, size, scale
            added.append(i)
    return added


def _detection_limits(
    problem: _Problem,
    names: list[str],
    active: list[int],
    fit: Fit,
    scales: np.ndarray,
    refs: ReferenceSet,
    counting_time: float | None,
) -> dict[str, tuple[float, float]]:
    """Per phase: (σ of its fraction at zero, detection limit = ``detection_sigma`` σ).

    The σ of its scale factor were it added at zero beside the other phases found, with
    its fitted shape, or a typical one (located lattice scale, the found phases' median
    size), as a weight fraction.
    """
    p = problem.params
    size = float(np.median(fit.size)) if active else 50.0
    out = {}
    for i, name in enumerate(names):
        others = [j for j in range(len(active)) if active[j] != i]
        if i in active:
            profile = fit.columns[active.index(i)]
        else:
            profile = problem.profiles[i].render(float(scales[i]), size, *fit.shift)
        sd_c = problem.linear.sd_at_zero(profile, [fit.columns[j] for j in others], fit.misfit)
        phases = [names[active[j]] for j in others] + [name]
        sd, _ = _fractions(np.append(fit.c[others], sd_c), phases, refs, p, counting_time)
        limit, _ = _fractions(
            np.append(fit.c[others], p.detection_sigma * sd_c), phases, refs, p, counting_time
        )
        out[name] = (float(sd[-1]), float(limit[-1]))
    return out


def _background_basis(two_theta: np.ndarray, knot_deg: float) -> np.ndarray:
    """Cubic B-splines with knots every ~``knot_deg``: the background correction's basis."""
    pieces = max(1, round((two_theta[-1] - two_theta[0]) / knot_deg))
    inner = np.linspace(two_theta[0], two_theta[-1], pieces + 1)
    knots = np.concatenate([[inner[0]] * 3, inner, [inner[-1]] * 3])
    return BSpline.design_matrix(two_theta, knots, 3).toarray()


def _start(problem: _Problem, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale factors, background correction and crystallite sizes to start from.

    Bounded linear least squares over a few sizes per phase (scale factors ≥ 0) and the
    background basis; how a phase's scale factor spreads over its size columns locates
    its size. A phase the F-test finds no evidence for here starts at zero.
    """
    linear, net = problem.linear, problem.net
    lo, hi = problem.params.crystallite_nm
    sizes = np.array([s for s in _START_SIZES if lo <= s <= hi] or [np.sqrt(lo * hi)])
    profiles = problem.profiles
    by_phase = [
        [pr.render(s, size) for size in sizes] for pr, s in zip(profiles, scales, strict=True)
    ]
    columns = [col for cols in by_phase for col in cols]
    coef_flat, chi2 = linear.nonnegative(columns, net)
    b0 = linear.coefficients((net - np.column_stack(columns) @ coef_flat) / linear.sigma)
    coef = np.reshape(coef_flat, (len(profiles), sizes.size))
    c0 = coef.sum(axis=1)
    if problem.params.presence_confidence > 0:
        misfit = max(1.0, chi2 / max(net.size - coef_flat.size, 1))
        for i in np.flatnonzero(c0 > 0):
            others = [col for j, cols in enumerate(by_phase) if j != i for col in cols]
            gain = linear.nonnegative(others, net)[1] - chi2
            if not _passes(problem, gain, sizes.size, misfit, net.size - coef_flat.size):
                c0[i] = 0.0
    share = coef / np.maximum(coef.sum(axis=1)[:, None], 1e-300)
    size0 = np.exp(share @ np.log(sizes))
    return c0, b0, np.where(c0 > 0, size0, np.sqrt(lo * hi))


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
    fit: Fit,
    limits: dict[str, tuple[float, float]],
    refs: ReferenceSet,
    tth: np.ndarray,
    counts: np.ndarray,
    net: np.ndarray,
    sigma: np.ndarray,
    p: XRDParams,
    counting_time: float | None,
    source: str,
) -> AnalysisResult:
    c = fit.c
    fractions, jac_w = _fractions(c, [names[i] for i in active], refs, p, counting_time)
    # counting noise and misfit, then each reference's intensity scale (a factor on c)
    jac_k = jac_w * c[None, :]
    cov_w = jac_w @ fit.cov_c @ jac_w.T + p.reference_uncertainty**2 * (jac_k @ jac_k.T)
    outcomes: dict[str, Quantity] = {}
    identified = []
    at_bound = {names[active[k]]: hits for k, hits in fit.at_bound.items()}
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
        significant = fractions[k] >= p.min_fraction and c[k] >= p.min_significance * sd_c
        if significant and name not in at_bound:
            identified.append(name)
    for name, (sd, limit) in limits.items():
        outcomes.setdefault(f"fraction_{name}", Quantity(0.0, sd, "g/g"))
        outcomes[f"detection_limit_{name}"] = Quantity(limit, None, "g/g")
    if p.count_rate is not None:
        outcomes["amorphous_fraction"] = Quantity(
            1.0 - float(np.sum(fractions)), float(np.sqrt(max(cov_w.sum(), 0.0))), "g/g"
        )
    radians = np.radians([fit.shift[1], fit.shift_sd[1]])
    outcomes["zero_shift_deg"] = Quantity(fit.shift[0], fit.shift_sd[0] or None, "deg")
    outcomes["sample_displacement_mm"] = Quantity(
        -radians[0] * p.goniometer_radius_mm / 2,
        radians[1] * p.goniometer_radius_mm / 2 or None,
        "mm",
    )
    weighted = float(np.sum((counts / sigma) ** 2))
    outcomes["rwp"] = Quantity(100 * np.sqrt(fit.chi2 / max(weighted, 1e-300)), None, "%")
    outcomes["chi2_reduced"] = Quantity(fit.chi2 / fit.dof, None, "")
    peaks, area = _unexplained(tth, net, fit.model, sigma, p)
    total = float(np.sum(np.maximum(fit.model, 0)))
    outcomes["unexplained_fraction"] = Quantity(area / total if total > 0 else 0.0, None, "")
    if fit.shift_at_bound:
        at_bound["pattern"] = fit.shift_at_bound
    flags = ("unexplained_intensity",) * bool(peaks) + ("parameter_at_bound",) * bool(at_bound)
    return AnalysisResult(
        method="xrd.wpf",
        params=p.model_dump(mode="json"),
        outcomes=outcomes,
        flags=flags,
        details={
            "identified": identified,
            "unexplained_peaks_deg": peaks,
            "at_bound": at_bound,
            "detection_limits": {name: limit for name, (_, limit) in limits.items()},
        },
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

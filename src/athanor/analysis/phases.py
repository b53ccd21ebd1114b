"""Phase identification and quantification from powder diffraction patterns.

Method ``xrd.wpf`` (whole-pattern fitting):

1. Background: pybaselines' SNIP (Morháč's clipping filter, the usual choice for
   diffraction and X-ray spectra: one parameter, the broadest peak's half width, no
   assumed shape, so it follows the steep low-angle air scatter as well as the flat
   part) on the pattern binned to 0.05°. SNIP also clips the pedestal that the
   Lorentzian tails of many overlapping lines build (about 10 % of the peak area on
   these phases, more for small crystallites), so the fit adds a smooth correction
   (cubic B-splines, knots every ``background_knot_deg``, either sign) fitted together
   with the peaks, whose own tails then account for the pedestal; it also follows a
   broad amorphous hump.
2. Each candidate phase's lattice scale is located by matching its strongest reference
   lines to the pattern over 1 ± ``max_lattice_shift``.
3. Non-negative least squares over each phase's profile at a few crystallite sizes
   (background projected out) gives starting scale factors and sizes; phases that get
   none, or whose share fails the F-test, start at zero.
4. Levenberg-Marquardt with Poisson weights refines the scale factors, the background
   correction, the zero offset and sample displacement (:mod:`.refinement`) and, for
   phases with ≥ ``min_shape_fraction`` of the peak area, lattice scale and crystallite
   size. Profiles are rendered in q with one FFT convolution (:mod:`.profiles`).
5. Evidence: a phase stays only if the fit without it is worse beyond its noise (an
   F-test at ``presence_confidence``, the misfit scale included, its own shape
   parameters counted) and its crystallite size is not at the lower bound (lines
   broader than that stand in for a hump or misfit, not for the phase: reported in
   ``details["at_bound"]`` with the flag ``parameter_at_bound``). Phases not found are
   looked for again in the residual. A phase that stays is reported present when its
   scale factor is also ``min_significance`` σ (its shape marginalised) above zero.
6. Scale factors become weight fractions with the Hill & Howard convention of the
   references (:mod:`athanor.analysis.references`): ``w_p = c_p / Σ c`` for a fully
   crystalline sample, or, with the instrument's count rate calibrated on the unit
   phase, absolute fractions ``w_p = c_p μ*_mix / (R t μ*_unit)`` that leave room for
   an amorphous part. Every candidate keeps its best estimate (identification is by
   evidence, quantification is not), and a detection limit.
7. Uncertainties, chosen because they hold on independently made patterns (1σ covers
   the truth about 68 % of the time, ``python -m benchmarks analysis``): the fit's
   covariance scaled by its misfit (reduced χ² times the residuals' serial correlation),
   plus the spread of the fractions when the background correction's knots are 1.5
   times as far apart, plus ``reference_uncertainty`` on each reference's intensity. The
   covariance alone covers half as often where a hump or low counts make the
   background uncertain: the background model, not the counting noise, dominates there.
8. Peaks the fit leaves in the residual, where the model has little intensity, are
   reported as unexplained intensity.

Method ``xrd.peak_ratio`` is the naive baseline: each phase's strongest reference line,
its background-subtracted height at the reference position, divided by the reference
intensity, normalised over phases.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pybaselines import Baseline
from pydantic import Field
from scipy.interpolate import BSpline
from scipy.sparse import csr_array
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
        0.0,
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
    min_significance: float = Field(
        2.0,
        ge=0,
        description="scale factor / its σ (shape marginalised) to be present, beside the F-test",
    )
    presence_confidence: float = Field(
        0.99,
        ge=0,
        lt=1,
        description="F-test level a phase's improvement of the fit must pass (0: no test)",
    )
    detection_sigma: float = Field(3.0, gt=0, description="detection limit, in σ at zero")
    reference_uncertainty: float = Field(
        0.01,
        ge=0,
        le=0.5,
        description="relative uncertainty of each reference's intensity (structure model)",
    )
    background_alternatives: tuple[Annotated[float, Field(gt=0, le=10)], ...] = Field(
        (1.5,),
        description="knot spacings, of background_knot_deg, whose spread of the fractions "
        "is added to their uncertainty (empty: none)",
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


def _counting_sigma(counts: np.ndarray) -> np.ndarray:
    """Poisson σ of each count (at least 1)."""
    return np.sqrt(np.maximum(counts, 1.0))


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
        ``fraction_<phase>`` (g/g) and ``detection_limit_<phase>`` of every candidate,
        ``lattice_scale_<phase>`` and ``crystallite_nm_<phase>`` of the phases refined,
        ``zero_shift_deg``, ``sample_displacement_mm``, ``rwp`` (%), ``chi2_reduced``,
        ``unexplained_fraction``; ``details["identified"]`` lists the phases present,
        ``details["at_bound"]`` the parameters that ended at a bound (flag
        ``parameter_at_bound``); the flag ``unexplained_intensity`` is raised when
        residual peaks remain.
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
    sigma = _counting_sigma(y)
    linear = LinearPart(_background_basis(tth, p.background_knot_deg), sigma)
    names = list(refs.names)
    profiles = [phase_profile(n, tth, refs, p.instrument, p.min_line) for n in names]
    scales = np.array([_locate(refs, n, tth, net, p) for n in names])
    step = float(np.median(np.diff(tth)))
    lag = round(2 * float(p.instrument.gaussian_fwhm(np.array([45.0]))[0]) / step)
    problem = _Problem(
        tth,
        net,
        sigma,
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
    stand_ins: dict[int, list[str]] = {}
    fit, active = _fit_by_evidence(problem, active, c0, b0, scales, sizes, np.zeros(2), stand_ins)
    added, trials = _traces(problem, fit, active, names, refs, c0, scales, sizes)
    if added:
        trials = {}
        fit, active = _fit_by_evidence(
            problem,
            sorted(active + added),
            c0,
            fit.background_coef,
            scales,
            sizes,
            fit.shift,
            stand_ins,
        )
    estimate = _estimate(problem, active, fit, names, refs, stand_ins, trials)
    at_bound = {names[active[k]]: hits for k, hits in fit.at_bound.items()}
    at_bound |= {names[i]: hits for i, hits in stand_ins.items() if i not in active}
    if fit.shift_at_bound:
        at_bound["pattern"] = fit.shift_at_bound
    return _result(
        names, estimate, fit, at_bound, refs, tth, y, net - fit.correction, p, counting_time, source
    )


@dataclass(frozen=True)
class _Problem:
    """What every refinement of one pattern shares."""

    two_theta: np.ndarray
    net: np.ndarray
    sigma: np.ndarray
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
    stand_ins: dict[int, list[str]],
) -> tuple[Fit, list[int]]:
    """Refine ``active`` phases, drop those without evidence, refine again from where the
    fit stood, until every phase left has earned its place.

    Without evidence: the F-test (:func:`_without_evidence`), or a crystallite size at
    its lower bound. Lines wanted broader than the bound allows stand in for something
    else (an amorphous hump, the tails of misfitting peaks), not for that phase; such
    phases are recorded in ``stand_ins`` (phase -> parameters at the bound).
    """
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
            pr.linear,
            pr.net,
            pr.two_theta,
            pr.bounds,
            pr.lag,
        )
        weak = set(_without_evidence(pr, fit))
        if pr.params.presence_confidence > 0:
            for j, hits in fit.at_bound.items():
                if "crystallite_nm" in hits:
                    weak.add(j)
                    stand_ins[active[j]] = hits
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
    groups = [[i] for i in range(len(fit.columns))]
    _, full, without = problem.linear.without(fit.columns, problem.net, groups)
    weak = []
    for i in range(len(fit.columns)):
        nu = 1 + 2 * int(fit.variance[2, i] > 0)
        if fit.c[i] <= 0 or not _passes(problem, without[i] - full, nu, fit.misfit, fit.dof):
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
) -> tuple[list[int], dict[int, _Trial]]:
    """Phases not found, looked for again in what the fit leaves (:func:`_trial`).

    Returns those that improve the residual's fit past the F-test, with ``c0``,
    ``scales`` and ``sizes`` set to start from, and every missing phase's trial.
    """
    missing = [i for i in range(len(names)) if i not in active]
    if not missing or problem.params.presence_confidence == 0:
        return [], {}
    left = problem.net - fit.correction - fit.model
    c0[active], sizes[active], scales[active] = fit.c, fit.size, fit.scale
    _, before = problem.linear.nonnegative([], left)
    trials = {i: _trial(problem, refs, names[i], i, left, fit.shift) for i in missing}
    added = []
    for i, trial in trials.items():
        if trial.c > 0 and _passes(problem, before - trial.chi2, 1, fit.misfit, fit.dof):
            c0[i], sizes[i], scales[i] = trial.c, trial.size, trial.scale
            added.append(i)
    return added, trials


@dataclass(frozen=True)
class _Trial:
    """A phase not in the fit, shaped to what the fit leaves."""

    scale: float
    size: float
    column: np.ndarray
    c: float
    chi2: float  # of the residual with it


def _trial(
    problem: _Problem, refs: ReferenceSet, name: str, i: int, left: np.ndarray, shift: np.ndarray
) -> _Trial:
    """Phase ``i`` fitted alone to the residual ``left``: its lines located there (the
    strong phases no longer in the way), its size from how a scale factor spreads over a
    few sizes (as in :func:`_start`), then its scale factor at that shape."""
    scale = _locate(refs, name, problem.two_theta, left, problem.params)
    profile = problem.profiles[i]
    spectrum = profile.spectrum(scale, *shift)[None]
    sizes = _start_sizes(problem.params)
    coef, _ = problem.linear.nonnegative(list(profile.grid.draw(spectrum, sizes)), left)
    size = float(np.exp(coef @ np.log(sizes) / coef.sum())) if coef.sum() > 0 else 50.0
    column = profile.grid.draw(spectrum, [size])[0]
    (c,), chi2 = problem.linear.nonnegative([column], left)
    return _Trial(scale, size, column, float(c), chi2)


@dataclass(frozen=True)
class _Estimate:
    """Every candidate's scale factor, their covariance, and each one's σ at zero."""

    active: list[int]  # the phases refined (found)
    c: np.ndarray
    cov: np.ndarray
    sd_at_zero: np.ndarray


def _estimate(
    problem: _Problem,
    active: list[int],
    fit: Fit,
    names: list[str],
    refs: ReferenceSet,
    stand_ins: Collection[int],
    trials: dict[int, _Trial],
) -> _Estimate:
    """Scale factors of all candidates: the phases found at their refined shapes, the
    others shaped to what the fit leaves (:func:`_trial`).

    Identification is by evidence, quantification is not: a phase below its detection
    limit may still be there, so it keeps its best estimate (≥ 0) and σ, and the other
    fractions are not inflated by leaving it out. ``stand_ins`` (phases whose lines
    only fitted broader than the size bound) stay at zero: what the residual holds at
    their lines is the misfit they stood in for. The found phases' covariance is the
    refinement's (their shapes marginalised); each other phase adds its σ at zero.
    ``trials`` already made on this fit's residual are reused.
    """
    left = problem.net - fit.correction - fit.model
    linear = problem.linear
    columns = [
        fit.columns[active.index(i)]
        if i in active
        else (trials.get(i) or _trial(problem, refs, name, i, left, fit.shift)).column
        for i, name in enumerate(names)
    ]
    quantified = [i for i in range(len(names)) if i not in stand_ins]
    c = np.zeros(len(names))
    c[quantified], _ = linear.nonnegative([columns[i] for i in quantified], problem.net)
    sd = np.array(
        [
            linear.sd_at_zero(columns[i], [columns[j] for j in active if j != i], fit.misfit)
            for i in range(len(names))
        ]
    )
    cov = np.diag(np.where(np.isfinite(sd), sd, 0.0) ** 2)
    cov[np.ix_(active, active)] = fit.cov_c
    for knots in _alternative_backgrounds(problem):
        c_alt = np.zeros(len(names))
        c_alt[quantified], _ = knots.nonnegative([columns[i] for i in quantified], problem.net)
        cov += np.outer(c_alt - c, c_alt - c) / len(problem.params.background_alternatives)
    return _Estimate(active, c, cov, sd)


def _detection_limits(
    estimate: _Estimate,
    names: list[str],
    refs: ReferenceSet,
    p: XRDParams,
    counting_time: float | None,
) -> dict[str, tuple[float, float]]:
    """Per phase: (σ of its fraction at zero, detection limit = ``detection_sigma`` σ),
    beside the other phases found at their estimates."""
    out = {}
    for i, name in enumerate(names):
        others = [j for j in estimate.active if j != i]
        phases = [names[j] for j in others] + [name]
        sd_c = float(estimate.sd_at_zero[i])
        sd, _ = _fractions(np.append(estimate.c[others], sd_c), phases, refs, p, counting_time)
        limit, _ = _fractions(
            np.append(estimate.c[others], p.detection_sigma * sd_c), phases, refs, p, counting_time
        )
        out[name] = (float(sd[-1]), float(limit[-1]))
    return out


def _alternative_backgrounds(problem: _Problem) -> list[LinearPart]:
    """The background correction at the knot spacings of ``background_alternatives``."""
    p = problem.params
    return [
        LinearPart(_background_basis(problem.two_theta, p.background_knot_deg * f), problem.sigma)
        for f in p.background_alternatives
    ]


def _background_basis(two_theta: np.ndarray, knot_deg: float) -> csr_array:
    """Cubic B-splines with knots every ~``knot_deg``: the background correction's basis
    (sparse), reused across patterns measured on the same grid."""
    key = (two_theta.size, hash(two_theta.tobytes()), knot_deg)
    if key not in _BASES:
        if len(_BASES) >= 16:
            _BASES.clear()
        pieces = max(1, round((two_theta[-1] - two_theta[0]) / knot_deg))
        inner = np.linspace(two_theta[0], two_theta[-1], pieces + 1)
        knots = np.concatenate([[inner[0]] * 3, inner, [inner[-1]] * 3])
        _BASES[key] = csr_array(BSpline.design_matrix(two_theta, knots, 3))
    return _BASES[key]


_BASES: dict[tuple, csr_array] = {}


def _start(problem: _Problem, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale factors, background correction and crystallite sizes to start from.

    Bounded linear least squares over a few sizes per phase (scale factors ≥ 0) and the
    background basis; how a phase's scale factor spreads over its size columns locates
    its size. A phase the F-test finds no evidence for here starts at zero.
    """
    linear, net = problem.linear, problem.net
    sizes = _start_sizes(problem.params)
    profiles = problem.profiles
    columns = [col for pr, s in zip(profiles, scales, strict=True) for col in pr.render(s, sizes)]
    groups = [list(range(i * sizes.size, (i + 1) * sizes.size)) for i in range(len(profiles))]
    coef_flat, chi2, without = linear.without(columns, net, groups)
    b0 = linear.coefficients((net - np.column_stack(columns) @ coef_flat) / linear.sigma)
    coef = np.reshape(coef_flat, (len(profiles), sizes.size))
    c0 = coef.sum(axis=1)
    if problem.params.presence_confidence > 0:
        dof = net.size - coef_flat.size
        misfit = max(1.0, chi2 / max(dof, 1))
        for i in np.flatnonzero(c0 > 0):
            if not _passes(problem, without[i] - chi2, sizes.size, misfit, dof):
                c0[i] = 0.0
    share = coef / np.maximum(coef.sum(axis=1)[:, None], 1e-300)
    size0 = np.exp(share @ np.log(sizes))
    return c0, b0, np.where(c0 > 0, size0, np.exp(np.log(sizes).mean()))


def _start_sizes(p: XRDParams) -> np.ndarray:
    """Crystallite sizes (nm) whose profiles locate a phase's size linearly."""
    lo, hi = p.crystallite_nm
    return np.array([s for s in _START_SIZES if lo <= s <= hi] or [np.sqrt(lo * hi)])


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
    estimate: _Estimate,
    fit: Fit,
    at_bound: dict[str, list[str]],
    refs: ReferenceSet,
    tth: np.ndarray,
    counts: np.ndarray,
    net: np.ndarray,
    p: XRDParams,
    counting_time: float | None,
    source: str,
) -> AnalysisResult:
    c = estimate.c
    fractions, jac_w = _fractions(c, names, refs, p, counting_time)
    # counting noise and misfit, then each reference's intensity scale (a factor on c)
    jac_k = jac_w * c[None, :]
    cov_w = jac_w @ estimate.cov @ jac_w.T + p.reference_uncertainty**2 * (jac_k @ jac_k.T)
    sd_w = np.sqrt(np.maximum(np.diag(cov_w), 0.0))
    outcomes: dict[str, Quantity] = {}
    identified = []
    for i, name in enumerate(names):
        outcomes[f"fraction_{name}"] = Quantity(fractions[i], sd_w[i], "g/g")
        if i not in estimate.active:
            continue
        k = estimate.active.index(i)
        outcomes[f"lattice_scale_{name}"] = Quantity(
            fit.scale[k], np.sqrt(fit.variance[1, k]) or None, ""
        )
        outcomes[f"crystallite_nm_{name}"] = Quantity(
            fit.size[k], fit.size[k] * np.sqrt(fit.variance[2, k]) or None, "nm"
        )
        sd_c = float(np.sqrt(fit.variance[0, k]))
        significant = fractions[i] >= p.min_fraction and c[i] >= p.min_significance * sd_c
        if significant and name not in at_bound:
            identified.append(name)
    limits = _detection_limits(estimate, names, refs, p, counting_time)
    for name, (_, limit) in limits.items():
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
    sigma = _counting_sigma(counts)
    weighted = float(np.sum((counts / sigma) ** 2))
    outcomes["rwp"] = Quantity(100 * np.sqrt(fit.chi2 / max(weighted, 1e-300)), None, "%")
    outcomes["chi2_reduced"] = Quantity(fit.chi2 / fit.dof, None, "")
    peaks, area = _unexplained(tth, net, fit.model, sigma, p)
    total = float(np.sum(np.maximum(fit.model, 0)))
    outcomes["unexplained_fraction"] = Quantity(area / total if total > 0 else 0.0, None, "")
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

"""Optical spectra: transmittance and absorbance, the band gap from a Tauc plot, and the
photoluminescence peak.

Transmittance is ``T = (S − D) / (R − D)`` from the sample, dark and reference
(empty-beam) spectra, absorbance ``A = −log₁₀ T``. For a direct gap the absorption is
``α ∝ √(E − Eg) / E``, so ``(α E)²`` is linear in ``E`` with intercept ``Eg`` above the
Urbach tail (absorbance stands in for α: the thickness only scales the line).

``spectra.tauc_auto`` chooses the fit window itself: every window of the Tauc plot
between ``min_window_ev`` and ``max_window_ev`` wide is fitted (weighted, from the
measured noise); windows whose residuals are consistent with a line are kept, and the one
whose slope is steepest at its lower confidence bound wins. Below the edge the Urbach tail
is convex, so any window reaching into it is less steep or not straight; the lower
bound favours wide, well-determined windows above the edge. ``spectra.tauc_fixed`` (the
naive baseline) fits a fixed energy range.

``spectra.pl_gaussian`` fits a Gaussian in energy (counts × λ²/hc, divided by the
detector's relative response when given) to the dark-subtracted emission.

Saturated spectra are rejected with the reason, not analysed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field, model_validator
from scipy.ndimage import median_filter
from scipy.optimize import curve_fit
from scipy.signal import savgol_filter

from athanor.analysis.outcomes import AnalysisError, AnalysisResult, Quantity
from athanor.schema import StrictModel

HC_EV_NM = 1239.84  # E [eV] = 1239.84 / λ [nm]
_MIN_PIXELS = 32


@dataclass(frozen=True)
class Spectrum:
    """One acquisition: counts per pixel at ``wavelengths_nm``.

    ``scans`` is the number of scans summed into ``counts`` and ``full_scale`` the
    detector's largest count per scan (4095 for 12 bits, 65535 for 16); when it is None,
    saturation is recognised by a run of pixels stuck at the maximum value.
    ``integration_ms`` (when known) must agree between a spectrum and its dark.
    """

    wavelengths_nm: Any
    counts: Any
    integration_ms: float | None = None
    scans: int = 1
    full_scale: float | None = None
    source: str = ""

    def __post_init__(self) -> None:
        name = self.source or "spectrum"
        try:
            wl = np.asarray(self.wavelengths_nm, dtype=float)
            counts = np.asarray(self.counts, dtype=float)
        except (TypeError, ValueError) as exc:
            raise AnalysisError(f"{name}: not numeric ({exc})") from None
        if wl.ndim != 1 or counts.ndim != 1:
            raise AnalysisError(f"{name}: wavelengths and counts must be 1-D arrays")
        if counts.size == 0:
            raise AnalysisError(f"{name}: the spectrum is empty")
        if wl.size != counts.size:
            raise AnalysisError(f"{name}: {wl.size} wavelengths but {counts.size} counts")
        if counts.size < _MIN_PIXELS:
            raise AnalysisError(f"{name}: only {counts.size} pixels (need ≥ {_MIN_PIXELS})")
        if not (np.isfinite(wl).all() and np.isfinite(counts).all()):
            raise AnalysisError(f"{name}: holds values that are not finite")
        if np.any(np.diff(wl) <= 0) or wl[0] <= 0:
            raise AnalysisError(f"{name}: wavelengths must be positive and increase")
        if self.scans < 1:
            raise AnalysisError(f"{name}: scans = {self.scans!r}; must be ≥ 1")
        object.__setattr__(self, "wavelengths_nm", wl)
        object.__setattr__(self, "counts", counts)

    @property
    def name(self) -> str:
        return self.source or "spectrum"


class SpectrumParams(StrictModel):
    """Parameters shared by the spectral methods."""

    wavelength_range_nm: tuple[float, float] | None = Field(
        None, description="analyse only this range (default: all pixels)"
    )
    saturation_level: float = Field(
        0.98, gt=0, le=1, description="fraction of full scale from which a pixel is saturated"
    )
    min_signal_snr: float = Field(
        20.0, gt=0, description="reference (or emission) signal over the dark noise to be used"
    )


class TaucParams(SpectrumParams):
    """``spectra.tauc_auto`` and ``spectra.tauc_fixed``."""

    energy_range_ev: tuple[float, float] | None = Field(
        None,
        description="tauc_fixed: the fit range (default 3.2-3.5 eV); tauc_auto: where to search",
    )
    min_window_ev: float = Field(0.08, gt=0, le=5, description="narrowest fit window")
    max_window_ev: float = Field(0.8, gt=0, le=10, description="widest fit window")
    max_chi2: float = Field(2.0, gt=0, description="reduced χ² a window may have to be linear")
    tail_margin_ev: float = Field(
        0.08, ge=0, le=1, description="a window starts this far above its intercept (Urbach tail)"
    )
    min_transmittance_snr: float = Field(
        5.0, gt=0, description="T over its noise for a point to be used (A is biased below)"
    )

    @model_validator(mode="after")
    def _windows(self) -> TaucParams:
        if self.min_window_ev >= self.max_window_ev:
            raise ValueError(
                f"min_window_ev = {self.min_window_ev} must be below "
                f"max_window_ev = {self.max_window_ev}"
            )
        return self


class PLParams(SpectrumParams):
    """``spectra.pl_gaussian``."""

    min_peak_snr: float = Field(10.0, gt=0, description="peak over noise to count as emission")


# ----------------------------------------------------------------------------- checks


def _check_pair(spectrum: Spectrum, dark: Spectrum, role: str) -> None:
    """Same pixels, same wavelengths, same integration time: else a clear error."""
    if dark.counts.size != spectrum.counts.size:
        raise AnalysisError(
            f"{role} {dark.name} has {dark.counts.size} pixels but {spectrum.name} has "
            f"{spectrum.counts.size}: they must come from the same spectrometer"
        )
    worst = float(np.max(np.abs(dark.wavelengths_nm - spectrum.wavelengths_nm)))
    if worst > 1e-6 * float(spectrum.wavelengths_nm[-1]):
        raise AnalysisError(
            f"{role} {dark.name} has other wavelengths than {spectrum.name} (differ by up to "
            f"{worst:.3g} nm): they must share one wavelength calibration"
        )
    if (
        dark.integration_ms is not None
        and spectrum.integration_ms is not None
        and not math.isclose(dark.integration_ms, spectrum.integration_ms, rel_tol=1e-6)
    ):
        raise AnalysisError(
            f"{role} {dark.name} was taken at {dark.integration_ms:g} ms but {spectrum.name} "
            f"at {spectrum.integration_ms:g} ms: a dark must match the integration time"
        )
    if dark.scans != spectrum.scans:
        raise AnalysisError(
            f"{role} {dark.name} sums {dark.scans} scans but {spectrum.name} sums "
            f"{spectrum.scans}: they must match"
        )


def saturation(spectrum: Spectrum, mask: np.ndarray, level: float) -> str | None:
    """Why ``spectrum`` is saturated inside ``mask``, or None when it is not."""
    counts = spectrum.counts[mask]
    if counts.size == 0:
        return None
    if spectrum.full_scale is not None:
        limit = level * spectrum.full_scale * spectrum.scans
        hit = int(np.sum(counts >= limit))
        if hit:
            at = spectrum.wavelengths_nm[mask][counts >= limit]
            return (
                f"{spectrum.name} is saturated: {hit} pixels at ≥ {level:.0%} of full scale "
                f"({spectrum.full_scale:g} per scan) between {at[0]:.1f} and {at[-1]:.1f} nm; "
                "shorten the integration time or dim the source"
            )
        return None
    top = counts.max()
    stuck = np.flatnonzero(counts == top)
    if stuck.size >= 3 and np.any(np.convolve(np.diff(stuck) == 1, np.ones(2), "valid") == 2):
        return (
            f"{spectrum.name} looks saturated: {stuck.size} pixels stuck at its maximum "
            f"{top:g}; shorten the integration time or dim the source"
        )
    return None


def _noise(values: np.ndarray) -> np.ndarray:
    """Local noise (1σ) of a spectrum: robust scatter about a smooth curve."""
    window = min(15, values.size - (1 - values.size % 2))
    if window < 5:
        return np.full(values.size, float(np.std(values)) or 1.0)
    smooth = savgol_filter(values, window, 2)
    # residuals about a quadratic over 15 points have variance 1 − 0.29 of the noise's
    scatter = np.abs(values - smooth) * 1.4826 / math.sqrt(1 - 0.29)
    local = median_filter(scatter, size=min(63, values.size), mode="nearest")
    floor = max(float(np.median(scatter)) * 1e-3, 1e-12)
    return np.maximum(local, floor)


def _range_mask(spectrum: Spectrum, params: SpectrumParams) -> np.ndarray:
    wl = spectrum.wavelengths_nm
    if params.wavelength_range_nm is None:
        return np.ones(wl.size, dtype=bool)
    lo, hi = params.wavelength_range_nm
    mask = (wl >= lo) & (wl <= hi)
    if mask.sum() < _MIN_PIXELS:
        raise AnalysisError(
            f"{spectrum.name}: wavelength_range_nm {lo:g}-{hi:g} holds {int(mask.sum())} "
            f"pixels of {wl[0]:.1f}-{wl[-1]:.1f} nm; need ≥ {_MIN_PIXELS}"
        )
    return mask


# ----------------------------------------------------------------------------- transmission


@dataclass(frozen=True)
class Absorbance:
    """Absorbance of the usable pixels, in order of increasing photon energy."""

    energy_ev: np.ndarray
    absorbance: np.ndarray
    sigma: np.ndarray


def transmittance(
    sample: Spectrum, dark: Spectrum, reference: Spectrum
) -> tuple[np.ndarray, np.ndarray]:
    """``T = (S − D) / (R − D)`` and its noise, per pixel (NaN where R − D ≤ 0).

    Raises :class:`AnalysisError` when the spectra do not belong together.
    """
    _check_pair(sample, dark, "dark")
    _check_pair(sample, reference, "reference")
    signal = sample.counts - dark.counts
    beam = reference.counts - dark.counts
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(beam > 0, signal / beam, np.nan)
    noise = _noise(np.nan_to_num(t))
    return t, noise


def absorbance(
    sample: Spectrum, dark: Spectrum, reference: Spectrum, params: TaucParams | None = None
) -> Absorbance:
    """Absorbance where the beam is bright and T measurable (see :class:`TaucParams`)."""
    p = params or TaucParams()
    t, sigma_t = transmittance(sample, dark, reference)
    mask = _range_mask(sample, p)
    dark_noise = float(np.median(_noise(dark.counts)))
    beam = reference.counts - dark.counts
    usable = mask & (beam > p.min_signal_snr * dark_noise) & np.isfinite(t)
    usable &= t > p.min_transmittance_snr * sigma_t
    order = np.argsort(HC_EV_NM / sample.wavelengths_nm[usable])
    energy = (HC_EV_NM / sample.wavelengths_nm[usable])[order]
    tt, st = t[usable][order], sigma_t[usable][order]
    return Absorbance(energy, -np.log10(np.minimum(tt, 1e6)), st / (tt * math.log(10)))


def analyse_transmission(
    sample: Spectrum,
    dark: Spectrum,
    reference: Spectrum,
    params: TaucParams | dict | None = None,
    *,
    method: str = "spectra.tauc_auto",
) -> AnalysisResult:
    """The direct band gap of a sample from its transmission spectrum (Tauc plot).

    Parameters
    ----------
    sample, dark, reference
        Sample, shutter-closed and empty-beam spectra from one spectrometer, same
        integration time.
    params
        :class:`TaucParams` (or a dict of them).
    method
        ``"spectra.tauc_auto"`` (fit window chosen) or ``"spectra.tauc_fixed"`` (baseline).

    Returns
    -------
    AnalysisResult
        ``band_gap_ev`` (± from the fit), ``tauc_fit_low_ev`` and ``tauc_fit_high_ev``
        (the window used), ``tauc_points``, ``tauc_chi2_reduced``; rejected when the
        sample or the reference is saturated or no straight edge is found.
    """
    p = _validated(TaucParams, params, "Tauc")
    if method not in ("spectra.tauc_auto", "spectra.tauc_fixed"):
        raise AnalysisError(f"unknown transmission method {method!r}")
    dumped = p.model_dump(mode="json")
    _check_pair(sample, dark, "dark")
    _check_pair(sample, reference, "reference")
    mask = _range_mask(sample, p)
    for spectrum in (sample, reference):
        reason = saturation(spectrum, mask, p.saturation_level)
        if reason:
            return AnalysisResult.rejection(method, dumped, reason, sample.source)
    data = absorbance(sample, dark, reference, p)
    if data.energy_ev.size < 8:
        return AnalysisResult.rejection(
            method, dumped, "fewer than 8 pixels with measurable transmittance", sample.source
        )
    x, y = data.energy_ev, (data.absorbance * data.energy_ev) ** 2
    # σ of (A E)²: first order 2|A|E²σ_A, plus the second-order term that remains at A = 0
    sigma_y = x**2 * (2 * np.abs(data.absorbance) * data.sigma + data.sigma**2)
    if method == "spectra.tauc_fixed":
        lo, hi = p.energy_range_ev or (3.2, 3.5)
        inside = (x >= lo) & (x <= hi)
        if inside.sum() < 3:
            return AnalysisResult.rejection(
                method, dumped, f"fewer than 3 usable points in {lo:g}-{hi:g} eV", sample.source
            )
        fit = _line(x[inside], y[inside], sigma_y[inside])
    else:
        if p.energy_range_ev is not None:
            inside = (x >= p.energy_range_ev[0]) & (x <= p.energy_range_ev[1])
            x, y, sigma_y = x[inside], y[inside], sigma_y[inside]
        fit = _auto_window(x, y, sigma_y, p)
        if fit is None:
            return AnalysisResult.rejection(
                method, dumped, "no straight Tauc region above the absorption edge", sample.source
            )
    gap, gap_sd, lo, hi, n, chi2 = fit
    return AnalysisResult(
        method=method,
        params=dumped,
        outcomes={
            "band_gap_ev": Quantity(gap, gap_sd, "eV"),
            "tauc_fit_low_ev": Quantity(lo, None, "eV"),
            "tauc_fit_high_ev": Quantity(hi, None, "eV"),
            "tauc_points": Quantity(n, None, ""),
            "tauc_chi2_reduced": Quantity(chi2, None, ""),
        },
        source=sample.source,
    )


def _line(x: np.ndarray, y: np.ndarray, sigma: np.ndarray):
    """Weighted line through (x, y): its x-intercept, σ, range, points and reduced χ²."""
    w = 1 / sigma**2
    sw, sx, sy = w.sum(), (w * x).sum(), (w * y).sum()
    sxx, sxy = (w * x * x).sum(), (w * x * y).sum()
    det = sw * sxx - sx * sx
    slope = (sw * sxy - sx * sy) / det
    icpt = (sxx * sy - sx * sxy) / det
    chi2 = float(np.sum(w * (y - icpt - slope * x) ** 2)) / max(x.size - 2, 1)
    gap, gap_sd = _intercept(icpt, slope, sw, sx, sxx, det, chi2)
    return gap, gap_sd, float(x[0]), float(x[-1]), int(x.size), chi2


def _intercept(icpt, slope, sw, sx, sxx, det, chi2) -> tuple[float, float]:
    gap = -icpt / slope
    var_a, var_b, cov_ab = sxx / det, sw / det, -sx / det
    var = (var_a + gap**2 * var_b + 2 * gap * cov_ab) / slope**2
    return float(gap), float(math.sqrt(max(var, 0.0) * max(1.0, chi2)))


def _auto_window(x: np.ndarray, y: np.ndarray, sigma: np.ndarray, p: TaucParams):
    """The steepest straight window (at its lower 2σ bound); None when there is none."""
    w = 1 / sigma**2
    x0 = float(x.mean())
    x = x - x0
    sums = [
        np.concatenate([[0.0], np.cumsum(v)])
        for v in (w, w * x, w * y, w * x * x, w * x * y, w * y * y)
    ]
    # candidate window ends on a grid of about 0.01 eV
    grid = np.unique(np.searchsorted(x, np.arange(x[0], x[-1] + 0.01, 0.01)))
    grid = grid[grid <= x.size]
    i, j = np.meshgrid(grid, grid, indexing="ij")
    j = np.minimum(j, x.size)
    valid = j - i >= 8
    width = np.where(valid, x[np.minimum(j, x.size) - 1] - x[np.minimum(i, x.size - 1)], 0)
    valid &= (width >= p.min_window_ev) & (width <= p.max_window_ev)
    if not valid.any():
        return None
    i, j = i[valid], j[valid]
    sw, sx, sy, sxx, sxy, syy = (s[j] - s[i] for s in sums)
    det = sw * sxx - sx * sx
    ok = det > 0
    i, j, sw, sx, sy, sxx, sxy, syy, det = (a[ok] for a in (i, j, sw, sx, sy, sxx, sxy, syy, det))
    slope = (sw * sxy - sx * sy) / det
    icpt = (sxx * sy - sx * sxy) / det
    chi2 = syy - 2 * icpt * sy - 2 * slope * sxy + icpt**2 * sw + 2 * icpt * slope * sx
    chi2 += slope**2 * sxx
    reduced = chi2 / (j - i - 2)
    slope_sd = np.sqrt(sw / det * np.maximum(reduced, 1.0))
    gap = -icpt / np.where(slope > 0, slope, np.nan)
    # a real edge: steep beyond doubt, rising through a good part of the plot's height,
    # and starting clear of the Urbach tail below its own intercept
    rise = slope * (x[j - 1] - x[i])
    height = float(np.quantile(y, 0.95))
    good = (slope > 5 * slope_sd) & (reduced <= p.max_chi2) & (rise > 0.05 * height)
    good &= x[i] - gap >= p.tail_margin_ev
    if not good.any():
        return None
    var = (sxx + gap**2 * sw - 2 * gap * sx) / det / slope**2 * np.maximum(reduced, 1.0)
    k = int(np.argmin(np.where(good, var, np.inf)))
    lo, hi = int(i[k]), int(j[k])
    return _line(x[lo:hi] + x0, y[lo:hi], sigma[lo:hi])


# ----------------------------------------------------------------------------- photoluminescence


def analyse_photoluminescence(
    emission: Spectrum,
    dark: Spectrum,
    params: PLParams | dict | None = None,
    *,
    response: Any = None,
) -> AnalysisResult:
    """Photoluminescence peak position and width: a Gaussian in energy (``spectra.pl_gaussian``).

    Parameters
    ----------
    emission, dark
        The emission spectrum and a dark taken the same way.
    params
        :class:`PLParams` (or a dict of them).
    response
        The detector's relative spectral response per pixel (e.g. quantum efficiency
        from a calibration lamp); the emission is divided by it. None: not corrected.

    Returns
    -------
    AnalysisResult
        ``pl_peak_ev``, ``pl_peak_nm``, ``pl_fwhm_ev`` and ``pl_area`` (counts·eV, per
        unit response); with no emission above the noise only ``pl_area`` and the flag
        ``no_emission``; rejected when saturated.
    """
    method = "spectra.pl_gaussian"
    p = _validated(PLParams, params, "photoluminescence")
    dumped = p.model_dump(mode="json") | {"response_corrected": response is not None}
    _check_pair(emission, dark, "dark")
    mask = _range_mask(emission, p)
    reason = saturation(emission, mask, p.saturation_level)
    if reason:
        return AnalysisResult.rejection(method, dumped, reason, emission.source)
    wl = emission.wavelengths_nm[mask]
    signal = (emission.counts - dark.counts)[mask]
    noise = _noise(signal)
    if response is not None:
        resp = np.asarray(response, dtype=float)
        if resp.shape != emission.counts.shape or not np.all(resp[mask] > 0):
            raise AnalysisError(
                f"{emission.name}: response must be positive, one value per pixel "
                f"({emission.counts.size}); got shape {resp.shape}"
            )
        signal, noise = signal / resp[mask], noise / resp[mask]
    jac = wl**2 / HC_EV_NM
    energy, density, sigma = HC_EV_NM / wl, signal * jac, noise * jac
    order = np.argsort(energy)
    energy, density, sigma = energy[order], density[order], sigma[order]
    smooth = savgol_filter(density, min(11, density.size - (1 - density.size % 2)), 2)
    peak = int(np.argmax(smooth / sigma))
    if smooth[peak] < p.min_peak_snr * sigma[peak]:
        return _no_emission(method, dumped, emission.source, energy, density, sigma)
    half = smooth[peak] / 2
    left = peak - int(np.argmax(smooth[peak::-1] < half)) if np.any(smooth[:peak] < half) else 0
    right = (
        peak + int(np.argmax(smooth[peak:] < half))
        if np.any(smooth[peak:] < half)
        else energy.size - 1
    )
    fwhm0 = max(float(energy[right] - energy[left]), 3 * float(np.median(np.diff(energy))))
    e0 = float(energy[peak])
    window = np.abs(energy - e0) <= 2.5 * fwhm0
    if window.sum() < 6:
        window = np.ones(energy.size, dtype=bool)

    def gaussian(e, height, centre, width, offset):
        return height * np.exp(-4 * math.log(2) * ((e - centre) / width) ** 2) + offset

    try:
        best, cov = curve_fit(
            gaussian,
            energy[window],
            density[window],
            p0=(float(smooth[peak]), e0, fwhm0, 0.0),
            sigma=sigma[window],
            absolute_sigma=True,
            maxfev=2000,
        )
    except (RuntimeError, ValueError) as exc:
        return AnalysisResult.rejection(
            method, dumped, f"Gaussian fit failed: {exc}", emission.source
        )
    height, centre, width, _ = best
    width = abs(width)
    resid = (density[window] - gaussian(energy[window], *best)) / sigma[window]
    chi2 = float(resid @ resid) / max(int(window.sum()) - 4, 1)
    sd = np.sqrt(np.clip(np.diag(cov), 0, None) * max(1.0, chi2))
    # a peak, not a spike or a slope: inside the window, wider than a few pixels, located
    plausible = energy[window][0] < centre < energy[window][-1]
    plausible &= width > 3 * float(np.median(np.diff(energy))) and sd[1] < width / 2
    if not plausible or height < p.min_peak_snr * float(np.median(sigma[window])):
        return _no_emission(method, dumped, emission.source, energy, density, sigma)
    area = height * width * math.sqrt(math.pi / (4 * math.log(2)))
    area_sd = area * math.hypot(sd[0] / max(height, 1e-300), sd[2] / max(width, 1e-300))
    return AnalysisResult(
        method=method,
        params=dumped,
        outcomes={
            "pl_peak_ev": Quantity(centre, sd[1], "eV"),
            "pl_peak_nm": Quantity(HC_EV_NM / centre, HC_EV_NM / centre**2 * sd[1], "nm"),
            "pl_fwhm_ev": Quantity(width, sd[2], "eV"),
            "pl_area": Quantity(area, area_sd, "counts·eV"),
            "pl_chi2_reduced": Quantity(chi2, None, ""),
        },
        source=emission.source,
    )


def _no_emission(
    method: str,
    params: dict[str, Any],
    source: str,
    energy: np.ndarray,
    density: np.ndarray,
    sigma: np.ndarray,
) -> AnalysisResult:
    """No peak above the noise: only the integrated signal, and the ``no_emission`` flag."""
    step = np.gradient(energy)
    area = float(np.sum(density * step))
    noise = float(np.sqrt(np.sum((sigma * step) ** 2)))
    return AnalysisResult(
        method=method,
        params=params,
        outcomes={"pl_area": Quantity(area, noise, "counts·eV")},
        flags=("no_emission",),
        source=source,
    )


def _validated(model: type[StrictModel], params: Any, what: str) -> Any:
    if isinstance(params, model):
        return params
    try:
        return model.model_validate(params or {})
    except ValueError as exc:
        raise AnalysisError(f"{what} analysis parameters: {exc}") from None

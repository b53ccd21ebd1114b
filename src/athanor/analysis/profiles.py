"""Reference profiles of one phase, drawn fast enough to fit a pattern in tens of ms.

A phase's lines (:mod:`athanor.analysis.references`) become counts per degree per unit
weight fraction at the measured 2θ points: Kα1 and Kα2, the instrument's Caglioti width
and Scherrer size broadening combined into one pseudo-Voigt, lattice scale, and the
global peak shift of the pattern (zero offset and sample displacement).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field
from scipy.fft import irfft, next_fast_len, rfft
from scipy.sparse import csr_array

from athanor.analysis.references import CU_KA1, CU_KA2, ReferenceSet
from athanor.powder import pseudo_voigt_parameters
from athanor.schema import StrictModel

_KERNELS_KEPT = 256  # line kernels cached per grid (one per crystallite size)


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


class QGrid:
    """The uniform grid in q = 4π sin θ / λ1 on which lines are convolved, for one set
    of 2θ points: shared by every phase measured there.

    Scherrer widths are constant in q and instrument widths nearly so: sticks on the
    grid, one FFT, the pseudo-Voigt kernel's Fourier transform (blended between a few q
    segments where the width changes), then a sparse map carries the density back to
    counts per degree at the data points. Kernels depend only on the crystallite size,
    so they are cached: the start sizes and trials of every pattern repeat them.
    """

    def __init__(self, two_theta: np.ndarray, instrument: InstrumentProfile) -> None:
        self.inst = instrument
        self.k1 = 2 * np.pi / instrument.ka1_angstrom  # q = 2 k1 sin θ
        q_data = 2 * self.k1 * np.sin(np.radians(two_theta) / 2)
        step = float(self._gauss_q(q_data).min()) / 6
        pad = 0.2  # Å⁻¹ either side, so that tails wrap little
        self.q0 = float(q_data[0]) - pad
        self.size = next_fast_len(int(np.ceil((q_data[-1] - self.q0 + pad) / step)) + 1, real=True)
        self.step = step
        self.freq = np.fft.rfftfreq(self.size, d=step)
        # sticks are spread linearly over two grid points: undo that triangle's smoothing
        self.unspread = (1.0 / np.maximum(np.sinc(self.freq * step) ** 2, 1e-3)).astype(np.float32)
        # segments where the Gaussian width differs by ≤ 4 % from its neighbours (one if ≤ 3 %)
        g = self._gauss_q(np.linspace(q_data[0], q_data[-1], 64))
        spread = float(np.log(g.max() / g.min()))
        count = 1 if spread < np.log(1.03) else int(min(np.ceil(spread / np.log(1.04)) + 1, 12))
        self.centres = (
            np.linspace(q_data[0], q_data[-1], count)
            if count > 1
            else np.array([float(np.mean(q_data))])
        )
        self.interpolation = self._interpolation(q_data, two_theta).astype(np.float32)
        self._kernels: dict[float, np.ndarray] = {}

    def _gauss_q(self, q: np.ndarray) -> np.ndarray:
        """Instrument FWHM in q at ``q``."""
        theta = np.arcsin(np.clip(q / (2 * self.k1), 0, 1))
        return self.k1 * np.cos(theta) * np.radians(self.inst.gaussian_fwhm(2 * np.degrees(theta)))

    def _interpolation(self, q_data: np.ndarray, two_theta: np.ndarray) -> csr_array:
        """Sparse map from the segments' densities on the grid (one row of ``count``
        grids, end to end) to counts per degree at the data points: each segment's
        blending weight, cubic (Catmull-Rom) interpolation, and dq per degree of 2θ."""
        count = self.centres.size
        grid_q = self.q0 + np.arange(self.size) * self.step
        blend = (
            np.stack([np.interp(grid_q, self.centres, np.eye(count)[k]) for k in range(count)])
            if count > 1
            else np.ones((1, self.size))
        )
        x = (q_data - self.q0) / self.step
        i = np.floor(x).astype(np.int64)
        t = x - i
        taps = np.stack([i - 1, i, i + 1, i + 2])
        weights = np.stack(
            [
                0.5 * (-(t**3) + 2 * t**2 - t),
                0.5 * (3 * t**3 - 5 * t**2 + 2),
                0.5 * (-3 * t**3 + 4 * t**2 + t),
                0.5 * (t**3 - t**2),
            ]
        )
        per_degree = self.k1 * np.cos(np.radians(two_theta) / 2) * np.pi / 180 / self.step
        rows = np.broadcast_to(np.arange(q_data.size), (count, 4, q_data.size))
        columns = taps[None] + (np.arange(count) * self.size)[:, None, None]
        values = weights[None] * blend[:, taps] * per_degree
        keep = values != 0
        return csr_array(
            (values[keep], (rows[keep], columns[keep])), shape=(q_data.size, count * self.size)
        )

    def kernels(self, size_nm: float) -> np.ndarray:
        """The line kernel's transform per segment at crystallite size ``size_nm``."""
        kernels = self._kernels.get(size_nm)
        if kernels is None:
            if len(self._kernels) >= _KERNELS_KEPT:
                self._kernels.clear()
            lorentz = 2 * np.pi * self.inst.scherrer_k / (10.0 * size_nm)  # FWHM in q
            fwhm, eta = pseudo_voigt_parameters(
                self._gauss_q(self.centres), np.full(self.centres.size, lorentz)
            )
            kernels = pseudo_voigt_transforms(self.freq, fwhm, eta) * self.unspread
            self._kernels[size_nm] = kernels
        return kernels

    def draw(self, spectra: np.ndarray, sizes_nm: Sequence[float] | np.ndarray) -> np.ndarray:
        """Profiles (one row per size) from stick spectra (one row each, or one for all)."""
        kernels = np.stack([self.kernels(float(s)) for s in sizes_nm])
        density = irfft(spectra[:, None, :] * kernels, self.size, axis=-1)
        flat = density.reshape(len(sizes_nm), -1)
        return np.stack([self.interpolation @ row for row in flat]).astype(np.float64)


class PhaseProfile:
    """Draws one phase's pattern per unit weight fraction at the measured 2θ points."""

    def __init__(self, phase: str, grid: QGrid, references: ReferenceSet, min_line: float) -> None:
        self.phase, self.grid, self.references, self.min_line = phase, grid, references, min_line

    def spectrum(
        self, lattice_scale: float, zero_deg: float = 0.0, cos_shift_deg: float = 0.0
    ) -> np.ndarray:
        """Transform of the lines as sticks on the grid; they move in 2θ by
        ``zero_deg + cos_shift_deg · cos θ``."""
        grid, inst = self.grid, self.grid.inst
        positions, areas = [], []
        for wavelength, weight in ((inst.ka1_angstrom, 1.0), (inst.ka2_angstrom, inst.ka2_ratio)):
            tth, area = self.references.lines(self.phase, wavelength, lattice_scale)
            tth = tth + zero_deg + cos_shift_deg * np.cos(np.radians(tth) / 2)
            positions.append(2 * grid.k1 * np.sin(np.radians(tth) / 2))
            areas.append(area * weight)
        q, area = np.concatenate(positions), np.concatenate(areas)
        keep = (
            (area > self.min_line * area.max())
            & (q > grid.q0)
            & (q < grid.q0 + (grid.size - 1) * grid.step)
        )
        x = (q[keep] - grid.q0) / grid.step
        i = np.floor(x).astype(np.int64)
        frac = x - i
        weight = area[keep]
        sticks = np.bincount(
            np.concatenate([i, i + 1]),
            np.concatenate([weight * (1 - frac), weight * frac]),
            minlength=grid.size + 1,
        )
        return rfft(sticks[: grid.size].astype(np.float32))

    def render(
        self,
        lattice_scale: float,
        sizes_nm: Sequence[float] | np.ndarray,
        zero_deg: float = 0.0,
        cos_shift_deg: float = 0.0,
    ) -> np.ndarray:
        """The profile at each of ``sizes_nm`` (one row each)."""
        spectrum = self.spectrum(lattice_scale, zero_deg, cos_shift_deg)
        return self.grid.draw(spectrum[None], sizes_nm)


def pseudo_voigt_transforms(freq: np.ndarray, fwhm: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Fourier transforms (float32, one row per width) of unit-area pseudo-Voigts at
    uniformly spaced frequencies ``freq``: ``η exp(−π H f) + (1 − η) exp(−2 (π σ f)²)``."""
    k = np.arange(freq.size, dtype=np.float32)
    df = float(freq[1] - freq[0])
    sigma = fwhm / (2 * np.sqrt(2 * np.log(2)))
    gauss = np.exp((-2 * (np.pi * df * sigma) ** 2).astype(np.float32)[:, None] * (k * k))
    lorentz = np.exp((-np.pi * df * fwhm).astype(np.float32)[:, None] * k)
    eta32 = eta.astype(np.float32)[:, None]
    return (1 - eta32) * gauss + eta32 * lorentz


_GRIDS: dict[tuple, QGrid] = {}
_PROFILES: dict[tuple, PhaseProfile] = {}


def phase_profile(
    phase: str,
    tth: np.ndarray,
    refs: ReferenceSet,
    instrument: InstrumentProfile,
    min_line: float,
) -> PhaseProfile:
    """A phase's renderer for this grid, reused across patterns measured on the same grid
    (and its :class:`QGrid` shared with the other phases)."""
    where = (tth.size, hash(tth.tobytes()), instrument.model_dump_json())
    if where not in _GRIDS:
        if len(_GRIDS) >= 8:
            _GRIDS.clear()
            _PROFILES.clear()
        _GRIDS[where] = QGrid(tth, instrument)
    key = (phase, id(refs.reference(phase)), refs.unit, where, min_line)
    if key not in _PROFILES:
        if len(_PROFILES) >= 32:
            _PROFILES.clear()
        _PROFILES[key] = PhaseProfile(phase, _GRIDS[where], refs, min_line)
    return _PROFILES[key]

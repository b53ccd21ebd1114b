"""Reference profiles of one phase, drawn fast enough to fit a pattern in tens of ms.

A phase's lines (:mod:`athanor.analysis.references`) become counts per degree per unit
weight fraction at the measured 2θ points: Kα1 and Kα2, the instrument's Caglioti width
and Scherrer size broadening combined into one pseudo-Voigt, lattice scale, and the
global peak shift of the pattern (zero offset and sample displacement).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field
from scipy.fft import irfft, next_fast_len, rfft

from athanor.analysis.references import CU_KA1, CU_KA2, ReferenceSet
from athanor.powder import pseudo_voigt_parameters
from athanor.schema import StrictModel


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


class PhaseProfile:
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
        step = float(self._gauss_q(self.q_data).min()) / 6
        pad = 0.2  # Å⁻¹ either side, so that tails wrap little
        self.q0 = float(self.q_data[0]) - pad
        size = next_fast_len(int(np.ceil((self.q_data[-1] - self.q0 + pad) / step)) + 1, real=True)
        self.step, self.size = step, size
        self.freq = np.fft.rfftfreq(size, d=step)
        # sticks are spread linearly over two grid points: undo that triangle's smoothing
        self.unspread = (1.0 / np.maximum(np.sinc(self.freq * step) ** 2, 1e-3)).astype(np.float32)
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

    def render(
        self,
        lattice_scale: float,
        size_nm: float,
        zero_deg: float = 0.0,
        cos_shift_deg: float = 0.0,
    ) -> np.ndarray:
        """The profile; lines at 2θ move by ``zero_deg + cos_shift_deg · cos θ``."""
        inst = self.inst
        positions, areas = [], []
        for wavelength, weight in ((inst.ka1_angstrom, 1.0), (inst.ka2_angstrom, inst.ka2_ratio)):
            tth, area = self.references.lines(self.phase, wavelength, lattice_scale)
            tth = tth + zero_deg + cos_shift_deg * np.cos(np.radians(tth) / 2)
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
        spectrum = rfft(sticks[: self.size].astype(np.float32)) * self.unspread
        lorentz = 2 * np.pi * inst.scherrer_k / (10.0 * size_nm)  # FWHM in q, all lines
        fwhm, eta = pseudo_voigt_parameters(
            self._gauss_q(self.centres), np.full(self.centres.size, lorentz)
        )
        density = np.zeros(self.size)
        for h, e, weight in zip(fwhm, eta, self.blend, strict=True):
            kernel = pseudo_voigt_transform(self.freq.size, self.freq[1], float(h), float(e))
            density += weight * irfft(spectrum * kernel.astype(np.float32), self.size)
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


_PROFILES: dict[tuple, PhaseProfile] = {}


def phase_profile(
    phase: str,
    tth: np.ndarray,
    refs: ReferenceSet,
    instrument: InstrumentProfile,
    min_line: float,
) -> PhaseProfile:
    """A phase's renderer for this grid, reused across patterns measured on the same grid."""
    key = (
        phase,
        id(refs.reference(phase)),
        refs.unit,
        tth.size,
        hash(tth.tobytes()),
        instrument.model_dump_json(),
        min_line,
    )
    if key not in _PROFILES:
        if len(_PROFILES) >= 32:
            _PROFILES.clear()
        _PROFILES[key] = PhaseProfile(phase, tth, refs, instrument, min_line)
    return _PROFILES[key]

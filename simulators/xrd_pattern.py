"""Powder X-ray diffraction patterns from the crystal structures of the simulated phases.

Reflections come from Dans_Diffraction (structure factors with form factors, anomalous
dispersion at Cu Kα1 and isotropic Debye-Waller factors, from the hand-written CIFs in
``structures/``), computed once per phase and lattice-scale bucket and cached. A
pattern is then only numpy: pseudo-Voigt peaks at the Cu Kα1 and Kα2 positions, a
smooth background and Poisson counting noise.

Intensity model (Bragg-Brentano, thick sample, Hill & Howard 1987). The integrated
intensity of reflection *hkl* of phase *p* in a mixture is

    I = C · w_p / (ρ_p V_p²) · m |F|² LP(θ) / μ*_mix

with weight fraction ``w_p``, density ``ρ_p``, cell volume ``V_p``, multiplicity ``m``,
Lorentz-polarisation ``LP = (1 + cos² 2θ) / (sin² θ cos θ)`` (no monochromator) and
``μ*_mix = Σ w_i μ*_i / Σ w_i``, the mass attenuation coefficient of the crystalline
mixture (the rest of the sample, amorphous or lost, is taken to absorb like it and
only dilutes). :class:`Reflections.intensity` holds ``m |F|² LP / (ρ V²)`` per unit weight
fraction, in units where the strongest Kα1 line of BaTiO3 is 1. A pattern's integrated
line rate (counts/s · degree) is ``count_rate · (μ*_BaTiO3 / μ*_mix) · w_p · intensity``,
so a pure BaTiO3 sample's strongest Kα1 line integrates to ``count_rate``.

To invert: fit a measured pattern (background removed) as ``Σ_p c_p · phase_pattern_p``
(:meth:`PatternSimulator.phase_pattern`, the same units); ``c_p = k · w_p`` with ``k``
common to all phases, so ``w_p = c_p / Σ c_q`` when the sample is fully crystalline.

Specimen effects (:class:`Specimen`, all off by default): an amorphous hump in the
background, sample displacement, March-Dollase preferred orientation and Brindley
microabsorption.

Peak width: instrument Gaussian FWHM from Caglioti, ``H_G² = U tan²θ + V tanθ + W``,
and Scherrer size broadening as a Lorentzian, ``H_L = K λ / (L cos θ)``, combined into
one pseudo-Voigt by Thompson, Cox & Hastings (1987).
"""

from __future__ import annotations

import re
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import numpy as np
from pydantic import ConfigDict, Field, field_validator
from scipy import fft as sp_fft

from athanor.phases import PHASES, structure_path
from athanor.powder import pseudo_voigt_parameters
from athanor.schema import StrictModel
from athanor.simulators.world import PhaseState

CU_KA1 = 1.54056  # Å
CU_KA2 = 1.54439  # Å
KEV_ANGSTROM = 12.398420  # E[keV] = 12.398420 / λ[Å]
REFERENCE_PHASE = "BaTiO3"  # intensities are in units of this phase's strongest line
DEFAULT_CRYSTALLITE_NM = 100.0
LATTICE_BUCKET = 0.002  # relative lattice-scale step between cached structure factors
MAX_TWO_THETA = 150.0  # degrees; reflections are cached up to here

_PROGRAM = re.compile(
    r"^(?P<start>\d+(?:\.\d+)?)-(?P<end>\d+(?:\.\d+)?)_(?P<time>\d+(?:\.\d+)?)-"
    r"(?P<unit>seconds?|s|minutes?|min|hours?|h)$"
)
_UNIT_SECONDS = {"s": 1, "second": 1, "seconds": 1, "min": 60, "minute": 60, "minutes": 60}
_UNIT_SECONDS |= {"h": 3600, "hour": 3600, "hours": 3600}


@dataclass(frozen=True)
class ScanProgram:
    """A scan program named like the instrument's, e.g. ``10-100_8-minutes``.

    2θ runs from ``start`` to ``end`` degrees in ``duration_s`` lab seconds.
    """

    name: str
    start: float
    end: float
    duration_s: float

    @classmethod
    def parse(cls, name: str) -> ScanProgram:
        """Read a program name ``START-END_TIME-UNIT``; ValueError says what is wrong."""
        match = _PROGRAM.match(name.strip()) if isinstance(name, str) else None
        if match is None:
            raise ValueError(
                f"scan program {name!r} is not of the form START-END_TIME-UNIT "
                "(e.g. '10-100_8-minutes': 2θ 10-100°, 8 minutes)"
            )
        start, end = float(match["start"]), float(match["end"])
        duration = float(match["time"]) * _UNIT_SECONDS[match["unit"]]
        if not 0 < start < end <= MAX_TWO_THETA:
            raise ValueError(
                f"scan program {name!r}: 2θ range {start:g}-{end:g}° must satisfy "
                f"0 < start < end <= {MAX_TWO_THETA:g}"
            )
        if duration <= 0:
            raise ValueError(f"scan program {name!r}: duration must be > 0")
        return cls(name, start, end, duration)

    def two_theta(self, step: float) -> np.ndarray:
        """The scan's 2θ positions (degrees) at ``step``, both ends included."""
        n = round((self.end - self.start) / step) + 1
        return np.linspace(self.start, self.end, n)


@dataclass(frozen=True)
class Instrument:
    """What the diffractometer adds: widths, Kα2, count rate, background.

    ``count_rate`` is the integrated rate (counts/s · degree) of the strongest Kα1 line
    of pure BaTiO3; patterns scale with it, so it sets the signal-to-noise ratio.
    Background: ``background_cps`` flat plus air scatter ``air_scatter_cps`` at 2θ = 0
    falling off as exp(-2θ / ``air_scatter_width``).
    """

    caglioti_u: float = 0.004
    caglioti_v: float = -0.001
    caglioti_w: float = 0.0036
    scherrer_k: float = 0.9
    ka2_ratio: float = 0.5
    zero_shift: float = 0.0
    count_rate: float = 2.0e4
    background_cps: float = 60.0
    air_scatter_cps: float = 2000.0
    air_scatter_width: float = 6.0
    step: float = 0.01

    def instrument_fwhm(self, two_theta: np.ndarray) -> np.ndarray:
        """Gaussian instrument FWHM (degrees) at ``two_theta`` (Caglioti)."""
        tan = np.tan(np.radians(two_theta) / 2)
        h2 = self.caglioti_u * tan**2 + self.caglioti_v * tan + self.caglioti_w
        return np.sqrt(np.maximum(h2, 1e-8))

    def size_fwhm(self, two_theta: np.ndarray, wavelength: float, size_nm: float) -> np.ndarray:
        """Scherrer FWHM (degrees) of crystallites ``size_nm`` at ``two_theta``."""
        cos = np.cos(np.radians(two_theta) / 2)
        return np.degrees(self.scherrer_k * wavelength / (size_nm * 10.0 * cos))

    def profile(self, two_theta: np.ndarray, size_nm: float) -> tuple[np.ndarray, np.ndarray]:
        """Pseudo-Voigt FWHM (degrees) and Lorentzian fraction at ``two_theta`` (Cu Kα1)."""
        return pseudo_voigt_parameters(
            self.instrument_fwhm(two_theta), self.size_fwhm(two_theta, CU_KA1, size_nm)
        )

    def background(self, two_theta: np.ndarray) -> np.ndarray:
        """Background count rate (counts/s) at ``two_theta``."""
        air = self.air_scatter_cps * np.exp(-two_theta / self.air_scatter_width)
        return self.background_cps * (1 + 0.3 * np.cos(np.radians(two_theta))) + air


class MarchDollase(StrictModel):
    """Preferred orientation of one phase: the plane normal ``hkl`` and March's ``r``."""

    model_config = ConfigDict(frozen=True)

    hkl: tuple[int, int, int] = Field(description="Miller indices of the preferred normal")
    r: float = Field(ge=0.2, le=5.0, description="< 1: plates lying flat; 1: random")

    @field_validator("hkl")
    @classmethod
    def _not_zero(cls, hkl: tuple[int, int, int]) -> tuple[int, int, int]:
        if not any(hkl):
            raise ValueError("hkl (0, 0, 0) is no direction")
        return hkl


class Specimen(StrictModel):
    """What a real specimen adds beyond its phases' lines; every effect is off by default.

    The ``specimen:`` block of a simulated diffractometer's ``sim:`` settings.

    - Amorphous hump: a Gaussian bump of ``hump_cps`` counts/s at ``hump_centre_deg``,
      FWHM ``hump_fwhm_deg`` (glassy residue, a sample holder, a capillary).
    - Sample displacement ``displacement_mm`` (surface above the goniometer axis is
      positive): every line moves by Δ2θ = −2 s cos θ / R, R = ``goniometer_radius_mm``.
    - Preferred orientation, March-Dollase: ``preferred_orientation`` maps a phase to its
      :class:`MarchDollase`; a line's intensity is multiplied by the mean over its
      reflections of (r² cos² α + sin² α / r)^(−3/2), α the angle to the normal.
    - Microabsorption, Brindley: particles of radius ``particle_um`` (0: off); phase i
      diffracts with τ_i = 3/R³ ∫₀ᴿ c² exp(−2 (μ_i − μ̄) c) dc, the mean over a sphere of
      the extra attenuation along its chords, μ̄ the volume-weighted mean (linear μ).
    """

    model_config = ConfigDict(frozen=True)

    hump_cps: float = Field(0.0, ge=0, le=1e6, description="hump maximum (counts/s)")
    hump_centre_deg: float = Field(26.0, ge=5, le=MAX_TWO_THETA)
    hump_fwhm_deg: float = Field(9.0, gt=0, le=60)
    displacement_mm: float = Field(0.0, ge=-2, le=2, description="surface above the axis")
    goniometer_radius_mm: float = Field(145.0, ge=50, le=1000)
    preferred_orientation: dict[str, MarchDollase] = Field(
        default_factory=dict, description="phase -> March-Dollase texture"
    )
    particle_um: float = Field(0.0, ge=0, le=100, description="particle radius (0: off)")

    @field_validator("preferred_orientation")
    @classmethod
    def _known_phases(cls, texture: dict[str, MarchDollase]) -> dict[str, MarchDollase]:
        unknown = sorted(set(texture) - set(PHASES))
        if unknown:
            raise ValueError(f"phases {unknown} are not simulated; known: {', '.join(PHASES)}")
        return texture

    def hump(self, two_theta: np.ndarray) -> np.ndarray:
        """The amorphous hump's count rate (counts/s) at ``two_theta``."""
        if self.hump_cps == 0:
            return np.zeros_like(two_theta)
        sd = self.hump_fwhm_deg / (2 * np.sqrt(2 * np.log(2)))
        return self.hump_cps * np.exp(-0.5 * ((two_theta - self.hump_centre_deg) / sd) ** 2)

    def shift(self, two_theta: np.ndarray) -> np.ndarray:
        """Δ2θ (degrees) of lines at ``two_theta`` from the sample displacement."""
        cos = np.cos(np.radians(two_theta) / 2)
        return -np.degrees(2 * self.displacement_mm * cos / self.goniometer_radius_mm)

    def texture(self, phase: str, data: PhaseData) -> np.ndarray:
        """March-Dollase factor of each line of ``phase`` (ones when it has no texture)."""
        if phase not in self.preferred_orientation:
            return np.ones(data.d.size)
        texture = self.preferred_orientation[phase]
        r = texture.r
        g = data.reflections @ data.reciprocal
        normal = np.asarray(texture.hkl, dtype=float) @ data.reciprocal
        cos2 = (g @ normal) ** 2 / (np.sum(g**2, axis=1) * float(normal @ normal))
        factor = (r**2 * cos2 + (1 - cos2) / r) ** -1.5
        return np.bincount(data.line_of, factor) / np.bincount(data.line_of)

    def microabsorption(self, fractions: dict[str, float]) -> dict[str, float]:
        """Brindley's τ of each phase in the mixture ``fractions`` (ones when off)."""
        if self.particle_um == 0:
            return dict.fromkeys(fractions, 1.0)
        data = {p: phase_data(p) for p in fractions}
        mu = {p: d.mass_attenuation * d.density * 1e-4 for p, d in data.items()}  # µm⁻¹
        volume = {p: w / data[p].density for p, w in fractions.items()}
        mean = sum(volume[p] * mu[p] for p in fractions) / sum(volume.values())
        c = np.linspace(0, self.particle_um, 201)
        return {
            p: float(3 * np.trapezoid(c**2 * np.exp(-2 * (mu[p] - mean) * c), c) / c[-1] ** 3)
            for p in fractions
        }


@dataclass(frozen=True)
class Reflections:
    """A phase's powder lines for one wavelength (distinct d-spacings, strongest first).

    ``intensity`` is ``m |F|² LP / (ρ V²)`` per unit weight fraction, in the units
    described in the module docstring; ``hkl`` is one representative per line.
    """

    phase: str
    wavelength: float
    hkl: np.ndarray
    d: np.ndarray
    two_theta: np.ndarray
    multiplicity: np.ndarray
    intensity: np.ndarray


@dataclass(frozen=True)
class PhaseData:
    """What the pattern needs about one phase at one lattice-scale bucket."""

    phase: str
    hkl: np.ndarray
    d: np.ndarray  # at lattice scale 1
    multiplicity: np.ndarray
    f2: np.ndarray  # |F|² per reflection (mean over the line's reflections)
    volume: float  # Å³ at lattice scale 1
    density: float  # g/cm³ at lattice scale 1
    mass_attenuation: float  # cm²/g for Cu Kα
    reflections: np.ndarray  # every hkl (rows) of the lines
    line_of: np.ndarray  # the line each reflection belongs to (index into d)
    reciprocal: np.ndarray  # rows a*, b*, c* (Å⁻¹, 2π included) at lattice scale 1


_crystal_lock = threading.Lock()


@cache
def _crystal(phase: str):
    import Dans_Diffraction as dif  # heavy import: only when a pattern is first needed

    with resources.as_file(structure_path(phase)) as path:
        xtl = dif.Crystal(str(path))
    xtl.Scatter.setup_scatter(scattering_type="xray dispersion", wavelength_a=CU_KA1, output=False)
    return xtl


def compute_phase_data(phase: str, lattice_scale: float = 1.0) -> PhaseData:
    """Reflections of ``phase`` from Dans_Diffraction, uncached (the slow path).

    Structure factors are evaluated with the cell scaled by ``lattice_scale`` (form
    factors and Debye-Waller depend on |Q|); ``d`` is returned at scale 1.
    """
    with _crystal_lock:
        xtl = _crystal(phase)
        base = xtl.Cell.lp()
        q_max = 4 * np.pi * np.sin(np.radians(MAX_TWO_THETA / 2)) / CU_KA1 * 1.05
        hkl = xtl.Cell.all_hkl(maxq=q_max)
        q = xtl.Cell.Qmag(hkl)
        hkl, q = hkl[q > 1e-6], q[q > 1e-6]
        d = 2 * np.pi / q
        volume = float(xtl.Cell.volume())
        density = float(xtl.Properties.density())
        reciprocal = np.asarray(xtl.Cell.UVstar(), dtype=float)
        with np.errstate(divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mu = float(np.ravel(xtl.Properties.absorption(KEV_ANGSTROM / CU_KA1))[0])
        try:
            a, b, c, alpha, beta, gamma = base
            s = float(lattice_scale)
            xtl.Cell.latt([a * s, b * s, c * s, alpha, beta, gamma])
            f2 = np.asarray(xtl.Scatter.intensity(hkl), dtype=float)
        finally:
            xtl.Cell.latt(list(base))
    # one line per distinct d: multiplicity = reflections sharing it
    unique, inverse, counts = np.unique(np.round(d, 5), return_inverse=True, return_counts=True)
    f2_line = np.bincount(inverse, weights=f2) / counts
    keep = f2_line > 1e-6 * f2_line.max()
    # representative hkl of a line: the one with the largest (h, k, l)
    order = np.lexsort((-(hkl @ np.array([1e6, 1e3, 1.0])), inverse))
    first = order[np.r_[0, np.flatnonzero(np.diff(inverse[order])) + 1]]
    renumber = np.cumsum(keep) - 1
    member = keep[inverse]
    return PhaseData(
        phase=phase,
        hkl=np.rint(hkl[first][keep]).astype(int),
        d=unique[keep],
        multiplicity=counts[keep],
        f2=f2_line[keep],
        volume=volume,
        density=density,
        mass_attenuation=mu * 1e4 / density,  # µm⁻¹ → cm⁻¹, then per g/cm³
        reflections=np.rint(hkl[member]).astype(int),
        line_of=renumber[inverse[member]],
        reciprocal=reciprocal,
    )


@cache
def _phase_data(phase: str, bucket: int) -> PhaseData:
    return compute_phase_data(phase, 1.0 + bucket * LATTICE_BUCKET)


def phase_data(phase: str, lattice_scale: float = 1.0) -> PhaseData:
    """Cached :func:`compute_phase_data` for the lattice-scale bucket of ``lattice_scale``."""
    if not 0.8 < lattice_scale < 1.2:
        raise ValueError(f"lattice_scale {lattice_scale!r} of {phase} must lie in 0.8-1.2")
    return _phase_data(phase, round((lattice_scale - 1.0) / LATTICE_BUCKET))


def lorentz_polarisation(two_theta: np.ndarray) -> np.ndarray:
    """``(1 + cos² 2θ) / (sin² θ cos θ)`` for an unpolarised beam, no monochromator."""
    t = np.radians(two_theta)
    return (1 + np.cos(t) ** 2) / (np.sin(t / 2) ** 2 * np.cos(t / 2))


def _raw_line_intensity(data: PhaseData, two_theta: np.ndarray, scale: float) -> np.ndarray:
    volume, density = data.volume * scale**3, data.density / scale**3
    lp = lorentz_polarisation(two_theta)
    return data.multiplicity * data.f2 * lp / (density * volume**2)


@cache
def _intensity_unit() -> float:
    """Raw intensity of the strongest Kα1 line of the reference phase (module doc)."""
    data = phase_data(REFERENCE_PHASE)
    return float(np.nanmax(_raw_line_intensity(data, _two_theta(data.d, CU_KA1), 1.0)))


def _two_theta(d: np.ndarray, wavelength: float) -> np.ndarray:
    ratio = wavelength / (2 * d)
    with np.errstate(invalid="ignore"):
        return np.where(ratio < 1, 2 * np.degrees(np.arcsin(np.minimum(ratio, 1))), np.nan)


def reference_reflections(
    phase: str,
    wavelength: float = CU_KA1,
    lattice_scale: float = 1.0,
    two_theta_range: tuple[float, float] = (5.0, MAX_TWO_THETA),
) -> Reflections:
    """The powder lines of ``phase`` within ``two_theta_range`` (strongest first).

    Parameters
    ----------
    phase
        One of :data:`~athanor.phases.PHASES`.
    wavelength
        Å; Cu Kα1 by default.
    lattice_scale
        Lattice parameters relative to the reference structure.
    two_theta_range
        Degrees.

    Returns
    -------
    Reflections
        Same structures and intensity units the simulator uses (module docstring).
    """
    data = phase_data(phase, lattice_scale)
    tth = _two_theta(data.d * lattice_scale, wavelength)
    inside = np.isfinite(tth) & (tth >= two_theta_range[0]) & (tth <= two_theta_range[1])
    intensity = _raw_line_intensity(data, tth, lattice_scale) / _intensity_unit()
    order = np.argsort(-np.where(inside, intensity, -np.inf))[: int(inside.sum())]
    return Reflections(
        phase=phase,
        wavelength=wavelength,
        hkl=data.hkl[order],
        d=data.d[order] * lattice_scale,
        two_theta=tth[order],
        multiplicity=data.multiplicity[order],
        intensity=intensity[order],
    )


def mass_attenuation(phase: str) -> float:
    """Mass attenuation coefficient μ* of ``phase`` for Cu Kα (cm²/g)."""
    return phase_data(phase).mass_attenuation


def render_peaks(
    grid: np.ndarray,
    centres: np.ndarray,
    areas: np.ndarray,
    widths: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
) -> np.ndarray:
    """Sum of pseudo-Voigt peaks with integrated ``areas`` on a uniform ``grid``.

    ``widths(two_theta) -> (fwhm, eta)`` gives the profile at any angle. The lines are
    binned on the grid and convolved in Fourier space with the analytic transform of a
    pseudo-Voigt at a few anchor angles (widths between neighbouring anchors differ by at
    most 6 %); the results are blended linearly between anchors. The cost does not
    depend on the number of lines or on their widths.
    """
    n = grid.size
    step = (grid[-1] - grid[0]) / max(n - 1, 1)
    fwhm_span, _ = widths(np.linspace(grid[0], grid[-1], 65))
    pad = int(np.ceil(10 * fwhm_span.max() / step)) + 2
    # a quarter of the scan as guard band: wrapped-around Lorentzian tails stay < 1e-4
    length = sp_fft.next_fast_len(n + 2 * pad + n // 4, real=True)
    position = (centres - grid[0]) / step + pad
    inside = (position >= 0) & (position < n + 2 * pad - 1)
    position, areas = position[inside], areas[inside]
    low = np.floor(position).astype(np.int64)
    frac = position - low
    sticks = np.bincount(low, areas * (1 - frac), minlength=length)
    sticks += np.bincount(low + 1, areas * frac, minlength=length)
    spectrum = sp_fft.rfft(sticks[:length])
    nu = np.arange(spectrum.size) / (length * step)  # cycles per degree
    count = 1 + int(np.ceil(np.log(fwhm_span.max() / fwhm_span.min()) / np.log(1.06)))
    count = min(max(count, 2), 32)
    anchors = np.linspace(grid[0], grid[-1], count)
    fwhm, eta = widths(anchors)
    spacing = (anchors[1] - anchors[0]) / step  # grid points between anchors
    out = np.zeros(n)
    for k in range(count):
        lo = max(int(np.floor((k - 1) * spacing)), 0)
        hi = min(int(np.ceil((k + 1) * spacing)) + 1, n)
        weight = np.maximum(0.0, 1.0 - np.abs(np.arange(lo, hi) / spacing - k))
        x = np.pi * fwhm[k] * nu
        kernel = eta[k] * np.exp(-x) + (1 - eta[k]) * np.exp(-(x**2) / (4 * np.log(2)))
        profile = sp_fft.irfft(spectrum * kernel, length)
        out[lo:hi] += weight * profile[pad + lo : pad + hi] / step
    return out


@dataclass
class PatternSimulator:
    """Powder patterns of samples made of the simulated phases.

    Parameters
    ----------
    phases
        Phases a sample may hold (default all of :data:`PHASES`).
    seed
        Seed of the counting-noise generator; the same seed gives the same patterns
        in the same order.
    instrument
        Widths, count rate, background and step.
    specimen
        Amorphous hump, displacement, preferred orientation, microabsorption (all off by
        default).
    """

    phases: tuple[str, ...] = PHASES
    seed: int = 0
    instrument: Instrument = field(default_factory=Instrument)
    specimen: Specimen = field(default_factory=Specimen)

    def __post_init__(self) -> None:
        for phase in self.phases:
            structure_path(phase)
        self.rng = np.random.default_rng(self.seed)

    def warm(self) -> None:
        """Compute and cache every phase's reflections now (about a second, once)."""
        for phase in self.phases:
            phase_data(phase)
        _intensity_unit()

    def phase_pattern(
        self,
        phase: str,
        two_theta: np.ndarray,
        crystallite_nm: float = DEFAULT_CRYSTALLITE_NM,
        lattice_scale: float = 1.0,
    ) -> np.ndarray:
        """Peak profile of ``phase`` per unit weight fraction, Kα1 + Kα2.

        Peak areas are :attr:`Reflections.intensity` (module docstring); no background,
        no noise, no absorption. Analysis can fit measured patterns with these.
        """
        return self._peaks(phase, two_theta, crystallite_nm, lattice_scale)

    def _peaks(self, phase: str, grid: np.ndarray, size_nm: float, scale: float) -> np.ndarray:
        if not size_nm > 0:
            raise ValueError(f"crystallite size of {phase} must be > 0 nm, got {size_nm!r}")
        data = phase_data(phase, scale)
        inst, specimen = self.instrument, self.specimen
        texture = specimen.texture(phase, data)
        centres, areas = [], []
        for wavelength, weight in ((CU_KA1, 1.0), (CU_KA2, inst.ka2_ratio)):
            tth = _two_theta(data.d * scale, wavelength)
            ok = np.isfinite(tth)
            area = np.where(ok, _raw_line_intensity(data, tth, scale) * texture, 0.0)[ok]
            centres.append(tth[ok] + inst.zero_shift + specimen.shift(tth[ok]))
            areas.append(area * weight)
        return render_peaks(
            grid,
            np.concatenate(centres),
            np.concatenate(areas) / _intensity_unit(),
            lambda tth: inst.profile(tth, size_nm),
        )

    def expected(
        self, state: PhaseState, program: str | ScanProgram
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Mean counts (no noise): ``(two_theta, counts, counting_time_per_step)``."""
        scan = program if isinstance(program, ScanProgram) else ScanProgram.parse(program)
        inst = self.instrument
        grid = scan.two_theta(inst.step)
        counting_time = scan.duration_s / grid.size
        rate = inst.background(grid) + self.specimen.hump(grid)
        bad = {p: w for p, w in state.fractions.items() if not 0 <= w <= 1}
        if bad:
            raise ValueError(f"weight fractions must lie in 0-1, got {bad}")
        fractions = {p: w for p, w in state.fractions.items() if w > 0}
        unknown = sorted(set(fractions) - set(self.phases))
        if unknown:
            raise ValueError(f"phases {unknown} are not simulated; known: {', '.join(self.phases)}")
        total = sum(fractions.values())
        if total > 1 + 1e-6:
            raise ValueError(f"weight fractions sum to {total:.4f} > 1: {fractions}")
        if fractions:
            mu_mix = sum(w * mass_attenuation(p) for p, w in fractions.items()) / total
            k = inst.count_rate * mass_attenuation(REFERENCE_PHASE) / mu_mix
            tau = self.specimen.microabsorption(fractions)
            for phase, w in fractions.items():
                size = state.crystallite_nm.get(phase, DEFAULT_CRYSTALLITE_NM)
                scale = state.lattice_scale.get(phase, 1.0)
                rate += k * w * tau[phase] * self._peaks(phase, grid, size, scale)
        return grid, rate * counting_time, counting_time

    def pattern(
        self,
        state: PhaseState,
        program: str | ScanProgram,
        rng: np.random.Generator | None = None,
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """A measured pattern: ``(two_theta, counts, counting_time_per_step)``.

        Counts are Poisson draws around :meth:`expected`, from ``rng`` or the
        simulator's own seeded generator.
        """
        grid, mean, counting_time = self.expected(state, program)
        counts = (rng or self.rng).poisson(mean)
        return grid, counts, counting_time

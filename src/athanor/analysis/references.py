"""Reference powder lines of the candidate phases, computed from their crystal structures.

Lines come from Dans_Diffraction (X-ray structure factors with form factors, anomalous
dispersion f′ + i f″ at Cu Kα1 — a few % on the relative intensities of Ba and Ti phases
— and isotropic Debye-Waller factors), read from CIF files. Intensities follow the Hill
& Howard (1987) quantitative convention the simulator documents: the integrated
intensity of a line of phase *p* per unit weight fraction is ``m |F|² LP(θ) / (ρ_p
V_p²)`` with ``LP = (1 + cos² 2θ) / (sin² θ cos θ)``, in units where the strongest Cu
Kα1 line of the unit phase (BaTiO3) is 1. Fitted scale factors are then proportional to
weight fractions with one factor common to all phases.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from athanor.analysis.outcomes import AnalysisError
from athanor.phases import PHASES, structure_path

CU_KA1 = 1.54056  # Å
CU_KA2 = 1.54439  # Å
KEV_ANGSTROM = 12.398420
UNIT_PHASE = "BaTiO3"
MAX_TWO_THETA = 150.0  # degrees: lines are kept up to here at lattice scale 0.97
_WEAKEST = 1e-5  # lines weaker than this (relative to the phase's strongest) are dropped

_lock = threading.Lock()


@dataclass(frozen=True)
class PhaseReference:
    """The powder lines of one phase at lattice scale 1 (distinct d-spacings).

    ``strength`` is ``m |F|² / (ρ V²)`` per line; :meth:`lines` adds Lorentz-polarisation
    and the lattice scale. ``mass_attenuation`` is μ/ρ for Cu Kα (cm²/g).
    """

    name: str
    d: np.ndarray
    strength: np.ndarray
    mass_attenuation: float
    source: str

    def lines(self, wavelength: float, lattice_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Positions (2θ, degrees) and raw intensities of the lines that diffract.

        A lattice scaled by ``s`` moves every d by ``s`` and, per unit weight, scales
        ``1/(ρ V²)`` by ``s⁻³``.
        """
        ratio = wavelength / (2.0 * self.d * lattice_scale)
        ok = ratio < 1.0
        tth = 2.0 * np.degrees(np.arcsin(ratio[ok]))
        return tth, self.strength[ok] * lorentz_polarisation(tth) / lattice_scale**3


@dataclass(frozen=True)
class ReferenceSet:
    """Reference lines of the candidate phases, in one intensity unit.

    ``unit`` is the raw intensity of the strongest Cu Kα1 line of :data:`UNIT_PHASE`
    (or of the first phase when that is not among them).
    """

    phases: dict[str, PhaseReference]
    unit: float

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.phases)

    def lines(
        self, phase: str, wavelength: float, lattice_scale: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Line positions (2θ) and intensities per unit weight fraction of ``phase``."""
        tth, raw = self.reference(phase).lines(wavelength, lattice_scale)
        return tth, raw / self.unit

    def reference(self, phase: str) -> PhaseReference:
        try:
            return self.phases[phase]
        except KeyError:
            raise AnalysisError(
                f"no reference for phase {phase!r}; references: {', '.join(self.phases)}"
            ) from None

    def subset(self, names: Sequence[str]) -> ReferenceSet:
        """The same references (same unit) for ``names`` only."""
        return ReferenceSet({n: self.reference(n) for n in names}, self.unit)


def lorentz_polarisation(two_theta: np.ndarray) -> np.ndarray:
    """``(1 + cos² 2θ) / (sin² θ cos θ)``: unpolarised beam, no monochromator."""
    t = np.radians(two_theta)
    return (1.0 + np.cos(t) ** 2) / (np.sin(t / 2) ** 2 * np.cos(t / 2))


def default_cif_paths() -> dict[str, Path]:
    """The CIFs of the lab's phases (shipped in ``athanor``, :mod:`athanor.phases`)."""
    return {phase: Path(str(structure_path(phase))) for phase in PHASES}


def load_references(cifs: Mapping[str, str | Path] | None = None) -> ReferenceSet:
    """Reference lines of the phases named by ``cifs`` ({phase: CIF path}).

    Computed once per process per set of files (a few seconds for the default phases).
    Raises :class:`AnalysisError` naming the file when one is missing or unreadable.
    """
    paths = default_cif_paths() if cifs is None else dict(cifs)
    if not paths:
        raise AnalysisError("no reference phases given: pass at least one {phase: CIF path}")
    key = tuple((name, str(Path(p).resolve())) for name, p in paths.items())
    return _load(key)


@cache
def _load(key: tuple[tuple[str, str], ...]) -> ReferenceSet:
    phases = {name: phase_reference(name, path) for name, path in key}
    unit_name = UNIT_PHASE if UNIT_PHASE in phases else next(iter(phases))
    _, raw = phases[unit_name].lines(CU_KA1)
    return ReferenceSet(phases, float(raw.max()))


def phase_reference(name: str, path: str | Path) -> PhaseReference:
    """Compute one phase's lines from its CIF with Dans_Diffraction."""
    import Dans_Diffraction as dif

    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"reference structure for {name}: no file {path}")
    with _lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            xtl = dif.Crystal(str(path))
            xtl.Scatter.setup_scatter(
                scattering_type="xray dispersion", wavelength_a=CU_KA1, output=False
            )
            q_max = 4 * np.pi * np.sin(np.radians(MAX_TWO_THETA / 2)) / (0.97 * CU_KA1)
            hkl = xtl.Cell.all_hkl(maxq=q_max)
            q = xtl.Cell.Qmag(hkl)
            hkl, q = hkl[q > 1e-6], q[q > 1e-6]
            f2 = np.asarray(xtl.Scatter.intensity(hkl), dtype=float)
            volume = float(xtl.Cell.volume())
            density = float(xtl.Properties.density())
            with np.errstate(divide="ignore"):
                mu = float(np.ravel(xtl.Properties.absorption(KEV_ANGSTROM / CU_KA1))[0])
        except Exception as exc:  # the library raises bare Exceptions on bad CIFs
            raise AnalysisError(f"reference structure {path} ({name}): {exc}") from exc
    if hkl.size == 0 or not np.isfinite(f2).all() or volume <= 0 or density <= 0:
        raise AnalysisError(f"reference structure {path} ({name}) gives no usable reflections")
    # One line per distinct d-spacing; its multiplicity is the number of hkl sharing it.
    d_all = np.round(2 * np.pi / q, 5)
    d, inverse = np.unique(d_all, return_inverse=True)
    strength = np.bincount(inverse, weights=f2) / (density * volume**2)
    keep = strength > _WEAKEST * strength.max()
    order = np.argsort(-d[keep])
    return PhaseReference(
        name=name,
        d=d[keep][order],
        strength=strength[keep][order],
        mass_attenuation=mu * 1e4 / density,
        source=str(path),
    )

"""What the simulated instruments can learn about a sample: its true phases and optics.

The materials ground truth produces these; the diffractometer emulator turns a
:class:`PhaseState` into a powder pattern, the spectrometer emulator turns
:class:`OpticalProperties` into transmitted and emitted light. Emulators receive them
through :class:`SampleTruth` lookups, never from the planner's side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class PhaseState:
    """The crystalline content of a sample.

    ``fractions`` are weight fractions of the crystalline phases (they sum to at most 1;
    the rest is amorphous or lost). ``crystallite_nm`` is each phase's mean crystallite
    size; ``lattice_scale`` each phase's lattice parameters relative to the reference
    structure (1.0 = as in the reference; a dopant shifts it, Vegard's law).
    """

    fractions: dict[str, float]
    crystallite_nm: dict[str, float] = field(default_factory=dict)
    lattice_scale: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class OpticalProperties:
    """How a sample absorbs and emits light.

    Absorption is a direct gap at ``band_gap_ev`` with an Urbach tail of width
    ``urbach_ev``; ``absorbance_scale`` is the absorbance (base 10) 0.5 eV above the gap.
    Photoluminescence is a Gaussian in energy at ``pl_peak_ev`` with FWHM ``pl_fwhm_ev``
    and relative yield ``pl_yield`` (0 = dark).
    """

    band_gap_ev: float
    urbach_ev: float = 0.05
    absorbance_scale: float = 1.0
    pl_peak_ev: float = 0.0
    pl_fwhm_ev: float = 0.15
    pl_yield: float = 0.0


class SampleTruth(Protocol):
    """Lookups the emulators use to see the sample they hold."""

    def phases(self, sample_id: str) -> PhaseState:
        """The sample's phases now; raises KeyError for an unknown sample."""
        ...

    def optics(self, sample_id: str) -> OpticalProperties:
        """The sample's optical properties now; raises KeyError for an unknown sample."""
        ...


class TemperatureHistory(Protocol):
    """A furnace's recorded temperature: what the ground truth integrates along."""

    def history(self, start: float, end: float) -> tuple[list[float], list[float]]:
        """Lab times (s) and sample temperatures (°C) between ``start`` and ``end``."""
        ...


@dataclass(frozen=True)
class FixedTruth:
    """Every sample is the same known material: for testing an instrument on its own.

    Without ``phases`` (or ``optics``) a lookup raises KeyError, as for an unknown sample.
    """

    fixed_phases: PhaseState | None = None
    fixed_optics: OpticalProperties | None = None

    def phases(self, sample_id: str) -> PhaseState:
        if self.fixed_phases is None:
            raise KeyError(sample_id)
        return self.fixed_phases

    def optics(self, sample_id: str) -> OpticalProperties:
        if self.fixed_optics is None:
            raise KeyError(sample_id)
        return self.fixed_optics

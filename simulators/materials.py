"""The materials ground truth: solid-state synthesis of (doped) BaTiO3 from BaCO3 and TiO2.

What happens to a pellet in the furnace, integrated along the temperature the furnace
really produced (ramps, overshoot, dwell and cooling all count):

1. **Coarsening** (``coarsening``): hot, unreacted powder sinters and loses reactive
   contact area, ``ρ = exp(−θc)`` with ``θc = ∫ k_c dt``. The precursor reaction runs at
   ``ρ k``, the intermediate's conversion at ``ρ^q k`` (``q = conversion_sintering``). Its
   low activation energy makes slow heating and long low-temperature holds costly: the
   reaction stalls and BaCO3 stays behind.
2. **Precursors react** (``reaction``), JMAK:
   ``dα/dt = n k(T) (1−α) [−ln(1−α)]^((n−1)/n)``. A fast reaction front cannot shed its
   CO2, stays Ba-rich and makes Ba2TiO4 (``2 BaCO3 + TiO2``); a slow one makes BaTiO3
   directly. Each increment of α splits by its speed ``v = dα/dt`` (per hour): the share
   ``v / (v + gas_escape_per_h)`` goes to Ba2TiO4. Fast heating therefore makes more
   intermediate.
3. **The intermediate converts**, ``Ba2TiO4 + TiO2 → 2 BaTiO3`` (``conversion``), JMAK with
   exponent ``conversion_avrami_n``, on a clock that runs only as fast as precursor has
   reacted. It is slow: residual Ba2TiO4 is what short anneals leave.
4. **Loss** (``loss``): from about ``loss.at_c`` (1050 °C) barium volatilises from the
   perovskite, ``BaTiO3 → TiO2 + BaO↑``, first order in the perovskite present.
5. **Off stoichiometry**: at Ba:Ti < 1 the missing barium leaves TiO2 behind; at Ba:Ti > 1
   the excess BaCO3 takes BaTiO3 to Ba2TiO4. Dopant above ``optics.solubility`` stays out
   of the lattice as an XRD-amorphous secondary phase (weight fractions then sum below 1).
6. **Crystallite growth**: ``Lⁿ − L0ⁿ = k t exp(−Q/RT)`` for the products (weighted by how
   much has reacted), ``L0 (1 + θc)^(1/3)`` for the precursors; these feed Scherrer widths.
7. **Optics**: the dopant ``x`` sits on the Ti site, narrows the gap by a bowing law,
   ``Eg(x) = (1−x) Ea + x Eb − b x(1−x)``, and expands the lattice by Vegard's law.
   Photoluminescence sits a Stokes shift below the gap; its yield grows with purity and
   crystallite size and is quenched by the dopant.

So the best anneal is a compromise on every axis: hot enough to outrun coarsening, not so
hot or long that barium leaves; heated slowly enough to make little Ba2TiO4, fast enough
not to sinter first. With the default settings the best recipe for the combined
``score`` of :meth:`MaterialsTruth.evaluate` is near 1063 °C, 3.5 h, 3.1 °C/min, Ba:Ti 1.00,
x 0.134 (target fraction 0.89), well inside :data:`RECIPE_SPACE`.

Every rate is Arrhenius, written as the rate at a temperature an experimenter can read:
``k(T) = rate_per_h · exp(−Ea/R · (1/T − 1/T_at))``. The JMAK equations are integrated in
closed form (``α = 1 − exp(−θⁿ)`` with ``θ = ∫ k dt``, exact for any temperature path),
vectorised over the trace, so an anneal of thousands of points costs well under a
millisecond; a :class:`ReactionState` holds the integrals, so repeated anneals accumulate.

Use::

    truth = MaterialsTruth(ChemistrySettings(), seed=7)
    batch = truth.weigh("S1", Composition(ba_ti_ratio=1.0, dopant=0.1))   # with scatter
    state = truth.anneal(ReactionState(), batch, times, temps)             # any trace
    truth.phases(state, batch), truth.optics(state, batch)
    truth.evaluate({"temperature_c": 1000, "dwell_h": 4, ...})             # ideal anneal
    truth.optimum()                                                        # best recipe

Weight fractions and crystallite sizes use the phase names of :data:`athanor.phases.PHASES`.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field, model_validator
from scipy.optimize import minimize

from athanor.phases import PHASES
from athanor.schema import StrictModel
from athanor.simulators.world import OpticalProperties, PhaseState

R_KJ = 8.314462618e-3  # kJ/(mol K)
KELVIN = 273.15
HOUR = 3600.0

# g/mol of the phases.
MOLAR_MASS = {"BaCO3": 197.34, "TiO2": 79.87, "Ba2TiO4": 386.52, "BaTiO3": 233.19}

# The recipe space the planner benchmarks search, and :meth:`MaterialsTruth.optimum` spans.
RECIPE_SPACE: dict[str, tuple[float, float]] = {
    "temperature_c": (800.0, 1150.0),  # dwell temperature, °C
    "dwell_h": (0.5, 12.0),  # hours at temperature
    "ramp_c_per_min": (1.0, 20.0),  # heating rate, °C/min (cooling: 10 °C/min)
    "ba_ti_ratio": (0.9, 1.1),  # weighed Ba:Ti molar ratio
    "dopant": (0.0, 0.2),  # dopant fraction x on the Ti site
}

# What the model can evaluate at all (wider than the search space).
_RECIPE_LIMITS = {
    "temperature_c": (25.0, 2000.0),
    "dwell_h": (0.0, 1000.0),
    "ramp_c_per_min": (0.01, 1000.0),
    "ba_ti_ratio": (0.5, 2.0),
    "dopant": (0.0, 1.0),
}

# --------------------------------------------------------------------------- settings


class Arrhenius(StrictModel):
    """A rate ``k(T) = rate_per_h · exp(−Ea/R (1/T − 1/T_at))``, given where it is easy to read."""

    rate_per_h: float = Field(gt=0, description="rate at at_c, per hour (or nm^n per hour)")
    at_c: float = Field(gt=0, le=3000, description="°C at which rate_per_h holds")
    activation_kj_mol: float = Field(gt=0, le=2000, description="activation energy, kJ/mol")

    def per_second(self, temps_c: np.ndarray) -> np.ndarray:
        """The rate per lab second at each temperature (°C)."""
        inv = 1.0 / (np.maximum(temps_c, -KELVIN + 1.0) + KELVIN) - 1.0 / (self.at_c + KELVIN)
        return (self.rate_per_h / HOUR) * np.exp(-self.activation_kj_mol / R_KJ * inv)


class GrowthSettings(StrictModel):
    """Crystallite sizes: ``Lⁿ − L0ⁿ = k t exp(−Q/RT)`` for the products."""

    exponent: float = Field(3.0, ge=1, le=6, description="n in Lⁿ − L0ⁿ")
    rate: Arrhenius = Field(
        default_factory=lambda: Arrhenius(rate_per_h=2.0e5, at_c=1000, activation_kj_mol=280)
    )
    target_initial_nm: float = Field(15.0, gt=0, le=1000)
    intermediate_initial_nm: float = Field(12.0, gt=0, le=1000)
    intermediate_relative_rate: float = Field(0.5, ge=0, le=10)
    baco3_nm: float = Field(60.0, gt=0, le=5000, description="as-weighed precursor crystallite")
    tio2_nm: float = Field(30.0, gt=0, le=5000, description="as-weighed precursor crystallite")


class OpticsSettings(StrictModel):
    """Band gap (bowing law), lattice (Vegard) and photoluminescence of the perovskite."""

    host_gap_ev: float = Field(3.2, gt=0, le=10, description="Eg of BaTiO3 (x = 0)")
    dopant_gap_ev: float = Field(2.4, gt=0, le=10, description="Eg of the x = 1 end member")
    bowing_ev: float = Field(0.8, ge=0, le=5, description="b in −b x(1−x)")
    dopant_lattice_scale: float = Field(
        1.025, gt=0.5, lt=1.5, description="lattice of the x = 1 end member relative to BaTiO3"
    )
    solubility: float = Field(0.15, gt=0, le=1, description="most x the lattice takes")
    urbach_ev: float = Field(0.04, gt=0, le=1, description="Urbach width of a pure sample")
    stokes_shift_ev: float = Field(0.12, ge=0, le=2)
    pl_fwhm_ev: float = Field(0.15, gt=0, le=2)
    pl_half_size_nm: float = Field(40.0, gt=0, description="crystallite size at half PL yield")
    pl_quench_dopant: float = Field(0.1, gt=0, description="x at half PL yield")

    @model_validator(mode="after")
    def _gap_positive(self) -> OpticsSettings:
        x = np.linspace(0, 1, 101)
        low = float(np.min(bowing(x, self.host_gap_ev, self.dopant_gap_ev, self.bowing_ev)))
        if low <= 0.2:
            raise ValueError(
                f"bowing_ev = {self.bowing_ev:g} drives the band gap down to {low:.2f} eV for "
                f"some x in 0–1; it must stay above 0.2 eV (lower bowing_ev)"
            )
        return self


class ScatterSettings(StrictModel):
    """Sample-to-sample scatter, drawn once per sample from (seed, sample id)."""

    ratio_relative_sd: float = Field(0.005, ge=0, le=0.2, description="weighing error on Ba:Ti")
    dopant_relative_sd: float = Field(0.02, ge=0, le=0.5, description="weighing error on x")
    position_sd_c: float = Field(3.0, ge=0, le=50, description="furnace position offset, °C")


class ChemistrySettings(StrictModel):
    """The ground truth's parameters: a lab YAML's ``simulation.chemistry`` block.

    Every rate is an :class:`Arrhenius` (``rate_per_h`` at ``at_c``, ``activation_kj_mol``);
    ``avrami_n`` and ``conversion_avrami_n`` are the JMAK exponents.
    """

    avrami_n: float = Field(1.5, gt=0, le=4, description="JMAK n of the precursor reaction")
    conversion_avrami_n: float = Field(1.0, gt=0, le=4, description="JMAK n of Ba2TiO4 → BaTiO3")
    coarsening: Arrhenius = Field(
        default_factory=lambda: Arrhenius(rate_per_h=1.7, at_c=950, activation_kj_mol=75)
    )
    reaction: Arrhenius = Field(
        default_factory=lambda: Arrhenius(rate_per_h=2.0, at_c=900, activation_kj_mol=250)
    )
    conversion_sintering: float = Field(
        0.1, ge=0, le=1, description="how much coarsening slows Ba2TiO4 → BaTiO3 (0: not, 1: fully)"
    )
    gas_escape_per_h: float = Field(
        2.5, gt=0, description="reaction speed (fraction/h) at which half goes via Ba2TiO4"
    )
    conversion: Arrhenius = Field(
        default_factory=lambda: Arrhenius(rate_per_h=0.45, at_c=1040, activation_kj_mol=380)
    )
    loss: Arrhenius = Field(
        default_factory=lambda: Arrhenius(rate_per_h=0.02, at_c=1050, activation_kj_mol=700)
    )
    growth: GrowthSettings = Field(default_factory=GrowthSettings)
    optics: OpticsSettings = Field(default_factory=OpticsSettings)
    scatter: ScatterSettings = Field(default_factory=ScatterSettings)

    @classmethod
    def from_lab(cls, lab: Any) -> ChemistrySettings:
        """Validate a loaded lab's ``simulation.chemistry`` block (errors name file and line)."""
        if lab.source is None or lab.simulation is None:
            return cls.model_validate(lab.simulation.chemistry if lab.simulation else {})
        return lab.source.validate(cls, ("simulation", "chemistry"), "simulation.chemistry")


def bowing(x: Any, host_ev: float, end_ev: float, b_ev: float) -> Any:
    """``Eg(x) = (1−x) Ea + x Eb − b x(1−x)``."""
    return (1 - x) * host_ev + x * end_ev - b_ev * x * (1 - x)


# --------------------------------------------------------------------------- recipes and state


@dataclass(frozen=True)
class Composition:
    """What is weighed: Ba:Ti molar ratio of BaCO3 to TiO2, and dopant fraction x (Ti site)."""

    ba_ti_ratio: float = 1.0
    dopant: float = 0.0

    def __post_init__(self) -> None:
        for name in ("ba_ti_ratio", "dopant"):
            _check_range(name, getattr(self, name), *_RECIPE_LIMITS[name])


@dataclass(frozen=True)
class Batch:
    """A sample as really weighed and placed: the composition with its scatter applied.

    Fields are floats, or arrays when many recipes are evaluated at once.
    """

    ba_ti_ratio: Any
    dopant: Any
    position_offset_c: Any = 0.0


@dataclass(frozen=True)
class ReactionState:
    """How far a sample has come: integrals that repeated anneals add to.

    ``coarsening`` θc, ``precursor_clock`` θp (α = 1 − exp(−θpⁿ)), ``via_intermediate`` the
    reacted fraction that took the Ba2TiO4 route, ``conversion_clock`` θ2 of
    Ba2TiO4 → BaTiO3, ``surviving_target`` the BaTiO3 formed and not volatilised (per
    formula unit of the stoichiometric pool), ``growth`` the crystallite growth integral
    (nmⁿ). Fields are floats, or arrays when many samples are integrated at once.
    """

    coarsening: Any = 0.0
    precursor_clock: Any = 0.0
    via_intermediate: Any = 0.0
    conversion_clock: Any = 0.0
    surviving_target: Any = 0.0
    growth: Any = 0.0


@dataclass(frozen=True)
class AnnealProgram:
    """An ideal furnace program: ramp up from ``start_c``, dwell, cool back down.

    :meth:`trace` is what a perfect furnace would do (no lag, no overshoot), for
    evaluating recipes without instruments.
    """

    temperature_c: float
    dwell_h: float
    ramp_c_per_min: float
    start_c: float = 25.0
    cool_c_per_min: float = 10.0

    def __post_init__(self) -> None:
        for name in ("temperature_c", "dwell_h", "ramp_c_per_min"):
            _check_range(name, getattr(self, name), *_RECIPE_LIMITS[name])
        _check_range("cool_c_per_min", self.cool_c_per_min, *_RECIPE_LIMITS["ramp_c_per_min"])

    def trace(self, points: int = 120) -> tuple[np.ndarray, np.ndarray]:
        """Lab times (s from 0) and temperatures (°C), ``points`` per segment."""
        times, temps = _program_traces(
            np.atleast_1d(self.temperature_c),
            np.atleast_1d(self.dwell_h),
            np.atleast_1d(self.ramp_c_per_min),
            self.start_c,
            self.cool_c_per_min,
            points,
        )
        return times[0], temps[0]


def _program_traces(
    temperature_c: np.ndarray,
    dwell_h: np.ndarray,
    ramp_c_per_min: np.ndarray,
    start_c: float,
    cool_c_per_min: float,
    points: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Ideal traces for many programs at once, shape (programs, 3 * points)."""
    temperature_c, dwell_h, ramp = np.broadcast_arrays(
        *(np.asarray(a, dtype=float) for a in (temperature_c, dwell_h, ramp_c_per_min))
    )
    rise = np.maximum(temperature_c - start_c, 0.0)
    t_heat = rise / ramp * 60.0
    t_dwell = dwell_h * HOUR
    t_cool = rise / cool_c_per_min * 60.0
    u = np.linspace(0.0, 1.0, points)[None, :]
    col = (slice(None), None)
    heat_t, heat_T = u * t_heat[col], start_c + u * rise[col]
    dwell_t = t_heat[col] + u * t_dwell[col]
    dwell_T = np.broadcast_to(temperature_c[col], dwell_t.shape)
    cool_t = (t_heat + t_dwell)[col] + u * t_cool[col]
    cool_T = temperature_c[col] - u * rise[col]
    times = np.concatenate([heat_t, dwell_t, cool_t], axis=1)
    temps = np.concatenate([heat_T, dwell_T, cool_T], axis=1)
    return times, temps


# --------------------------------------------------------------------------- the truth


class MaterialsTruth:
    """The ground truth of the simulated lab.

    Parameters
    ----------
    settings
        Physics parameters (defaults imitate BaCO3 + TiO2 → Ba2TiO4 → BaTiO3).
    seed
        Seeds the per-sample scatter: the same (seed, sample id) gives the same sample.
    """

    def __init__(self, settings: ChemistrySettings | None = None, seed: int = 0) -> None:
        self.settings = settings or ChemistrySettings()
        self.seed = int(seed)

    # ---- samples

    def weigh(self, sample_id: str, composition: Composition) -> Batch:
        """The batch a dosing station really makes for ``composition`` (seeded scatter)."""
        scatter = self.settings.scatter
        rng = np.random.default_rng([self.seed, zlib.crc32(sample_id.encode())])
        ratio_err, dopant_err, offset = rng.standard_normal(3)
        return Batch(
            ba_ti_ratio=composition.ba_ti_ratio * (1 + scatter.ratio_relative_sd * ratio_err),
            dopant=max(0.0, composition.dopant * (1 + scatter.dopant_relative_sd * dopant_err)),
            position_offset_c=scatter.position_sd_c * offset,
        )

    # ---- kinetics

    def anneal(self, state: ReactionState, batch: Batch, times: Any, temps_c: Any) -> ReactionState:
        """The state after the anneal recorded as ``times`` (lab s) and ``temps_c`` (°C).

        ``times``/``temps_c`` may be 2-D (one row per sample); ``state`` then holds arrays.
        The batch's furnace position offset is added to every temperature.
        """
        t = np.asarray(times, dtype=float)
        temps = np.asarray(temps_c, dtype=float) + batch.position_offset_c
        if t.shape != temps.shape or t.shape[-1] < 2:
            return state
        s = self.settings
        dt = np.diff(t, axis=-1)
        if np.any(dt < 0):
            raise ValueError("an anneal history's times must not decrease")

        def start(value: Any) -> np.ndarray:
            return np.asarray(value, dtype=float)[..., None]

        theta_c = start(state.coarsening) + _cumtrapz(s.coarsening.per_second(temps), dt)
        rho = np.exp(-theta_c)
        theta_p = start(state.precursor_clock) + _cumtrapz(rho * s.reaction.per_second(temps), dt)
        alpha_p = _jmak(theta_p, s.avrami_n)
        step = np.diff(alpha_p, axis=-1)
        speed = step / np.maximum(dt, 1e-9) * HOUR
        share = speed / (speed + s.gas_escape_per_h)
        xi = start(state.via_intermediate) + _cumsum0(share * step)
        k_conv = s.conversion.per_second(temps)
        theta_2 = start(state.conversion_clock) + _cumtrapz(
            rho**s.conversion_sintering * k_conv * alpha_p, dt
        )
        alpha_2 = _jmak(theta_2, s.conversion_avrami_n)
        formed = alpha_p - xi * (1.0 - alpha_2)
        # Loss is first order in the perovskite present: each increment formed at s
        # survives exp(−(Θ_end − Θ_s)); only the end state is needed.
        theta_l = _cumtrapz(s.loss.per_second(temps), dt)
        total_l = theta_l[..., -1:]
        surviving = start(state.surviving_target)[..., 0] * np.exp(-total_l[..., 0]) + np.sum(
            np.diff(formed, axis=-1) * np.exp(-(total_l - _mid(theta_l))), axis=-1
        )
        growth = start(state.growth)[..., 0] + _trapz(s.growth.rate.per_second(temps) * alpha_p, dt)
        return ReactionState(
            coarsening=_scalar(theta_c[..., -1]),
            precursor_clock=_scalar(theta_p[..., -1]),
            via_intermediate=_scalar(xi[..., -1]),
            conversion_clock=_scalar(theta_2[..., -1]),
            surviving_target=_scalar(surviving),
            growth=_scalar(growth),
        )

    # ---- what the instruments see

    def amounts(self, state: ReactionState, batch: Batch) -> dict[str, Any]:
        """Moles of each phase per mole of Ti, plus ``amorphous_g`` (grams, same basis)."""
        s = self.settings
        r = np.asarray(batch.ba_ti_ratio, dtype=float)
        pool = np.minimum(r, 1.0)
        excess = np.maximum(r - 1.0, 0.0)
        alpha_p = _jmak(np.asarray(state.precursor_clock, dtype=float), s.avrami_n)
        alpha_2 = _jmak(np.asarray(state.conversion_clock, dtype=float), s.conversion_avrami_n)
        xi = np.asarray(state.via_intermediate, dtype=float)
        formed = alpha_p - xi * (1.0 - alpha_2)
        surviving = np.minimum(np.asarray(state.surviving_target, dtype=float), formed)
        lost = formed - surviving
        target = pool * surviving
        excess_reacted = np.minimum(excess * alpha_p, target)
        target = target - excess_reacted
        intermediate = pool * xi * (1.0 - alpha_2) / 2.0 + excess_reacted
        baco3 = pool * (1.0 - alpha_p) + excess - excess_reacted
        tio2 = 1.0 - pool * alpha_p + pool * xi * (1.0 - alpha_2) / 2.0 + pool * lost
        # Dopant the lattice does not take stays out of the perovskite as a glassy phase.
        segregated = np.maximum(np.asarray(batch.dopant, dtype=float) - s.optics.solubility, 0.0)
        amorphous_g = target * segregated * MOLAR_MASS["BaTiO3"]
        target = target * (1.0 - segregated)
        return {
            "BaCO3": baco3,
            "TiO2": tio2,
            "Ba2TiO4": intermediate,
            "BaTiO3": target,
            "amorphous_g": amorphous_g,
        }

    def weight_fractions(self, state: ReactionState, batch: Batch) -> dict[str, Any]:
        """Weight fractions of the crystalline phases (the rest is amorphous)."""
        amounts = self.amounts(state, batch)
        masses = {p: amounts[p] * MOLAR_MASS[p] for p in PHASES}
        total = sum(masses.values()) + amounts["amorphous_g"]
        return {p: masses[p] / total for p in PHASES}

    def crystallite_nm(self, state: ReactionState) -> dict[str, Any]:
        g = self.settings.growth
        n = g.exponent
        growth = np.asarray(state.growth, dtype=float)
        coarse = (1.0 + np.asarray(state.coarsening, dtype=float)) ** (1.0 / 3.0)
        return {
            "BaCO3": g.baco3_nm * coarse,
            "TiO2": g.tio2_nm * coarse,
            "Ba2TiO4": (g.intermediate_initial_nm**n + g.intermediate_relative_rate * growth)
            ** (1.0 / n),
            "BaTiO3": (g.target_initial_nm**n + growth) ** (1.0 / n),
        }

    def incorporated_dopant(self, batch: Batch) -> Any:
        return np.minimum(np.asarray(batch.dopant, dtype=float), self.settings.optics.solubility)

    def band_gap_ev(self, batch: Batch) -> Any:
        o = self.settings.optics
        return bowing(self.incorporated_dopant(batch), o.host_gap_ev, o.dopant_gap_ev, o.bowing_ev)

    def phases(self, state: ReactionState, batch: Batch) -> PhaseState:
        """The sample's crystalline content, as the diffractometer emulator needs it."""
        fractions = self.weight_fractions(state, batch)
        sizes = self.crystallite_nm(state)
        vegard = 1.0 + float(self.incorporated_dopant(batch)) * (
            self.settings.optics.dopant_lattice_scale - 1.0
        )
        return PhaseState(
            fractions={p: float(fractions[p]) for p in PHASES},
            crystallite_nm={p: float(sizes[p]) for p in PHASES},
            lattice_scale={p: vegard if p == "BaTiO3" else 1.0 for p in PHASES},
        )

    def optics(self, state: ReactionState, batch: Batch) -> OpticalProperties:
        """The sample's absorption edge and photoluminescence."""
        o = self.settings.optics
        fractions = self.weight_fractions(state, batch)
        target = float(fractions["BaTiO3"])
        size = float(self.crystallite_nm(state)["BaTiO3"])
        gap = float(self.band_gap_ev(batch))
        impurity = 1.0 - target
        return OpticalProperties(
            band_gap_ev=gap,
            urbach_ev=o.urbach_ev * (1.0 + 2.0 * impurity),
            # The unreacted TiO2 absorbs near the same edge, more weakly.
            absorbance_scale=0.05 + target + 0.4 * float(fractions["TiO2"]),
            pl_peak_ev=gap - o.stokes_shift_ev,
            pl_fwhm_ev=o.pl_fwhm_ev * (1.0 + impurity),
            pl_yield=self._pl_yield(target, size, float(self.incorporated_dopant(batch))),
        )

    def _pl_yield(self, target: Any, size_nm: Any, dopant: Any) -> Any:
        o = self.settings.optics
        return (
            target
            * size_nm
            / (size_nm + o.pl_half_size_nm)
            / (1 + (dopant / o.pl_quench_dopant) ** 2)
        )

    # ---- the objective without instruments

    def evaluate(
        self,
        recipe: Mapping[str, Any],
        *,
        band_gap_target_ev: float = 3.0,
        band_gap_tolerance_ev: float = 0.05,
        points: int = 120,
    ) -> dict[str, Any]:
        """True outcomes of recipes annealed with an ideal :class:`AnnealProgram`, no scatter.

        ``recipe`` maps the :data:`RECIPE_SPACE` names to numbers or equal-length arrays
        (many recipes at once). Returns ``target_fraction`` (BaTiO3 weight fraction),
        ``band_gap_ev``, ``pl_yield``, ``crystallite_nm`` and ``score`` = target fraction ×
        exp(−½ ((Eg − target)/tolerance)²), the combined objective whose optimum is interior.
        """
        missing = sorted(set(RECIPE_SPACE) - set(recipe))
        if missing:
            raise ValueError(f"a recipe needs {', '.join(missing)}; got {sorted(recipe)}")
        values = {k: np.atleast_1d(np.asarray(recipe[k], dtype=float)) for k in RECIPE_SPACE}
        values = dict(zip(values, np.broadcast_arrays(*values.values()), strict=True))
        for name, (low, high) in _RECIPE_LIMITS.items():
            bad = values[name][~((values[name] >= low) & (values[name] <= high))]
            if bad.size:
                _check_range(name, float(bad[0]), low, high)
        times, temps = _program_traces(
            values["temperature_c"],
            values["dwell_h"],
            values["ramp_c_per_min"],
            AnnealProgram.start_c,
            AnnealProgram.cool_c_per_min,
            points,
        )
        batch = Batch(ba_ti_ratio=values["ba_ti_ratio"], dopant=values["dopant"])
        state = self.anneal(ReactionState(), batch, times, temps)
        target = self.weight_fractions(state, batch)["BaTiO3"]
        gap = self.band_gap_ev(batch)
        size = self.crystallite_nm(state)["BaTiO3"]
        match = np.exp(-0.5 * ((gap - band_gap_target_ev) / band_gap_tolerance_ev) ** 2)
        out = {
            "target_fraction": target,
            "band_gap_ev": gap,
            "pl_yield": self._pl_yield(target, size, self.incorporated_dopant(batch)),
            "crystallite_nm": size,
            "score": target * match,
        }
        scalar = all(np.ndim(recipe[k]) == 0 for k in RECIPE_SPACE)
        return {k: float(v[0]) if scalar else v for k, v in out.items()}

    def optimum(
        self,
        space: Mapping[str, tuple[float, float]] | None = None,
        objective: str = "score",
        grid: int = 5,
        starts: int = 2,
        **evaluate_kw: Any,
    ) -> tuple[dict[str, float], float]:
        """The best recipe in ``space`` (default :data:`RECIPE_SPACE`) and its objective.

        ``grid`` points per dimension are evaluated at once; bounded L-BFGS-B refines the
        ``starts`` best of them and the best result wins. ``objective`` is a key of
        :meth:`evaluate` (``target_fraction`` does not depend on a dopant below the
        solubility, so its optimal dopant is arbitrary). Takes one to two seconds.
        """
        space = dict(space or RECIPE_SPACE)
        names = list(RECIPE_SPACE)
        for name in names:
            if name not in space:
                raise ValueError(f"space must bound {name}; it has {sorted(space)}")
            low, high = space[name]
            if not low < high:
                raise ValueError(f"space[{name!r}] = ({low}, {high}): low must be below high")
        lows = np.array([space[n][0] for n in names])
        span = np.array([space[n][1] for n in names]) - lows

        def values(unit: np.ndarray) -> np.ndarray:
            recipe = dict(zip(names, (lows + unit * span).T, strict=True))
            return np.atleast_1d(self.evaluate(recipe, **evaluate_kw)[objective])

        axes = [np.linspace(0.0, 1.0, grid)] * len(names)
        unit = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(names))
        scores = np.concatenate([values(c) for c in np.array_split(unit, -(-len(unit) // 4096))])
        best_u, best_value = unit[0], -np.inf
        step = 1e-6 * np.eye(len(names))

        def negative_with_gradient(u: np.ndarray) -> tuple[float, np.ndarray]:
            # One vectorised call for the value and a one-sided difference per dimension.
            signs = np.where(u + 1e-6 <= 1.0, 1.0, -1.0)
            v = values(np.vstack([u, u + signs[:, None] * step]))
            return -float(v[0]), -(v[1:] - v[0]) * signs / 1e-6

        for i in np.argsort(scores)[::-1][:starts]:
            result = minimize(
                negative_with_gradient,
                unit[i],
                jac=True,
                method="L-BFGS-B",
                bounds=[(0.0, 1.0)] * len(names),
            )
            if -result.fun > best_value:
                best_u, best_value = result.x, -float(result.fun)
        return dict(zip(names, (lows + best_u * span).tolist(), strict=True)), best_value


# --------------------------------------------------------------------------- helpers


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and low <= value <= high):
        raise ValueError(
            f"{name} = {value!r} is not allowed: it must be a number from {low:g} to {high:g}"
        )


def _jmak(theta: Any, n: float) -> Any:
    return -np.expm1(-(np.maximum(theta, 0.0) ** n))


def _mid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (a[..., 1:] + a[..., :-1])


def _cumsum0(increments: np.ndarray) -> np.ndarray:
    """Cumulative sum with a leading 0, so the result has one more point than the input."""
    out = np.zeros((*increments.shape[:-1], increments.shape[-1] + 1))
    np.cumsum(increments, axis=-1, out=out[..., 1:])
    return out


def _cumtrapz(y: np.ndarray, dt: np.ndarray) -> np.ndarray:
    return _cumsum0(_mid(y) * dt)


def _trapz(y: np.ndarray, dt: np.ndarray) -> np.ndarray:
    return np.sum(_mid(y) * dt, axis=-1)


def _scalar(a: np.ndarray) -> Any:
    return float(a) if np.ndim(a) == 0 else a


__all__ = [
    "RECIPE_SPACE",
    "AnnealProgram",
    "Arrhenius",
    "Batch",
    "ChemistrySettings",
    "Composition",
    "MaterialsTruth",
    "ReactionState",
    "bowing",
]

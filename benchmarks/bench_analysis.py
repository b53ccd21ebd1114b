"""Accuracy and speed of the analysis against the simulator's ground truth.

Samples come from two sources: recipes drawn uniformly from the campaign's recipe space
(:data:`RECIPE_SPACE`, ideal anneals through :class:`MaterialsTruth`), and random phase
mixtures beyond what the chemistry makes (any phase 0-100 %, crystallites 10-200 nm,
lattice scales within ±2 %, band gaps 2.5-3.8 eV). Noise levels vary per sample: the
diffractometer's count rate and scan time, the spectrometer model, integration time and
scans. The analysis never sees the truth; the baselines run on the same data in the
same run: the strongest-line ratio for fractions, a fixed-range (3.2-3.5 eV) Tauc fit
for the gap, the brightest pixel for the emission peak.

    python -m benchmarks analysis [--quick]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from benchmarks.common import median, percentile, table

TARGET = "BaTiO3"
PRESENT = 0.03  # a phase is present at ≥ 3 wt %, absent at < 1 %; between is not scored
ABSENT = 0.01
HC = 1239.84


@dataclass
class Tally:
    """Errors and timings collected for one method."""

    errors: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    tp: int = 0
    fp: int = 0
    fn: int = 0
    rejected: int = 0

    def mae(self) -> float:
        return float(np.mean(np.abs(self.errors))) if self.errors else float("nan")

    def p95(self) -> float:
        return percentile(np.abs(self.errors).tolist(), 95)

    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")


def _recipes(truth, rng, n):
    from athanor.simulators.materials import (
        RECIPE_SPACE,
        AnnealProgram,
        Composition,
        ReactionState,
    )

    for k in range(n):
        r = {name: rng.uniform(*bounds) for name, bounds in RECIPE_SPACE.items()}
        batch = truth.weigh(f"B{k}", Composition(r["ba_ti_ratio"], r["dopant"]))
        times, temps = AnnealProgram(r["temperature_c"], r["dwell_h"], r["ramp_c_per_min"]).trace()
        state = truth.anneal(ReactionState(), batch, times, temps)
        yield truth.phases(state, batch), truth.optics(state, batch)


def _mixtures(rng, n, scales):
    from athanor.phases import PHASES
    from athanor.simulators.world import OpticalProperties, PhaseState

    for _ in range(n):
        present = rng.random(len(PHASES)) < 0.6
        present[rng.integers(len(PHASES))] = True
        weights = rng.dirichlet(np.ones(len(PHASES))) * present
        weights = weights / weights.sum() * rng.uniform(0.9, 1.0)  # up to 10 % amorphous
        state = PhaseState(
            {p: float(w) for p, w in zip(PHASES, weights, strict=True)},
            {p: float(np.exp(rng.uniform(np.log(10), np.log(200)))) for p in PHASES},
            {p: float(rng.choice(scales)) for p in PHASES},
        )
        gap = rng.uniform(2.5, 3.8)
        optics = OpticalProperties(
            band_gap_ev=gap,
            urbach_ev=rng.uniform(0.03, 0.12),
            absorbance_scale=rng.uniform(0.3, 1.5),
            pl_peak_ev=gap - rng.uniform(0.05, 0.2),
            pl_fwhm_ev=rng.uniform(0.12, 0.3),
            pl_yield=rng.uniform(0.05, 1.0),
        )
        yield state, optics


def _xrd(samples, rng, tallies):
    from athanor.analysis import analyse_pattern, analyse_pattern_peak_ratio
    from athanor.simulators.xrd_pattern import Instrument, PatternSimulator

    for state, _ in samples:
        rate = float(rng.choice([5e3, 2e4, 8e4]))
        program = str(rng.choice(["10-100_2-minutes", "10-100_8-minutes"]))
        sim = PatternSimulator(
            seed=int(rng.integers(1 << 30)), instrument=Instrument(count_rate=rate)
        )
        tth, counts, t = sim.pattern(state, program)
        start = time.perf_counter()
        fit = analyse_pattern(tth, counts, {"count_rate": rate}, counting_time=t)
        tallies["wpf"].seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        naive = analyse_pattern_peak_ratio(tth, counts)
        tallies["ratio"].seconds.append(time.perf_counter() - start)
        crystalline = {p: fit.value(f"fraction_{p}") for p in state.fractions}
        total = sum(crystalline.values()) or 1.0
        truth = state.fractions
        truth_total = sum(truth.values())
        estimates = {
            "wpf": crystalline,
            "wpf_rel": {p: w / total for p, w in crystalline.items()},
            "ratio": {p: naive.value(f"fraction_{p}") for p in state.fractions},
        }
        truths = {
            "wpf": truth,
            "wpf_rel": {p: w / truth_total for p, w in truth.items()},
            "ratio": {p: w / truth_total for p, w in truth.items()},
        }
        identified = {
            "wpf": set(fit.details["identified"]),
            "wpf_rel": set(fit.details["identified"]),
            "ratio": set(naive.details["identified"]),
        }
        for name in estimates:
            tally = tallies[name]
            tally.errors.append(estimates[name][TARGET] - truths[name][TARGET])
            for phase, w in truth.items():
                found = phase in identified[name]
                if w >= PRESENT:
                    tally.tp += found
                    tally.fn += not found
                elif w < ABSENT:
                    tally.fp += found
        if "unexplained_intensity" in fit.flags:
            tallies["wpf"].rejected += 1  # false flags: the references are complete


def _spectra(samples, rng, tallies):
    from athanor.analysis import Spectrum, analyse_photoluminescence, analyse_transmission
    from athanor.simulators.ocean_optics import (
        OceanOpticsSimSettings,
        SpectrometerPhysics,
        quantum_efficiency,
    )

    for _, optics in samples:
        model = str(rng.choice(["usb2000", "usb2000plus", "usb4000"]))
        ms, scans = int(rng.choice([20, 50, 100])), int(rng.choice([1, 4, 16]))
        seed = int(rng.integers(1 << 30))
        spectra = {}
        for geometry in ("transmission", "photoluminescence"):
            physics = SpectrometerPhysics(
                OceanOpticsSimSettings(model=model, geometry=geometry, seed=seed)
            )
            wl, fs = physics.wavelengths, physics.full_scale
            physics.load(optics)
            spectra[geometry] = [
                Spectrum(wl, physics.acquire(physics.electron_rate(on), ms, scans), ms, scans, fs)
                for on in (True, False)
            ]
            physics.load(None)
            spectra[geometry].append(
                Spectrum(wl, physics.acquire(physics.electron_rate(True), ms, scans), ms, scans, fs)
            )
        sample, dark, reference = spectra["transmission"]
        for name, method in (
            ("tauc_auto", "spectra.tauc_auto"),
            ("tauc_fixed", "spectra.tauc_fixed"),
        ):
            start = time.perf_counter()
            result = analyse_transmission(sample, dark, reference, method=method)
            tallies[name].seconds.append(time.perf_counter() - start)
            if result.ok:
                tallies[name].errors.append(result.value("band_gap_ev") - optics.band_gap_ev)
            else:
                tallies[name].rejected += 1
        emission, dark, _ = spectra["photoluminescence"]
        start = time.perf_counter()
        pl = analyse_photoluminescence(
            emission, dark, response=quantum_efficiency(emission.wavelengths_nm)
        )
        tallies["pl_gauss"].seconds.append(time.perf_counter() - start)
        true_nm = HC / optics.pl_peak_ev
        if pl.ok and "pl_peak_nm" in pl.outcomes and optics.pl_yield > 0:
            tallies["pl_gauss"].errors.append(pl.value("pl_peak_nm") - true_nm)
            brightest = emission.wavelengths_nm[np.argmax(emission.counts - dark.counts)]
            tallies["pl_max"].errors.append(float(brightest) - true_nm)
        else:
            tallies["pl_gauss"].rejected += 1


# --------------------------------------------------------------- independent patterns

#: condition -> which effects are on (the "clean" patterns have none of them)
CONDITIONS = {
    "clean": (),
    "amorphous hump": ("hump",),
    "sample displacement": ("displacement",),
    "low counts": ("low",),
    "trace phases": ("trace",),
    "all together": ("hump", "displacement", "low", "trace"),
}
GROSS = 0.1  # a phase off by more than this (of the crystalline part) is a gross error


@dataclass
class Score:
    """Errors per phase, gross errors, identification, 1σ coverage and time of one method."""

    errors: dict[str, list[float]] = field(default_factory=dict)
    gross: int = 0
    patterns: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    covered: int = 0
    with_sigma: int = 0
    ms: list[float] = field(default_factory=list)

    def metrics(self, phases) -> dict[str, object]:
        """The table's rows for this method: metric -> value."""
        mae = {f"{p} MAE": float(np.mean(np.abs(self.errors.get(p, [np.nan])))) for p in phases}
        return mae | {
            f"gross (>{GROSS})": f"{100 * self.gross / max(self.patterns, 1):.1f} %",
            "precision": self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan"),
            "recall": self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan"),
            "1σ coverage": self.covered / self.with_sigma if self.with_sigma else "",
            "ms p50": median(self.ms),
            "ms p95": percentile(self.ms, 95),
        }


def _draw(rng: np.random.Generator, effects: tuple[str, ...]):
    """A random sample and measurement for ``effects`` (see :data:`CONDITIONS`)."""
    from athanor.phases import PHASES
    from benchmarks.powder_patterns import Conditions

    trace = "trace" in effects
    present = rng.random(len(PHASES)) < 0.6
    while present.sum() < (2 if trace else 1):
        present[rng.integers(len(PHASES))] = True
    weights = rng.dirichlet(np.ones(len(PHASES))) * present
    weights /= weights.sum()
    if trace:  # one phase at 1-5 %, the rest keep their proportions
        k = rng.choice(np.flatnonzero(present))
        share = rng.uniform(0.01, 0.05)
        weights[k] = 0
        weights = weights / weights.sum() * (1 - share)
        weights[k] = share
    fractions = {p: float(w) for p, w in zip(PHASES, weights, strict=True)}
    sizes = {p: float(np.exp(rng.uniform(np.log(15), np.log(200)))) for p in PHASES}
    lattice = {p: float(rng.uniform(0.985, 1.015)) for p in PHASES}
    low = "low" in effects
    cond = Conditions(
        u=rng.uniform(0.003, 0.009),
        v=rng.uniform(-0.004, -0.001),
        w=rng.uniform(0.002, 0.004),
        strain_x=rng.uniform(0.0, 0.02),
        ka2_ratio=rng.uniform(0.46, 0.52),
        zero_deg=rng.uniform(-0.01, 0.01),
        displacement_mm=rng.choice([-1, 1]) * rng.uniform(0.05, 0.2)
        if "displacement" in effects
        else 0.0,
        line_area=150.0 if low else 1200.0,
        flat=rng.uniform(0.005, 0.02),
        air=rng.uniform(0.02, 0.1),
        hump_height=rng.uniform(0.03, 0.12) if "hump" in effects else 0.0,
        hump_centre_deg=rng.uniform(22, 32),
        hump_fwhm_deg=rng.uniform(6, 12),
    )
    return fractions, sizes, lattice, cond


def _score(score: Score, truth: dict[str, float], result, seconds: float) -> None:
    score.patterns += 1
    score.ms.append(1e3 * seconds)
    identified = set(result.details["identified"])
    off = False
    for phase, w in truth.items():
        q = result.outcomes[f"fraction_{phase}"]
        error = q.value - w
        score.errors.setdefault(phase, []).append(error)
        off |= abs(error) > GROSS
        found = phase in identified
        if w >= ABSENT:
            score.tp += found
            score.fn += not found
        elif w == 0:
            score.fp += found
        if q.uncertainty is not None and (w > 0 or found):
            score.with_sigma += 1
            score.covered += abs(error) <= q.uncertainty
    score.gross += off


#: the whole-pattern fit as it was before issue 20: no shift terms, sizes down to 3 nm,
#: shapes refined for the main phases only, presence by scale factor / σ alone,
#: uncertainties from the covariance alone
BEFORE = {
    "crystallite_nm": (3.0, 3000.0),
    "min_shape_fraction": 0.02,
    "background_alternatives": (),
    "max_zero_shift_deg": 0.0,
    "max_displacement_mm": 0.0,
    "presence_confidence": 0.0,
    "min_significance": 3.0,
    "reference_uncertainty": 0.0,
    "correlated_residuals": False,
}


def _conditions(rng: np.random.Generator, n: int, methods: dict | None = None) -> None:
    from athanor.analysis import analyse_pattern, analyse_pattern_peak_ratio
    from athanor.phases import PHASES
    from benchmarks.powder_patterns import expected, grid

    methods = methods or {
        "baseline": lambda tth, y: analyse_pattern_peak_ratio(tth, y),
        "before": lambda tth, y: analyse_pattern(tth, y, BEFORE),
        "now": lambda tth, y: analyse_pattern(tth, y),
    }
    for condition, effects in CONDITIONS.items():
        scores = {name: Score() for name in methods}
        for _ in range(n):
            fractions, sizes, lattice, cond = _draw(rng, effects)
            counts = rng.poisson(expected(fractions, sizes, lattice, cond))
            tth = grid(cond)
            for name, method in methods.items():
                start = time.perf_counter()
                result = method(tth, counts)
                _score(scores[name], fractions, result, time.perf_counter() - start)
        columns = {name: score.metrics(PHASES) for name, score in scores.items()}
        table(
            f"XRD fractions: {condition} ({n} patterns)",
            ["metric", *methods],
            [[metric, *(c[metric] for c in columns.values())] for metric in columns["now"]],
            note=(
                "baseline: strongest-line ratio; before: the whole-pattern fit with issue 20's "
                "terms off (BEFORE); now: the whole-pattern fit. Patterns from "
                "benchmarks/powder_patterns.py (own structure factors, Voigt lines, other "
                "widths and Kα2 ratio); fractions of the crystalline part. Gross: patterns "
                f"with some phase off by > {GROSS}. Present: ≥ {ABSENT:.0%}; absent: 0. 1σ "
                "coverage: share of estimates whose truth lies within ±σ (68 % is honest). "
                "Targets with every condition on: BaTiO3 MAE ≤ 0.01, gross ≤ 2 %, p95 ≤ 100 ms."
            ),
        )


def main(quick: bool) -> None:
    from athanor.analysis import load_references
    from athanor.simulators.materials import MaterialsTruth

    rng = np.random.default_rng(2024)
    n_recipes, n_mixtures = (12, 8) if quick else (150, 150)
    scales = (1.0, 1.01) if quick else (0.98, 0.99, 1.0, 1.01, 1.02)
    load_references()  # once per process; not part of the per-pattern time
    truth = MaterialsTruth(seed=5)
    _conditions(np.random.default_rng(2025), 8 if quick else 60)
    strata = {
        "campaign recipes": list(_recipes(truth, rng, n_recipes)),
        "random mixtures": list(_mixtures(rng, n_mixtures, scales)),
    }
    for stratum, samples in strata.items():
        xrd = {name: Tally() for name in ("wpf", "wpf_rel", "ratio")}
        _xrd(samples, rng, xrd)
        ms = [1e3 * s for s in xrd["wpf"].seconds]
        table(
            f"Phase analysis, {stratum} ({len(samples)} patterns)",
            ["method", f"{TARGET} MAE", "p95 |err|", "precision", "recall", "ms median", "ms p95"],
            [
                [
                    "whole-pattern fit (absolute, calibrated count rate)",
                    xrd["wpf"].mae(),
                    xrd["wpf"].p95(),
                    xrd["wpf"].precision(),
                    xrd["wpf"].recall(),
                    median(ms),
                    percentile(ms, 95),
                ],
                [
                    "whole-pattern fit (of crystalline)",
                    xrd["wpf_rel"].mae(),
                    xrd["wpf_rel"].p95(),
                    xrd["wpf_rel"].precision(),
                    xrd["wpf_rel"].recall(),
                    "",
                    "",
                ],
                [
                    "baseline: strongest-line ratio",
                    xrd["ratio"].mae(),
                    xrd["ratio"].p95(),
                    xrd["ratio"].precision(),
                    xrd["ratio"].recall(),
                    median([1e3 * s for s in xrd["ratio"].seconds]),
                    percentile([1e3 * s for s in xrd["ratio"].seconds], 95),
                ],
            ],
            note=(
                f"target MAE ≤ 0.03, ≤ 100 ms per pattern. Present: ≥ {PRESENT:.0%}, absent: "
                f"< {ABSENT:.0%} (between: not scored). Unexplained-intensity flags raised "
                f"on these complete-reference patterns: {xrd['wpf'].rejected}. "
                "'of crystalline' compares w/Σw to the crystalline truth."
            ),
        )
        spec = {name: Tally() for name in ("tauc_auto", "tauc_fixed", "pl_gauss", "pl_max")}
        _spectra(samples, rng, spec)

        def ms_of(name: str, spec: dict[str, Tally] = spec) -> list[float]:
            return [1e3 * s for s in spec[name].seconds]

        table(
            f"Spectra, {stratum} ({len(samples)} samples)",
            ["method", "MAE", "p95 |err|", "unit", "not analysed", "ms median", "ms p95"],
            [
                [
                    "band gap: Tauc, automatic window",
                    spec["tauc_auto"].mae(),
                    spec["tauc_auto"].p95(),
                    "eV",
                    spec["tauc_auto"].rejected,
                    median(ms_of("tauc_auto")),
                    percentile(ms_of("tauc_auto"), 95),
                ],
                [
                    "baseline: Tauc, fixed 3.2-3.5 eV",
                    spec["tauc_fixed"].mae(),
                    spec["tauc_fixed"].p95(),
                    "eV",
                    spec["tauc_fixed"].rejected,
                    median(ms_of("tauc_fixed")),
                    percentile(ms_of("tauc_fixed"), 95),
                ],
                [
                    "PL peak: Gaussian in energy",
                    spec["pl_gauss"].mae(),
                    spec["pl_gauss"].p95(),
                    "nm",
                    spec["pl_gauss"].rejected,
                    median(ms_of("pl_gauss")),
                    percentile(ms_of("pl_gauss"), 95),
                ],
                [
                    "baseline: brightest pixel",
                    spec["pl_max"].mae(),
                    spec["pl_max"].p95(),
                    "nm",
                    "",
                    "",
                    "",
                ],
            ],
            note=(
                "target band-gap MAE ≤ 0.05 eV, ≤ 100 ms per spectrum. Not analysed: rejected "
                "(saturated, no straight edge) or, for PL, no emission above the noise; those "
                "are not in the MAE. PL corrected by the detector's response (QE)."
            ),
        )

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
        if fit.flags:
            tallies["wpf"].rejected += 1  # counted as false "unexplained intensity" flags


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


def main(quick: bool) -> None:
    from athanor.analysis import load_references
    from athanor.simulators.materials import MaterialsTruth

    rng = np.random.default_rng(2024)
    n_recipes, n_mixtures = (12, 8) if quick else (150, 150)
    scales = (1.0, 1.01) if quick else (0.98, 0.99, 1.0, 1.01, 1.02)
    load_references()  # once per process; not part of the per-pattern time
    truth = MaterialsTruth(seed=5)
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

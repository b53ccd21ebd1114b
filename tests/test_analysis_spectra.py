"""Spectral analysis: band gap from a Tauc fit, PL peak, saturation, mismatched spectra."""

import math

import numpy as np
import pytest

from athanor.analysis import (
    AnalysisError,
    Measurement,
    Spectrum,
    analyse,
    analyse_photoluminescence,
    analyse_transmission,
    reanalyse,
)
from athanor.simulators.ocean_optics import (
    OceanOpticsSimSettings,
    SpectrometerPhysics,
    quantum_efficiency,
)
from athanor.simulators.world import OpticalProperties

HC = 1239.84


def acquire(optics, geometry="transmission", ms=50, scans=4, seed=0, **settings):
    """Sample, dark and reference spectra from the emulator's detector physics."""
    physics = SpectrometerPhysics(OceanOpticsSimSettings(geometry=geometry, seed=seed, **settings))
    wl, fs = physics.wavelengths, physics.full_scale

    def spectrum(counts, name):
        return Spectrum(wl, counts, ms, scans, fs, name)

    physics.load(optics)
    sample = spectrum(physics.acquire(physics.electron_rate(True), ms, scans), "sample")
    dark = spectrum(physics.acquire(physics.electron_rate(False), ms, scans), "dark")
    physics.load(None)
    reference = spectrum(physics.acquire(physics.electron_rate(True), ms, scans), "reference")
    return sample, dark, reference


@pytest.mark.parametrize(("gap", "urbach"), [(3.2, 0.04), (3.0, 0.1), (2.6, 0.06)])
def test_tauc_gap_from_the_emulated_spectrometer(gap, urbach):
    optics = OpticalProperties(band_gap_ev=gap, urbach_ev=urbach, absorbance_scale=0.8)
    result = analyse_transmission(*acquire(optics))
    assert result.ok, result.rejected
    assert result.value("band_gap_ev") == pytest.approx(gap, abs=0.01)
    q = result.outcomes["band_gap_ev"]
    assert q.unit == "eV" and 0 < q.uncertainty < 0.01
    # the chosen window is reported and lies above the edge
    assert gap < result.value("tauc_fit_low_ev") < result.value("tauc_fit_high_ev")


def test_tauc_gap_from_a_spectrum_built_from_the_documented_physics():
    """Direct gap α ∝ √(E − Eg)/E above the join, Urbach tail below, Poisson counts."""
    gap, urbach, rng = 3.05, 0.05, np.random.default_rng(3)
    wl = np.linspace(250, 800, 1500)
    energy = HC / wl
    b = 2 * gap + urbach
    join = gap + (math.sqrt(b * b + 8 * urbach * gap) - b) / 4
    at_join = math.sqrt(join - gap) / join
    shape = np.where(
        energy >= join,
        np.sqrt(np.clip(energy - gap, 0, None)) / energy,
        at_join * np.exp(np.minimum((energy - join) / urbach, 0)),
    )
    absorbance = 1.2 * shape / (math.sqrt(0.5) / (gap + 0.5))
    lamp = 40000 * np.exp(-0.5 * ((wl - 550) / 250) ** 2)
    dark_level = 1000.0
    sample = rng.poisson(lamp * 10**-absorbance) + rng.normal(dark_level, 20, wl.size)
    reference = rng.poisson(lamp) + rng.normal(dark_level, 20, wl.size)
    dark = rng.normal(dark_level, 20, wl.size)
    result = analyse_transmission(
        Spectrum(wl, sample), Spectrum(wl, dark, source="dark"), Spectrum(wl, reference)
    )
    assert result.value("band_gap_ev") == pytest.approx(gap, abs=0.01)


def test_saturated_spectra_are_rejected_with_a_reason():
    optics = OpticalProperties(band_gap_ev=3.1, pl_peak_ev=3.0, pl_yield=0.8)
    sample, dark, reference = acquire(optics, ms=200, scans=1)  # 140 % of full scale
    result = analyse_transmission(sample, dark, reference)
    assert not result.ok and not result.outcomes and not result.records()
    assert "saturated" in result.rejected and "integration time" in result.rejected

    emission, dark, _ = acquire(optics, "photoluminescence", ms=100, scans=1, excitation_power=5)
    rejected = analyse_photoluminescence(emission, dark)
    assert not rejected.ok and "saturated" in rejected.rejected
    # without the full scale, a run of pixels stuck at the maximum gives it away
    bare = Spectrum(emission.wavelengths_nm, emission.counts, source="bare")
    plain_dark = Spectrum(dark.wavelengths_nm, dark.counts)
    assert "saturated" in analyse_photoluminescence(bare, plain_dark).rejected


def test_photoluminescence_peak_and_width():
    optics = OpticalProperties(band_gap_ev=3.1, pl_peak_ev=2.95, pl_fwhm_ev=0.2, pl_yield=0.3)
    emission, dark, _ = acquire(optics, "photoluminescence", ms=100, scans=4)
    result = analyse_photoluminescence(
        emission, dark, response=quantum_efficiency(emission.wavelengths_nm)
    )
    assert result.value("pl_peak_nm") == pytest.approx(HC / 2.95, abs=0.3)
    assert result.value("pl_peak_ev") == pytest.approx(2.95, abs=0.002)
    assert result.value("pl_fwhm_ev") == pytest.approx(0.2, abs=0.005)
    assert result.params["response_corrected"] is True

    dim = OpticalProperties(band_gap_ev=3.1, pl_peak_ev=2.95, pl_yield=0.0)
    nothing = analyse_photoluminescence(*acquire(dim, "photoluminescence")[:2])
    assert nothing.ok and nothing.flags == ("no_emission",)
    assert "pl_peak_ev" not in nothing.outcomes


def test_mismatched_dark_or_reference_is_a_clear_error():
    wl = np.linspace(300, 800, 256)
    counts = np.random.default_rng(0).normal(3000, 50, 256)
    sample = Spectrum(wl, counts, 100, source="sample.csv")
    with pytest.raises(AnalysisError, match=r"dark.csv has 255 pixels but sample.csv has 256"):
        analyse_transmission(
            sample, Spectrum(wl[:-1], np.ones(255), 100, source="dark.csv"), sample
        )
    shifted = Spectrum(wl + 0.5, np.ones(256), 100, source="ref.csv")
    with pytest.raises(AnalysisError, match=r"ref.csv has other wavelengths than sample.csv"):
        analyse_transmission(sample, Spectrum(wl, np.ones(256), 100), shifted)
    slow_dark = Spectrum(wl, np.ones(256), 200, source="dark.csv")
    with pytest.raises(AnalysisError, match=r"dark.csv was taken at 200 ms but sample.csv at 100"):
        analyse_transmission(sample, slow_dark, sample)
    with pytest.raises(AnalysisError, match="empty"):
        Spectrum([], [], source="x")
    with pytest.raises(AnalysisError, match="min_window_ev"):
        analyse_transmission(sample, sample, sample, {"min_window_ev": 2, "max_window_ev": 1})


def test_reanalysis_with_the_fixed_range_baseline():
    optics = OpticalProperties(band_gap_ev=3.1, urbach_ev=0.05, absorbance_scale=0.8)
    sample, dark, reference = acquire(optics)
    stored = [
        Measurement("transmission", {"sample": sample, "dark": dark, "reference": reference}, "r1"),
        Measurement("transmission", {"sample": sample, "dark": dark}, "r2"),
    ]
    auto, broken = reanalyse(stored)
    assert auto.method == "spectra.tauc_auto" and auto.ok
    assert not broken.ok and "lacks reference" in broken.rejected
    fixed = analyse(stored[0], "spectra.tauc_fixed", {"energy_range_ev": (3.25, 3.6)})
    assert fixed.params["energy_range_ev"] == [3.25, 3.6]
    assert fixed.value("tauc_fit_low_ev") >= 3.25
    assert fixed.value("band_gap_ev") == pytest.approx(3.1, abs=0.02)

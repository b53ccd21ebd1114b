"""Powder patterns from crystal structures: peak positions, widths, intensities, noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from athanor.clock import ManualClock
from athanor.config_files import ConfigError
from athanor.lab_config import load_lab
from athanor.phases import PHASES
from athanor.simulators.aeris import AerisEmulator, AerisSimSettings
from athanor.simulators.lab import sim_settings
from athanor.simulators.world import FixedTruth, PhaseState
from athanor.simulators.xrd_pattern import (
    CU_KA1,
    CU_KA2,
    MarchDollase,
    PatternSimulator,
    ScanProgram,
    Specimen,
    phase_data,
    reference_reflections,
)

PROGRAM = "10-100_8-minutes"
LAB_CONFIGS = Path(__file__).parents[1] / "lab_configs"
LARGE = 2000.0  # nm: crystallites big enough that the instrument sets the width


@pytest.fixture(scope="module")
def sim() -> PatternSimulator:
    return PatternSimulator(seed=3)


def peaks_only(sim: PatternSimulator, state: PhaseState, program: str = PROGRAM):
    two_theta, mean, counting_time = sim.expected(state, program)
    return two_theta, mean / counting_time - sim.instrument.background(two_theta)


def fwhm_at(two_theta: np.ndarray, y: np.ndarray, near: float, window: float = 3.0) -> float:
    inside = np.abs(two_theta - near) < window
    x, v = two_theta[inside], y[inside]
    top = int(np.argmax(v))
    half = v[top] / 2
    left = top - int(np.argmax(v[top::-1] < half))
    right = top + int(np.argmax(v[top:] < half))
    x_left = np.interp(half, [v[left], v[left + 1]], [x[left], x[left + 1]])
    x_right = np.interp(half, [v[right], v[right - 1]], [x[right], x[right - 1]])
    return float(x_right - x_left)


# Literature positions for Cu Kα1 (ICDD powder files):
#   witherite BaCO3 (111): d = 3.72 Å → 2θ = 23.90° (PDF 05-0378)
#   rutile TiO2 (110): d = 3.247 Å → 2θ = 27.45° (PDF 21-1276)
#   tetragonal BaTiO3 (101): d = 2.838 Å → 2θ = 31.50° (PDF 05-0626)
@pytest.mark.parametrize(
    ("phase", "hkl", "literature"),
    [("BaCO3", (1, 1, 1), 23.90), ("TiO2", (1, 1, 0), 27.45), ("BaTiO3", (1, 0, 1), 31.50)],
)
def test_strongest_peak_sits_at_its_literature_angle(sim, phase, hkl, literature):
    two_theta, y = peaks_only(sim, PhaseState({phase: 1.0}, {phase: LARGE}))
    assert abs(two_theta[np.argmax(y)] - literature) < 0.05
    strongest = reference_reflections(phase)
    assert tuple(strongest.hkl[0]) == hkl
    assert abs(strongest.two_theta[0] - literature) < 0.05


def test_monoclinic_ba2tio4_lines_follow_its_cell():
    # β-Ba2TiO4, P2_1/n, a = 6.12 Å, β = 92.99°: d(200) = a sin β / 2
    lines = reference_reflections("Ba2TiO4")
    d200 = 6.12 * np.sin(np.radians(92.99)) / 2
    expected = 2 * np.degrees(np.arcsin(CU_KA1 / (2 * d200)))
    index = [tuple(h) for h in lines.hkl].index((2, 0, 0))
    assert lines.two_theta[index] == pytest.approx(expected, abs=1e-3)
    assert 28.0 < lines.two_theta[0] < 30.5  # the strong lines cluster near 29°


def test_every_phase_has_lines_in_a_standard_scan():
    for phase in PHASES:
        lines = reference_reflections(phase, two_theta_range=(10, 100))
        assert len(lines.two_theta) >= 10
        assert np.all(np.diff(lines.intensity) <= 0)  # strongest first


def test_ka2_makes_a_half_height_shoulder_at_high_angle(sim):
    # rutile (301) near 69°: Kα1/Kα2 separation ~0.2°, resolved with large crystallites
    line = reference_reflections("TiO2", two_theta_range=(68.5, 69.5))
    ka1 = line.two_theta[0]
    ka2 = 2 * np.degrees(np.arcsin(CU_KA2 * np.sin(np.radians(ka1 / 2)) / CU_KA1))
    two_theta, y = peaks_only(sim, PhaseState({"TiO2": 1.0}, {"TiO2": LARGE}))
    at = lambda angle: y[np.argmin(np.abs(two_theta - angle))]  # noqa: E731
    assert at(ka2) / at(ka1) == pytest.approx(0.5, abs=0.1)
    between = y[(two_theta > ka1 + 0.05) & (two_theta < ka2 - 0.05)].min()
    assert between < at(ka2)  # a separate shoulder, not one broad peak


def test_smaller_crystallites_give_broader_peaks_as_scherrer_says(sim):
    widths = {}
    for size in (10.0, 20.0):
        two_theta, y = peaks_only(sim, PhaseState({"TiO2": 1.0}, {"TiO2": size}))
        widths[size] = fwhm_at(two_theta, y, 27.45)
    assert widths[10.0] / widths[20.0] == pytest.approx(2.0, rel=0.1)
    scherrer = np.degrees(0.9 * CU_KA1 / (10.0 * 10 * np.cos(np.radians(27.45 / 2))))
    assert widths[10.0] == pytest.approx(scherrer, rel=0.1)


def test_lattice_expansion_moves_peaks_to_lower_angle(sim):
    state = PhaseState({"BaTiO3": 1.0}, {"BaTiO3": LARGE}, {"BaTiO3": 1.01})
    two_theta, y = peaks_only(sim, state)
    d = CU_KA1 / (2 * np.sin(np.radians(31.495 / 2))) * 1.01
    expected = 2 * np.degrees(np.arcsin(CU_KA1 / (2 * d)))
    assert abs(two_theta[np.argmax(y)] - expected) < 0.02


def test_weight_fractions_scale_intensities_and_can_be_inverted(sim):
    two_theta, single = peaks_only(sim, PhaseState({"BaTiO3": 0.4}))
    _, double = peaks_only(sim, PhaseState({"BaTiO3": 0.8}))
    assert double.max() / single.max() == pytest.approx(2.0, rel=1e-6)
    # a mixture is Σ w_p · phase_pattern_p times one common factor (module docstring)
    state = PhaseState({"BaTiO3": 0.3, "TiO2": 0.5, "BaCO3": 0.2})
    _, mixture = peaks_only(sim, state)
    basis = np.column_stack([sim.phase_pattern(p, two_theta) for p in state.fractions])
    coefficients, *_ = np.linalg.lstsq(basis, mixture, rcond=None)
    recovered = coefficients / coefficients.sum()
    assert recovered == pytest.approx(list(state.fractions.values()), abs=1e-6)


def test_counts_are_poisson_around_the_expected_pattern():
    sim = PatternSimulator(seed=11)
    state = PhaseState({"BaTiO3": 0.6, "TiO2": 0.4}, {"BaTiO3": 60, "TiO2": 80})
    _, mean, _ = sim.expected(state, PROGRAM)
    _, counts, _ = sim.pattern(state, PROGRAM)
    assert counts.dtype.kind == "i" and counts.min() >= 0
    z = (counts - mean) / np.sqrt(mean)
    assert abs(z.mean()) < 0.05
    assert z.std() == pytest.approx(1.0, abs=0.05)


def test_same_seed_same_patterns_other_seed_other_noise():
    state = PhaseState({"BaTiO3": 1.0})
    first = [PatternSimulator(seed=5).pattern(state, PROGRAM)[1] for _ in range(2)]
    assert np.array_equal(first[0], first[1])
    other = PatternSimulator(seed=6).pattern(state, PROGRAM)[1]
    assert not np.array_equal(first[0], other)


def test_program_sets_range_and_counting_time(sim):
    two_theta, counts, counting_time = sim.pattern(PhaseState({}), "20-60_2-minutes")
    assert two_theta[0] == 20 and two_theta[-1] == 60
    assert np.allclose(np.diff(two_theta), sim.instrument.step)
    assert counting_time * two_theta.size == pytest.approx(120.0)
    assert counts[0] > counts[-1]  # low-angle air scatter


@pytest.mark.parametrize("bad", ["10-100", "100-10_8-minutes", "10-100_8-fortnights", ""])
def test_a_bad_program_name_is_refused_with_the_form_expected(bad):
    with pytest.raises(ValueError, match="scan program"):
        ScanProgram.parse(bad)


def test_bad_phase_states_are_refused(sim):
    with pytest.raises(ValueError, match="not simulated"):
        sim.expected(PhaseState({"ZrO2": 0.5}), PROGRAM)
    with pytest.raises(ValueError, match="sum to"):
        sim.expected(PhaseState({"BaTiO3": 0.7, "TiO2": 0.6}), PROGRAM)
    with pytest.raises(ValueError, match="crystallite size"):
        sim.expected(PhaseState({"TiO2": 1.0}, {"TiO2": 0.0}), PROGRAM)


# ----------------------------------------------------------------- specimen effects


def test_an_amorphous_hump_adds_a_broad_bump_and_nothing_else(sim):
    hump = Specimen(hump_cps=400.0, hump_centre_deg=25.0, hump_fwhm_deg=8.0)
    state = PhaseState({"BaTiO3": 1.0}, {"BaTiO3": 80.0})
    two_theta, plain, t = sim.expected(state, PROGRAM)
    _, humped, _ = PatternSimulator(specimen=hump).expected(state, PROGRAM)
    bump = (humped - plain) / t
    assert two_theta[np.argmax(bump)] == pytest.approx(25.0, abs=0.02)
    assert bump.max() == pytest.approx(400.0, rel=1e-3)
    half = two_theta[bump > 200.0]
    assert half[-1] - half[0] == pytest.approx(8.0, abs=0.05)


def test_sample_displacement_moves_lines_by_cos_theta():
    # Δ2θ = −2 s cos θ / R: 0.2 mm at R = 145 mm moves the 31.5° line by −0.153°, the
    # rutile line near 90° by −0.112°
    state = PhaseState({"BaTiO3": 0.5, "TiO2": 0.5}, {"BaTiO3": LARGE, "TiO2": LARGE})
    displaced = PatternSimulator(specimen=Specimen(displacement_mm=0.2))
    for phase, near in (("BaTiO3", 31.5), ("TiO2", 89.56)):
        single = PhaseState({phase: 1.0}, {phase: LARGE})
        two_theta, at_axis = peaks_only(PatternSimulator(), single)
        _, moved = peaks_only(displaced, single)
        window = np.abs(two_theta - near) < 0.6
        top = two_theta[window][np.argmax(at_axis[window])]
        expected = -np.degrees(2 * 0.2 * np.cos(np.radians(top / 2)) / 145.0)
        assert two_theta[window][np.argmax(moved[window])] - top == pytest.approx(
            expected, abs=0.012
        )
    assert displaced.expected(state, PROGRAM)[1].sum() == pytest.approx(
        PatternSimulator().expected(state, PROGRAM)[1].sum(), rel=1e-3
    )


def test_march_dollase_texture_strengthens_lines_along_the_normal():
    # plates lying flat (r < 1) with their c axis up: (001) gains r⁻³, (100) keeps r^1.5
    r = 0.7
    specimen = Specimen(preferred_orientation={"BaTiO3": MarchDollase(hkl=(0, 0, 1), r=r)})
    data = phase_data("BaTiO3")
    factor = specimen.texture("BaTiO3", data)
    lines = {tuple(h): k for k, h in enumerate(data.hkl)}
    assert factor[lines[(0, 0, 1)]] == pytest.approx(r**-3)
    assert factor[lines[(1, 0, 0)]] == pytest.approx(r**1.5)
    assert np.all(specimen.texture("TiO2", phase_data("TiO2")) == 1.0)


def test_brindley_microabsorption_weakens_the_more_absorbing_phase():
    # BaTiO3 absorbs Cu Kα far more than rutile: in coarse powders it diffracts less
    fractions = {"BaTiO3": 0.5, "TiO2": 0.5}
    tau = Specimen(particle_um=5.0).microabsorption(fractions)
    assert tau["BaTiO3"] < 1.0 < tau["TiO2"]
    finer = Specimen(particle_um=1.0).microabsorption(fractions)
    assert tau["BaTiO3"] < finer["BaTiO3"] < 1.0 < finer["TiO2"] < tau["TiO2"]
    assert Specimen().microabsorption(fractions) == {"BaTiO3": 1.0, "TiO2": 1.0}


def test_specimen_switches_are_settings_of_the_simulated_diffractometer(tmp_path):
    lab = (LAB_CONFIGS / "sim_lab.yaml").read_text()
    block = (
        "    slots: 6\n    sim:\n      specimen:\n        hump_cps: 300\n"
        "        displacement_mm: {}\n        preferred_orientation:\n"
        "          BaTiO3: {{hkl: [0, 0, 1], r: 0.8}}\n"
    )
    path = tmp_path / "lab.yaml"
    path.write_text(lab.replace("    slots: 6\n", block.format(0.1)))
    settings = sim_settings(load_lab(path), "xrd", AerisSimSettings)
    truth = FixedTruth(PhaseState({"BaTiO3": 1.0}))
    emulator = AerisEmulator(tmp_path / "exchange", truth, ManualClock(), settings)
    specimen = emulator.simulator.specimen
    assert (specimen.hump_cps, specimen.displacement_mm) == (300.0, 0.1)
    assert specimen.preferred_orientation["BaTiO3"].r == 0.8
    assert AerisSimSettings().specimen == Specimen()  # off unless asked for

    path.write_text(lab.replace("    slots: 6\n", block.format(3.5)))
    with pytest.raises(ConfigError, match=r"instruments\.xrd\.sim\.specimen\.displacement_mm.*2"):
        sim_settings(load_lab(path), "xrd", AerisSimSettings)

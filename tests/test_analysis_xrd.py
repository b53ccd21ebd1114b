"""Phase analysis of powder patterns: fractions, shifts, widths, unexplained peaks, bad files.

Patterns come from the simulator (Dans_Diffraction structures, Kα1/Kα2, Caglioti and
Scherrer widths, background, Poisson noise); the analysis computes its own references.
"""

import numpy as np
import pytest

from athanor.analysis import (
    AnalysisError,
    Measurement,
    analyse,
    analyse_pattern,
    analyse_pattern_file,
    reanalyse,
)
from athanor.simulators.aeris import xrdml_document
from athanor.simulators.world import PhaseState
from athanor.simulators.xrd_pattern import PatternSimulator, ScanProgram

PROGRAM = "10-100_8-minutes"


@pytest.fixture(scope="module")
def sim():
    return PatternSimulator(seed=11)


def fractions(result):
    return {
        k.removeprefix("fraction_"): q.value
        for k, q in result.outcomes.items()
        if k.startswith("fraction_")
    }


@pytest.mark.parametrize(
    "truth",
    [
        {"BaTiO3": 0.6, "Ba2TiO4": 0.25, "TiO2": 0.15},
        {"BaCO3": 0.5, "TiO2": 0.3, "BaTiO3": 0.2},
        {"BaTiO3": 0.95, "BaCO3": 0.05},
    ],
)
def test_recovers_known_fractions_with_shifted_and_broadened_peaks(sim, truth):
    # lattice expanded 1.5 % (a dopant), one phase with 12 nm crystallites
    state = PhaseState(
        truth,
        crystallite_nm={"BaTiO3": 12.0, "Ba2TiO4": 40.0, "TiO2": 150.0, "BaCO3": 200.0},
        lattice_scale={"BaTiO3": 1.015, "TiO2": 0.992},
    )
    tth, counts, t = sim.pattern(state, PROGRAM)
    result = analyse_pattern(tth, counts, counting_time=t)
    got = fractions(result)
    for phase, w in truth.items():
        assert got[phase] == pytest.approx(w, abs=0.02)
    assert set(result.details["identified"]) == set(truth)
    assert result.value("lattice_scale_BaTiO3") == pytest.approx(1.015, abs=0.001)
    assert result.value("crystallite_nm_BaTiO3") == pytest.approx(12.0, rel=0.2)
    assert result.outcomes["fraction_BaTiO3"].uncertainty > 0
    assert result.value("chi2_reduced") < 2
    assert not result.flags


def test_flags_intensity_that_no_reference_explains(sim):
    state = PhaseState({"BaTiO3": 0.7, "TiO2": 0.3}, {"BaTiO3": 60.0, "TiO2": 100.0})
    tth, counts, _ = sim.pattern(state, PROGRAM)
    without_rutile = analyse_pattern(tth, counts, {"phases": ["BaTiO3", "BaCO3", "Ba2TiO4"]})
    assert "unexplained_intensity" in without_rutile.flags
    # rutile's strongest lines (110) and (211) are among the unexplained peaks
    peaks = without_rutile.details["unexplained_peaks_deg"]
    assert any(abs(p - 27.44) < 0.1 for p in peaks) and any(abs(p - 54.32) < 0.1 for p in peaks)
    assert without_rutile.value("unexplained_fraction") > 0.02

    complete = analyse_pattern(tth, counts)
    assert not complete.flags and complete.details["unexplained_peaks_deg"] == []


def test_flags_a_foreign_peak_set(sim):
    state = PhaseState({"BaTiO3": 1.0}, {"BaTiO3": 80.0})
    tth, counts, _ = sim.pattern(state, PROGRAM)
    rng = np.random.default_rng(2)
    for position in (18.0, 47.3, 61.0):  # no candidate phase has lines here
        counts = counts + rng.poisson(2000 * np.exp(-0.5 * ((tth - position) / 0.05) ** 2))
    result = analyse_pattern(tth, counts)
    assert result.flags == ("unexplained_intensity",)
    assert result.details["unexplained_peaks_deg"] == pytest.approx([18.0, 47.3, 61.0], abs=0.05)
    assert result.value("fraction_BaTiO3") == pytest.approx(1.0, abs=0.01)


def test_absolute_fractions_leave_room_for_an_amorphous_part(sim):
    state = PhaseState({"BaTiO3": 0.6, "TiO2": 0.3}, {"BaTiO3": 50.0, "TiO2": 80.0})
    tth, counts, t = sim.pattern(state, PROGRAM)
    result = analyse_pattern(
        tth, counts, {"count_rate": sim.instrument.count_rate}, counting_time=t
    )
    assert result.value("fraction_BaTiO3") == pytest.approx(0.6, abs=0.02)
    assert result.value("amorphous_fraction") == pytest.approx(0.1, abs=0.02)
    with pytest.raises(AnalysisError, match="counting time"):
        analyse_pattern(tth, counts, {"count_rate": 2e4})


def test_reads_xrdml_and_xy_files_and_reanalyses_with_another_method(sim, tmp_path):
    state = PhaseState({"BaTiO3": 0.8, "TiO2": 0.2}, {"BaTiO3": 60.0, "TiO2": 100.0})
    tth, counts, t = sim.pattern(state, PROGRAM)
    xrdml = tmp_path / "S1.xrdml"
    xrdml.write_text(xrdml_document("S1", tth, counts, t, ScanProgram.parse(PROGRAM)))
    xy = tmp_path / "S1.xy"
    np.savetxt(xy, np.column_stack([tth, counts]))

    from_xrdml = analyse_pattern_file(xrdml)
    assert from_xrdml.source == str(xrdml)
    assert from_xrdml.value("fraction_BaTiO3") == pytest.approx(0.8, abs=0.02)
    assert analyse(Measurement("xrd", {"path": xy})).value("fraction_BaTiO3") == pytest.approx(
        from_xrdml.value("fraction_BaTiO3"), abs=1e-6
    )

    stored = [Measurement("xrd", {"two_theta": tth, "counts": counts}, source="run-1")]
    first, again = reanalyse(stored)[0], reanalyse(stored, "xrd.peak_ratio")[0]
    assert (first.method, again.method) == ("xrd.wpf", "xrd.peak_ratio")
    # a stored result's method and parameters reproduce it
    rerun = analyse(stored[0], first.method, first.params)
    assert rerun.outcomes == first.outcomes
    record = first.records()[0]
    assert set(record) == {"name", "value", "uncertainty", "unit", "method", "method_params"}
    assert record["method"] == "xrd.wpf" and record["method_params"] == first.params


def test_bad_files_and_patterns_get_errors_naming_the_file(tmp_path):
    truncated = tmp_path / "cut.xrdml"
    truncated.write_text('<?xml version="1.0"?><xrdMeasurements><xrdMeasurement><scan>')
    with pytest.raises(AnalysisError, match=r"cut\.xrdml.*(truncated|well-formed)"):
        analyse_pattern_file(truncated)
    empty = tmp_path / "empty.xy"
    empty.write_text("# 2theta counts\n")
    with pytest.raises(AnalysisError, match=r"empty\.xy.*empty"):
        analyse_pattern_file(empty)
    garbled = tmp_path / "garbled.xy"
    garbled.write_text("10.0 5\n10.01 6\n10.02 seven\n")
    with pytest.raises(AnalysisError, match=r"garbled\.xy.*line 3"):
        analyse_pattern_file(garbled)
    with pytest.raises(AnalysisError, match="no such file"):
        analyse_pattern_file(tmp_path / "missing.xrdml")

    tth = np.linspace(10, 100, 500)
    with pytest.raises(AnalysisError, match=r"run-7: the pattern is empty"):
        analyse_pattern([], [], source="run-7")
    with pytest.raises(AnalysisError, match="500 2θ positions but 499 counts"):
        analyse_pattern(tth, np.ones(499))
    with pytest.raises(AnalysisError, match="no counts"):
        analyse_pattern(tth, np.zeros(500))
    with pytest.raises(AnalysisError, match="max_lattice_shift"):
        analyse_pattern(tth, np.ones(500), {"max_lattice_shift": -1})
    with pytest.raises(AnalysisError, match=r"unknown analysis method 'xrd\.magic'"):
        analyse(Measurement("xrd", {"two_theta": tth, "counts": np.ones(500)}), "xrd.magic")

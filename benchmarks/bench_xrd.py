"""Milliseconds per simulated XRD pattern, against recomputing the reflections each time.

The simulator computes each phase's reflections with Dans_Diffraction once (per lattice
scale bucket) and renders patterns from the cache with numpy. The baseline in the same
run is the uncached path: Dans_Diffraction's structure-factor calculation for every phase
on every pattern, then the same rendering.
"""

from __future__ import annotations

from benchmarks.common import median, percentile, table, time_calls


def main(quick: bool) -> None:
    from athanor.phases import PHASES
    from athanor.simulators import xrd_pattern as xp
    from athanor.simulators.world import PhaseState

    sim = xp.PatternSimulator(seed=1)
    sim.warm()
    state = PhaseState(
        fractions={"BaCO3": 0.2, "TiO2": 0.1, "Ba2TiO4": 0.3, "BaTiO3": 0.4},
        crystallite_nm={"BaCO3": 80, "TiO2": 60, "Ba2TiO4": 30, "BaTiO3": 50},
        lattice_scale={"BaTiO3": 1.001},
    )
    program = "10-100_8-minutes"

    def uncached() -> None:
        xp._phase_data.cache_clear()
        sim.pattern(state, program)

    repeat = 5 if quick else 50
    cached = time_calls(lambda: sim.pattern(state, program), repeat=repeat)
    baseline = time_calls(uncached, repeat=2 if quick else 5, warmup=1)
    sim.warm()
    rows = [
        ("cached reflections (simulator)", 1e3 * median(cached), 1e3 * percentile(cached, 95)),
        ("Dans_Diffraction every pattern", 1e3 * median(baseline), 1e3 * percentile(baseline, 95)),
    ]
    points = len(xp.ScanProgram.parse(program).two_theta(sim.instrument.step))
    table(
        f"XRD pattern, {len(PHASES)} phases, {program} ({points} points), target <= 50 ms",
        ["path", "median ms", "p95 ms"],
        rows,
        note=f"speed-up {median(baseline) / median(cached):.0f}x; "
        "reproduce: python -m benchmarks xrd",
    )

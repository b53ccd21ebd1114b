"""The materials ground truth behaves like a solid-state synthesis a chemist would recognise."""

import numpy as np
import pytest
from pydantic import ValidationError

from athanor.config_files import ConfigError
from athanor.lab_config import load_lab
from athanor.phases import PHASES
from athanor.simulators.materials import (
    RECIPE_SPACE,
    AnnealProgram,
    Batch,
    ChemistrySettings,
    Composition,
    MaterialsTruth,
    ReactionState,
    bowing,
)

TRUTH = MaterialsTruth()
PURE = Batch(ba_ti_ratio=1.0, dopant=0.0)


def fired(temperature, dwell_h, ramp=5.0, batch=PURE, truth=TRUTH):
    times, temps = AnnealProgram(temperature, dwell_h, ramp).trace()
    state = truth.anneal(ReactionState(), batch, times, temps)
    return truth.weight_fractions(state, batch), state


def target(temperature, dwell_h, ramp=5.0, batch=PURE):
    return fired(temperature, dwell_h, ramp, batch)[0]["BaTiO3"]


def hold(temperature, start_h, end_h, points=200):
    """An isothermal piece of trace (lab seconds, °C)."""
    times = np.linspace(start_h, end_h, points) * 3600
    return times, np.full_like(times, temperature)


def test_longer_dwell_converts_more_below_the_loss_onset():
    values = [target(1000, d) for d in (0.5, 1, 2, 4, 8, 12)]
    assert np.all(np.diff(values) > 0)


def test_hotter_converts_more_until_barium_loss_sets_in():
    values = [target(t, 4) for t in (800, 850, 900, 950, 1000, 1050)]
    assert np.all(np.diff(values) > 0)
    assert target(1150, 4) < 0.1 < target(1050, 4)


def test_loss_at_high_temperature_turns_perovskite_into_tio2():
    short, _ = fired(1100, 1)
    long, _ = fired(1100, 12)
    assert long["BaTiO3"] < short["BaTiO3"] - 0.3
    assert long["TiO2"] > short["TiO2"] + 0.1


def test_the_intermediate_appears_then_disappears():
    # Heat fast to 1050 °C, then hold: Ba2TiO4 builds up first and converts later.
    ramp_t = np.linspace(0, (1050 - 25) / 20 * 60, 100)
    ramp_T = 25 + ramp_t / 60 * 20
    seen = []
    for hours in (0.0, 0.25, 1.0, 12.0):
        t_hold, T_hold = hold(1050, ramp_t[-1] / 3600, ramp_t[-1] / 3600 + hours)
        times, temps = np.concatenate([ramp_t, t_hold]), np.concatenate([ramp_T, T_hold])
        state = TRUTH.anneal(ReactionState(), PURE, times, temps)
        seen.append(TRUTH.weight_fractions(state, PURE)["Ba2TiO4"])
    before = TRUTH.weight_fractions(ReactionState(), PURE)["Ba2TiO4"]
    assert before == 0
    assert max(seen) > 0.1
    assert seen[-1] < max(seen) / 4


def test_off_stoichiometry_leaves_precursor_or_intermediate_behind():
    ti_rich, _ = fired(1050, 6, batch=Batch(0.9, 0.0))
    ba_rich, _ = fired(1050, 6, batch=Batch(1.1, 0.0))
    exact, _ = fired(1050, 6, batch=PURE)
    assert ti_rich["TiO2"] > exact["TiO2"] + 0.02
    assert ba_rich["Ba2TiO4"] > exact["Ba2TiO4"] + 0.05
    assert exact["BaTiO3"] > max(ti_rich["BaTiO3"], ba_rich["BaTiO3"])


def test_crystallites_grow_with_time_and_temperature():
    def size(temperature, dwell):
        return TRUTH.crystallite_nm(fired(temperature, dwell)[1])["BaTiO3"]

    assert size(1000, 1) < size(1000, 8)
    assert size(950, 4) < size(1050, 4)


def test_band_gap_follows_the_bowing_law_and_the_lattice_vegards_law():
    optics = TRUTH.settings.optics
    state = fired(1050, 4)[1]
    for x in (0.0, 0.05, 0.1, 0.15):
        batch = Batch(1.0, x)
        expected = (1 - x) * 3.2 + x * 2.4 - 0.8 * x * (1 - x)
        assert TRUTH.optics(state, batch).band_gap_ev == pytest.approx(expected)
        assert TRUTH.phases(state, batch).lattice_scale["BaTiO3"] == pytest.approx(
            1 + x * (optics.dopant_lattice_scale - 1)
        )
    assert bowing(0.1, 3.2, 2.4, 0.8) == pytest.approx(3.048)


def test_photoluminescence_sits_below_the_gap_and_is_brighter_when_pure():
    batch = Batch(1.0, 0.05)
    good = TRUTH.optics(fired(1050, 4, batch=batch)[1], batch)
    poor = TRUTH.optics(fired(900, 1, batch=batch)[1], batch)
    assert good.pl_peak_ev == pytest.approx(good.band_gap_ev - 0.12)
    assert good.pl_yield > 2 * poor.pl_yield > 0


def test_dopant_beyond_solubility_leaves_an_amorphous_remainder():
    state = fired(1050, 4)[1]
    soluble = TRUTH.phases(state, Batch(1.0, 0.1))
    excess = TRUTH.phases(state, Batch(1.0, 0.3))
    assert set(soluble.fractions) == set(PHASES)
    assert sum(soluble.fractions.values()) == pytest.approx(1.0)
    assert sum(excess.fractions.values()) < 0.9


def test_ramps_matter_with_the_same_dwell():
    slow, fast = target(1050, 4, ramp=2), target(1050, 4, ramp=15)
    assert abs(slow - fast) > 0.02


def test_overshoot_matters():
    # A controller overshooting by 80 °C at the start of a 1080 °C dwell drives off barium.
    times, temps = AnnealProgram(1080, 4, 10).trace()
    overshoot = temps + 80 * np.exp(-(((times - times[120]) / 900) ** 2))
    plain = TRUTH.weight_fractions(TRUTH.anneal(ReactionState(), PURE, times, temps), PURE)
    hot = TRUTH.weight_fractions(TRUTH.anneal(ReactionState(), PURE, times, overshoot), PURE)
    assert hot["BaTiO3"] < plain["BaTiO3"] - 0.05
    assert hot["TiO2"] > plain["TiO2"] + 0.05


def test_anneals_accumulate():
    once = TRUTH.anneal(ReactionState(), PURE, *hold(1000, 0, 4))
    first = TRUTH.anneal(ReactionState(), PURE, *hold(1000, 0, 2))
    twice = TRUTH.anneal(first, PURE, *hold(1000, 2, 4))
    assert TRUTH.weight_fractions(twice, PURE) == pytest.approx(
        TRUTH.weight_fractions(once, PURE), abs=2e-3
    )


def test_evaluate_takes_many_recipes_at_once():
    recipes = dict(
        temperature_c=np.array([950.0, 1050.0]),
        dwell_h=np.array([2.0, 4.0]),
        ramp_c_per_min=5.0,
        ba_ti_ratio=1.0,
        dopant=np.array([0.0, 0.1]),
    )
    many = TRUTH.evaluate(recipes)
    for i in range(2):
        one = TRUTH.evaluate(
            {k: np.asarray(v).take(i) if np.ndim(v) else v for k, v in recipes.items()}
        )
        assert one["score"] == pytest.approx(many["score"][i])
        assert one["target_fraction"] == pytest.approx(many["target_fraction"][i])


def test_the_best_recipe_is_inside_the_space():
    best, value = TRUTH.optimum()
    for name, (low, high) in RECIPE_SPACE.items():
        margin = 0.03 * (high - low)
        assert low + margin < best[name] < high - margin, (name, best[name])
        # Walking to either bound from the optimum makes it worse.
        for bound in (low, high):
            assert TRUTH.evaluate({**best, name: bound})["score"] < value - 1e-3
    assert value == pytest.approx(TRUTH.evaluate(best)["score"])
    assert 0.8 < value < 1.0


def test_scatter_is_seeded_per_sample():
    recipe = Composition(ba_ti_ratio=1.0, dopant=0.1)
    a, b = MaterialsTruth(seed=3), MaterialsTruth(seed=3)
    assert a.weigh("S1", recipe) == b.weigh("S1", recipe)
    assert a.weigh("S1", recipe) != a.weigh("S2", recipe)
    assert a.weigh("S1", recipe) != MaterialsTruth(seed=4).weigh("S1", recipe)
    batch = a.weigh("S1", recipe)
    assert batch.ba_ti_ratio != 1.0
    assert abs(batch.ba_ti_ratio - 1.0) < 0.05
    assert abs(batch.position_offset_c) < 20


def test_scatter_can_be_switched_off():
    settings = ChemistrySettings(
        scatter={"ratio_relative_sd": 0, "dopant_relative_sd": 0, "position_sd_c": 0}
    )
    batch = MaterialsTruth(settings, seed=1).weigh("S1", Composition(1.02, 0.1))
    assert batch == Batch(1.02, 0.1, 0.0)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"reaction": {"rate_per_h": 1, "at_c": 900, "activation_kj_mol": -5}}, "activation"),
        ({"avrami_n": 0}, "avrami_n"),
        ({"loss": {"rate_per_h": 0, "at_c": 1050, "activation_kj_mol": 500}}, "rate_per_h"),
        ({"optics": {"dopant_gap_ev": 0.3, "bowing_ev": 5}}, "bowing_ev"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_impossible_physics_is_refused_by_name(settings, field):
    with pytest.raises(ValidationError, match=field):
        ChemistrySettings.model_validate(settings)


def test_chemistry_block_of_a_lab_yaml_is_checked_with_its_line(write_yaml):
    path = write_yaml(
        "name: lab\n"
        "simulation:\n"
        "  seed: 1\n"
        "  chemistry:\n"
        "    avrami_n: -1\n"
        "instruments:\n"
        "  robot: {kind: transfer, connection: 'tcp://127.0.0.1:0'}\n"
    )
    with pytest.raises(ConfigError) as err:
        ChemistrySettings.from_lab(load_lab(path))
    assert f"{path}:5" in str(err.value)
    assert "simulation.chemistry.avrami_n" in str(err.value)


def test_bad_compositions_are_refused():
    with pytest.raises(ValueError, match="ba_ti_ratio"):
        Composition(ba_ti_ratio=-1)
    with pytest.raises(ValueError, match="dopant"):
        Composition(dopant=1.5)
    with pytest.raises(ValueError, match="recipe needs"):
        TRUTH.evaluate({"temperature_c": 1000})
    with pytest.raises(ValueError, match=r"ramp_c_per_min = 0\.0 is not allowed"):
        TRUTH.evaluate(
            dict(temperature_c=1000, dwell_h=2, ramp_c_per_min=[5.0, 0.0], ba_ti_ratio=1, dopant=0)
        )
    with pytest.raises(ValueError, match="dwell_h = -1 is not allowed"):
        AnnealProgram(1000, -1, 5)

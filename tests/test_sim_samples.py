"""The sample registry: identities, locations, anneals along a furnace's history, safety."""

import numpy as np
import pytest

from athanor.clock import ManualClock
from athanor.simulators.materials import ChemistrySettings, Composition, MaterialsTruth
from athanor.simulators.samples import MoveRefused, SampleRegistry
from athanor.simulators.world import SampleTruth


class FakeFurnace:
    """A furnace whose temperature jumps when told; its history records the steps."""

    def __init__(self, clock):
        self.clock = clock
        self.steps = [(0.0, 25.0)]
        self.asked = []

    @property
    def temperature(self):
        return self.steps[-1][1]

    @temperature.setter
    def temperature(self, value):
        self.steps.append((self.clock.now(), value))

    def history(self, start, end):
        self.asked.append((start, end))
        times = np.linspace(start, end, 200)
        at = np.searchsorted([t for t, _ in self.steps], times, side="right") - 1
        return list(times), [self.steps[i][1] for i in at]


NO_SCATTER = ChemistrySettings(
    scatter={"ratio_relative_sd": 0, "dopant_relative_sd": 0, "position_sd_c": 0}
)


@pytest.fixture
def lab():
    clock = ManualClock()
    truth = MaterialsTruth(NO_SCATTER, seed=1)
    registry = SampleRegistry(truth, clock, locations=["xrd:slot1", "xrd:slot2", "uvvis"])
    furnace = FakeFurnace(clock)
    registry.add_furnace("furnace1", furnace, lambda: furnace.temperature)
    return clock, registry, furnace


def anneal(clock, registry, furnace, sample_id, temperature, hours):
    registry.move(sample_id, "furnace1")
    furnace.temperature = temperature
    clock.advance(hours * 3600)
    furnace.temperature = 150.0  # cooled enough to open
    registry.move(sample_id, "rack")


def test_samples_have_identity_location_and_a_timestamped_history(lab):
    clock, registry, _ = lab
    registry.create("S1", Composition(1.0, 0.05))
    clock.advance(10)
    registry.move("S1", "xrd:slot1")
    clock.advance(5)
    registry.move("S1", "uvvis")
    sample = registry.get("S1")
    assert [(v.time, v.location) for v in sample.visits] == [
        (0, "rack"),
        (10, "xrd:slot1"),
        (15, "uvvis"),
    ]
    assert registry.location("S1") == "uvvis"
    assert registry.at("uvvis") == ["S1"]
    assert "S1" in registry and len(registry) == 1


def test_leaving_a_furnace_anneals_along_its_history(lab):
    clock, registry, furnace = lab
    registry.create("S1", Composition())
    assert registry.phases("S1").fractions["BaTiO3"] == 0
    clock.advance(100)
    anneal(clock, registry, furnace, "S1", 1050, 4)
    assert furnace.asked[-1] == (100, 100 + 4 * 3600)
    assert registry.phases("S1").fractions["BaTiO3"] > 0.5


def test_anneals_accumulate(lab):
    clock, registry, furnace = lab
    registry.create("S1", Composition())
    registry.create("S2", Composition())
    anneal(clock, registry, furnace, "S1", 1000, 1)
    once = registry.phases("S1").fractions["BaTiO3"]
    anneal(clock, registry, furnace, "S1", 1000, 1)
    anneal(clock, registry, furnace, "S2", 1000, 2)
    assert registry.phases("S1").fractions["BaTiO3"] > once
    assert registry.phases("S1").fractions["BaTiO3"] == pytest.approx(
        registry.phases("S2").fractions["BaTiO3"], abs=0.01
    )


def test_truth_during_an_anneal_includes_the_time_so_far(lab):
    clock, registry, furnace = lab
    registry.create("S1", Composition())
    registry.move("S1", "furnace1")
    furnace.temperature = 1050
    clock.advance(3600)
    early = registry.phases("S1").fractions["BaTiO3"]
    clock.advance(3600)
    assert registry.phases("S1").fractions["BaTiO3"] > early > 0


def test_a_hot_furnace_is_not_opened(lab):
    _, registry, furnace = lab
    registry.create("S1", Composition())
    registry.move("S1", "furnace1")
    furnace.temperature = 640.0
    with pytest.raises(MoveRefused, match="furnace1 is at 640 C") as err:
        registry.move("S1", "rack")
    assert err.value.kind == "hot"
    assert registry.location("S1") == "furnace1"
    registry.create("S2", Composition())
    with pytest.raises(MoveRefused, match="handling temperature"):
        registry.move("S2", "furnace1")


def test_each_furnace_may_have_its_own_handling_temperature(lab):
    clock, registry, _ = lab
    warm = FakeFurnace(clock)
    registry.add_furnace("furnace2", warm, lambda: warm.temperature, handling_temperature_c=300)
    warm.temperature = 250.0
    registry.create("S1", Composition())
    registry.move("S1", "furnace2")
    warm.temperature = 320.0
    with pytest.raises(
        MoveRefused, match="furnace2 is at 320 C, above the handling temperature 300 C"
    ):
        registry.move("S1", "rack")


def test_slots_hold_one_sample_and_unknown_places_are_refused(lab):
    _, registry, _ = lab
    registry.create("S1", Composition())
    registry.create("S2", Composition())
    registry.move("S1", "xrd:slot1")
    with pytest.raises(MoveRefused, match="already holds S1") as err:
        registry.move("S2", "xrd:slot1")
    assert err.value.kind == "occupied"
    with pytest.raises(MoveRefused, match="unknown location garage"):
        registry.move("S2", "garage")
    with pytest.raises(MoveRefused, match="is at rack, not uvvis") as err:
        registry.check_move("S2", "uvvis", "xrd:slot2")
    assert err.value.kind == "not_at_source"


def test_identity_rules(lab):
    _, registry, _ = lab
    registry.create("S1", Composition())
    with pytest.raises(MoveRefused, match="already exists"):
        registry.create("S1", Composition())
    with pytest.raises(MoveRefused, match="not allowed"):
        registry.create("bad id", Composition())
    with pytest.raises(MoveRefused, match="unknown sample S9"):
        registry.move("S9", "rack")
    with pytest.raises(KeyError, match="S9"):
        registry.phases("S9")


def test_a_lost_sample_stays_lost(lab):
    _, registry, _ = lab
    registry.create("S1", Composition())
    registry.mark_lost("S1", "dropped")
    assert registry.location("S1") == "lost"
    with pytest.raises(MoveRefused, match="lost") as err:
        registry.move("S1", "rack")
    assert err.value.kind == "lost"


def test_the_registry_is_the_emulators_sample_truth(lab):
    _, registry, _ = lab
    truth: SampleTruth = registry
    registry.create("S1", Composition(1.0, 0.1))
    assert truth.optics("S1").band_gap_ev == pytest.approx(3.2 * 0.9 + 2.4 * 0.1 - 0.8 * 0.09)
    assert set(truth.phases("S1").fractions) == {"BaCO3", "TiO2", "Ba2TiO4", "BaTiO3"}


def test_weighing_scatter_is_applied_per_sample():
    registry = SampleRegistry(MaterialsTruth(seed=5), ManualClock())
    a = registry.create("A", Composition(1.0, 0.1)).batch
    b = registry.create("B", Composition(1.0, 0.1)).batch
    assert a != b
    again = SampleRegistry(MaterialsTruth(seed=5), ManualClock()).create("A", Composition(1.0, 0.1))
    assert again.batch == a

"""Every instrument kind is registered once, and the registration is what builds it."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from athanor.kinds import KINDS
from athanor.lab import Lab, simulate
from athanor.lab_config import InstrumentSpec, load_lab

ROOT = Path(__file__).parent.parent


def _config_classes() -> set[type]:
    union, _field = get_args(InstrumentSpec)
    return set(get_args(union))


def test_every_kind_a_lab_config_accepts_is_registered_with_its_own_config_model():
    assert {kind.config for kind in KINDS.values()} == _config_classes()
    for name, kind in KINDS.items():
        assert kind.config.model_fields["kind"].annotation.__args__ == (name,)


def test_a_simulated_lab_is_built_from_the_registrations_one_device_per_instrument(tmp_path):
    config = load_lab(ROOT / "lab_configs" / "sim_lab.yaml")
    with simulate(config, root=tmp_path) as sim:
        lab = Lab.connect(sim.start(), sim.clock)
        try:
            built = {name: kind for kind, devices in lab.devices.items() for name in devices}
            assert built == {name: inst.kind for name, inst in config.instruments.items()}
            assert set(sim.emulators) == set(config.instruments)
        finally:
            lab.close()
